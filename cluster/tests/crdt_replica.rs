//! The whole replica: 3–5 nodes mixing catalog, counter and rights operations, deltas lost,
//! reordered and duplicated (through the wire codec), converging to identical digests; clock
//! skew; restarts.

mod crdt_support;

use crdt_support::{
    ManualTime, Val, check_delta_laws, check_state_laws, deliver_everything, pull_all_pairs, writer,
};
use proptest::{collection::vec, prelude::*};
use starling_cluster::{
    codec::{self, DEFAULT_MAX_PAYLOAD, Kind},
    crdt::{BudgetKey, CounterKey, DonorPolicy, Dot, Period, PeriodUnit, Usage},
    hlc::{HlcClock, WriterId},
    state::{Delta, OWN_RECOVERY_WINDOW, Replica},
};

fn replica(time: &ManualTime, w: WriterId, offset_ms: u64) -> Replica<Val> {
    Replica::new(time.clock(w, offset_ms))
}

fn ckey(i: u8) -> CounterKey {
    CounterKey::new(format!("key:{i}"), Period::new(PeriodUnit::Day, 20_000))
}

fn bkey(i: u8) -> BudgetKey {
    BudgetKey::new(format!("key:{i}"), Period::new(PeriodUnit::Month, 600))
}

fn wire(d: &Delta<Val>) -> Delta<Val> {
    let frame = codec::encode(Kind::Delta, d).unwrap();
    codec::decode_kind(&frame, Kind::Delta, DEFAULT_MAX_PAYLOAD).unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    Put(usize, u8, Val),
    Delete(usize, u8),
    Add(usize, u8, u16),
    Mint(usize, u8, u16),
    Spend(usize, u8, u16),
    Transfer(usize, u8, usize, u16),
    Ask(usize, usize, u8, u16),
    Pull(usize, usize),
    Deliver(usize, usize),
    Tick(u16),
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..n, 0..5u8, any::<Val>()).prop_map(|(r, k, v)| Op::Put(r, k, v)),
        1 => (0..n, 0..5u8).prop_map(|(r, k)| Op::Delete(r, k)),
        3 => (0..n, 0..3u8, any::<u16>()).prop_map(|(r, k, v)| Op::Add(r, k, v)),
        1 => (0..n, 0..2u8, 0..1_000u16).prop_map(|(r, k, a)| Op::Mint(r, k, a)),
        3 => (0..n, 0..2u8, 0..300u16).prop_map(|(r, k, a)| Op::Spend(r, k, a)),
        1 => (0..n, 0..2u8, 0..n, 0..300u16).prop_map(|(r, k, t, a)| Op::Transfer(r, k, t, a)),
        1 => (0..n, 0..n, 0..2u8, 0..300u16).prop_map(|(r, d, k, a)| Op::Ask(r, d, k, a)),
        2 => (0..n, 0..n).prop_map(|(a, b)| Op::Pull(a, b)),
        4 => (0..n, any::<usize>()).prop_map(|(a, i)| Op::Deliver(a, i)),
        1 => any::<u16>().prop_map(Op::Tick),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn replicas_converge_under_any_delivery(
        (n, ops, seed) in (3usize..=5).prop_flat_map(|n| (Just(n), vec(op(n), 1..70), any::<u64>()))
    ) {
        let time = ManualTime::at(1_700_000_000_000);
        let mut nodes: Vec<Replica<Val>> = (0..n)
            .map(|i| replica(&time, writer(&format!("n{i}"), 1), (i as u64 * 13) % 40))
            .collect();
        let mut log: Vec<Delta<Val>> = Vec::new();
        let mut spent = [0u64; 2];
        let mut minted = [0u64; 2];
        for op in ops {
            match op {
                Op::Put(r, k, v) => log.push(nodes[r].put(&format!("c{k}"), v)),
                Op::Delete(r, k) => log.push(nodes[r].delete(&format!("c{k}"))),
                Op::Add(r, k, v) => log.push(
                    nodes[r].add_usage(&ckey(k), Usage { spend_micros: u64::from(v), tokens: 1, requests: 1 }).unwrap(),
                ),
                Op::Mint(r, k, a) => {
                    // Mint id = period-level identity; any node may try, only the first succeeds locally.
                    if let Ok(d) = nodes[r].mint(&bkey(k), 0, u64::from(a)) {
                        minted[usize::from(k)] += u64::from(a);
                        log.push(d);
                    }
                }
                Op::Spend(r, k, a) => {
                    if let Ok(d) = nodes[r].spend(&bkey(k), u64::from(a)) {
                        spent[usize::from(k)] += u64::from(a);
                        log.push(d);
                    }
                }
                Op::Transfer(r, k, t, a) => {
                    let to = nodes[t].writer().clone();
                    if let Ok(d) = nodes[r].transfer(&bkey(k), &to, u64::from(a)) {
                        log.push(d);
                    }
                }
                Op::Ask(r, donor, k, a) => {
                    let req = nodes[r].rights().request(&bkey(k), u64::from(a), 1);
                    if let Some((_, d)) = nodes[donor].answer_rights_request(&req, &DonorPolicy { low_water: 5 }) {
                        log.push(d);
                    }
                }
                Op::Pull(a, b) => {
                    let d = wire(&nodes[b].delta_since(&nodes[a].version()));
                    nodes[a].apply(d);
                }
                Op::Deliver(a, i) => {
                    if !log.is_empty() {
                        let d = wire(&log[i % log.len()]);
                        nodes[a].apply(d);
                    }
                }
                Op::Tick(ms) => time.advance(u64::from(ms)),
            }
            for node in &nodes {
                for k in 0..2u8 {
                    let r = node.rights();
                    let held: u64 = r.holders(&bkey(k)).iter().map(|(_, v)| v).sum();
                    prop_assert_eq!(held + r.total_spent(&bkey(k)), r.total_minted(&bkey(k)));
                }
            }
            prop_assert!(spent[0] <= minted[0] && spent[1] <= minted[1]);
        }
        let fresh = replica(&time, writer("fresh", 1), 0);
        check_state_laws(&fresh, &nodes[0], &nodes[1], &nodes[2]);
        if log.len() >= 2 {
            check_delta_laws(&nodes[1], &log[seed as usize % log.len()], &log[(seed as usize / 11) % log.len()]);
        }
        let mut pushed = nodes.clone();
        deliver_everything(&mut pushed, &log, seed);
        let mut pulled = nodes.clone();
        pull_all_pairs(&mut pulled);
        prop_assert_eq!(pushed[0].digest().unwrap(), pulled[0].digest().unwrap());
        // A joiner from one full state, through the codec, is identical too.
        let mut joiner = replica(&time, writer("joiner", 1), 0);
        let frame = codec::encode(Kind::FullState, &pushed[0].full_state()).unwrap();
        let (kind, state) = codec::decode::<Delta<Val>>(&frame, DEFAULT_MAX_PAYLOAD).unwrap();
        prop_assert_eq!(kind, Kind::FullState);
        joiner.apply(state);
        prop_assert_eq!(joiner.digest().unwrap(), pushed[0].digest().unwrap());
        prop_assert!(pushed[0].delta_since(&joiner.version()).is_empty());
        for k in 0..2u8 {
            prop_assert_eq!(joiner.rights().total_spent(&bkey(k)), spent[usize::from(k)]);
        }
    }
}

