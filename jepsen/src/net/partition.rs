//! Partitions as nftables rules inside the hosts' namespaces.
//!
//! A directed pair (a, b) means "packets from host a to host b are lost". The drop happens on
//! *input in b's namespace*, matching a's source address. Dropping on output in a's namespace
//! would be simpler but unrealistic: Linux reports a netfilter drop of a locally generated
//! packet back to the sender, so a's TCP retransmits treat it as local congestion (no
//! exponential backoff, different give-up timing) and UDP senders get `EPERM`. Dropped on b's
//! input, the packet really left a and crossed the bridge, exactly as on a lossy network.
//!
//! Only host addresses are ever matched, so traffic with the bridge address (the harness's
//! clients and the mock provider) is never affected.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::host_ip;

/// The nftables table that holds the partition rules in every host namespace.
pub const NFT_TABLE: &str = "starling_jepsen";

/// The `nft -f -` script that makes host `to`'s namespace (in slot `slot`) drop every packet
/// from the hosts `a` with `(a, to)` in `pairs`; pairs with another destination are ignored.
///
/// The script replaces the namespace's previous partition in one nftables transaction: it
/// declares the table (a no-op if it exists, so the delete cannot fail), deletes it, and
/// recreates it with the new rule. With nothing to drop the table is simply left deleted,
/// also because an empty set `{ }` is not valid nft syntax.
pub fn partition_script(slot: u8, to: usize, pairs: &BTreeSet<(usize, usize)>) -> String {
    let sources: Vec<String> = pairs
        .iter()
        .filter(|&&(from, dest)| dest == to && from != to)
        .map(|&(from, _)| host_ip(slot, from).to_string())
        .collect();
    let mut script = format!("table inet {NFT_TABLE} {{}}\ndelete table inet {NFT_TABLE}\n");
    if !sources.is_empty() {
        // `write!` to a String cannot fail.
        let _ = write!(
            script,
            "table inet {NFT_TABLE} {{\n\
             \tchain input {{\n\
             \t\ttype filter hook input priority 0; policy accept;\n\
             \t\tip saddr {{ {} }} drop\n\
             \t}}\n\
             }}\n",
            sources.join(", ")
        );
    }
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_partition_only_deletes_the_table() {
        let script = partition_script(3, 0, &BTreeSet::new());
        assert_eq!(
            script,
            "table inet starling_jepsen {}\ndelete table inet starling_jepsen\n"
        );
    }

    #[test]
    fn drops_sources_aimed_at_this_host_only() {
        let pairs: BTreeSet<_> = [(0, 1), (2, 1), (1, 0), (1, 2), (4, 3)]
            .into_iter()
            .collect();
        let script = partition_script(7, 1, &pairs);
        assert_eq!(
            script,
            "table inet starling_jepsen {}\n\
             delete table inet starling_jepsen\n\
             table inet starling_jepsen {\n\
             \tchain input {\n\
             \t\ttype filter hook input priority 0; policy accept;\n\
             \t\tip saddr { 10.231.7.1, 10.231.7.3 } drop\n\
             \t}\n\
             }\n"
        );
        // Host 0 drops only what host 1 sends it: the (1, 0) pair.
        assert!(partition_script(7, 0, &pairs).contains("ip saddr { 10.231.7.2 } drop"));
        // A host no pair is aimed at gets no rule at all.
        assert!(!partition_script(7, 4, &pairs).contains("chain"));
        assert!(partition_script(7, 3, &pairs).contains("ip saddr { 10.231.7.5 } drop"));
    }

    #[test]
    fn never_matches_the_bridge_address() {
        let pairs: BTreeSet<_> = (0..50).flat_map(|a| (0..50).map(move |b| (a, b))).collect();
        let script = partition_script(63, 49, &pairs);
        assert!(!script.contains(".254"));
        assert!(script.contains("10.231.63.1,"));
        assert!(!script.contains("10.231.63.50 ") && !script.contains("10.231.63.50,"));
    }
}
