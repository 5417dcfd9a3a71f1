//! Dots, version vectors and causal contexts.
//!
//! Every local mutation takes a **dot** `(writer, seq)` from the writer's own sequence
//! (1, 2, 3, …). A replica's **causal context** is the set of dots whose effects it has
//! incorporated: it either holds the write, or holds something that supersedes it (a newer
//! catalog value, a later counter value), or it collected the write as a garbage tombstone.
//!
//! The context is kept per writer as sorted, disjoint ranges of sequence numbers. In steady
//! state that is one range `1..=n` per writer, i.e. a plain version vector; extra ranges only
//! appear while deltas arrive out of order (a delta for dots 6..=8 before the one for 4..=5). Exact
//! ranges instead of a bare vector make `apply` commutative: a delta never claims dots it does not
//! carry, so deltas may be delivered in any order, duplicated or dropped, and replicas that saw the
//! same deltas hold the same context.
//!
//! A [`VersionVector`] is the contiguous-prefix summary of a context: what a replica tells a peer
//! when it asks for a delta ("send me everything above this"), and what members report for
//! tombstone garbage collection.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hlc::WriterId;

/// One write: the writer and its sequence number for that write (starting at 1).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// Who wrote.
    pub writer: WriterId,
    /// The writer's sequence number for this write.
    pub seq: u64,
}

/// A map from writer to the highest sequence number seen contiguously from 1.
///
/// Absent writers count as 0. Merge is the pointwise maximum.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionVector(BTreeMap<WriterId, u64>);

impl VersionVector {
    /// The empty vector (has seen nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// The sequence number recorded for `writer` (0 if none).
    pub fn get(&self, writer: &WriterId) -> u64 {
        self.0.get(writer).copied().unwrap_or(0)
    }

    /// Raises `writer`'s entry to at least `seq`.
    pub fn raise(&mut self, writer: &WriterId, seq: u64) {
        if seq == 0 {
            return;
        }
        match self.0.get_mut(writer) {
            Some(cur) => *cur = (*cur).max(seq),
            None => {
                self.0.insert(writer.clone(), seq);
            }
        }
    }

    /// Whether the vector covers `dot`, i.e. `self[dot.writer] >= dot.seq`.
    pub fn covers(&self, dot: &Dot) -> bool {
        self.get(&dot.writer) >= dot.seq
    }

    /// Pointwise maximum with `other`.
    pub fn merge(&mut self, other: &VersionVector) {
        for (w, &s) in &other.0 {
            self.raise(w, s);
        }
    }

    /// Whether `self >= other` pointwise.
    pub fn dominates(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|(w, &s)| self.get(w) >= s)
    }

    /// The `(writer, seq)` pairs, in writer order.
    pub fn iter(&self) -> impl Iterator<Item = (&WriterId, u64)> {
        self.0.iter().map(|(w, &s)| (w, s))
    }

    /// How many writers have a non-zero entry.
    pub fn len(&self) -> usize {
        self.0.values().filter(|&&s| s > 0).count()
    }

    /// Whether no writer has a non-zero entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A set of sequence numbers of one writer: sorted, disjoint, non-adjacent inclusive ranges,
/// every bound at least 1. Normalised whenever built, including when deserialized from a peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DotRanges(Vec<(u64, u64)>);

impl DotRanges {
    /// Builds a normalised set from arbitrary ranges; empty or zero-based parts are dropped.
    pub fn from_ranges(mut ranges: Vec<(u64, u64)>) -> Self {
        ranges.retain_mut(|(lo, hi)| {
            *lo = (*lo).max(1);
            *lo <= *hi
        });
        ranges.sort_unstable();
        let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match out.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        Self(out)
    }

    /// Whether `seq` is in the set.
    pub fn contains(&self, seq: u64) -> bool {
        let idx = self.0.partition_point(|&(lo, _)| lo <= seq);
        idx > 0 && self.0.get(idx - 1).is_some_and(|&(_, hi)| seq <= hi)
    }

