//! A pull's answer in chunks of bounded size, instead of one frame as large as the whole state.
//!
//! A node that joins, or comes back with a wiped or old data dir, pulls everything: hundreds
//! of megabytes for a large catalog. As one frame that would need a frame cap as large, and
//! as much memory for the frame on both sides, on top of the state itself. So the answer is
//! split: every frame but the last is a plain [`Kind::Delta`] holding some of the items, with
//! a context of exactly the dots of those items; the last, a [`Kind::PullReply`], holds the
//! remaining items, the whole context the answer speaks for, and the answering replica's
//! version vector.
//!
//! Why this is safe to apply piece by piece: a delta whose context claims only the dots of
//! its own items is a valid delta (the receiver records those dots as it merges them, as it
//! would for a push), so each chunk can be merged and persisted on arrival, in any order, any
//! number of times. The dots that have no item of their own (writes superseded by later
//! ones, collected tombstones) are claimed only by the last frame, after every item has been
//! sent: a receiver whose transfer is cut midway keeps the chunks it merged, its version
//! vector stays below what it lacks, and its next pull asks for the rest.

use std::iter::Peekable;
use std::vec;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::CatalogValue;
use crate::codec::{self, CodecError, Kind};
use crate::crdt::{CatalogItem, CausalContext, CounterItem, FloorItem, RightsItem, VersionVector};
use crate::state::{Delta, ReplicaItems, item_dots};

/// The last frame of a pull's answer.
#[derive(Serialize, Deserialize)]
#[serde(bound(deserialize = "V: CatalogValue"))]
pub(super) struct PullReply<V> {
    pub(super) delta: Delta<V>,
    pub(super) version: VersionVector,
}

/// What one dot adds to a chunk's context, at most in practice: a range of two varints of up
/// to five bytes each (sequence numbers below 2^32).
const CONTEXT_PER_DOT: usize = 10;

/// Cuts a delta into encoded frames of about `budget` bytes (an item larger than `budget`
/// gets a frame of its own).
pub(super) struct Chunker<V> {
    catalog: Peekable<vec::IntoIter<CatalogItem<V>>>,
    cells: Peekable<vec::IntoIter<CounterItem>>,
    counter_floors: Peekable<vec::IntoIter<FloorItem>>,
    rights: Peekable<vec::IntoIter<RightsItem>>,
    rights_floors: Peekable<vec::IntoIter<FloorItem>>,
    /// The whole context and the version vector, for the last frame (`None` for items only).
    tail: Option<(CausalContext, VersionVector)>,
    /// The last frame is out.
    done: bool,
    budget: usize,
}

impl<V: CatalogValue> Chunker<V> {
    /// The frames of a pull's answer: `delta`, then `version`.
    pub(super) fn new(delta: Delta<V>, version: VersionVector, budget: usize) -> Self {
        let Delta { context, items } = delta;
        Self::of(items, Some((context, version)), budget)
    }

    /// The items of `delta` only, each frame a delta claiming just its own items' dots (for
    /// pushes, which travel on separate streams: no frame may claim a dot another carries).
    pub(super) fn items_only(delta: Delta<V>, budget: usize) -> Self {
        Self::of(delta.items, None, budget)
    }

    fn of(
        items: ReplicaItems<V>,
        tail: Option<(CausalContext, VersionVector)>,
        budget: usize,
    ) -> Self {
        Self {
            catalog: items.catalog.into_iter().peekable(),
            cells: items.counters.cells.into_iter().peekable(),
            counter_floors: items.counters.floors.into_iter().peekable(),
            rights: items.rights.keys.into_iter().peekable(),
            rights_floors: items.rights.floors.into_iter().peekable(),
            tail,
            done: false,
            budget: budget.max(1),
        }
    }

    /// The next frame, or `None` after the last.
    pub(super) fn next_frame(&mut self) -> Option<Result<Bytes, CodecError>> {
        if self.done {
            return None;
        }
        self.build().transpose()
    }

    fn build(&mut self) -> Result<Option<Bytes>, CodecError> {
        let budget = self.budget;
        let mut items = ReplicaItems::<V>::default();
        let mut size = 0;
        let full = fill(
            &mut self.catalog,
            |_| 1,
            &mut items.catalog,
            &mut size,
            budget,
        )? || fill(
            &mut self.cells,
            |_| 1,
            &mut items.counters.cells,
            &mut size,
            budget,
        )? || fill(
            &mut self.counter_floors,
            |_| 1,
            &mut items.counters.floors,
            &mut size,
            budget,
        )? || fill(
            &mut self.rights,
            |(_, rows)| rows.len(),
            &mut items.rights.keys,
            &mut size,
            budget,
        )? || fill(
            &mut self.rights_floors,
            |_| 1,
            &mut items.rights.floors,
            &mut size,
            budget,
        )?;
        if !full {
            match &self.tail {
                Some((context, version)) => {
                    let tail = codec::encoded_len(context)? + codec::encoded_len(version)?;
                    if size == 0 || size + tail <= budget {
                        self.done = true;
                        let (context, version) = self.tail.take().unwrap_or_default();
                        let reply = PullReply {
                            delta: Delta { context, items },
                            version,
                        };
                        return codec::encode(Kind::PullReply, &reply).map(Some);
                    }
                }
                None => {
                    self.done = true;
                    if size == 0 {
                        return Ok(None);
                    }
                }
            }
        }
        let context = CausalContext::from_dots(item_dots(&items));
        codec::encode(Kind::Delta, &Delta { context, items }).map(Some)
    }
}

