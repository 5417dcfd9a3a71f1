//! Durability: every acknowledged catalog write survives kills and restarts: after the run,
//! every node has the key, revoked if a revocation was acknowledged, with the limit and the
//! secret of the last acknowledged change (or of a later one whose outcome is unknown).
//! Acknowledged spend is checked by the accounting checker.

use serde_json::Value;

use super::{Evidence, Verdict};
use crate::history::{OpKind, Outcome};
use crate::keys::KeyInfo;
use crate::nemesis::Fault;

/// Checks every key's final record on every node.
pub fn check(ev: &Evidence) -> Verdict {
    let mut v = Verdict::new("durability");
    let mut checked = 0;
    let mut lost_to_wipe = 0;
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
                if wiped_soon_after(ev, created.node, created.ack_ms) {
                    lost_to_wipe += 1;
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
            if let Some(last) = key.writes.iter().rev().find(|w| w.action == "update")
                && !unknown_after("update", last.ack_ms)
                && record["rpm"].as_u64() != last.rpm
            {
                v.violation(format!(
                    "n{}: key {} has rpm {} but the last acknowledged update set {:?}",
                    node.node + 1,
                    key.id,
                    record["rpm"],
                    last.rpm
                ));
            }
            let rotated_at = key
                .invalidations
                .iter()
                .rev()
                .find(|i| i.below_generation != u32::MAX)
                .map(|i| i.ack_ms);
            if !unknown_after("rotate", rotated_at.unwrap_or(0)) && !hint_matches(key, record) {
                v.violation(format!(
                    "n{}: key {} shows {} but its last acknowledged secret is generation {}",
                    node.node + 1,
                    key.id,
                    record["key_hint"],
                    key.secrets.len() - 1
                ));
            }
        }
    }
    let kills = ev
        .timeline
        .iter()
        .filter(|r| matches!(r.fault, Fault::Kill { .. }))
        .count();
    v.figure(format!(
        "{checked} key records checked on every node across {kills} kill faults"
    ));
    if lost_to_wipe > 0 {
        v.figure(format!(
            "{lost_to_wipe} records lost with a wiped disk before they replicated (not a violation)"
        ));
    }
    v
}

/// Whether `key`'s record shows its newest secret (`key_hint` is `sk-strl-abcd…wxyz`).
fn hint_matches(key: &KeyInfo, record: &Value) -> bool {
    let (Some(hint), Some(secret)) = (record["key_hint"].as_str(), key.secrets.last()) else {
        return false;
    };
    match hint.split_once('…') {
        Some((head, tail)) => secret.starts_with(head) && secret.ends_with(tail),
        None => false,
    }
}

/// Whether `node`'s disk was wiped within a second of `ack_ms`, before the write could have
/// replicated.
fn wiped_soon_after(ev: &Evidence, node: usize, ack_ms: u64) -> bool {
    ev.timeline.iter().any(|r| {
        matches!(&r.fault, Fault::Kill { nodes, wipe: true } if nodes.contains(&node))
            && r.start_ms >= ack_ms
            && r.start_ms <= ack_ms + 1_000
    })
}
