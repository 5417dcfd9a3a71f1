//! The replicated data types: catalog, usage counters, budget rights.
//!
//! All three are **delta-state CRDTs with a causal context** (Almeida, Shoker, Baquero,
//! "Delta State Replicated Data Types", 2018), built small on purpose:
//!
//! * every local mutation takes a [`Dot`] `(writer, seq)` from the writer's own sequence;
//! * a replica's [`CausalContext`] records exactly which dots it has incorporated;
//! * `delta_since(&VersionVector)` returns what a peer at that vector lacks, as a
//!   [`CausalDelta`]: the items plus the dots they speak for; `apply` merges the items, then the
//!   context. Deltas may be lost, duplicated or reordered; a full state is just the delta since
//!   the empty vector.
//!
//! Payload per type: [`catalog`] (last-writer-wins map with tombstones), [`counters`]
//! (single-writer grow-only cells), [`rights`] (Balegas-style escrow rows) with the transfer
//! protocol in [`transfer`]. Periods and their replicated drop floors live in [`period`], dots and
//! vectors in [`version`]. [`crate::state::Replica`] puts the three together under one dot
//! sequence and one context.
//!
//! `delta_since` answers from a bounded per-writer index of recent writes (`index.rs`) and
//! scans only for a peer that is further behind than the index reaches, so a pull costs
//! `O(changes)`, not `O(state)`, even with a million catalog entries.
//!
//! Measured (tests/crdt_size.rs, 1,000,000 catalog entries with 20-byte ids and a 24-byte value):
//! about 163 bytes resident per entry (B-tree slack and allocator included), 67 bytes per entry
//! in a full-state frame; a single put delta is about 100 bytes on the wire.
//!
//! Nothing here reads a clock or does I/O; catalog stamps come from [`crate::hlc`].

pub mod catalog;
pub mod counters;
mod index;
pub mod period;
pub mod rights;
pub mod transfer;
pub mod version;

use serde::{Deserialize, Serialize};

pub use catalog::{Catalog, CatalogChanges, CatalogDelta, CatalogItem, Entry};
pub use counters::{
    Cell, CounterDelta, CounterItem, CounterItems, CounterKey, Counters, Metric, Usage,
};
pub use period::{FloorCell, FloorItem, Floors, Period, PeriodUnit};
pub use rights::{
    BudgetKey, Insufficient, MintError, MintId, ReclaimRefused, RefundError, Rights, RightsDelta,
    RightsItem, RightsItems, Row, TransferError,
};
pub use transfer::{DonorPolicy, RightsGrant, RightsRequest};
pub use version::{CausalContext, Dot, DotRanges, VersionVector};

/// A delta: a payload of items plus the exact set of dots it speaks for.
///
/// Applying it merges the items, then adds `context` to the receiver's context. `context` never
/// claims a dot whose effect is not in `items` (or superseded by something in `items`), so a
/// delta is safe to apply on any replica, in any order, any number of times.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CausalDelta<I> {
    /// The dots this delta speaks for.
    pub context: CausalContext,
    /// The payload.
    pub items: I,
}

/// An operation on a period that was already dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("period {0:?} was dropped")]
pub struct PeriodDropped(pub Period);
