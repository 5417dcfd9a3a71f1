//! Usage counters: per writer, single-writer, grow-only counters keyed by scope and period.
//!
//! Each writer owns one [`Cell`] per [`CounterKey`] and only ever raises it; a cell carries the
//! seq of its owner's last update, which is the update's dot. The global value is the sum over
//! every writer that ever wrote, dead ones and old incarnations included: nothing is dropped
//! because a member vanished. Merge is the pointwise maximum per `(key, writer)`, so delivering
//! a cell twice, late or out of order changes nothing.
//!
//! A cell holds all three metrics ([`Usage`]): a request adds spend, tokens and a request count
//! in one update with one dot, and the scope string is stored once per period rather than once
//! per metric. Units are integers (micro-dollars, tokens, requests); additions saturate.
//!
//! Periods are collected only by the explicit, replicated [`Counters::drop_periods_before`]
//! (see [`super::period`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    CausalDelta, PeriodDropped,
    index::DotIndex,
    period::{FloorItem, Floors, Period},
    version::{CausalContext, Dot, VersionVector},
};
use crate::{
    codec::{self, CodecError},
    hlc::WriterId,
};

/// What a counter counts: a scope (e.g. `"key:abc"`, `"team:t1"`) in one period.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CounterKey {
    /// What the usage is charged to, e.g. `"key:<hash>"`.
    pub scope: String,
    /// The accounting period.
    pub period: Period,
}

impl CounterKey {
    /// A key from its parts.
    pub fn new(scope: impl Into<String>, period: Period) -> Self {
        Self {
            scope: scope.into(),
            period,
        }
    }
}

/// One of the metrics in [`Usage`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Metric {
    /// Cost in micro-dollars.
    SpendMicros,
    /// Input plus output tokens.
    Tokens,
    /// Requests.
    Requests,
}

/// Usage amounts, all grow-only integers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Cost in micro-dollars.
    pub spend_micros: u64,
    /// Tokens.
    pub tokens: u64,
    /// Requests.
    pub requests: u64,
}

impl Usage {
    /// The value of one metric.
    pub fn get(&self, metric: Metric) -> u64 {
        match metric {
            Metric::SpendMicros => self.spend_micros,
            Metric::Tokens => self.tokens,
            Metric::Requests => self.requests,
        }
    }

    /// Field-wise saturating sum.
    pub fn saturating_add(self, other: Usage) -> Usage {
        Usage {
            spend_micros: self.spend_micros.saturating_add(other.spend_micros),
            tokens: self.tokens.saturating_add(other.tokens),
            requests: self.requests.saturating_add(other.requests),
        }
    }

    fn max(self, other: Usage) -> Usage {
        Usage {
            spend_micros: self.spend_micros.max(other.spend_micros),
            tokens: self.tokens.max(other.tokens),
            requests: self.requests.max(other.requests),
        }
    }
}

/// One writer's counter for one key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    /// The writer's running totals for the key.
    pub usage: Usage,
    /// The seq of the writer's last update to this cell (its dot).
    pub seq: u64,
}

/// A cell as shipped: `(key, owner, cell)`.
pub type CounterItem = (CounterKey, WriterId, Cell);

/// The payload of a counter delta.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterItems {
    /// Cells the peer has not seen.
    pub cells: Vec<CounterItem>,
    /// Period floors the peer has not seen.
    pub floors: Vec<FloorItem>,
}

impl CounterItems {
    /// Whether there is nothing to merge.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty() && self.floors.is_empty()
    }
}

/// A counter delta.
pub type CounterDelta = CausalDelta<CounterItems>;

/// The counters replica for one local writer.
#[derive(Clone, Debug)]
pub struct Counters {
    me: WriterId,
    cells: BTreeMap<CounterKey, BTreeMap<WriterId, Cell>>,
    floors: Floors,
    ctx: CausalContext,
    recent: DotIndex<(CounterKey, WriterId)>,
}

impl Counters {
    /// Empty counters; local updates go to `me`'s slot.
    pub fn new(me: WriterId) -> Self {
        Self {
            me,
            cells: BTreeMap::new(),
            floors: Floors::default(),
            ctx: CausalContext::new(),
            recent: DotIndex::default(),
        }
    }

    /// The local writer.
    pub fn writer(&self) -> &WriterId {
        &self.me
    }

    /// Adds `usage` to our own slot for `key`. Refused if `key`'s period was dropped.
    pub fn add(&mut self, key: &CounterKey, usage: Usage) -> Result<CounterDelta, PeriodDropped> {
        let dot = self.ctx.next_dot(&self.me);
        self.add_at(key, usage, dot)
    }

    pub(crate) fn add_at(
        &mut self,
        key: &CounterKey,
        usage: Usage,
        dot: Dot,
    ) -> Result<CounterDelta, PeriodDropped> {
        if self.floors.is_dropped(&key.period) {
            return Err(PeriodDropped(key.period));
        }
        self.ctx.insert(&dot);
        let cell = self
            .cells
            .entry(key.clone())
            .or_default()
            .entry(self.me.clone())
            .or_default();
        let old = (cell.seq > 0).then(|| Dot {
            writer: self.me.clone(),
            seq: cell.seq,
        });
        cell.usage = cell.usage.saturating_add(usage);
        cell.seq = dot.seq;
        let cell = *cell;
        self.recent
            .record(old.as_ref(), &dot, (key.clone(), self.me.clone()));
        Ok(CausalDelta {
            context: CausalContext::of_dot(&dot),
            items: CounterItems {
                cells: vec![(key.clone(), self.me.clone(), cell)],
                floors: Vec::new(),
            },
        })
    }

