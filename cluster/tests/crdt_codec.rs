//! The frame codec: round trips, every header error, and fuzz-ish inputs (random bytes,
//! truncations, bit flips, random payloads under a valid header) that must never panic.

mod crdt_support;

use crdt_support::{ManualTime, Val, writer};
use proptest::{collection::vec, prelude::*};
use starling_cluster::{
    codec::{self, CodecError, FORMAT_VERSION, HEADER_LEN, Kind, MAGIC},
    crdt::{BudgetKey, CounterKey, Period, PeriodUnit, RightsRequest, Usage, VersionVector},
    state::{Delta, Replica},
};

fn sample_delta(ids: &[(String, Val)], spend: u64) -> Delta<Val> {
    let time = ManualTime::at(1_700_000_000_000);
    let mut r = Replica::<Val>::new(time.clock(writer("n1", 9), 0));
    for (id, v) in ids {
        r.put(id, *v);
    }
    r.delete("gone");
    let period = Period::new(PeriodUnit::Day, 20_000);
    r.add_usage(
        &CounterKey::new("key:a", period),
        Usage {
            spend_micros: spend,
            tokens: 3,
            requests: 1,
        },
    )
    .unwrap();
    let b = BudgetKey::new("key:a", period);
    r.mint(&b, 0, spend + 10).unwrap();
    r.spend(&b, spend).unwrap();
    r.transfer(&b, &writer("n2", 1), 5).unwrap();
    r.full_state()
}

fn frame_with(version: u8, kind: u8, payload: &[u8], declared: u32) -> Vec<u8> {
    let mut f = Vec::from(MAGIC);
    f.push(version);
    f.push(kind);
    f.extend_from_slice(&declared.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ids() -> impl Strategy<Value = Vec<(String, Val)>> {
    vec(("[a-z0-9:]{1,24}", any::<Val>()), 0..12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trip(ids in ids(), spend in any::<u32>()) {
        let d = sample_delta(&ids, u64::from(spend));
        let frame = codec::encode(Kind::Delta, &d).unwrap();
        let (kind, back) = codec::decode::<Delta<Val>>(&frame, 1 << 20).unwrap();
        prop_assert_eq!(kind, Kind::Delta);
        prop_assert_eq!(back, d);
    }

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        let _ = codec::decode::<Delta<Val>>(&bytes, 1 << 20);
        let _ = codec::decode_header(&bytes);
    }

    #[test]
    fn random_payload_under_valid_header_never_panics(payload in vec(any::<u8>(), 0..512)) {
        let f = frame_with(FORMAT_VERSION, Kind::Delta as u8, &payload, payload.len() as u32);
        let _ = codec::decode::<Delta<Val>>(&f, 1 << 20);
        let _ = codec::decode::<RightsRequest>(&f, 1 << 20);
        let _ = codec::decode::<VersionVector>(&f, 1 << 20);
    }

    #[test]
    fn truncations_are_errors(ids in ids(), cut in any::<prop::sample::Index>()) {
        let frame = codec::encode(Kind::Delta, &sample_delta(&ids, 5)).unwrap();
        let at = cut.index(frame.len());
        prop_assert!(codec::decode::<Delta<Val>>(&frame[..at], 1 << 20).is_err());
    }

    #[test]
    fn bit_flips_never_panic(ids in ids(), flips in vec((any::<prop::sample::Index>(), 0..8u8), 1..6)) {
        let mut frame = codec::encode(Kind::Delta, &sample_delta(&ids, 5)).unwrap().to_vec();
        for (i, bit) in flips {
            let at = i.index(frame.len());
            frame[at] ^= 1 << bit;
        }
        if let Ok((_, d)) = codec::decode::<Delta<Val>>(&frame, 1 << 20) {
            // Whatever decodes must be safe to apply.
            let time = ManualTime::at(1_700_000_000_000);
            let mut r = Replica::<Val>::new(time.clock(writer("x", 1), 0));
            let _ = r.apply(d);
            let _ = r.digest();
        }
    }
}

#[test]
fn header_errors() {
    let good = codec::encode(Kind::PullRequest, &VersionVector::new()).unwrap();
    let payload = &good[HEADER_LEN..];
    let n = payload.len() as u32;

    let mut bad = good.to_vec();
    bad[0] = b'X';
    assert!(matches!(
        codec::decode::<VersionVector>(&bad, 64),
        Err(CodecError::BadMagic(_))
    ));
    assert!(matches!(
        codec::decode::<VersionVector>(&frame_with(2, 1, payload, n), 64),
        Err(CodecError::UnsupportedVersion(2))
    ));
    assert!(matches!(
        codec::decode::<VersionVector>(&frame_with(1, 99, payload, n), 64),
        Err(CodecError::UnknownKind(99))
    ));
    assert!(matches!(
        codec::decode::<VersionVector>(&good[..5], 64),
        Err(CodecError::Truncated { got: 5 })
    ));
    assert!(matches!(
        codec::decode::<VersionVector>(&frame_with(1, 1, payload, n + 1), 64),
        Err(CodecError::LengthMismatch { .. })
    ));
    let mut long = payload.to_vec();
    long.push(0);
    assert!(matches!(
        codec::decode::<VersionVector>(&frame_with(1, 1, &long, n + 1), 64),
        Err(CodecError::TrailingBytes(1))
    ));
    assert!(matches!(
        codec::decode::<VersionVector>(&frame_with(1, 1, &[0; 100], 100), 64),
        Err(CodecError::Oversize { len: 100, max: 64 })
    ));
    assert!(matches!(
        codec::decode::<VersionVector>(&frame_with(1, 1, &[0xFF; 4], 4), 64),
        Err(CodecError::Decode(_))
    ));
    assert!(matches!(
        codec::decode_kind::<VersionVector>(&good, Kind::Delta, 64),
        Err(CodecError::WrongKind {
            expected: Kind::Delta,
            got: Kind::PullRequest
        })
    ));
    // A huge declared length is refused before anything is read or allocated.
    let huge = frame_with(1, 2, &[], u32::MAX);
    assert!(matches!(
        codec::decode::<VersionVector>(&huge, 1 << 20),
        Err(CodecError::Oversize { .. })
    ));
}

#[test]
fn invalid_node_ids_from_the_wire_are_refused() {
    // A VersionVector whose single writer is named "a b" (space is not allowed).
    let mut payload = vec![1u8, 3];
    payload.extend_from_slice(b"a b");
    payload.extend_from_slice(&[1, 5]);
    let f = frame_with(1, 1, &payload, payload.len() as u32);
    assert!(matches!(
        codec::decode::<VersionVector>(&f, 64),
        Err(CodecError::Decode(_))
    ));
    let mut ok = vec![1u8, 3];
    ok.extend_from_slice(b"a-b");
    ok.extend_from_slice(&[1, 5]);
    let f = frame_with(1, 1, &ok, ok.len() as u32);
    let vv = codec::decode::<VersionVector>(&f, 64).unwrap().1;
    assert_eq!(vv.get(&writer("a-b", 1)), 5);
}
