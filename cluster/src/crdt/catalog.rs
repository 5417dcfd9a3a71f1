//! The catalog: a last-writer-wins map from id to value, replicated as delta-state.
//!
//! # Layout and size
//!
//! Each entry is `{ value: Option<V>, stamp: Hlc, seq }`: `None` is a tombstone, `stamp` orders
//! writes (last writer wins), and the entry's **dot** is `(stamp.writer, seq)` — the writer that
//! stamped the value is the writer that issued the dot, so the writer is stored once. There is no
//! per-entry vector clock (crdts' `Map` keeps one per entry and costs about 8 MB per 1,000
//! entries at 256 actors); causality lives in one [`CausalContext`] for the whole map. Writer ids
//! are shared (`Arc`) between entries: incoming entries are re-pointed at the context's copy.
//!
//! # Replication
//!
//! [`Catalog::delta_since`] sends every entry whose dot the peer's [`VersionVector`] does not
//! cover, together with the dots above that vector that we have incorporated (the context);
//! a bounded index of recent writes answers it without scanning the map.
//! [`Catalog::apply`] merges entries by stamp, then adds the delta's context to ours.
//!
//! An incoming entry whose dot our context already covers is skipped: we have incorporated that
//! write before, so we hold it or something newer for that id — or we held a tombstone that
//! superseded it and collected it. Skipping is what stops a stale peer from resurrecting a
//! collected entry; without garbage collection it is equivalent to the plain LWW merge, which
//! keeps apply commutative, associative and idempotent.
//!
//! # Tombstone garbage collection
//!
//! [`Catalog::collect_tombstones`] drops a tombstone only when
//! 1. every listed member's acknowledged vector covers the tombstone's dot, and so does ours;
//! 2. our own vector dominates every listed acknowledgement;
//! 3. it is older than `min_age`.
//!
//! Why that is safe: by (1) every member has merged the delete, so none holds an older value for
//! the id any more and none will put one in a future delta. A write older than the delete but
//! concurrent with it was made by some member *before* that member saw the delete, so its dot is
//! within that member's acknowledgement, and by (2) within our context: if a stale copy arrives
//! late (an old delta still in flight) it is recognised as already seen and skipped, not
//! resurrected. (3) is a margin for deltas cut before the acknowledgements and still queued, and
//! for writes of members that left; the transport must drop deltas older than `min_age`. The list
//! must hold every member that may still send us state: a node removed from the cluster must
//! rejoin with an empty data directory (a new incarnation), never with its old state.

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};

use super::{
    CausalDelta,
    index::DotIndex,
    version::{CausalContext, Dot, VersionVector},
};
use crate::{
    codec::{self, CodecError},
    hlc::Hlc,
};

/// One catalog entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry<V> {
    /// The value; `None` is a tombstone (the id was deleted).
    pub value: Option<V>,
    /// The write's stamp; the greatest stamp wins.
    pub stamp: Hlc,
    /// The write's sequence number in its writer's dot sequence.
    pub seq: u64,
}

impl<V> Entry<V> {
    /// The write's dot: `(stamp.writer, seq)`.
    pub fn dot(&self) -> Dot {
        Dot {
            writer: self.stamp.writer.clone(),
            seq: self.seq,
        }
    }

    /// Whether this entry is a tombstone.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    fn wins_over(&self, other: &Entry<V>) -> bool {
        (&self.stamp, self.seq) > (&other.stamp, other.seq)
    }
}

/// An entry as shipped: `(id, entry)`.
pub type CatalogItem<V> = (Box<str>, Entry<V>);

/// A catalog delta: entries plus the dots the delta speaks for.
pub type CatalogDelta<V> = CausalDelta<Vec<CatalogItem<V>>>;

/// What [`Catalog::apply`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatalogChanges {
    /// Ids whose entry was replaced or created (values and tombstones).
    pub changed: Vec<Box<str>>,
    /// Entries skipped because their dot was already incorporated.
    pub skipped: usize,
}

