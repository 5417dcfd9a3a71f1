//! Usage counters: merge laws, convergence, exact totals, restarts with a new incarnation, dead
//! writers, explicit period drops.

mod crdt_support;

use std::collections::BTreeMap;

use crdt_support::{
    Crdt, check_delta_laws, check_state_laws, deliver_everything, pull_all_pairs, writer,
};
use proptest::{collection::vec, prelude::*};
use starling_cluster::crdt::{CounterKey, Counters, Metric, Period, PeriodUnit, Usage};

fn key(i: u8) -> CounterKey {
    CounterKey::new(
        format!("key:{}", i % 3),
        Period::new(PeriodUnit::Day, u32::from(i / 3)),
    )
}

fn usage(n: u64) -> Usage {
    Usage {
        spend_micros: n * 1_000,
        tokens: n * 10,
        requests: 1,
    }
}

#[derive(Debug, Clone)]
enum Op {
    Add(usize, u8, u16),
    Pull(usize, usize),
    Deliver(usize, usize),
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..n, 0..6u8, any::<u16>()).prop_map(|(r, k, v)| Op::Add(r, k, v)),
        2 => (0..n, 0..n).prop_map(|(a, b)| Op::Pull(a, b)),
        3 => (0..n, any::<usize>()).prop_map(|(a, i)| Op::Deliver(a, i)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn counters_converge_to_exact_totals(
        (n, ops, seed) in (3usize..=5).prop_flat_map(|n| (Just(n), vec(op(n), 1..60), any::<u64>()))
    ) {
        let mut nodes: Vec<Counters> =
            (0..n).map(|i| Counters::new(writer(&format!("n{i}"), 1))).collect();
        let mut log = Vec::new();
        let mut truth: BTreeMap<CounterKey, Usage> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Add(r, k, v) => {
                    let u = usage(u64::from(v));
                    log.push(nodes[r].add(&key(k), u).unwrap());
                    let t = truth.entry(key(k)).or_default();
                    *t = t.saturating_add(u);
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
            }
            // No replica ever counts more than happened.
            for node in &nodes {
                for (k, t) in &truth {
                    let seen = node.total(k);
                    prop_assert!(seen.spend_micros <= t.spend_micros);
                    prop_assert!(seen.requests <= t.requests);
                }
            }
        }
        let fresh = Counters::new(writer("fresh", 1));
        check_state_laws(&fresh, &nodes[0], &nodes[1], &nodes[2]);
        if log.len() >= 2 {
            check_delta_laws(&nodes[2], &log[seed as usize % log.len()], &log[(seed as usize / 3) % log.len()]);
        }
        let mut pushed = nodes.clone();
        deliver_everything(&mut pushed, &log, seed);
        let mut pulled = nodes.clone();
        pull_all_pairs(&mut pulled);
        prop_assert_eq!(pushed[0].digest().unwrap(), pulled[0].digest().unwrap());
        for (k, t) in &truth {
            prop_assert_eq!(pushed[0].total(k), *t);
        }
    }
}

#[test]
fn restart_with_empty_disk_takes_a_new_incarnation_and_loses_nothing() {
    let k = key(0);
    let mut n1 = Counters::new(writer("n1", 100));
    let mut n2 = Counters::new(writer("n2", 100));
    n1.add(&k, usage(100)).unwrap();
    n2.apply(n1.full_state());
    // n1 loses its disk and comes back under its name with a new incarnation.
    let mut n1b = Counters::new(writer("n1", 200));
    n1b.add(&k, usage(5)).unwrap();
    n1b.apply(n2.full_state());
    n2.apply(n1b.full_state());
    for n in [&n1b, &n2] {
        assert_eq!(n.total(&k).spend_micros, 105_000);
        assert_eq!(n.total(&k).requests, 2);
        assert_eq!(n.slots(&k).count(), 2);
    }
    // Counter-example: reusing the old incarnation hides the new increments behind the old max.
    let mut reused = Counters::new(writer("n1", 100));
    reused.add(&k, usage(5)).unwrap();
    let mut n3 = Counters::new(writer("n3", 1));
    n3.apply(n2.full_state());
    n3.apply(reused.full_state());
    assert_eq!(
        n3.total(&k).spend_micros,
        105_000,
        "the reused slot's 5 vanished"
    );
}

#[test]
fn dead_writer_counts_stay_in_the_sum() {
    let k = key(1);
    let mut dead = Counters::new(writer("dead", 1));
    let mut a = Counters::new(writer("a", 1));
    let mut b = Counters::new(writer("b", 1));
    dead.add(&k, usage(50)).unwrap();
    a.apply(dead.full_state());
    drop(dead);
    for round in 0..20u64 {
        a.add(&k, usage(1)).unwrap();
        b.add(&k, usage(2)).unwrap();
        let d = a.delta_since(&b.version());
        b.apply(d);
        let d = b.delta_since(&a.version());
        a.apply(d);
        if round % 5 == 0 {
            // A joiner built from anyone's full state has it too.
            let mut joiner = Counters::new(writer(&format!("j{round}"), 1));
            joiner.apply(b.full_state());
            assert!(joiner.total(&k).spend_micros >= 50_000);
        }
    }
    for n in [&a, &b] {
        assert_eq!(n.total(&k).spend_micros, (50 + 20 + 40) * 1_000);
        assert_eq!(n.total(&k).get(Metric::Requests), 41);
    }
}

#[test]
fn dropped_periods_stay_dropped() {
    let old = CounterKey::new("key:a", Period::new(PeriodUnit::Day, 10));
    let cur = CounterKey::new("key:a", Period::new(PeriodUnit::Day, 11));
    let month = CounterKey::new("key:a", Period::new(PeriodUnit::Month, 3));
    let mut a = Counters::new(writer("a", 1));
    let mut b = Counters::new(writer("b", 1));
    a.add(&old, usage(1)).unwrap();
    a.add(&cur, usage(2)).unwrap();
    a.add(&month, usage(3)).unwrap();
    let stale = a.full_state();
    b.apply(a.full_state());
    let drop = b.drop_periods_before(Period::new(PeriodUnit::Day, 11));
    assert_eq!(b.total(&old), Usage::default());
    assert_eq!(b.total(&cur), usage(2));
    assert_eq!(b.total(&month), usage(3), "other units are untouched");
    a.apply(drop);
    assert_eq!(a.keys().count(), 2);
    assert!(a.add(&old, usage(1)).is_err());
    a.apply(stale);
    b.apply(a.full_state());
    assert_eq!(a.total(&old), Usage::default());
    assert_eq!(a.digest().unwrap(), b.digest().unwrap());
    assert_eq!(a.floors().floor(PeriodUnit::Day), Some(11));
}
