//! Accounting: every node's recorded spend of a key lies between what the ledger billed for
//! acknowledged requests (the gateway must not lose those) and what the ledger billed in all
//! (it must not invent spend). Checked per key and in total, on every node.
//!
//! A request's usage is on the serving node's disk before it is acknowledged, and reaches the
//! peers a moment later: a node whose *disk* is lost (the `wipe` nemesis) right after
//! acknowledging can take the last of it along. A damaged log or snapshot (`flip-byte`,
//! `truncate-snapshot`) is the same partial loss: the node drops what it cannot read, records
//! after the damage included, and what it had already pushed comes back from its peers. Such
//! spend is counted apart (at risk), not as a violation; a crash without disk loss, and a full
//! disk, must lose nothing.

use std::collections::HashMap;

use super::topology::disk_lost_soon_after;
use super::{Evidence, Verdict, usd};
use crate::history::Outcome;

/// Checks the recorded spend against the ledger.
pub fn check(ev: &Evidence) -> Verdict {
    let mut v = Verdict::new("accounting");
    // Per key: (billed for acknowledged requests, billed in all, requests in all).
    let mut ledger: HashMap<&str, (u64, u64, u64)> = HashMap::new();
    let mut at_risk_total = 0;
    for (entry, op) in ev.attributed() {
        let row = ledger.entry(op.key.as_str()).or_default();
        if op.outcome == Outcome::Ok && disk_lost_soon_after(&ev.timeline, op.node, op.complete_ms)
        {
            at_risk_total += entry.cost_micros;
        } else if op.outcome == Outcome::Ok {
            row.0 += entry.cost_micros;
        }
        row.1 += entry.cost_micros;
        row.2 += 1;
    }
    let (mut lost_worst, mut extra_worst) = (0u64, 0u64);
    for node in &ev.finals {
        let (mut recorded_total, mut lower_total, mut upper_total, mut requests_total) =
            (0, 0, 0, 0);
        for key in &ev.keys {
            let (lower, upper, requests) = ledger.get(key.id.as_str()).copied().unwrap_or_default();
            requests_total += requests;
            // A key whose record was lost with a disk before it replicated (see the
            // durability checker) has no figure anywhere; that is only wrong if it had spend
            // that had to survive.
            let recorded = match node.spend.get(&key.id) {
                Some(&recorded) => recorded,
                None if lower == 0 => 0,
                None => {
                    v.violation(format!(
                        "n{}: no usage figure for key {}, whose acknowledged requests were billed {}",
                        node.node + 1,
                        key.id,
                        usd(lower)
                    ));
                    continue;
                }
            };
            // Gateway and mock price a request alike, to the micro-dollar: no slack.
            if recorded < lower {
                lost_worst = lost_worst.max(lower - recorded);
                v.violation(format!(
                    "n{}: key {} ({}) records {} but acknowledged requests were billed {}: spend lost",
                    node.node + 1,
                    key.id,
                    key.label,
                    usd(recorded),
                    usd(lower)
                ));
            }
            if recorded > upper {
                extra_worst = extra_worst.max(recorded - upper);
                v.violation(format!(
                    "n{}: key {} ({}) records {} but the ledger billed only {}",
                    node.node + 1,
                    key.id,
                    key.label,
                    usd(recorded),
                    usd(upper)
                ));
            }
            recorded_total += recorded;
            lower_total += lower;
            upper_total += upper;
        }
        if recorded_total < lower_total || recorded_total > upper_total {
            v.violation(format!(
                "n{}: total recorded {} outside [{}, {}]",
                node.node + 1,
                usd(recorded_total),
                usd(lower_total),
                usd(upper_total)
            ));
        }
        v.figure(format!(
            "n{}: recorded {} for {requests_total} upstream calls (ledger: {} acknowledged, {} in all)",
            node.node + 1,
            usd(recorded_total),
            usd(lower_total),
            usd(upper_total)
        ));
    }
    v.figure(format!(
        "largest spend lost {}, largest spend invented {}; {} acknowledged by nodes within a second of losing or damaging their disk (not required to survive)",
        usd(lost_worst),
        usd(extra_worst),
        usd(at_risk_total)
    ));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::NodeFinal;
    use crate::keys::KeyInfo;

    fn key(id: &str) -> KeyInfo {
        KeyInfo {
            id: id.into(),
            workload: "budget".into(),
            label: "strict-0".into(),
            secrets: vec!["sk-test".into()],
            budget: None,
            rpm: None,
            tpm: None,
            writer: 0,
            invalidations: Vec::new(),
            writes: Vec::new(),
        }
    }

    /// Seed 52: a key created on n5 just before its disk was wiped never reached a peer, so no
    /// node has a figure for it; with no spend billed, there is nothing to account for.
    #[test]
    fn a_key_lost_with_a_disk_and_never_billed_needs_no_figure() {
        let mut ev = crate::check::tests::evidence(2);
        ev.keys = vec![key("vk_lost"), key("vk_kept")];
        ev.finals = (0..2)
            .map(|node| NodeFinal {
                node,
                spend: [("vk_kept".to_owned(), 0)].into(),
                ..NodeFinal::default()
            })
            .collect();
        let v = check(&ev);
        assert!(v.ok, "{:?}", v.violations);
        ev.finals[1].spend.insert("vk_lost".into(), 5);
        assert!(
            !check(&ev).ok,
            "a figure the ledger never billed is invented spend"
        );
    }
}