/// A last-writer-wins map with tombstones and a causal context.
#[derive(Clone, Debug)]
pub struct Catalog<V> {
    entries: BTreeMap<Box<str>, Entry<V>>,
    ctx: CausalContext,
    live: usize,
    recent: DotIndex<Box<str>>,
}

impl<V> Default for Catalog<V> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
            ctx: CausalContext::new(),
            live: 0,
            recent: DotIndex::default(),
        }
    }
}

impl<V: Clone + Eq> Catalog<V> {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `value` under `id` with a stamp from the writer's clock. The dot is the next in
    /// `stamp.writer`'s sequence. Returns the delta to ship.
    pub fn put(&mut self, id: &str, value: V, stamp: Hlc) -> CatalogDelta<V> {
        let dot = self.ctx.next_dot(&stamp.writer);
        self.write_at(id, Some(value), stamp, dot)
    }

    /// Deletes `id` by writing a tombstone (even if the id is unknown here, so that it also
    /// beats older concurrent writes we have not seen yet). Returns the delta to ship.
    pub fn delete(&mut self, id: &str, stamp: Hlc) -> CatalogDelta<V> {
        let dot = self.ctx.next_dot(&stamp.writer);
        self.write_at(id, None, stamp, dot)
    }

    /// A local write with a dot chosen by the caller (the replica shares one sequence across
    /// its structures). `dot.writer` must be `stamp.writer`.
    pub(crate) fn write_at(
        &mut self,
        id: &str,
        value: Option<V>,
        mut stamp: Hlc,
        dot: Dot,
    ) -> CatalogDelta<V> {
        self.ctx.insert(&dot);
        if let Some(w) = self.ctx.intern(&stamp.writer) {
            stamp.writer = w;
        }
        let entry = Entry {
            value,
            stamp,
            seq: dot.seq,
        };
        let id: Box<str> = id.into();
        let items = if self.store(&id, entry.clone()) {
            vec![(id, entry)]
        } else {
            Vec::new()
        };
        CausalDelta {
            context: CausalContext::of_dot(&dot),
            items,
        }
    }

    /// The live value of `id` (`None` if absent or deleted).
    pub fn get(&self, id: &str) -> Option<&V> {
        self.entries.get(id).and_then(|e| e.value.as_ref())
    }

    /// The entry for `id`, tombstones included.
    pub fn entry(&self, id: &str) -> Option<&Entry<V>> {
        self.entries.get(id)
    }

