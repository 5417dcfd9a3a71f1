//! This node's view of the other counted nodes, from the latest reports the caller passes in.

use super::allocation::Granularity;
use super::report::PeerReport;

/// A peer whose report is recent enough to take part in the split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct FreshPeer {
    pub(super) demand: f64,
    pub(super) tiebreak: u64,
}

/// The other nodes as far as this node can tell.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PeerView {
    /// Peers heard from within the staleness bound: their demands take part in the split.
    pub(super) fresh: Vec<FreshPeer>,
    /// What stale and missing peers may hold: set aside before the split, since what they
    /// want is not known but what they may use must be left to them.
    pub(super) pinned: f64,
    /// What all other nodes may hold: `max(share, intent)` from their latest reports, and the
    /// initial even split for counted nodes not heard from yet.
    pub(super) promised: f64,
    /// Every other counted node was heard from within the staleness bound. Raises wait for
    /// this: a peer this node cannot hear may not be hearing this node either.
    pub(super) complete: bool,
    /// Nodes counted, this one included.
    pub(super) nodes: usize,
}

/// Builds the view from `peers` (latest report per node key; duplicates keep the highest
/// `seq`), counting `max(live_nodes, distinct peers + 1)` nodes.
pub(super) fn survey<K: PartialEq>(
    peers: &[(K, PeerReport)],
    live_nodes: usize,
    now_ms: u64,
    stale_after_ms: u64,
    limit: f64,
    granularity: Granularity,
) -> PeerView {
    let latest: Vec<&PeerReport> = peers
        .iter()
        .enumerate()
        .filter(|&(index, (key, peer))| !superseded(peers, index, key, peer))
        .map(|(_, (_, peer))| peer)
        .collect();
    let nodes = live_nodes.max(latest.len() + 1);
    let missing = nodes - 1 - latest.len();
    let initial = initial_share(limit, nodes, granularity);

    let mut view = PeerView {
        fresh: Vec::with_capacity(latest.len()),
        pinned: initial * missing as f64,
        promised: initial * missing as f64,
        complete: missing == 0,
        nodes,
    };
    for peer in latest {
        let report = &peer.report;
        // A malformed number must not loosen the limit: read it as "may hold everything".
        let sane = |value: f64| {
            if value.is_finite() {
                value.max(0.0)
            } else {
                limit
            }
        };
        let may_hold = sane(report.share).max(sane(report.intent));
        view.promised += may_hold;
        if now_ms.saturating_sub(peer.received_ms) > stale_after_ms {
            view.pinned += may_hold;
            view.complete = false;
        } else {
            view.fresh.push(FreshPeer {
                demand: sane(report.demand),
                tiebreak: report.tiebreak,
            });
        }
    }
    view
}

/// The share a node starts with before any report: an even split (whole slots rounded down).
pub(super) fn initial_share(limit: f64, nodes: usize, granularity: Granularity) -> f64 {
    let even = limit.max(0.0) / nodes.max(1) as f64;
    match granularity {
        Granularity::Continuous => even,
        Granularity::Whole => even.floor(),
    }
}

/// Whether another entry for the same key is newer (higher `seq`, then later in the slice).
fn superseded<K: PartialEq>(
    peers: &[(K, PeerReport)],
    index: usize,
    key: &K,
    peer: &PeerReport,
) -> bool {
    peers
        .iter()
        .enumerate()
        .any(|(other, (other_key, other_peer))| {
            other != index
                && other_key == key
                && (other_peer.report.seq, other) > (peer.report.seq, index)
        })
}

#[cfg(test)]
mod tests {
    use super::super::report::ShareReport;
    use super::*;

    fn peer(share: f64, intent: f64, seq: u64, received_ms: u64) -> PeerReport {
        PeerReport {
            report: ShareReport {
                demand: 10.0,
                share,
                intent,
                seq,
                tiebreak: 0,
            },
            received_ms,
        }
    }

    #[test]
    fn fresh_peers_are_split_over_and_promise_their_larger_figure() {
        let peers = [
            ("a", peer(100.0, 150.0, 1, 950)),
            ("b", peer(120.0, 80.0, 1, 990)),
        ];
        let view = survey(&peers, 3, 1_000, 300, 600.0, Granularity::Continuous);
        assert_eq!(view.fresh.len(), 2);
        assert_eq!(view.promised, 270.0);
        assert_eq!(view.pinned, 0.0);
        assert!(view.complete);
    }

    #[test]
    fn stale_peers_are_pinned_at_their_larger_figure() {
        let peers = [
            ("a", peer(100.0, 150.0, 1, 600)),
            ("b", peer(120.0, 80.0, 1, 990)),
        ];
        let view = survey(&peers, 3, 1_000, 300, 600.0, Granularity::Continuous);
        assert_eq!(view.fresh.len(), 1);
        assert_eq!(view.pinned, 150.0);
        assert!(!view.complete);
    }

    #[test]
    fn missing_peers_count_at_the_initial_split() {
        let peers = [("a", peer(100.0, 100.0, 1, 990))];
        let view = survey(&peers, 4, 1_000, 300, 600.0, Granularity::Continuous);
        assert_eq!(view.nodes, 4);
        assert_eq!(view.pinned, 300.0);
        assert_eq!(view.promised, 400.0);
        assert!(!view.complete);
    }

    #[test]
    fn departed_peers_still_listed_are_counted() {
        let peers = [
            ("a", peer(100.0, 100.0, 1, 990)),
            ("b", peer(50.0, 50.0, 1, 990)),
        ];
        let view = survey(&peers, 1, 1_000, 300, 600.0, Granularity::Continuous);
        assert_eq!(view.nodes, 3);
        assert_eq!(view.promised, 150.0);
    }

    #[test]
    fn duplicates_keep_the_highest_seq() {
        let peers = [
            ("a", peer(300.0, 300.0, 7, 990)),
            ("a", peer(100.0, 100.0, 6, 995)),
        ];
        let view = survey(&peers, 2, 1_000, 300, 600.0, Granularity::Continuous);
        assert_eq!(view.nodes, 2);
        assert_eq!(view.promised, 300.0);
    }

    #[test]
    fn malformed_figures_count_as_the_whole_limit() {
        let peers = [("a", peer(f64::NAN, 10.0, 1, 990))];
        let view = survey(&peers, 2, 1_000, 300, 600.0, Granularity::Continuous);
        assert_eq!(view.promised, 600.0);
    }
}