/// A peer whose clock runs ahead gets its data merged (refusing it held back everything else
/// the peer sent until real time caught up: found by the Jepsen-style clock nemesis), but it
/// cannot drag our clock further ahead than the forward bound.
#[test]
fn a_skewed_peer_is_merged_but_cannot_poison_the_clock() {
    let time = ManualTime::at(1_700_000_000_000);
    let mut ok = replica(&time, writer("ok", 1), 0);
    // Ten minutes ahead, beyond the default 30 s bound.
    let mut skewed = replica(&time, writer("skewed", 1), 600_000);
    let d = skewed.put("k", 1);
    let outcome = ok.apply(d);
    let skew = outcome.clock_skew.expect("the skew is reported");
    assert!(skew.ahead_ms >= 600_000);
    assert_eq!(ok.catalog().get("k"), Some(&1), "the data is merged");
    assert!(
        ok.clock().last().wall_ms <= time.get() + 30_000,
        "clock not dragged past the bound"
    );
    // Merging again is a no-op, and both replicas agree.
    let again = ok.apply(skewed.full_state());
    assert!(again.catalog_changed.is_empty());
    skewed.apply(ok.full_state());
    assert_eq!(ok.digest().unwrap(), skewed.digest().unwrap());
}

#[test]
fn writes_stay_ordered_across_a_backward_clock_jump() {
    let time = ManualTime::at(1_700_000_000_000);
    let mut a = replica(&time, writer("a", 1), 0);
    let mut b = replica(&time, writer("b", 1), 0);
    a.put("k", 1);
    time.set(1_700_000_000_000 - 20_000); // the physical clock jumps back 20 s
    let second = a.put("k", 2);
    assert!(a.catalog().entry("k").unwrap().stamp.wall_ms >= 1_700_000_000_000);
    b.apply(a.full_state());
    b.apply(second);
    assert_eq!(b.catalog().get("k"), Some(&2));
    // b observed a's stamps, so its own next write wins even though its physical clock is behind.
    let mut b2 = b.clone();
    b2.put("k", 3);
    a.apply(b2.full_state());
    assert_eq!(a.catalog().get("k"), Some(&3));
}