    /// The end of the range starting at 1, or 0.
    pub fn prefix(&self) -> u64 {
        match self.0.first() {
            Some(&(1, hi)) => hi,
            _ => 0,
        }
    }

    /// The highest sequence number in the set, or 0.
    pub fn max(&self) -> u64 {
        self.0.last().map_or(0, |&(_, hi)| hi)
    }

    /// The ranges.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.0
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn union(&mut self, other: &DotRanges) -> bool {
        if other.0.iter().all(|&(lo, hi)| self.contains_range(lo, hi)) {
            return false;
        }
        let mut all = std::mem::take(&mut self.0);
        all.extend_from_slice(&other.0);
        *self = Self::from_ranges(all);
        true
    }

    fn contains_range(&self, lo: u64, hi: u64) -> bool {
        let idx = self.0.partition_point(|&(l, _)| l <= lo);
        idx > 0 && self.0.get(idx - 1).is_some_and(|&(_, h)| hi <= h)
    }

    fn above(&self, floor: u64) -> DotRanges {
        let start = floor.saturating_add(1);
        DotRanges(
            self.0
                .iter()
                .filter(|&&(_, hi)| hi >= start)
                .map(|&(lo, hi)| (lo.max(start), hi))
                .collect(),
        )
    }
}

impl Serialize for DotRanges {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for DotRanges {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<(u64, u64)>::deserialize(d).map(Self::from_ranges)
    }
}

/// The exact set of dots a replica (or a delta) speaks for: per writer, [`DotRanges`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CausalContext(BTreeMap<WriterId, DotRanges>);

impl CausalContext {
    /// The empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// A context holding exactly one dot.
    pub fn of_dot(dot: &Dot) -> Self {
        let mut ctx = Self::new();
        ctx.insert(dot);
        ctx
    }

    /// Whether `dot` is in the context.
    pub fn covers(&self, dot: &Dot) -> bool {
        self.0.get(&dot.writer).is_some_and(|r| r.contains(dot.seq))
    }