    /// The sum over every writer that ever wrote to `key`.
    pub fn total(&self, key: &CounterKey) -> Usage {
        self.cells.get(key).map_or_else(Usage::default, |slots| {
            slots
                .values()
                .fold(Usage::default(), |acc, c| acc.saturating_add(c.usage))
        })
    }

    /// One writer's cell for `key`.
    pub fn slot(&self, key: &CounterKey, writer: &WriterId) -> Option<&Cell> {
        self.cells.get(key).and_then(|slots| slots.get(writer))
    }

    /// Every writer's cell for `key`.
    pub fn slots(&self, key: &CounterKey) -> impl Iterator<Item = (&WriterId, &Cell)> {
        self.cells.get(key).into_iter().flatten()
    }

    /// Every key with at least one cell.
    pub fn keys(&self) -> impl Iterator<Item = &CounterKey> {
        self.cells.keys()
    }

    /// How many keys have at least one cell; O(1), unlike counting [`Self::keys`].
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether no key has a cell.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// The replicated period floors.
    pub fn floors(&self) -> &Floors {
        &self.floors
    }

    /// Drops every period of `cutoff.unit` with an index below `cutoff.index`, here and (through
    /// the returned delta) everywhere. Explicit: callers derive `cutoff` from a retention policy.
    pub fn drop_periods_before(&mut self, cutoff: Period) -> CounterDelta {
        let dot = self.ctx.next_dot(&self.me);
        self.drop_at(cutoff, dot)
    }

    pub(crate) fn drop_at(&mut self, cutoff: Period, dot: Dot) -> CounterDelta {
        let floor = self.floors.drop_local(&mut self.ctx, &dot, cutoff);
        self.prune();
        CausalDelta {
            context: CausalContext::of_dot(&dot),
            items: CounterItems {
                cells: Vec::new(),
                floors: vec![floor],
            },
        }
    }

    fn prune(&mut self) {
        let floors = &self.floors;
        self.cells.retain(|k, _| !floors.is_dropped(&k.period));
        self.recent.retain(|(k, _)| !floors.is_dropped(&k.period));
    }

    /// The dots incorporated here.
    pub fn context(&self) -> &CausalContext {
        &self.ctx
    }

    /// Adds dots to the context (the replica keeps its structures' contexts in lockstep).
    pub(crate) fn union_context(&mut self, other: &CausalContext) {
        self.ctx.union(other);
    }

    /// The contiguous summary of [`Self::context`].
    pub fn version(&self) -> VersionVector {
        self.ctx.version()
    }

    /// Cells and floors whose dot `vv` does not cover, with the dots above `vv` as context.
    pub fn delta_since(&self, vv: &VersionVector) -> CounterDelta {
        CausalDelta {
            context: self.ctx.above(vv),
            items: self.items_since(vv),
        }
    }

    /// Everything: the delta for a peer that has nothing.
    pub fn full_state(&self) -> CounterDelta {
        self.delta_since(&VersionVector::new())
    }

    pub(crate) fn items_since(&self, vv: &VersionVector) -> CounterItems {
        if self.ctx.above(vv).is_empty() {
            return CounterItems::default();
        }
        let cells = match self.recent.since(vv) {
            Some(mut keys) => {
                keys.sort_unstable();
                keys.dedup();
                keys.into_iter()
                    .filter_map(|(k, w)| {
                        let c = *self.slot(&k, &w).filter(|c| vv.get(&w) < c.seq)?;
                        Some((k, w, c))
                    })
                    .collect()
            }
            None => self
                .cells
                .iter()
                .flat_map(|(k, slots)| {
                    slots
                        .iter()
                        .filter(|(w, c)| vv.get(w) < c.seq)
                        .map(|(w, c)| (k.clone(), w.clone(), *c))
                })
                .collect(),
        };
        CounterItems {
            cells,
            floors: self.floors.since(vv),
        }
    }

    /// Merges a delta (pointwise maximum), then its context. Returns how many cells changed.
    pub fn apply(&mut self, delta: CounterDelta) -> usize {
        self.apply_parts(delta.items, &delta.context)
    }

    pub(crate) fn apply_parts(&mut self, items: CounterItems, context: &CausalContext) -> usize {
        self.ctx.union(context);
        if self.floors.merge_shipped(&mut self.ctx, items.floors) {
            self.prune();
        }
        let mut changed = 0;
        for (key, writer, cell) in items.cells {
            if self.floors.is_dropped(&key.period) || cell.seq == 0 {
                continue;
            }
            let dot = Dot {
                writer,
                seq: cell.seq,
            };
            self.ctx.insert(&dot);
            let writer = self.ctx.intern(&dot.writer).unwrap_or(dot.writer);
            let slot = self
                .cells
                .entry(key.clone())
                .or_default()
                .entry(writer.clone())
                .or_default();
            let merged = Cell {
                usage: slot.usage.max(cell.usage),
                seq: slot.seq.max(cell.seq),
            };
            if merged == *slot {
                continue;
            }
            let old_seq = slot.seq;
            *slot = merged;
            changed += 1;
            if merged.seq != old_seq {
                let old = (old_seq > 0).then(|| Dot {
                    writer: writer.clone(),
                    seq: old_seq,
                });
                let new = Dot {
                    writer: writer.clone(),
                    seq: merged.seq,
                };
                self.recent.record(old.as_ref(), &new, (key, writer));
            }
        }
        changed
    }

    /// SHA-256 over the canonical encoding of cells, floors and context.
    pub fn digest(&self) -> Result<[u8; 32], CodecError> {
        codec::digest(&(&self.cells, &self.floors, &self.ctx))
    }
}