/// Found by the Jepsen-style clock nemesis: a node whose clock is more than the forward bound
/// behind keeps its clock within the bound of what it merges, so an update it makes after
/// reading an entry was stamped below that entry and lost to the older value everywhere.
#[test]
fn an_update_wins_over_the_entry_it_read_even_from_a_clock_far_behind() {
    let time = ManualTime::at(1_700_000_000_000);
    // Two minutes apart: beyond the 30 s bound, so merging moves `behind`'s clock only part
    // of the way.
    let mut ahead = replica(&time, writer("ahead", 1), 120_000);
    let mut behind = replica(&time, writer("behind", 1), 0);
    behind.apply(ahead.put("k", 1));
    assert_eq!(behind.catalog().get("k"), Some(&1));
    let update = behind.put("k", 2);
    ahead.apply(update);
    assert_eq!(
        ahead.catalog().get("k"),
        Some(&2),
        "the later write wins on the writer's peer"
    );
    assert_eq!(behind.catalog().get("k"), Some(&2), "and on the writer");
    behind.apply(ahead.full_state());
    assert_eq!(ahead.digest().unwrap(), behind.digest().unwrap());
}

#[test]
fn restart_without_disk_uses_a_new_slot_and_counts_survive() {
    let time = ManualTime::at(1_700_000_000_000);
    let k = ckey(0);
    let u = |n| Usage {
        spend_micros: n,
        tokens: 0,
        requests: 1,
    };
    let mut n1 = replica(&time, writer("n1", 1), 0);
    let mut n2 = replica(&time, writer("n2", 1), 0);
    n1.add_usage(&k, u(100)).unwrap();
    n2.apply(n1.full_state());
    drop(n1);
    // Empty data dir: a fresh incarnation.
    let fresh = WriterId::fresh(writer("n1", 0).node, time.get());
    let mut n1b = Replica::<Val>::new(time.clock(fresh, 0));
    n1b.add_usage(&k, u(7)).unwrap();
    let out = n1b.apply(n2.full_state());
    assert!(!out.own_slot_recovered);
    n2.apply(n1b.full_state());
    for r in [&n1b, &n2] {
        assert_eq!(r.counters().total(&k).spend_micros, 107);
        assert_eq!(r.counters().total(&k).requests, 2);
    }
    assert_eq!(n1b.digest().unwrap(), n2.digest().unwrap());
}

#[test]
fn reloading_an_old_snapshot_is_detected_and_the_slot_recovered() {
    let time = ManualTime::at(1_700_000_000_000);
    let k = ckey(1);
    let me = writer("n1", 5);
    let mut n1 = replica(&time, me.clone(), 0);
    let mut n2 = replica(&time, writer("n2", 1), 0);
    n1.add_usage(
        &k,
        Usage {
            spend_micros: 10,
            tokens: 0,
            requests: 1,
        },
    )
    .unwrap();
    let snapshot = codec::encode(Kind::Snapshot, &n1.full_state()).unwrap();
    n1.add_usage(
        &k,
        Usage {
            spend_micros: 20,
            tokens: 0,
            requests: 1,
        },
    )
    .unwrap();
    n1.put("x", 1);
    n2.apply(n1.full_state());
    // Restart from the older snapshot under the same incarnation.
    let state = codec::decode_kind(&snapshot, Kind::Snapshot, DEFAULT_MAX_PAYLOAD).unwrap();
    let mut back = Replica::<Val>::restore(time.clock(me, 0), state);
    assert_eq!(back.counters().total(&k).spend_micros, 10);
    let out = back.apply(n2.delta_since(&back.version()));
    assert_eq!(
        out.rejected, None,
        "a few dots behind our own slot: recovered"
    );
    assert!(
        out.own_slot_recovered,
        "peers knew dots of ours that the snapshot lacked"
    );
    assert_eq!(back.counters().total(&k).spend_micros, 30);
    // After recovery, new writes continue above the recovered sequence.
    let d = back
        .add_usage(
            &k,
            Usage {
                spend_micros: 1,
                tokens: 0,
                requests: 1,
            },
        )
        .unwrap();
    n2.apply(d);
    assert_eq!(n2.counters().total(&k).spend_micros, 31);
    assert_eq!(back.digest().unwrap(), n2.digest().unwrap());
}