    /// The context holding exactly `dots` (sequence 0 ignored), built in one pass: cheaper
    /// than inserting them one by one when they are many and scattered.
    pub fn from_dots<'a>(dots: impl IntoIterator<Item = (&'a WriterId, u64)>) -> Self {
        let mut per_writer: BTreeMap<WriterId, Vec<(u64, u64)>> = BTreeMap::new();
        for (writer, seq) in dots {
            match per_writer.get_mut(writer) {
                Some(seqs) => seqs.push((seq, seq)),
                None => {
                    per_writer.insert(writer.clone(), vec![(seq, seq)]);
                }
            }
        }
        CausalContext(
            per_writer
                .into_iter()
                .map(|(w, seqs)| (w, DotRanges::from_ranges(seqs)))
                .filter(|(_, r)| !r.is_empty())
                .collect(),
        )
    }

    /// Adds one dot.
    pub fn insert(&mut self, dot: &Dot) {
        let one = DotRanges(vec![(dot.seq, dot.seq)]);
        if dot.seq > 0 {
            self.union_writer(&dot.writer, &one);
        }
    }

    /// Adds every dot of `other`. Returns whether anything was new.
    pub fn union(&mut self, other: &CausalContext) -> bool {
        let mut changed = false;
        for (w, r) in &other.0 {
            changed |= self.union_writer(w, r);
        }
        changed
    }

    fn union_writer(&mut self, writer: &WriterId, ranges: &DotRanges) -> bool {
        if ranges.is_empty() {
            return false;
        }
        match self.0.get_mut(writer) {
            Some(mine) => mine.union(ranges),
            None => {
                self.0.insert(writer.clone(), ranges.clone());
                true
            }
        }
    }

    /// The contiguous-prefix summary (omits writers with nothing from 1).
    pub fn version(&self) -> VersionVector {
        VersionVector(
            self.0
                .iter()
                .map(|(w, r)| (w.clone(), r.prefix()))
                .filter(|&(_, s)| s > 0)
                .collect(),
        )
    }

    /// The dots not covered by `vv`: what a peer at `vv` is missing of this context.
    pub fn above(&self, vv: &VersionVector) -> CausalContext {
        CausalContext(
            self.0
                .iter()
                .map(|(w, r)| (w.clone(), r.above(vv.get(w))))
                .filter(|(_, r)| !r.is_empty())
                .collect(),
        )
    }

    /// The highest sequence number known for `writer`, or 0.
    pub fn max_seq(&self, writer: &WriterId) -> u64 {
        self.0.get(writer).map_or(0, DotRanges::max)
    }

    /// The next dot for `writer`: one above the highest known.
    pub fn next_dot(&self, writer: &WriterId) -> Dot {
        Dot {
            writer: writer.clone(),
            seq: self.max_seq(writer).saturating_add(1),
        }
    }

    /// The ranges recorded for `writer`.
    pub fn ranges(&self, writer: &WriterId) -> Option<&DotRanges> {
        self.0.get(writer)
    }

    /// The writers present in the context.
    pub fn writers(&self) -> impl Iterator<Item = &WriterId> {
        self.0.keys()
    }

    /// The same writer id as stored here (sharing its allocation), if present.
    pub fn intern(&self, writer: &WriterId) -> Option<WriterId> {
        self.0.get_key_value(writer).map(|(w, _)| w.clone())
    }

    /// Whether the context holds no dot.
    pub fn is_empty(&self) -> bool {
        self.0.values().all(DotRanges::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::NodeId;

    fn w(name: &str) -> WriterId {
        WriterId::new(NodeId::new(name).unwrap(), 1)
    }

    #[test]
    fn ranges_normalise() {
        let r = DotRanges::from_ranges(vec![(5, 6), (0, 0), (1, 2), (3, 4), (9, 8), (7, 7)]);
        assert_eq!(r.ranges(), &[(1, 7)]);
        let r = DotRanges::from_ranges(vec![(4, 5), (1, 2)]);
        assert_eq!(r.ranges(), &[(1, 2), (4, 5)]);
        assert!(r.contains(1) && r.contains(2) && !r.contains(3) && r.contains(5));
        assert!(!r.contains(0) && !r.contains(6));
        assert_eq!((r.prefix(), r.max()), (2, 5));
    }

    #[test]
    fn out_of_order_dots_fill_in() {
        let a = w("a");
        let mut ctx = CausalContext::new();
        ctx.insert(&Dot {
            writer: a.clone(),
            seq: 3,
        });
        assert_eq!(ctx.version().get(&a), 0);
        for seq in [1, 2] {
            ctx.insert(&Dot {
                writer: a.clone(),
                seq,
            });
        }
        assert_eq!(ctx.version().get(&a), 3);
        assert_eq!(ctx.next_dot(&a).seq, 4);
    }

    #[test]
    fn above_restricts() {
        let a = w("a");
        let b = w("b");
        let mut ctx = CausalContext::new();
        for seq in 1..=5 {
            ctx.insert(&Dot {
                writer: a.clone(),
                seq,
            });
        }
        ctx.insert(&Dot {
            writer: b.clone(),
            seq: 1,
        });
        let mut vv = VersionVector::new();
        vv.raise(&a, 3);
        vv.raise(&b, 1);
        let up = ctx.above(&vv);
        assert_eq!(up.ranges(&a).unwrap().ranges(), &[(4, 5)]);
        assert!(up.ranges(&b).is_none());
    }

    #[test]
    fn vector_ops() {
        let (a, b) = (w("a"), w("b"));
        let mut x = VersionVector::new();
        x.raise(&a, 3);
        let mut y = VersionVector::new();
        y.raise(&b, 2);
        assert!(!x.dominates(&y) && !y.dominates(&x));
        x.merge(&y);
        assert!(x.dominates(&y));
        assert!(x.covers(&Dot {
            writer: a.clone(),
            seq: 3
        }));
        assert!(!x.covers(&Dot { writer: a, seq: 4 }));
        assert_eq!(x.len(), 2);
    }
}
