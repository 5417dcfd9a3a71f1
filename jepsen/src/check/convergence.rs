//! Convergence: once faults are healed and traffic has stopped, every node's state digest is
//! the same, and their dumps match row by row.

use std::collections::BTreeSet;

use super::{Evidence, Verdict};

/// Checks digests and dumps.
pub fn check(ev: &Evidence) -> Verdict {
    let mut v = Verdict::new("convergence");
    match ev.converged_ms {
        Some(at) => {
            let after = at.saturating_sub(ev.traffic_end_ms);
            v.figure(format!(
                "digests equal {after} ms after the last client operation ({} ms after the final heal); design target 2000 ms: {}",
                at.saturating_sub(ev.healed_ms),
                if after <= 2_000 { "met" } else { "missed" }
            ));
        }
        None => v.violation("digests never became equal within the deadline"),
    }
    let Some(reference) = ev.finals.first() else {
        v.violation("no node answered");
        return v;
    };
    let reference_rows: BTreeSet<&String> = reference.rows.iter().flatten().collect();
    v.figure(format!("{} rows per dump", reference_rows.len()));
    for node in &ev.finals {
        let (Some(digest), Some(rows)) = (&node.digest, &node.rows) else {
            v.violation(format!("n{}: no digest or dump", node.node + 1));
            continue;
        };
        if Some(digest) != reference.digest.as_ref() {
            v.violation(format!(
                "n{}: digest {digest} differs from n{}'s",
                node.node + 1,
                reference.node + 1
            ));
        }
        let rows: BTreeSet<&String> = rows.iter().collect();
        for missing in reference_rows.difference(&rows).take(5) {
            v.violation(format!("n{} lacks row {missing}", node.node + 1));
        }
        for extra in rows.difference(&reference_rows).take(5) {
            v.violation(format!("n{} has extra row {extra}", node.node + 1));
        }
    }
    v
}