#[test]
fn restore_keeps_the_clock_monotonic() {
    let time = ManualTime::at(1_700_000_000_000);
    let me = writer("n1", 5);
    let mut n1 = replica(&time, me.clone(), 0);
    n1.put("x", 1);
    let last = n1.clock().last();
    time.set(1_000); // the physical clock is far behind after the restart
    let mut back = Replica::<Val>::restore(HlcClock::new(me, || 1_000), n1.full_state());
    back.put("x", 2);
    assert!(back.catalog().entry("x").unwrap().stamp > last);
}

#[test]
fn local_ops_share_one_dot_sequence() {
    let time = ManualTime::at(1_700_000_000_000);
    let mut a = replica(&time, writer("a", 1), 0);
    a.put("x", 1);
    a.add_usage(&ckey(0), Usage::default()).unwrap();
    a.mint(&bkey(0), 0, 10).unwrap();
    a.spend(&bkey(0), 3).unwrap();
    a.drop_periods_before(Period::new(PeriodUnit::Day, 1));
    a.delete("x");
    assert_eq!(a.version().get(a.writer()), 6);
    assert_eq!(a.catalog().context(), a.counters().context());
    assert_eq!(a.catalog().context(), a.rights().context());
    assert!(a.spend(&bkey(0), 8).is_err());
    assert_eq!(a.version().get(a.writer()), 6, "a refused op takes no dot");
}

/// `delta_since` answers from a bounded index of recent writes and falls back to a scan when a
/// peer is further behind; both must give exactly what a brute-force filter gives.
#[test]
fn delta_since_matches_a_full_scan_inside_and_beyond_the_index_window() {
    let time = ManualTime::at(1_700_000_000_000);
    let mut a = replica(&time, writer("a", 1), 0);
    let mut b = replica(&time, writer("b", 1), 0);
    let day = Period::new(PeriodUnit::Day, 20_000);
    let u = Usage {
        spend_micros: 3,
        tokens: 2,
        requests: 1,
    };
    for i in 0..6_000u32 {
        a.put(&format!("c{}", i % 5_000), i);
        if i % 7 == 0 {
            a.delete(&format!("c{}", (i * 3) % 5_000));
        }
        a.add_usage(&CounterKey::new(format!("key:{}", i % 4_500), day), u)
            .unwrap();
        if i % 2 == 0 {
            let k = BudgetKey::new(
                format!("key:{}", i % 4_400),
                Period::new(PeriodUnit::Month, 600),
            );
            if a.mint(&k, 0, 10).is_ok() {
                a.spend(&k, 1).unwrap();
            }
        }
        if i % 3 == 0 {
            let d = b.put(&format!("b{}", i % 100), i);
            a.apply(d);
        }
    }
    let (wa, wb) = (a.writer().clone(), b.writer().clone());
    let (ta, tb) = (a.version().get(&wa), b.version().get(&wb));
    let cuts = [
        0,
        1,
        ta / 2,
        ta - 5_000,
        ta - 4_097,
        ta - 4_000,
        ta - 100,
        ta - 1,
        ta,
    ];
    for (i, &ca) in cuts.iter().enumerate() {
        let mut vv = starling_cluster::crdt::VersionVector::new();
        vv.raise(&wa, ca);
        vv.raise(&wb, [0, tb / 2, tb][i % 3]);
        let d = a.delta_since(&vv);

        let mut got: Vec<&str> = d.items.catalog.iter().map(|(id, _)| &**id).collect();
        got.sort_unstable();
        let want: Vec<&str> = a
            .catalog()
            .entries()
            .filter(|(_, e)| !vv.covers(&e.dot()))
            .map(|(id, _)| id)
            .collect();
        assert_eq!(got, want, "catalog at cut {ca}");

        let mut got: Vec<_> = d
            .items
            .counters
            .cells
            .iter()
            .map(|(k, w, c)| (k.clone(), w.clone(), *c))
            .collect();
        got.sort_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
        let want: Vec<_> = a
            .counters()
            .keys()
            .flat_map(|k| {
                a.counters()
                    .slots(k)
                    .filter(|(w, c)| vv.get(w) < c.seq)
                    .map(|(w, c)| (k.clone(), w.clone(), *c))
            })
            .collect();
        assert_eq!(got, want, "counters at cut {ca}");

        let mut got: Vec<_> = d.items.rights.keys.iter().map(|(k, _)| k.clone()).collect();
        got.sort_unstable();
        let want: Vec<_> = a
            .rights()
            .keys()
            .filter(|k| a.rights().rows(k).any(|(w, r)| vv.get(w) < r.seq))
            .cloned()
            .collect();
        assert_eq!(got, want, "rights at cut {ca}");
    }
}

