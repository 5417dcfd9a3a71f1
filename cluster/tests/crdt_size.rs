//! Size report: encoded and resident bytes of the catalog, and encoded sizes of typical deltas.
//!
//! `catalog_size_report` runs by default at 20,000 entries; the 1,000,000-entry figure:
//! `CARGO_TARGET_DIR=/work/target-crdt cargo test -p starling-cluster --test crdt_size -- --ignored --nocapture`

mod crdt_support;

use std::time::Instant;

use crdt_support::{ManualTime, writer};
use serde::{Deserialize, Serialize};
use starling_cluster::{
    codec::{self, Kind},
    crdt::{BudgetKey, CounterKey, Entry, Period, PeriodUnit, Usage},
    state::{Delta, Replica},
};

/// A small catalog value, about what a virtual key's governance record needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct KeyMeta {
    team: u32,
    budget_micros: u64,
    rpm: u32,
    active: bool,
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn id(i: u64) -> String {
    format!("key:{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn meta(i: u64) -> KeyMeta {
    KeyMeta {
        team: (i % 100) as u32,
        budget_micros: 50_000_000,
        rpm: 600,
        active: true,
    }
}

fn report(n: u64) {
    let time = ManualTime::at(1_700_000_000_000);
    let incarnation = 1_700_000_000_000 << 20;
    // Resident size first, before anything else is allocated: one replica holding n entries.
    let rss0 = resident_bytes();
    let t0 = Instant::now();
    let mut node0: Replica<KeyMeta> = Replica::new(time.clock(writer("node-0", incarnation), 0));
    for i in 0..n {
        node0.put(&id(i), meta(i));
    }
    let build = t0.elapsed();
    let rss1 = resident_bytes();
    assert_eq!(node0.catalog().len() as u64, n);

    let t1 = Instant::now();
    let full = node0.full_state();
    let frame = codec::encode(Kind::FullState, &full).unwrap();
    let encode = t1.elapsed();
    drop(full);
    let t2 = Instant::now();
    let (_, decoded): (_, Delta<KeyMeta>) = codec::decode(&frame, usize::MAX).unwrap();
    let mut joiner: Replica<KeyMeta> = Replica::new(time.clock(writer("node-9", incarnation), 0));
    joiner.apply(decoded);
    let join = t2.elapsed();
    let t3 = Instant::now();
    let digest = node0.digest().unwrap();
    let digest_time = t3.elapsed();
    assert_eq!(joiner.digest().unwrap(), digest);
    drop(joiner);

    // Typical deltas.
    let before = node0.version();
    let put = node0.put(
        &id(n + 1),
        KeyMeta {
            team: 1,
            budget_micros: 1,
            rpm: 1,
            active: false,
        },
    );
    let t4 = Instant::now();
    let one_change = node0.delta_since(&before);
    let scan = t4.elapsed();
    assert_eq!(one_change.items.catalog.len(), 1);
    let period = Period::new(PeriodUnit::Day, 20_000);
    let add = node0
        .add_usage(
            &CounterKey::new(id(1), period),
            Usage {
                spend_micros: 1_234,
                tokens: 300,
                requests: 1,
            },
        )
        .unwrap();
    let bk = BudgetKey::new(id(1), Period::new(PeriodUnit::Month, 600));
    node0.mint(&bk, 0, 50_000_000).unwrap();
    for w in 1..4 {
        node0
            .transfer(&bk, &writer(&format!("node-{w}"), incarnation), 1_000_000)
            .unwrap();
    }
    let spend = node0.spend(&bk, 10_000).unwrap();
    let len = |d: &Delta<KeyMeta>| codec::encode(Kind::Delta, d).unwrap().len();
    let mut vv5 = node0.version();
    for w in 1..5 {
        vv5.raise(&writer(&format!("node-{w}"), incarnation), 123_456);
    }
    let pull = codec::encode(Kind::PullRequest, &vv5).unwrap().len();

    println!(
        "catalog entries:            {n} (id {} bytes, value {} bytes in memory)",
        id(0).len(),
        size_of::<KeyMeta>()
    );
    println!(
        "in-memory entry:            {} bytes Entry + {} bytes key + id heap",
        size_of::<Entry<KeyMeta>>(),
        size_of::<Box<str>>()
    );
    println!(
        "resident growth:            {} bytes ({:.1} B/entry, incl. B-tree slack and malloc)",
        rss1.saturating_sub(rss0),
        rss1.saturating_sub(rss0) as f64 / n as f64
    );
    println!(
        "full state frame:           {} bytes ({:.1} B/entry)",
        frame.len(),
        frame.len() as f64 / n as f64
    );
    println!("build {build:?}, encode {encode:?}, decode+join {join:?}, digest {digest_time:?}");
    println!(
        "delta_since with 1 change:  {} bytes, scan {scan:?}",
        len(&one_change)
    );
    println!("put delta:                  {} bytes", len(&put));
    println!("counter add delta:          {} bytes", len(&add));
    println!("spend delta (4 rows):       {} bytes", len(&spend));
    println!("pull request (5 writers):   {pull} bytes");
    // Guard against regressions in the per-entry encoding.
    assert!(frame.len() as u64 / n < 80, "per-entry encoding grew");
}

#[test]
fn catalog_size_report() {
    report(20_000);
}

#[test]
#[ignore = "1M entries: slow in debug; run with --ignored --nocapture for the figure"]
fn catalog_size_report_1m() {
    report(1_000_000);
}

/// How long the metrics scrape holds the replica lock to size the counters: walking every key
/// (as it did) against reading the map's stored length (as it does). Best of five each.
#[test]
#[ignore = "builds a million counter keys; run with --release --ignored --nocapture"]
fn counter_count_lock_hold() {
    let time = ManualTime::at(1_700_000_000_000);
    let period = Period::new(PeriodUnit::Day, 20_000);
    let usage = Usage {
        spend_micros: 1,
        tokens: 1,
        requests: 1,
    };
    let mut replica: Replica<KeyMeta> =
        Replica::new(time.clock(writer("node-0", 1_700_000_000_000 << 20), 0));
    let mut built = 0;
    for n in [10_000u64, 100_000, 1_000_000] {
        for i in built..n {
            replica
                .add_usage(&CounterKey::new(id(i), period), usage)
                .expect("period open");
        }
        built = n;
        let lock = std::sync::Mutex::new(replica);
        let held = |count: fn(&Replica<KeyMeta>) -> usize| {
            (0..5)
                .map(|_| {
                    let t = Instant::now();
                    let guard = lock.lock().expect("lock");
                    assert_eq!(count(&guard) as u64, n);
                    drop(guard);
                    t.elapsed()
                })
                .min()
                .unwrap_or_default()
        };
        let walk = held(|r| r.counters().keys().count());
        let stored = held(|r| r.counters().len());
        println!(
            "{n:>9} counter keys: lock held {walk:>10.2?} walking the keys, {stored:>8.2?} reading the length"
        );
        replica = lock.into_inner().expect("lock");
    }
}
