//! Who could talk to whom, and when: the nemesis timeline as a network over time.

use std::collections::BTreeSet;

use crate::nemesis::{Fault, FaultRecord};

/// The faults active at some time in `[from, to]`.
pub fn overlapping(
    timeline: &[FaultRecord],
    from: u64,
    to: u64,
) -> impl Iterator<Item = &FaultRecord> {
    timeline
        .iter()
        .filter(move |r| r.start_ms <= to && r.end_ms >= from)
}

/// The directed pairs blocked by partitions active at `t`.
fn blocked_at(timeline: &[FaultRecord], t: u64) -> BTreeSet<(usize, usize)> {
    overlapping(timeline, t, t)
        .filter_map(|r| match &r.fault {
            Fault::Partition { blocked, .. } => Some(blocked.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// The nodes down or paused at `t`. A node whose disk is full counts as down: it takes no
/// writes and ships none of its rows, and it is restarted when the fault ends.
fn stopped_at(timeline: &[FaultRecord], t: u64) -> BTreeSet<usize> {
    overlapping(timeline, t, t)
        .filter_map(|r| match &r.fault {
            Fault::Kill { nodes, .. } => Some(nodes.clone()),
            Fault::Pause { node }
            | Fault::DiskFull { node }
            | Fault::FlipByte { node }
            | Fault::TruncateSnapshot { node } => Some(vec![*node]),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Who each node hears from directly at `t` (both directions open; QUIC needs both).
pub fn visible_at(timeline: &[FaultRecord], n: usize, t: u64) -> Vec<BTreeSet<usize>> {
    let blocked = blocked_at(timeline, t);
    let stopped = stopped_at(timeline, t);
    (0..n)
        .map(|a| {
            (0..n)
                .filter(|&b| {
                    a == b
                        || (!stopped.contains(&b)
                            && !blocked.contains(&(a, b))
                            && !blocked.contains(&(b, a)))
                })
                .collect()
        })
        .collect()
}

/// Whether `a` and `b` are connected at `t` through any path of open links among running
/// nodes (anti-entropy relays state over such paths).
pub fn connected_at(timeline: &[FaultRecord], n: usize, a: usize, b: usize, t: u64) -> bool {
    let visible = visible_at(timeline, n, t);
    let stopped = stopped_at(timeline, t);
    if stopped.contains(&a) || stopped.contains(&b) {
        return false;
    }
    let mut seen = BTreeSet::from([a]);
    let mut frontier = vec![a];
    while let Some(x) = frontier.pop() {
        for &y in &visible[x] {
            if !stopped.contains(&y) && seen.insert(y) {
                frontier.push(y);
            }
        }
    }
    seen.contains(&b)
}

/// How many times a cluster-wide limit the nodes may together admit while they cannot all
/// hear each other: each node takes about the limit over the nodes it hears from, so the
/// sum of `1 / |heard|` over running nodes, rounded up (1 when everyone hears everyone).
pub fn limit_multiplier(timeline: &[FaultRecord], n: usize, from: u64, to: u64) -> u64 {
    let mut worst = 1.0f64;
    // The sets only change at fault edges: evaluating at each edge inside the window (and
    // at its start) covers every configuration.
    let mut instants: Vec<u64> = overlapping(timeline, from, to)
        .flat_map(|r| [r.start_ms.max(from), r.end_ms.min(to)])
        .collect();
    instants.push(from);
    for t in instants {
        let stopped = stopped_at(timeline, t);
        let sum: f64 = visible_at(timeline, n, t)
            .iter()
            .enumerate()
            .filter(|(a, _)| !stopped.contains(a))
            .map(|(_, v)| 1.0 / v.len().max(1) as f64)
            .sum();
        worst = worst.max(sum);
    }
    (worst - 1e-9).ceil().max(1.0) as u64
}

/// Whether node `a` ran throughout `[from, to]` and heard from no other node all that time:
/// every other node was down, or its packets to `a` were dropped. A node cut off one way only
/// still receives its peers' pushes on the connections it has (QUIC delivers data whose
/// acknowledgements are lost), so it hears from them and is not stale. (A node that was down
/// or paused in the window restarts its staleness clock.)
pub fn isolated_throughout(
    timeline: &[FaultRecord],
    n: usize,
    a: usize,
    from: u64,
    to: u64,
) -> bool {
    let mut edges: Vec<u64> = overlapping(timeline, from, to)
        .flat_map(|r| [r.start_ms.max(from), r.end_ms.min(to)])
        .chain([from, to])
        .collect();
    edges.sort_unstable();
    edges.dedup();
    // Fault windows are closed, so at an edge the fault is still (or already) on: a moment
    // between two edges samples the stretch in between, such as a heal between two
    // isolations of the same node, when it hears its peers again.
    let between = edges
        .windows(2)
        .filter(|w| w[1] > w[0] + 1)
        .map(|w| w[0] + (w[1] - w[0]) / 2);
    let instants: Vec<u64> = edges.iter().copied().chain(between).collect();
    instants.into_iter().all(|t| {
        let stopped = stopped_at(timeline, t);
        let blocked = blocked_at(timeline, t);
        !stopped.contains(&a)
            && (0..n).all(|b| b == a || stopped.contains(&b) || blocked.contains(&(b, a)))
    })
}

/// Whether `node`'s disk was lost within a second after `at_ms` (wiped, or damaged so that
/// the records after the damage are lost: [`FaultRecord::loses_disk_of`]): what it
/// acknowledged then may not have reached a peer.
pub fn disk_lost_soon_after(timeline: &[FaultRecord], node: usize, at_ms: u64) -> bool {
    timeline
        .iter()
        .any(|r| r.loses_disk_of(node) && r.start_ms >= at_ms && r.start_ms <= at_ms + 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::Nemesis;

    fn partition(blocked: Vec<(usize, usize)>, start_ms: u64, end_ms: u64) -> FaultRecord {
        let fault = Fault::Partition {
            nemesis: Nemesis::PartitionHalves,
            blocked,
            shape: String::new(),
        };
        crate::check::tests::fault(fault, start_ms, end_ms)
    }

    fn halves() -> Vec<(usize, usize)> {
        let mut pairs = Vec::new();
        for a in 0..2 {
            for b in 2..5 {
                pairs.push((a, b));
                pairs.push((b, a));
            }
        }
        pairs
    }

    #[test]
    fn halves_double_the_limit_and_disconnect_the_sides() {
        let t = vec![partition(halves(), 100, 200)];
        assert_eq!(limit_multiplier(&t, 5, 0, 50), 1);
        assert_eq!(limit_multiplier(&t, 5, 0, 150), 2);
        assert!(!connected_at(&t, 5, 0, 3, 150));
        assert!(connected_at(&t, 5, 0, 1, 150));
        assert!(connected_at(&t, 5, 0, 3, 250));
        assert!(!isolated_throughout(&t, 5, 0, 120, 180));
    }

    #[test]
    fn a_node_cut_off_is_isolated_and_a_bridge_relays() {
        let alone: Vec<_> = (1..5).flat_map(|b| [(0, b), (b, 0)]).collect();
        let t = vec![partition(alone, 100, 200)];
        assert!(isolated_throughout(&t, 5, 0, 100, 200));
        assert!(!isolated_throughout(&t, 5, 0, 50, 200));
        // Everyone down, then back: nobody was isolated while running.
        let all_down = FaultRecord {
            fault: Fault::Kill {
                nodes: (0..5).collect(),
                wipe: false,
            },
            label: String::new(),
            start_ms: 100,
            end_ms: 200,
            storage: None,
        };
        assert!(!isolated_throughout(&[all_down], 5, 0, 150, 250));
        // Cut off one way: 0 cannot send, but hears everyone; the other way, it hears no one.
        let mute: Vec<_> = (1..5).map(|b| (0, b)).collect();
        assert!(!isolated_throughout(
            &[partition(mute, 100, 200)],
            5,
            0,
            100,
            200
        ));
        let deaf: Vec<_> = (1..5).map(|b| (b, 0)).collect();
        assert!(isolated_throughout(
            &[partition(deaf, 100, 200)],
            5,
            0,
            100,
            200
        ));
        // Isolated twice with a heal in between (seed 51, n5): it heard its peers in the gap.
        let alone: Vec<_> = (1..5).flat_map(|b| [(0, b), (b, 0)]).collect();
        let twice = vec![
            partition(alone.clone(), 100, 200),
            partition(alone, 230, 300),
        ];
        assert!(!isolated_throughout(&twice, 5, 0, 150, 260));
        assert!(isolated_throughout(&twice, 5, 0, 150, 200));
        assert!(isolated_throughout(&twice, 5, 0, 240, 300));
        // 0 and 1 cannot talk, but both talk to 2.
        let t = vec![partition(vec![(0, 1), (1, 0)], 0, 100)];
        assert!(connected_at(&t, 3, 0, 1, 50));
    }

    #[test]
    fn spend_acknowledged_just_before_a_disk_is_lost_is_at_risk() {
        let wipe = FaultRecord {
            fault: Fault::Kill {
                nodes: vec![2],
                wipe: true,
            },
            label: String::new(),
            start_ms: 10_000,
            end_ms: 12_000,
            storage: None,
        };
        let t = [wipe];
        assert!(disk_lost_soon_after(&t, 2, 9_500));
        assert!(
            !disk_lost_soon_after(&t, 2, 8_000),
            "long enough to replicate"
        );
        assert!(!disk_lost_soon_after(&t, 1, 9_500), "another node's disk");
        assert!(!disk_lost_soon_after(&t, 2, 10_500), "after the wipe");
        for fault in [
            Fault::FlipByte { node: 2 },
            Fault::TruncateSnapshot { node: 2 },
        ] {
            let t = [crate::check::tests::fault(fault, 10_000, 12_000)];
            assert!(disk_lost_soon_after(&t, 2, 9_500), "damaged like a wipe");
            assert!(!disk_lost_soon_after(&t, 2, 8_000));
        }
        // A full disk loses nothing, unless the node had to be started on an empty one.
        let mut full = crate::check::tests::fault(Fault::DiskFull { node: 2 }, 10_000, 12_000);
        assert!(!disk_lost_soon_after(std::slice::from_ref(&full), 2, 9_500));
        full.storage = Some(crate::storage::StorageReport {
            refused_start: Some("corrupt".into()),
            ..Default::default()
        });
        assert!(disk_lost_soon_after(&[full], 2, 9_500));
    }
}