#[test]
fn many_usage_adds_ship_as_one_delta() {
    let time = ManualTime::at(1_700_000_000_000);
    let mut a = replica(&time, writer("a", 1), 0);
    let mut b = replica(&time, writer("b", 1), 0);
    let mut one_by_one = replica(&time, writer("a", 1), 0);
    let u = |s| Usage {
        spend_micros: s,
        tokens: 1,
        requests: 1,
    };
    let (empty, skipped) = a.add_usage_many(&[]);
    assert!(empty.is_empty() && skipped == 0);
    assert_eq!(a.version().get(a.writer()), 0, "no items, no dot");

    // Drop day 19,999 and older everywhere, then add to an old and two current keys.
    let old = CounterKey::new("key:old", Period::new(PeriodUnit::Day, 10));
    let floor = a.drop_periods_before(Period::new(PeriodUnit::Day, 20_000));
    b.apply(wire(&floor));
    one_by_one.apply(wire(&floor));
    let items = [
        (ckey(0), u(5)),
        (ckey(1), u(7)),
        (old.clone(), u(1)),
        (ckey(0), u(11)),
    ];
    let (delta, skipped) = a.add_usage_many(&items);
    assert_eq!(skipped, 1);
    // One dot per applied add, as add_usage would take them; the key added twice ships once.
    assert_eq!(a.version().get(a.writer()), 4);
    assert_eq!(delta.items.counters.cells.len(), 2);
    assert_eq!(a.counters().total(&ckey(0)).spend_micros, 16);
    for (k, usage) in &items {
        let _ = one_by_one.add_usage(k, *usage);
    }
    assert_eq!(a.digest().unwrap(), one_by_one.digest().unwrap());
    b.apply(wire(&delta));
    assert_eq!(b.counters().total(&ckey(0)).spend_micros, 16);
    assert_eq!(b.counters().total(&ckey(1)).spend_micros, 7);
    assert_eq!(b.version().get(a.writer()), 4);
    assert_eq!(a.digest().unwrap(), b.digest().unwrap());
}

#[test]
fn refunds_and_reclaims_go_through_the_replica() {
    let time = ManualTime::at(1_700_000_000_000);
    let mut a = replica(&time, writer("a", 1), 0);
    let mut dead = replica(&time, writer("gone", 1), 0);
    let mut reborn = replica(&time, writer("gone", 2), 0);
    let k0 = bkey(0);
    let k1 = bkey(1);
    for d in [
        a.mint(&k0, 0, 100).unwrap(),
        a.mint(&k1, 0, 100).unwrap(),
        a.transfer(&k0, dead.writer(), 40).unwrap(),
        a.transfer(&k1, dead.writer(), 10).unwrap(),
        a.transfer(&k1, reborn.writer(), 5).unwrap(),
    ] {
        dead.apply(wire(&d));
        reborn.apply(wire(&d));
    }
    let spent = dead.spend(&k0, 15).unwrap();
    let back = dead.refund(&k0, 5).unwrap();
    a.apply(wire(&spent));
    a.apply(wire(&back));
    assert_eq!(a.rights().total_consumed(&k0), 10);
    assert_eq!(a.rights().rights(&k0, dead.writer()), 30);

    // Every incarnation of node "gone", every key, in one delta.
    let dots_before = a.version().get(a.writer());
    let (delta, taken) = a.reclaim_node("gone");
    let mut taken: Vec<_> = taken
        .into_iter()
        .map(|(k, w, v)| (k.scope, w.incarnation, v))
        .collect();
    taken.sort();
    assert_eq!(
        taken,
        vec![
            ("key:0".to_owned(), 1, 30),
            ("key:1".to_owned(), 1, 10),
            ("key:1".to_owned(), 2, 5)
        ]
    );
    assert_eq!(a.version().get(a.writer()), dots_before + 3);
    assert_eq!(delta.items.rights.keys.len(), 2, "one whole key each");
    assert_eq!(a.rights().local_rights(&k0), 90);
    assert_eq!(a.rights().local_rights(&k1), 100);
    // Nothing left to take.
    let (again, none) = a.reclaim_node("gone");
    assert!(again.is_empty() && none.is_empty());

    dead.apply(wire(&delta));
    assert_eq!(dead.rights().local_rights(&k0), 0);
    assert!(dead.spend(&k0, 1).is_err());
    assert!(dead.refund(&k0, 1).is_err());
    let me = a.writer().clone();
    assert!(a.reclaim(&k0, &me).is_err());
}

