//! Catalog: LWW semantics, merge laws, convergence under reordering and duplication, and
//! tombstone garbage collection without resurrection.

mod crdt_support;

use std::{collections::BTreeMap, time::Duration};

use crdt_support::{
    CatNode, Crdt, ManualTime, Val, check_delta_laws, check_state_laws, deliver_everything,
    pull_all_pairs, writer,
};
use proptest::{collection::vec, prelude::*};
use starling_cluster::{
    crdt::{Catalog, VersionVector},
    hlc::Hlc,
};

fn node(time: &ManualTime, name: &str, offset_ms: u64) -> CatNode {
    CatNode {
        cat: Catalog::new(),
        clock: time.clock(writer(name, 1), offset_ms),
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put(usize, u8, Val),
    Delete(usize, u8),
    Pull(usize, usize),
    Deliver(usize, usize),
    Tick(u16),
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..n, 0..6u8, any::<Val>()).prop_map(|(r, k, v)| Op::Put(r, k, v)),
        2 => (0..n, 0..6u8).prop_map(|(r, k)| Op::Delete(r, k)),
        2 => (0..n, 0..n).prop_map(|(a, b)| Op::Pull(a, b)),
        3 => (0..n, any::<usize>()).prop_map(|(a, i)| Op::Deliver(a, i)),
        1 => any::<u16>().prop_map(Op::Tick),
    ]
}

fn scenario() -> impl Strategy<Value = (usize, Vec<Op>, u64)> {
    (3usize..=5).prop_flat_map(|n| (Just(n), vec(op(n), 1..60), any::<u64>()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn catalog_converges_and_obeys_laws((n, ops, seed) in scenario()) {
        let time = ManualTime::at(1_000_000);
        let mut nodes: Vec<CatNode> =
            (0..n).map(|i| node(&time, &format!("n{i}"), i as u64 * 7)).collect();
        let mut log = Vec::new();
        // Every write, to compute the expected winner per id.
        let mut writes: BTreeMap<String, Vec<(Hlc, Option<Val>)>> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Put(r, k, v) => {
                    let id = format!("k{k}");
                    let d = nodes[r].put(&id, v);
                    writes.entry(id).or_default().push((nodes[r].clock.last(), Some(v)));
                    log.push(d);
                }
                Op::Delete(r, k) => {
                    let id = format!("k{k}");
                    let d = nodes[r].delete(&id);
                    writes.entry(id).or_default().push((nodes[r].clock.last(), None));
                    log.push(d);
                }
                Op::Pull(a, b) => {
                    let d = nodes[b].delta_since(&nodes[a].version());
                    nodes[a].apply_delta(d);
                }
                Op::Deliver(a, i) => {
                    if !log.is_empty() {
                        let d = log[i % log.len()].clone();
                        nodes[a].apply_delta(d);
                    }
                }
                Op::Tick(ms) => time.advance(u64::from(ms)),
            }
        }
        let fresh = node(&time, "fresh", 0);
        check_state_laws(&fresh, &nodes[0], &nodes[1], &nodes[2]);
        check_state_laws(&nodes[2], &nodes[0], &nodes[1], &nodes[2]);
        if log.len() >= 2 {
            let i = (seed as usize) % log.len();
            let j = (seed as usize / 7) % log.len();
            check_delta_laws(&nodes[1], &log[i], &log[j]);
        }
        let mut pushed = nodes.clone();
        deliver_everything(&mut pushed, &log, seed);
        let mut pulled = nodes.clone();
        pull_all_pairs(&mut pulled);
        prop_assert_eq!(pushed[0].digest(), pulled[0].digest());
        // Last writer wins: every id holds the value of its greatest stamp.
        for (id, ws) in &writes {
            let winner = ws.iter().max_by(|a, b| a.0.cmp(&b.0)).map(|w| w.1);
            prop_assert_eq!(pushed[0].cat.get(id).copied(), winner.flatten());
        }
        let live = writes
            .values()
            .filter(|ws| ws.iter().max_by(|a, b| a.0.cmp(&b.0)).is_some_and(|w| w.1.is_some()))
            .count();
        prop_assert_eq!(pushed[0].cat.len(), live);
    }
}

#[test]
fn delta_since_sends_only_what_is_missing() {
    let time = ManualTime::at(1_000);
    let mut a = node(&time, "a", 0);
    let mut b = node(&time, "b", 0);
    for i in 0..10 {
        let d = a.put(&format!("k{i}"), i);
        b.apply_delta(d);
    }
    a.put("new", 99);
    let d = a.delta_since(&b.version());
    assert_eq!(d.items.len(), 1);
    assert_eq!(&*d.items[0].0, "new");
    b.apply_delta(d);
    assert_eq!(b.digest(), a.digest());
    assert!(a.delta_since(&b.version()).items.is_empty());
}

