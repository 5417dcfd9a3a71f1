//! Well-formed but hostile input for the codec and the replica: frames whose declared
//! lengths lie (in the header and inside the payload), and deltas with huge sequence
//! numbers, huge causal contexts, rows for writers nobody knows, stamps at the end of time and
//! amounts at `u64::MAX`.
//!
//! Nothing here says whether a hostile delta must be accepted or refused (that is the
//! replica's validation policy); only that decoding and applying never panic, never hang,
//! never allocate what a frame merely claims, and leave a replica that still works: its
//! digest computes, its full state round-trips through the codec to the same digest, local
//! operations still run, and a later delta from an honest writer still applies.

mod crdt_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

use crdt_support::{ManualTime, Val, writer};
use proptest::{collection::vec, prelude::*};
use starling_cluster::{
    codec::{self, CodecError, DEFAULT_MAX_PAYLOAD, FORMAT_VERSION, HEADER_LEN, Kind, MAGIC},
    crdt::{
        BudgetKey, CausalContext, Cell as CounterCell, CounterItems, CounterKey, DonorPolicy,
        Entry, FloorCell, Period, PeriodUnit, RightsGrant, RightsItems, RightsRequest, Row, Usage,
        VersionVector,
    },
    hlc::{Hlc, WriterId},
    state::{Delta, Replica, ReplicaItems},
};

