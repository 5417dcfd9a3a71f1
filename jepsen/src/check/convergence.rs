//! Convergence: once faults are healed and traffic has stopped, every node's state digest is
//! the same within the published bound, and their dumps match row by row.
//!
//! The bound counts from the later of two instants, both taken from what happened rather
//! than from when the harness got round to looking: the end of the last fault (the bound is
//! about healing) and the completion of the last client operation (replicas cannot agree
//! while writes still arrive). The end is the first time the harness saw every digest equal;
//! polling makes that a little late, never early, so a pass is never flattered.

use std::collections::BTreeSet;

use super::{Evidence, Verdict};

/// How long after the heal (and the last write) replicas may take to become identical, by
/// default: the design target of docs/guarantees.md.
pub const DEFAULT_BOUND_MS: u64 = 2_000;

/// When the clock of the bound starts: the later of the last fault's end and the last client
/// operation's completion. (Epoch ms; 0 for a run with neither.)
pub fn reference_ms(ev: &Evidence) -> u64 {
    let last_fault_end = ev
        .timeline
        .iter()
        .map(|r| r.end_ms)
        // A record still open when the evidence was taken was closed by the final heal.
        .map(|end| end.min(ev.healed_ms))
        .max()
        .unwrap_or(0);
    let last_op = ev.ops.iter().map(|o| o.complete_ms).max().unwrap_or(0);
    last_fault_end.max(last_op)
}

/// Checks the time to agree, digests and dumps.
pub fn check(ev: &Evidence) -> Verdict {
    let mut v = Verdict::new("convergence");
    let bound = ev.bounds.convergence_ms;
    match ev.converged_ms {
        Some(at) => {
            let reference = reference_ms(ev);
            let after = at.saturating_sub(reference);
            v.figure(format!(
                "digests equal {after} ms after the later of the last fault's end and the last client operation (bound {bound} ms); {} ms after the final heal",
                at.saturating_sub(ev.healed_ms),
            ));
            if after > bound {
                v.violation(format!(
                    "replicas became identical {after} ms after the heal and the last write, later than the bound of {bound} ms"
                ));
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::NodeFinal;
    use crate::check::tests::{evidence, fault, op};
    use crate::nemesis::Fault;

    /// Two nodes that agree row by row; traffic ends at 10 s, the last fault at 12 s.
    fn run(converged_ms: u64) -> Evidence {
        let mut ev = evidence(2);
        ev.ops = vec![op(1, 0, 9_000, 10_000)];
        ev.timeline = vec![fault(Fault::Pause { node: 1 }, 5_000, 12_000)];
        ev.healed_ms = 12_500;
        ev.traffic_end_ms = 30_000;
        ev.converged_ms = Some(converged_ms);
        ev.finals = (0..2)
            .map(|node| NodeFinal {
                node,
                digest: Some("d".into()),
                rows: Some(vec!["{\"row\":1}".into()]),
                ..NodeFinal::default()
            })
            .collect();
        ev
    }

    #[test]
    fn agreement_within_the_bound_after_the_last_fault_holds() {
        let v = check(&run(12_000 + DEFAULT_BOUND_MS));
        assert!(v.ok, "{}", v.render());
        assert!(v.figures[0].starts_with("digests equal 2000 ms"), "{v:?}");
    }

    #[test]
    fn agreement_later_than_the_bound_fails() {
        let v = check(&run(12_000 + DEFAULT_BOUND_MS + 1));
        assert!(!v.ok);
        assert!(v.violations[0].contains("2001 ms"), "{v:?}");
    }

    #[test]
    fn the_bound_counts_from_the_last_operation_when_it_ends_after_the_heal() {
        let mut ev = run(21_000);
        ev.ops.push(op(2, 1, 18_000, 20_000));
        assert_eq!(reference_ms(&ev), 20_000);
        assert!(check(&ev).ok);
        ev.converged_ms = Some(22_500);
        assert!(!check(&ev).ok);
    }

    #[test]
    fn a_fault_left_open_counts_until_the_final_heal() {
        let mut ev = run(14_000);
        ev.timeline[0].end_ms = u64::MAX;
        assert_eq!(reference_ms(&ev), 12_500);
        assert!(check(&ev).ok);
    }

    #[test]
    fn digests_that_never_agree_fail() {
        let mut ev = run(0);
        ev.converged_ms = None;
        assert!(!check(&ev).ok);
    }
}
