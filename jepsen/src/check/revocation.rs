//! Revocation: a secret that was revoked or rotated away stops reaching the provider within
//! the bound after the change was acknowledged, on nodes connected to the writer; nodes cut
//! off from every peer refuse strict keys once their state is older than the staleness
//! bound (fail-closed).

use super::topology::{isolated_throughout, overlapping};
use super::{Evidence, Verdict};
use crate::history::OpKind;
use crate::nemesis::Fault;

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
        let since = op.invoke_ms.saturating_sub(b.stale_after_ms + b.revoke_ms);
        if strict && isolated_throughout(&ev.timeline, ev.nodes, op.node, since, op.invoke_ms) {
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
