//! Revocation: a secret that was revoked or rotated away stops reaching the provider within
//! the bound after the change was acknowledged, on nodes connected to the writer; nodes cut
//! off from every peer refuse strict keys once their state is older than the staleness
//! bound (fail-closed).

use super::topology::{isolated_throughout, overlapping};
use super::{Evidence, Verdict};
use crate::history::OpKind;
use crate::nemesis::Fault;

/// Whether `node` had heard from no peer for longer than the staleness bound (plus the
/// revocation bound as slack) at every moment it may have admitted a call made from
/// `invoke_ms` to `complete_ms`: the node admits somewhere in between, so a heal inside the
/// call (seed 61: 1 ms after the invocation) may have come first.
fn stale_whenever_admitted(ev: &Evidence, node: usize, invoke_ms: u64, complete_ms: u64) -> bool {
    let b = &ev.bounds;
    let since = invoke_ms.saturating_sub(b.stale_after_ms + b.revoke_ms);
    isolated_throughout(
        &ev.timeline,
        ev.nodes,
        node,
        since,
        complete_ms.max(invoke_ms),
    )
}

/// Checks every upstream call made with an invalidated secret, and strict keys on isolated
/// nodes.
pub fn check(ev: &Evidence) -> Verdict {
    let mut v = Verdict::new("revocation");
    let b = &ev.bounds;
    let (mut late_worst, mut after_change, mut fail_closed_ok) = (0i64, 0u64, 0u64);
    for (_, op) in ev.attributed() {
        let OpKind::Chat {
            secret_generation, ..
        } = op.kind
        else {
            continue;
        };
        let Some(key) = ev.key(&op.key) else { continue };
        if let Some(inv) = key.invalidated_at(secret_generation)
            && op.invoke_ms > inv.ack_ms
        {
            after_change += 1;
            let late = op.invoke_ms - inv.ack_ms;
            late_worst = late_worst.max(late as i64);
            // Faults touching the serving node or the writer around the change delay it:
            // the guarantee then starts when they end, once replication has caught up.
            let mut deadline = inv.ack_ms + b.revoke_ms;
            for r in overlapping(
                &ev.timeline,
                inv.ack_ms.saturating_sub(b.stale_after_ms),
                op.invoke_ms,
            ) {
                let nodes = r.fault.nodes(ev.nodes);
                if !nodes.contains(&op.node) && !nodes.contains(&inv.node) {
                    continue;
                }
                let mut until = r.end_ms.saturating_add(b.catchup_ms);
                if let Fault::Clock { node, offset_s } = r.fault
                    && node == inv.node
                {
                    // The writer's stamps ran ahead: peers take the change once their clocks
                    // come within the forward bound of it.
                    until = until.max(inv.ack_ms + offset_s.unsigned_abs() * 1_000 + b.revoke_ms);
                }
                deadline = deadline.max(until);
            }
            if op.invoke_ms > deadline {
                v.violation(format!(
                    "op {} on n{}: key {} secret generation {secret_generation} reached the provider {late} ms after the change was acknowledged by n{} (deadline {} ms)",
                    op.id,
                    op.node + 1,
                    key.id,
                    inv.node + 1,
                    deadline - inv.ack_ms
                ));
            }
        }
        // Keys in strict mode, as the node decides it: a strict budget, or none at all.
        let strict = key.budget.as_ref().is_none_or(|b| b.mode == "strict");
        if strict && stale_whenever_admitted(ev, op.node, op.invoke_ms, op.complete_ms) {
            v.violation(format!(
                "op {} on n{}: strict key {} reached the provider while the node had heard from no peer for over {} ms",
                op.id,
                op.node + 1,
                key.id,
                b.stale_after_ms
            ));
        } else if strict {
            fail_closed_ok += 1;
        }
    }
    v.figure(format!(
        "{after_change} upstream calls started after their secret's invalidation was acknowledged (latest {late_worst} ms after); bound {} ms when connected",
        b.revoke_ms
    ));
    let isolated: Vec<_> = ev
        .timeline
        .iter()
        .filter(|r| matches!(r.fault, Fault::Partition { .. }))
        .filter(|r| {
            (0..ev.nodes)
                .any(|n| isolated_throughout(&ev.timeline, ev.nodes, n, r.start_ms, r.end_ms))
        })
        .collect();
    v.figure(format!(
        "{} isolation windows; {fail_closed_ok} strict-key calls checked against them",
        isolated.len()
    ));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{evidence, fault};
    use crate::nemesis::Nemesis;

    #[test]
    fn a_call_is_stale_only_if_the_node_was_cut_off_until_it_completed() {
        let mut ev = evidence(5);
        let alone: Vec<_> = (1..5).flat_map(|b| [(0, b), (b, 0)]).collect();
        let isolate = Fault::Partition {
            nemesis: Nemesis::PartitionIsolate,
            blocked: alone,
            shape: String::new(),
        };
        ev.timeline = vec![fault(isolate, 10_000, 20_000)];
        // Cut off for 6 s when the call came, and still when it completed: refused or wrong.
        assert!(stale_whenever_admitted(&ev, 0, 16_000, 16_050));
        // Seed 61: the heal came 1 ms after the call was made; the node may have heard its
        // peers before it admitted.
        assert!(!stale_whenever_admitted(&ev, 0, 19_999, 20_050));
        // Not cut off long enough yet.
        assert!(!stale_whenever_admitted(&ev, 0, 12_000, 12_050));
        // Another node.
        assert!(!stale_whenever_admitted(&ev, 1, 16_000, 16_050));
    }
}