/// Moves items from `from` into `into` while the chunk stays within `budget` (at least one
/// item per chunk). Returns whether the chunk is full (items of `from` remain).
fn fill<T: Serialize>(
    from: &mut Peekable<vec::IntoIter<T>>,
    dots: impl Fn(&T) -> usize,
    into: &mut Vec<T>,
    size: &mut usize,
    budget: usize,
) -> Result<bool, CodecError> {
    while let Some(item) = from.peek() {
        let len = codec::encoded_len(item)? + CONTEXT_PER_DOT * dots(item);
        if *size > 0 && size.saturating_add(len) > budget {
            return Ok(true);
        }
        *size = size.saturating_add(len);
        into.extend(from.next());
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::DEFAULT_MAX_PAYLOAD;
    use crate::crdt::{CounterKey, Period, PeriodUnit, Usage};
    use crate::hlc::{HlcClock, NodeId, WriterId};
    use crate::state::Replica;

    fn replica(node: &str) -> Replica<String> {
        let writer = WriterId::new(NodeId::new(node).unwrap(), 1);
        Replica::new(HlcClock::system(writer))
    }

    /// A replica with catalog entries (some overwritten, some deleted) and counters.
    fn source() -> Replica<String> {
        let mut r = replica("a");
        for i in 0..600 {
            r.put(
                &format!("key-{i:04}"),
                format!("value {i} {}", "x".repeat(40)),
            );
        }
        for i in (0..600).step_by(7) {
            r.put(&format!("key-{i:04}"), format!("rewritten {i}"));
        }
        for i in (0..600).step_by(11) {
            r.delete(&format!("key-{i:04}"));
        }
        for i in 0..200 {
            let key = CounterKey::new(format!("scope-{i}"), Period::new(PeriodUnit::Day, 20_000));
            let usage = Usage {
                spend_micros: i,
                tokens: 2 * i,
                requests: 1,
            };
            r.add_usage(&key, usage).unwrap();
        }
        r
    }

    fn frames(r: &Replica<String>, budget: usize) -> Vec<Bytes> {
        let mut chunker = Chunker::new(r.full_state(), r.version(), budget);
        std::iter::from_fn(|| chunker.next_frame())
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Applies one frame of an answer; returns the version vector of the last one.
    fn apply(to: &mut Replica<String>, frame: &[u8]) -> Option<VersionVector> {
        match codec::decode_header(frame).unwrap().kind {
            Kind::Delta => {
                let d: Delta<String> =
                    codec::decode_kind(frame, Kind::Delta, DEFAULT_MAX_PAYLOAD).unwrap();
                to.apply(d);
                None
            }
            Kind::PullReply => {
                let reply: PullReply<String> =
                    codec::decode_kind(frame, Kind::PullReply, DEFAULT_MAX_PAYLOAD).unwrap();
                to.apply(reply.delta);
                Some(reply.version)
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_state_larger_than_a_chunk_arrives_in_bounded_chunks() {
        let a = source();
        let whole = codec::encode(Kind::Delta, &a.full_state()).unwrap();
        let budget = 4 << 10;
        let frames = frames(&a, budget);
        assert!(
            frames.len() > whole.len() / budget,
            "{} frames",
            frames.len()
        );
        for f in &frames {
            assert!(f.len() <= 2 * budget, "a frame of {} bytes", f.len());
        }
        let mut b = replica("b");
        let mut version = None;
        for f in &frames {
            assert!(version.is_none(), "a frame after the last");
            version = apply(&mut b, f);
        }
        assert_eq!(version.unwrap(), a.version());
        assert_eq!(b.digest().unwrap(), a.digest().unwrap());
        // A small answer is one frame.
        let small = replica("c");
        assert_eq!(super::tests::frames(&small, budget).len(), 1);
    }

    #[test]
    fn a_transfer_cut_midway_keeps_what_arrived_and_resumes() {
        let a = source();
        let frames = frames(&a, 4 << 10);
        let mut b = replica("b");
        let half = frames.len() / 2;
        for f in &frames[..half] {
            assert!(apply(&mut b, f).is_none());
        }
        // What arrived is there, and b claims no more than it holds: no claimed dot lacks
        // its item, so the next pull (from b's vector) brings exactly the rest.
        assert!(!b.catalog().is_empty());
        let rest = a.delta_since(&b.version());
        let mut chunker = Chunker::new(rest, a.version(), 4 << 10);
        let mut last = None;
        while let Some(f) = chunker.next_frame() {
            last = apply(&mut b, &f.unwrap());
        }
        assert_eq!(last.unwrap(), a.version());
        assert_eq!(b.digest().unwrap(), a.digest().unwrap());
    }
}