/// Records the largest single allocation of each thread, so a test can check that decoding
/// a frame never reserved what the frame merely claimed.
struct LargestAllocation;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: every call is forwarded unchanged to `System`; the bookkeeping only reads the size.
unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same layout, forwarded to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same layout, forwarded to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` came from `System` with `layout`; forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// The largest single allocation `f` made on this thread.
fn largest_allocation_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let out = f();
    (out, LARGEST.with(Cell::get))
}

fn frame(kind: Kind, payload: &[u8], declared: u32) -> Vec<u8> {
    let mut f = Vec::from(MAGIC);
    f.push(FORMAT_VERSION);
    f.push(kind as u8);
    f.extend_from_slice(&declared.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A bincode varint (the `standard()` configuration) for `n`.
fn varint(n: u64) -> Vec<u8> {
    match n {
        0..=250 => vec![n as u8],
        251..=0xFFFF => [&[251u8][..], &(n as u16).to_le_bytes()].concat(),
        0x1_0000..=0xFFFF_FFFF => [&[252u8][..], &(n as u32).to_le_bytes()].concat(),
        _ => [&[253u8][..], &n.to_le_bytes()].concat(),
    }
}

/// Decodes `f` as every payload type the cluster reads from the network or disk.
fn decode_all(f: &[u8]) -> Vec<bool> {
    vec![
        codec::decode::<Delta<Val>>(f, DEFAULT_MAX_PAYLOAD).is_ok(),
        codec::decode::<VersionVector>(f, DEFAULT_MAX_PAYLOAD).is_ok(),
        codec::decode::<RightsRequest>(f, DEFAULT_MAX_PAYLOAD).is_ok(),
        codec::decode::<RightsGrant>(f, DEFAULT_MAX_PAYLOAD).is_ok(),
        codec::decode::<CausalContext>(f, DEFAULT_MAX_PAYLOAD).is_ok(),
        codec::decode::<Vec<u8>>(f, DEFAULT_MAX_PAYLOAD).is_ok(),
        codec::decode::<String>(f, DEFAULT_MAX_PAYLOAD).is_ok(),
    ]
}

/// serde preallocates a container for the length its prefix claims, but never more than
/// 1 MiB (`serde::de::size_hint::cautious`); bincode's byte limit does not see that
/// reservation. So a lying prefix costs at most this much at once, not what it claims.
const SERDE_PREALLOCATION_CAP: usize = 1 << 20;

/// The most a payload of `len` bytes may allocate at once while decoding: the codec's
/// decode-limit tier for its size (see `codec`) or serde's preallocation cap.
fn allocation_bound(len: usize) -> usize {
    (len * codec::DECODE_AMPLIFICATION)
        .max(1 << 16)
        .max(SERDE_PREALLOCATION_CAP)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Headers whose length disagrees with the bytes present, in both directions and at
    /// the extremes, are refused before the payload is read.
    #[test]
    fn header_lengths_that_lie_are_refused(
        payload in vec(any::<u8>(), 0..256),
        declared in prop_oneof![
            Just(u32::MAX),
            Just(u32::MAX - 1),
            Just(1u32 << 31),
            (DEFAULT_MAX_PAYLOAD as u32)..=(DEFAULT_MAX_PAYLOAD as u32 + 16),
            0u32..512,
        ],
        kind in prop::sample::select(vec![
            Kind::PullRequest, Kind::Delta, Kind::FullState, Kind::RightsRequest,
            Kind::RightsGrant, Kind::Snapshot, Kind::LogRecord,
        ]),
    ) {
        prop_assume!(declared as usize != payload.len());
        let f = frame(kind, &payload, declared);
        let (results, largest) = largest_allocation_of(|| decode_all(&f));
        prop_assert!(results.iter().all(|ok| !ok));
        prop_assert!(largest <= 4096, "{largest} bytes allocated for a refused header");
        let h = codec::decode_header(&f).unwrap();
        prop_assert_eq!(h.payload_len, declared as usize);
        prop_assert_eq!(h.frame_len(), HEADER_LEN + declared as usize);
    }

    /// Length prefixes inside an honest-sized payload that claim up to 2^64 elements or
    /// bytes (strings, vectors, maps, nested) fail fast, allocating at most the decode tier
    /// of the payload's real size.
    #[test]
    fn payload_lengths_that_lie_allocate_nothing_claimed(
        claims in vec(
            prop_oneof![
                Just(u64::MAX),
                Just(u64::MAX / 8),
                Just(1u64 << 40),
                Just(1u64 << 32),
                Just(u64::from(u32::MAX)),
                Just(1u64 << 24),
                0u64..1_000,
            ],
            1..6,
        ),
        filler in vec(any::<u8>(), 0..64),
        prefix in vec(any::<u8>(), 0..8),
    ) {
        let mut payload = prefix;
        for c in &claims {
            payload.extend(varint(*c));
            payload.extend_from_slice(&filler);
        }
        let f = frame(Kind::Delta, &payload, payload.len() as u32);
        let (_, largest) = largest_allocation_of(|| decode_all(&f));
        let bound = allocation_bound(payload.len());
        prop_assert!(largest <= bound, "{largest} bytes allocated for a {}-byte payload", payload.len());
    }
}

/// A delta whose every container claims a huge length, at the level of each field: the
/// context's writer map, a writer's ranges, the catalog, counter cells, rights keys, rows,
/// sent maps and a node id string.
#[test]
fn lying_lengths_at_every_level_of_a_delta_fail_fast() {
    let huge = varint(u64::MAX / 2);
    let one = varint(1);
    let w = [&varint(2)[..], b"n1", &varint(1)[..]].concat(); // WriterId { "n1", 1 }
    let cases: Vec<Vec<u8>> = vec![
        // context: map of writers claims huge.
        huge.clone(),
        // context: one writer, its ranges claim huge.
        [&one[..], &w, &huge].concat(),
        // empty context, catalog claims huge.
        [&varint(0)[..], &huge].concat(),
        // empty context and catalog, counter cells claim huge.
        [&varint(0)[..], &varint(0), &huge].concat(),
        // ... counter floors.
        [&varint(0)[..], &varint(0), &varint(0), &huge].concat(),
        // ... rights keys.
        [&varint(0)[..], &varint(0), &varint(0), &varint(0), &huge].concat(),
        // context: one writer whose node id claims a huge string.
        [&one[..], &huge].concat(),
    ];
    for payload in cases {
        let f = frame(Kind::Delta, &payload, payload.len() as u32);
        let (result, largest) =
            largest_allocation_of(|| codec::decode::<Delta<Val>>(&f, DEFAULT_MAX_PAYLOAD));
        assert!(
            matches!(result, Err(CodecError::Decode(_))),
            "{payload:?}: {result:?}"
        );
        assert!(
            largest <= allocation_bound(payload.len()),
            "{payload:?}: {largest} bytes allocated"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Hostile deltas.

const ME: &str = "me";

/// Writers a hostile delta may name: the local writer (its own and other incarnations),
/// peers, and writers nobody has heard of; never the honest writer of the final check.
fn hostile_writer() -> impl Strategy<Value = WriterId> {
    let inc = prop_oneof![Just(1u64), Just(2), Just(0), Just(u64::MAX), any::<u64>()];
    (
        prop::sample::select(vec![ME, "p1", "p2", "ghost", "x.y_z-9", "a"]),
        inc,
    )
        .prop_map(|(n, i)| writer(n, i))
}

fn seq() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 1u64..8,
        2 => Just(u64::MAX),
        1 => Just(u64::MAX - 1),
        1 => Just(0u64),
        1 => Just(1u64 << 63),
        1 => any::<u64>(),
    ]
}

fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0u64..1_000,
        2 => Just(u64::MAX),
        1 => (u64::MAX - 1_000)..=u64::MAX,
        1 => any::<u64>(),
    ]
}

fn period() -> impl Strategy<Value = Period> {
    let unit = prop_oneof![
        Just(PeriodUnit::Minute),
        Just(PeriodUnit::Hour),
        Just(PeriodUnit::Day),
        Just(PeriodUnit::Month),
        Just(PeriodUnit::Lifetime),
        Just(PeriodUnit::Week),
        prop_oneof![Just(0u32), Just(1), Just(u32::MAX), any::<u32>()].prop_map(PeriodUnit::Every),
    ];
    let index = prop_oneof![
        Just(0u32),
        Just(600),
        Just(20_000),
        Just(u32::MAX),
        any::<u32>()
    ];
    (unit, index).prop_map(|(u, i)| Period::new(u, i))
}

fn scope() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["key:a", "key:b", "team:t", ""]).prop_map(str::to_owned),
        1 => "\\PC{0,16}",
        1 => (1usize..4).prop_map(|k| "s".repeat(k * 4_000)),
    ]
}

/// Ranges of one writer in a causal context, possibly many and possibly spanning nearly the
/// whole sequence space.
fn ranges() -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop_oneof![
        4 => vec((seq(), seq()), 0..6),
        1 => Just(vec![(1, u64::MAX)]),
        1 => Just(vec![(0, u64::MAX)]),
        1 => (1usize..5_000).prop_map(|n| (0..n as u64).map(|i| (2 * i + 1, 2 * i + 1)).collect()),
        1 => (1usize..2_000).prop_map(|n| (0..n as u64).map(|i| (u64::MAX - 2 * i, u64::MAX - 2 * i)).collect()),
    ]
}

/// A causal context, built through the codec as a peer would send it.
fn context() -> impl Strategy<Value = CausalContext> {
    vec((hostile_writer(), ranges()), 0..4).prop_map(|ws| {
        let map: BTreeMap<WriterId, Vec<(u64, u64)>> = ws.into_iter().collect();
        let f = codec::encode(Kind::Delta, &map).expect("encode");
        codec::decode::<CausalContext>(&f, usize::MAX)
            .expect("a context decodes")
            .1
    })
}

fn hlc() -> impl Strategy<Value = Hlc> {
    let wall = prop_oneof![
        Just(1_700_000_000_000u64),
        Just(u64::MAX),
        Just(0u64),
        Just(1_700_000_000_000u64 + 30_000),
        any::<u64>(),
    ];
    let logical = prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()];
    (wall, logical, hostile_writer()).prop_map(|(wall_ms, logical, writer)| Hlc {
        wall_ms,
        logical,
        writer,
    })
}

fn row() -> impl Strategy<Value = Row> {
    let map = || vec((hostile_writer(), amount()), 0..3).prop_map(|v| v.into_iter().collect());
    (
        (amount(), amount(), amount(), seq()),
        (map(), map(), map()),
        vec(prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()], 0..3),
    )
        .prop_map(
            |((minted, spent, refunded, seq), (sent, received, reclaimed), mints)| Row {
                minted,
                spent,
                sent,
                received,
                mints: mints.into_iter().collect::<BTreeSet<_>>(),
                seq,
                refunded,
                reclaimed,
            },
        )
}

fn usage() -> impl Strategy<Value = Usage> {
    (amount(), amount(), amount()).prop_map(|(spend_micros, tokens, requests)| Usage {
        spend_micros,
        tokens,
        requests,
    })
}

fn floor_unit() -> impl Strategy<Value = PeriodUnit> {
    period().prop_map(|p| p.unit)
}

fn floor() -> impl Strategy<Value = (PeriodUnit, WriterId, FloorCell)> {
    (
        floor_unit(),
        hostile_writer(),
        prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()],
        seq(),
    )
        .prop_map(|(u, w, floor, seq)| (u, w, FloorCell { floor, seq }))
}

fn hostile_delta() -> impl Strategy<Value = Delta<Val>> {
    let catalog = vec(
        (
            prop_oneof![Just("k".to_owned()), "\\PC{0,12}"],
            proptest::option::of(any::<Val>()),
            hlc(),
            seq(),
        )
            .prop_map(|(id, value, stamp, seq)| (id.into_boxed_str(), Entry { value, stamp, seq })),
        0..4,
    );
    let cells = vec(
        (scope(), period(), hostile_writer(), usage(), seq()).prop_map(
            |(scope, period, w, usage, seq)| {
                (
                    CounterKey::new(scope, period),
                    w,
                    CounterCell { usage, seq },
                )
            },
        ),
        0..4,
    );
    let rights = vec(
        (scope(), period(), vec((hostile_writer(), row()), 0..3))
            .prop_map(|(scope, period, rows)| (BudgetKey::new(scope, period), rows)),
        0..3,
    );
    (
        context(),
        catalog,
        cells,
        vec(floor(), 0..2),
        rights,
        vec(floor(), 0..2),
    )
        .prop_map(
            |(context, catalog, cells, counter_floors, keys, rights_floors)| Delta {
                context,
                items: ReplicaItems {
                    catalog,
                    counters: CounterItems {
                        cells,
                        floors: counter_floors,
                    },
                    rights: RightsItems {
                        keys,
                        floors: rights_floors,
                    },
                },
            },
        )
}

/// The replica's full state rebuilds a replica with the same digest: nothing it holds is
/// left out of what it ships.
fn check_full_state_rebuilds(r: &Replica<Val>, time: &ManualTime) {
    let mut rebuilt = Replica::<Val>::new(time.clock(writer("rebuilt", 1), 0));
    rebuilt.apply(r.full_state());
    assert_eq!(
        rebuilt.digest().expect("digest"),
        r.digest().expect("digest")
    );
}

/// Drops what an honest peer could not have sent: items with a dot of sequence 0 or a dot
/// already used by another item (of this delta or one before: `seen`), and any claim on the local writer's dots (the
/// replica's validation decides about those). Values stay hostile.
fn one_item_per_dot(mut d: Delta<Val>, seen: &mut BTreeSet<(WriterId, u64)>) -> Delta<Val> {
    let map: BTreeMap<WriterId, Vec<(u64, u64)>> = d
        .context
        .writers()
        .filter(|w| w.node.as_str() != ME)
        .map(|w| {
            (
                w.clone(),
                d.context
                    .ranges(w)
                    .map(|r| r.ranges().to_vec())
                    .unwrap_or_default(),
            )
        })
        .collect();
    let f = codec::encode(Kind::Delta, &map).expect("encode");
    d.context = codec::decode::<CausalContext>(&f, usize::MAX)
        .expect("decode")
        .1;
    let mut fresh =
        |w: &WriterId, seq: u64| seq > 0 && w.node.as_str() != ME && seen.insert((w.clone(), seq));
    d.items
        .catalog
        .retain(|(_, e)| fresh(&e.stamp.writer, e.seq));
    d.items.counters.cells.retain(|(_, w, c)| fresh(w, c.seq));
    d.items.counters.floors.retain(|(_, w, c)| fresh(w, c.seq));
    for (_, rows) in &mut d.items.rights.keys {
        rows.retain(|(w, r)| fresh(w, r.seq));
    }
    d.items.rights.floors.retain(|(_, w, c)| fresh(w, c.seq));
    d
}

fn bkey() -> BudgetKey {
    BudgetKey::new("key:a", Period::new(PeriodUnit::Month, 600))
}

fn ckey() -> CounterKey {
    CounterKey::new("key:a", Period::new(PeriodUnit::Day, 20_000))
}

/// A replica with a little honest state of its own.
fn seeded_replica(time: &ManualTime) -> Replica<Val> {
    let mut r = Replica::<Val>::new(time.clock(writer(ME, 1), 0));
    r.put("k", 1);
    r.put("j", 2);
    r.delete("j");
    let _ = r.add_usage(
        &ckey(),
        Usage {
            spend_micros: 5,
            tokens: 7,
            requests: 1,
        },
    );
    let _ = r.mint(&bkey(), 0, 1_000);
    let _ = r.spend(&bkey(), 100);
    let _ = r.transfer(&bkey(), &writer("p1", 1), 50);
    r
}

/// Everything that must still hold after hostile deltas: the digest computes, the full state
/// survives the codec, local operations run, and an honest writer's delta applies.
fn check_still_works(r: &mut Replica<Val>, time: &ManualTime) {
    r.digest().expect("digest");
    let _ = r.version();
    let full = r.full_state();
    let f = codec::encode(Kind::Snapshot, &full).expect("encode the full state");
    let back: Delta<Val> = codec::decode_kind(&f, Kind::Snapshot, usize::MAX).expect("decode");
    assert_eq!(back, full);

    // Local operations: results (refusals included) do not matter, panics would.
    let _ = r.put("k2", 3);
    let _ = r.delete("k");
    let _ = r.add_usage(
        &ckey(),
        Usage {
            spend_micros: u64::MAX,
            tokens: 1,
            requests: 1,
        },
    );
    for key in r.rights().keys().cloned().collect::<Vec<_>>() {
        let _ = r.rights().holders(&key);
        let _ = (
            r.rights().total_minted(&key),
            r.rights().total_consumed(&key),
        );
        let _ = r.spend(&key, 1);
        let _ = r.transfer(&key, &writer("p2", 1), u64::MAX);
        let _ = r.refund(&key, 1);
        let _ = r.reclaim(&key, &writer("ghost", 1));
    }
    let _ = r.mint(&bkey(), 7, u64::MAX);
    let _ = r.reclaim_node("p1");
    let _ = r.answer_rights_request(
        &RightsRequest {
            key: bkey(),
            from: writer("p2", 1),
            amount: u64::MAX,
            request_id: u64::MAX,
        },
        &DonorPolicy { low_water: 0 },
    );
    let _ = r.drop_periods_before(Period::new(PeriodUnit::Day, u32::MAX));
    let _ = r.collect_tombstones(&[r.version()], std::time::Duration::ZERO);
    // Pulls from peers claiming any position, up to the end of every writer's sequence.
    for seq in [1, u64::MAX - 1, u64::MAX] {
        let vv: BTreeMap<WriterId, u64> = [ME, "p1", "p2", "ghost", "a"]
            .into_iter()
            .flat_map(|n| [(writer(n, 1), seq), (writer(n, u64::MAX), seq)])
            .collect();
        let f = codec::encode(Kind::PullRequest, &vv).expect("encode");
        let vv: VersionVector = codec::decode_kind(&f, Kind::PullRequest, 1 << 20).expect("decode");
        let _ = r.delta_since(&vv);
    }
    let _ = r.delta_since(&VersionVector::new());
    r.digest().expect("digest after local operations");

    // An honest writer, unknown to every hostile delta, is still heard.
    let mut honest = Replica::<Val>::new(time.clock(writer("honest", 1), 0));
    let d = honest.put("from-honest", 42);
    r.apply(d);
    assert_eq!(r.catalog().get("from-honest"), Some(&42));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Hostile deltas, applied directly and after a trip through the codec: no panic, and
    /// the replica still works.
    #[test]
    fn hostile_deltas_leave_a_working_replica(deltas in vec(hostile_delta(), 1..4)) {
        let time = ManualTime::at(1_700_000_000_000);
        let mut direct = seeded_replica(&time);
        let mut wired = seeded_replica(&time);
        for d in deltas {
            let f = codec::encode(Kind::Delta, &d).expect("encode");
            let decoded = codec::decode_kind::<Delta<Val>>(&f, Kind::Delta, usize::MAX);
            let _ = direct.apply(d);
            if let Ok(d) = decoded {
                let _ = wired.apply(d);
            }
            direct.digest().expect("digest");
        }
        check_still_works(&mut direct, &time);
        check_still_works(&mut wired, &time);
    }

    /// Deltas with hostile values but one item per dot: the replica's full state rebuilds
    /// it exactly (what it holds, it ships).
    #[test]
    fn hostile_values_are_shipped_as_held(deltas in vec(hostile_delta(), 1..4)) {
        let time = ManualTime::at(1_700_000_000_000);
        let mut r = seeded_replica(&time);
        let mut seen = BTreeSet::new();
        for d in deltas {
            let _ = r.apply(one_item_per_dot(d, &mut seen));
            check_full_state_rebuilds(&r, &time);
        }
        check_still_works(&mut r, &time);
        check_full_state_rebuilds(&r, &time);
    }
}

/// Regression-style pins of the extremes, each on a fresh replica.
#[test]
fn extreme_deltas_one_by_one() {
    let time = ManualTime::at(1_700_000_000_000);
    let everything_of = |w: WriterId| {
        let map: BTreeMap<WriterId, Vec<(u64, u64)>> = [(w, vec![(1, u64::MAX)])].into();
        let f = codec::encode(Kind::Delta, &map).expect("encode");
        codec::decode::<CausalContext>(&f, usize::MAX)
            .expect("decode")
            .1
    };
    let stamp = |w: WriterId| Hlc {
        wall_ms: u64::MAX,
        logical: u32::MAX,
        writer: w,
    };
    let max_row = Row {
        minted: u64::MAX,
        spent: u64::MAX,
        sent: [(writer(ME, 1), u64::MAX), (writer("ghost", 9), u64::MAX)].into(),
        received: [(writer("ghost", 9), u64::MAX)].into(),
        mints: [0, u32::MAX].into(),
        seq: u64::MAX,
        refunded: u64::MAX,
        reclaimed: [(writer(ME, 1), u64::MAX)].into(),
    };
    let deltas: Vec<Delta<Val>> = vec![
        // Claims every dot of the local writer, and of an unknown one.
        Delta {
            context: everything_of(writer(ME, 1)),
            items: ReplicaItems::default(),
        },
        Delta {
            context: everything_of(writer("ghost", u64::MAX)),
            items: ReplicaItems::default(),
        },
        // A catalog entry stamped at the end of time with the last sequence number.
        Delta {
            context: everything_of(writer("ghost", 1)),
            items: ReplicaItems {
                catalog: vec![(
                    "k".into(),
                    Entry {
                        value: Some(9),
                        stamp: stamp(writer("ghost", 1)),
                        seq: u64::MAX,
                    },
                )],
                ..ReplicaItems::default()
            },
        },
        // Rights rows at u64::MAX everywhere, for us and for writers nobody knows.
        Delta {
            context: everything_of(writer("ghost", 9)),
            items: ReplicaItems {
                rights: RightsItems {
                    keys: vec![(
                        bkey(),
                        vec![
                            (writer("ghost", 9), max_row.clone()),
                            (writer(ME, 1), max_row),
                        ],
                    )],
                    floors: vec![(
                        PeriodUnit::Day,
                        writer("ghost", 9),
                        FloorCell {
                            floor: u32::MAX,
                            seq: u64::MAX,
                        },
                    )],
                },
                ..ReplicaItems::default()
            },
        },
        // Counter cells at u64::MAX for us and for strangers.
        Delta {
            context: everything_of(writer("p1", 1)),
            items: ReplicaItems {
                counters: CounterItems {
                    cells: vec![
                        (
                            ckey(),
                            writer("p1", 1),
                            CounterCell {
                                usage: Usage {
                                    spend_micros: u64::MAX,
                                    tokens: u64::MAX,
                                    requests: u64::MAX,
                                },
                                seq: u64::MAX,
                            },
                        ),
                        (
                            ckey(),
                            writer(ME, 1),
                            CounterCell {
                                usage: Usage {
                                    spend_micros: u64::MAX,
                                    tokens: u64::MAX,
                                    requests: u64::MAX,
                                },
                                seq: u64::MAX,
                            },
                        ),
                    ],
                    floors: Vec::new(),
                },
                ..ReplicaItems::default()
            },
        },
    ];
    for d in deltas {
        let mut r = seeded_replica(&time);
        let _ = r.apply(d.clone());
        let _ = r.apply(d);
        let _ = r.counters().total(&ckey());
        check_still_works(&mut r, &time);
    }
}

// ---------------------------------------------------------------------------------------
// Found by `hostile_deltas_leave_a_working_replica` (with a full-state round trip): items an
// honest writer never produces that left a replica holding state it never ships, so two
// replicas stayed different forever. `Replica::apply` now refuses such deltas whole; each
// test is the shrunk input.

fn assert_full_state_rebuilds(d: Delta<Val>) {
    let time = ManualTime::at(1_700_000_000_000);
    let mut r = seeded_replica(&time);
    let _ = r.apply(d);
    check_full_state_rebuilds(&r, &time);
}

fn cell(
    scope: &str,
    unit: PeriodUnit,
    w: WriterId,
    seq: u64,
) -> (CounterKey, WriterId, CounterCell) {
    (
        CounterKey::new(scope, Period::new(unit, 0)),
        w,
        CounterCell {
            usage: Usage::default(),
            seq,
        },
    )
}

/// A catalog entry with sequence number 0 (no dot) is stored but never shipped.
#[test]
fn catalog_entry_without_a_dot_is_not_held_unshipped() {
    assert_full_state_rebuilds(Delta {
        context: CausalContext::new(),
        items: ReplicaItems {
            catalog: vec![(
                "".into(),
                Entry {
                    value: None,
                    stamp: Hlc {
                        wall_ms: 1_700_000_000_000,
                        logical: 0,
                        writer: writer("p1", 1),
                    },
                    seq: 0,
                },
            )],
            ..ReplicaItems::default()
        },
    });
}

/// Two counter cells with one dot: both are stored, the recent-writes index keeps one, and
/// the other is never shipped.
#[test]
fn counter_cells_sharing_a_dot_are_not_held_unshipped() {
    let w = writer("a", 0);
    assert_full_state_rebuilds(Delta {
        context: CausalContext::new(),
        items: ReplicaItems {
            counters: CounterItems {
                cells: vec![
                    cell("key:a", PeriodUnit::Minute, w.clone(), u64::MAX),
                    cell("key:a", PeriodUnit::Lifetime, w, u64::MAX),
                ],
                floors: Vec::new(),
            },
            ..ReplicaItems::default()
        },
    });
}

/// A context claiming the local writer's last sequence number: its next writes all take
/// dot `u64::MAX` (the next dot saturates), so each replaces the last in the recent-writes
/// index and peers, which already cover that dot, skip them.
#[test]
fn claims_on_the_local_writers_future_do_not_diverge() {
    let time = ManualTime::at(1_700_000_000_000);
    let mut r = seeded_replica(&time);
    let map: BTreeMap<WriterId, Vec<(u64, u64)>> =
        [(writer(ME, 1), vec![(u64::MAX - 1, u64::MAX)])].into();
    let f = codec::encode(Kind::Delta, &map).expect("encode");
    let context = codec::decode::<CausalContext>(&f, usize::MAX)
        .expect("decode")
        .1;
    let _ = r.apply(Delta {
        context,
        items: ReplicaItems::default(),
    });
    r.put("a", 1);
    r.put("b", 2);
    check_full_state_rebuilds(&r, &time);
}