#[test]
fn tombstone_gc_then_stale_delta_does_not_resurrect() {
    let time = ManualTime::at(1_000);
    let mut nodes = vec![
        node(&time, "a", 0),
        node(&time, "b", 0),
        node(&time, "c", 0),
    ];
    let put = nodes[0].put("x", 1);
    for n in &mut nodes[1..] {
        n.apply_delta(put.clone());
    }
    let stale_full = nodes[1].full();
    let stale_vv = VersionVector::new();
    time.advance(10);
    let del = nodes[0].delete("x");
    for n in &mut nodes[1..] {
        n.apply_delta(del.clone());
    }
    assert!(nodes.iter().all(|n| n.cat.get("x").is_none()));
    let acked: Vec<VersionVector> = nodes.iter().map(|n| n.version()).collect();

    // Too young: kept.
    let now = time.get();
    assert_eq!(
        nodes[0]
            .cat
            .collect_tombstones(&acked, Duration::from_secs(60), now),
        0
    );
    time.advance(61_000);
    let now = time.get();
    for n in &mut nodes {
        assert_eq!(
            n.cat
                .collect_tombstones(&acked, Duration::from_secs(60), now),
            1
        );
        assert!(n.cat.entry("x").is_none());
        assert_eq!(n.cat.tombstones(), 0);
    }

    // A stale peer's full state, the original put, and a delta cut for an empty peer.
    let a = &mut nodes[0];
    a.apply_delta(stale_full);
    a.apply_delta(put.clone());
    let stale_cut = {
        let mut old = node(&time, "old", 0);
        old.apply_delta(put);
        old.delta_since(&stale_vv)
    };
    let before = a.digest();
    let out = a.cat.apply(stale_cut);
    assert_eq!(out.skipped, 1);
    assert!(out.changed.is_empty());
    assert!(a.cat.entry("x").is_none());
    assert_eq!(a.digest(), before);
}

#[test]
fn gc_waits_for_every_member() {
    let time = ManualTime::at(1_000);
    let mut a = node(&time, "a", 0);
    let mut b = node(&time, "b", 0);
    let c = node(&time, "c", 0);
    let put = a.put("x", 1);
    b.apply_delta(put);
    let del = a.delete("x");
    b.apply_delta(del);
    time.advance(100_000);
    let now = time.get();
    // c never saw the delete: its acknowledgement does not cover the tombstone.
    let acked = [a.version(), b.version(), c.version()];
    assert_eq!(a.cat.collect_tombstones(&acked, Duration::ZERO, now), 0);
    // A member knows a dot we lack: we wait until we have it.
    let mut c = c;
    c.apply_delta(a.full());
    c.put("y", 2);
    let acked = [a.version(), b.version(), c.version()];
    assert_eq!(a.cat.collect_tombstones(&acked, Duration::ZERO, now), 0);
    let d = c.delta_since(&a.version());
    a.apply_delta(d);
    assert_eq!(a.cat.collect_tombstones(&acked, Duration::ZERO, now), 1);
}

/// A write concurrent with the delete (older stamp) is still in flight to the collector when
/// the others have acknowledged the delete: the collector must wait until it has incorporated
/// that write's dot, so the late copy is recognised and skipped.
#[test]
fn concurrent_older_write_in_flight_is_not_resurrected() {
    let time = ManualTime::at(1_000);
    let mut a = node(&time, "a", 0);
    let mut b = node(&time, "b", 0);
    let mut c = node(&time, "c", 0);
    let put = a.put("x", 1);
    b.apply_delta(put.clone());
    c.apply_delta(put);
    time.advance(1_000);
    let in_flight = c.put("x", 7); // beats a's put, loses to a's delete below
    b.apply_delta(in_flight.clone());
    time.advance(1_000);
    let del = a.delete("x"); // a has not seen c's write
    b.apply_delta(del.clone());
    c.apply_delta(del);
    assert!(b.cat.get("x").is_none() && c.cat.get("x").is_none());
    time.advance(100_000);
    let now = time.get();
    let acked = [a.version(), b.version(), c.version()];
    assert_eq!(a.cat.collect_tombstones(&acked, Duration::ZERO, now), 0);
    let d = b.delta_since(&a.version());
    a.apply_delta(d);
    assert_eq!(a.cat.collect_tombstones(&acked, Duration::ZERO, now), 1);
    a.apply_delta(in_flight);
    assert!(a.cat.entry("x").is_none());
}

#[test]
fn put_after_delete_revives_and_local_write_order_holds() {
    let time = ManualTime::at(1_000);
    let mut a = node(&time, "a", 0);
    let mut b = node(&time, "b", 0);
    a.put("x", 1);
    a.delete("x");
    let d = a.delete("x");
    assert_eq!(d.items.len(), 1);
    b.apply_delta(a.full());
    assert_eq!(b.cat.get("x"), None);
    let revive = b.put("x", 2);
    a.apply_delta(revive);
    assert_eq!(a.cat.get("x"), Some(&2));
    assert_eq!((a.cat.len(), a.cat.tombstones()), (1, 0));
    assert_eq!(a.cat.iter().collect::<Vec<_>>(), vec![("x", &2)]);
}