#[test]
fn a_delta_claiming_the_local_writers_future_is_refused_and_later_writes_propagate() {
    let time = ManualTime::at(1_700_000_000_000);
    let victim = writer("n1", 1);
    let mut n1 = replica(&time, victim.clone(), 0);
    let mut n2 = replica(&time, writer("n2", 1), 0);
    n2.apply(n1.put("a", 1));
    let before = n1.digest().unwrap();
    // A holder of cluster credentials claims (victim, u64::MAX): merged, every later write of
    // the victim would look already seen, and its next dot would overflow.
    let mut forged = n2.put("b", 2);
    forged.context.insert(&Dot {
        writer: victim.clone(),
        seq: u64::MAX,
    });
    let out = n1.apply(wire(&forged));
    assert_eq!(out.rejected.map(|r| r.reason()), Some("future_own_seq"));
    assert_eq!(n1.digest().unwrap(), before, "nothing merged");
    assert_eq!(n1.catalog().get("b"), None);
    // The victim keeps writing, and its writes reach peers that did not take the claim.
    let d = n1.put("c", 3);
    assert_eq!(d.context.max_seq(&victim), 2);
    n2.apply(wire(&d));
    assert_eq!(n2.catalog().get("c"), Some(&3));
    // An item (not only the context) claiming our far future is refused too.
    let mut far = n2.put("z", 9);
    for (_, entry) in &mut far.items.catalog {
        entry.stamp.writer = victim.clone();
        entry.seq = 2 + OWN_RECOVERY_WINDOW + 1;
    }
    let out = n1.apply(wire(&far));
    assert_eq!(out.rejected.map(|r| r.reason()), Some("future_own_seq"));
    assert_eq!(n1.catalog().get("z"), None);
}

#[test]
fn a_rights_row_that_would_go_negative_is_refused() {
    let time = ManualTime::at(1_700_000_000_000);
    let key = bkey(1);
    let mut n1 = replica(&time, writer("n1", 1), 0);
    let mut n2 = replica(&time, writer("n2", 1), 0);
    let minted = n2.mint(&key, 0, 100).unwrap();
    n1.apply(wire(&minted));
    let spent = n2.spend(&key, 40).unwrap();
    // A forged version of n2's row: spent far more than it ever held.
    let mut forged = spent.clone();
    for (_, rows) in &mut forged.items.rights.keys {
        for (w, row) in rows.iter_mut() {
            if w == &writer("n2", 1) {
                row.spent = 1_000;
            }
        }
    }
    let before = n1.digest().unwrap();
    let out = n1.apply(wire(&forged));
    assert_eq!(out.rejected.map(|r| r.reason()), Some("negative_rights"));
    assert_eq!(n1.digest().unwrap(), before, "nothing merged");
    // A refund above what was spent is refused as well.
    let mut refund = spent.clone();
    for (_, rows) in &mut refund.items.rights.keys {
        for (_, row) in rows.iter_mut() {
            row.refunded = row.spent + 1;
        }
    }
    assert!(n1.apply(wire(&refund)).rejected.is_some());
    // The genuine row merges.
    let out = n1.apply(wire(&spent));
    assert_eq!(out.rejected, None);
    assert_eq!(n1.rights().rights(&key, &writer("n2", 1)), 60);
}