    /// Live entries, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.entries
            .iter()
            .filter_map(|(id, e)| e.value.as_ref().map(|v| (&**id, v)))
    }

    /// Every entry, tombstones included, in id order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry<V>)> {
        self.entries.iter().map(|(id, e)| (&**id, e))
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether there is no live entry.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Number of tombstones held.
    pub fn tombstones(&self) -> usize {
        self.entries.len() - self.live
    }

    /// The dots incorporated here.
    pub fn context(&self) -> &CausalContext {
        &self.ctx
    }

    /// Adds dots to the context (the replica keeps its structures' contexts in lockstep).
    pub(crate) fn union_context(&mut self, other: &CausalContext) {
        self.ctx.union(other);
    }

    /// The contiguous summary of [`Self::context`], to send when asking a peer for a delta.
    pub fn version(&self) -> VersionVector {
        self.ctx.version()
    }

    /// Entries whose dot `vv` does not cover, with the dots above `vv` as context.
    pub fn delta_since(&self, vv: &VersionVector) -> CatalogDelta<V> {
        CausalDelta {
            context: self.ctx.above(vv),
            items: self.items_since(vv),
        }
    }

    /// Everything: the delta for a peer that has nothing.
    pub fn full_state(&self) -> CatalogDelta<V> {
        self.delta_since(&VersionVector::new())
    }

    pub(crate) fn items_since(&self, vv: &VersionVector) -> Vec<CatalogItem<V>> {
        if self.ctx.above(vv).is_empty() {
            // Every held entry's dot is in our context, so nothing can be missing.
            return Vec::new();
        }
        let missing = |e: &Entry<V>| vv.get(&e.stamp.writer) < e.seq;
        match self.recent.since(vv) {
            Some(mut ids) => {
                ids.sort_unstable();
                ids.dedup();
                ids.into_iter()
                    .filter_map(|id| {
                        let e = self.entries.get(&id).filter(|e| missing(e))?.clone();
                        Some((id, e))
                    })
                    .collect()
            }
            None => self
                .entries
                .iter()
                .filter(|(_, e)| missing(e))
                .map(|(id, e)| (id.clone(), e.clone()))
                .collect(),
        }
    }

    /// Merges a delta: entries by stamp (skipping already incorporated dots), then the context.
    pub fn apply(&mut self, delta: CatalogDelta<V>) -> CatalogChanges {
        self.apply_parts(delta.items, &delta.context)
    }

    pub(crate) fn apply_parts(
        &mut self,
        items: Vec<CatalogItem<V>>,
        context: &CausalContext,
    ) -> CatalogChanges {
        let before = self.ctx.clone();
        self.ctx.union(context);
        let mut out = CatalogChanges::default();
        for (id, mut entry) in items {
            let dot = entry.dot();
            if before.covers(&dot) {
                out.skipped += 1;
                continue;
            }
            // Holding (or having lost to) an entry means its write is incorporated.
            self.ctx.insert(&dot);
            if let Some(w) = self.ctx.intern(&entry.stamp.writer) {
                entry.stamp.writer = w;
            }
            if self.store(&id, entry) {
                out.changed.push(id);
            }
        }
        out
    }

    /// Last-writer-wins store. Returns whether the entry was taken.
    fn store(&mut self, id: &str, entry: Entry<V>) -> bool {
        let new_dot = entry.dot();
        let old_dot = match self.entries.get_mut(id) {
            Some(cur) => {
                if !entry.wins_over(cur) {
                    return false;
                }
                match (cur.value.is_some(), entry.value.is_some()) {
                    (true, false) => self.live -= 1,
                    (false, true) => self.live += 1,
                    _ => {}
                }
                let old = cur.dot();
                *cur = entry;
                Some(old)
            }
            None => {
                self.live += usize::from(entry.value.is_some());
                self.entries.insert(id.into(), entry);
                None
            }
        };
        self.recent.record(old_dot.as_ref(), &new_dot, id.into());
        true
    }

    /// Drops collectable tombstones (see the module docs for the rule and why it is safe).
    /// `acked` holds the latest version vector acknowledged by every member that may still send
    /// us state; `now_ms` is the current physical time. Returns how many were dropped.
    pub fn collect_tombstones(
        &mut self,
        acked: &[VersionVector],
        min_age: Duration,
        now_ms: u64,
    ) -> usize {
        let mine = self.ctx.version();
        if !acked.iter().all(|a| mine.dominates(a)) {
            return 0;
        }
        let min_age_ms = u64::try_from(min_age.as_millis()).unwrap_or(u64::MAX);
        let mut dropped = Vec::new();
        self.entries.retain(|_, e| {
            if e.value.is_some() || now_ms.saturating_sub(e.stamp.wall_ms) < min_age_ms {
                return true;
            }
            let dot = e.dot();
            let collect = mine.covers(&dot) && acked.iter().all(|a| a.covers(&dot));
            if collect {
                dropped.push(dot);
            }
            !collect
        });
        for dot in &dropped {
            self.recent.forget(dot);
        }
        dropped.len()
    }
}

impl<V: Serialize> Catalog<V> {
    /// SHA-256 over the canonical encoding of entries and context (ids in order).
    pub fn digest(&self) -> Result<[u8; 32], CodecError> {
        codec::digest(&(&self.entries, &self.ctx))
    }
}
