//! Durability: every acknowledged catalog write survives kills and restarts: after the run,
//! every node has the key, revoked if a revocation was acknowledged, with the limit and the
//! secret of an acknowledged change that no other acknowledged change certainly followed (or
//! of a later one whose outcome is unknown).
//! Acknowledged spend is checked by the accounting checker.

use serde_json::Value;

use super::topology::overlapping;
use super::{Evidence, Verdict};
use crate::history::{OpKind, Outcome};
use crate::nemesis::Fault;

/// Checks every key's final record on every node.
pub fn check(ev: &Evidence) -> Verdict {
    let mut v = Verdict::new("durability");
    let mut checked = 0;
    let mut lost_with_disk = 0;
    for key in &ev.keys {
        let Some(created) = key.writes.first() else {
            continue;
        };
        let unknown_after = |action: &str, after: u64| {
            ev.ops.iter().any(|o| {
                o.key == key.id
                    && o.outcome == Outcome::Indeterminate
                    && o.complete_ms >= after
                    && matches!(&o.kind, OpKind::Admin { action: a } if a == action)
            })
        };
        for node in &ev.finals {
            checked += 1;
            let Some(record) = node.key_records.get(&key.id) else {
                if super::topology::disk_lost_soon_after(&ev.timeline, created.node, created.ack_ms)
                {
                    lost_with_disk += 1;
                } else {
                    v.violation(format!(
                        "n{}: acknowledged key {} ({}) is missing",
                        node.node + 1,
                        key.id,
                        key.label
                    ));
                }
                continue;
            };
            if key.revoked() && record["revoked"] != Value::Bool(true) {
                v.violation(format!(
                    "n{}: key {} was revoked (acknowledged) but is not",
                    node.node + 1,
                    key.id
                ));
            }
            // Last writer wins: the final value must be one of the acknowledged writes that no
            // other acknowledged write certainly followed (concurrent writes, such as two made
            // on either side of a partition, may land in either order).
            let updates: Vec<(u64, usize, Option<u64>)> = key
                .writes
                .iter()
                .filter(|w| w.action == "update")
                .map(|w| (w.ack_ms, w.node, w.rpm))
                .collect();
            let candidates = not_superseded(ev, &updates);
            let first_update = updates.iter().map(|u| u.0).min().unwrap_or(0);
            if !candidates.is_empty()
                && !unknown_after("update", first_update)
                && !candidates.contains(&record["rpm"].as_u64())
            {
                v.violation(format!(
                    "n{}: key {} has rpm {} but the acknowledged updates that may win set {:?}",
                    node.node + 1,
                    key.id,
                    record["rpm"],
                    candidates
                ));
            }
            let rotations: Vec<(u64, usize, usize)> = key
                .invalidations
                .iter()
                .filter(|i| i.below_generation != u32::MAX)
                .map(|i| (i.ack_ms, i.node, i.below_generation as usize))
                .collect();
            let mut generations = not_superseded(ev, &rotations);
            if generations.is_empty() {
                generations.push(0);
            }
            let first_rotation = rotations.iter().map(|r| r.0).min().unwrap_or(0);
            if !unknown_after("rotate", first_rotation)
                && !generations
                    .iter()
                    .any(|&g| hint_matches(key.secrets.get(g), record))
            {
                v.violation(format!(
                    "n{}: key {} shows {} but the acknowledged rotations that may win are generations {:?}",
                    node.node + 1,
                    key.id,
                    record["key_hint"],
                    generations
                ));
            }
        }
    }
    let kills = ev
        .timeline
        .iter()
        .filter(|r| matches!(r.fault, Fault::Kill { .. }) || r.fault.storage_node().is_some())
        .count();
    v.figure(format!(
        "{checked} key records checked on every node across {kills} kill and storage faults"
    ));
    if lost_with_disk > 0 {
        v.figure(format!(
            "{lost_with_disk} records lost with a wiped or damaged disk before they replicated (not a violation)"
        ));
    }
    v
}

/// The values of the writes (acknowledged at, by node, value) that no other write certainly
/// followed: one acknowledged after another's acknowledgement plus the replication catch-up,
/// with no fault touching either writer in between, saw it and wins over it.
fn not_superseded<T: Clone + PartialEq>(ev: &Evidence, writes: &[(u64, usize, T)]) -> Vec<T> {
    let b = &ev.bounds;
    let followed = |(at, node, _): &(u64, usize, T), (later, by, _): &(u64, usize, T)| {
        *later > at + b.catchup_ms
            && !overlapping(&ev.timeline, at.saturating_sub(b.stale_after_ms), *later).any(|r| {
                let touched = r.fault.nodes(ev.nodes);
                touched.contains(node) || touched.contains(by)
            })
    };
    let mut out: Vec<T> = Vec::new();
    for w in writes {
        if !writes.iter().any(|other| followed(w, other)) && !out.contains(&w.2) {
            out.push(w.2.clone());
        }
    }
    out
}

/// Whether `record` shows `secret` (`key_hint` is `sk-strl-abcd…wxyz`).
fn hint_matches(secret: Option<&String>, record: &Value) -> bool {
    let (Some(hint), Some(secret)) = (record["key_hint"].as_str(), secret) else {
        return false;
    };
    match hint.split_once('…') {
        Some((head, tail)) => secret.starts_with(head) && secret.ends_with(tail),
        None => false,
    }
}
