//! Budget rights: a bounded counter (escrow), after Balegas et al., "Extending Eventually
//! Consistent Cloud Databases for Enforcing Numeric Invariants" (SRDS 2015).
//!
//! A budget for one period is **minted** once as rights. Each writer owns one [`Row`] per
//! budget key, written only by itself and only ever growing:
//!
//! * `minted` — rights it created (only the deterministic mint node mints);
//! * `sent[to]` — rights it transferred to `to` (the `transferred[w][to]` of the paper);
//! * `spent` — rights it consumed by admitting requests;
//! * `refunded` — rights it spent and then handed back unused (at most `spent`);
//! * `received[from]` — how much of `from`'s transfers to it the writer had seen when it last
//!   wrote the row (see below);
//! * `reclaimed[dead]` — rights it took over from a writer declared dead (see below);
//! * `mints` — the identities of its mints, so minting is idempotent per key and mint id.
//!
//! The rights a writer holds are
//!
//! ```text
//! rights(w) = minted[w] + Σ_x in[x→w] − Σ_y sent[w][y] − spent[w] + refunded[w]
//!           + Σ_x reclaimed[w][x] − Σ_h reclaimed[h][w]
//! ```
//!
//! where `in[x→w] = max(sent[x][w], received[w][x])` is the best known lower bound of what `x`
//! transferred to `w`. A writer spends or transfers only rights it holds, so on every node, at
//! every moment, **no writer's rights are negative and Σ consumed ≤ Σ minted**, where a writer's
//! consumption is `spent − refunded`: zero overspend under any partition. A side without rights
//! refuses (strict mode); it asks a peer for a transfer ([`super::transfer`]).
//!
//! **Refunds.** The node debits rights in chunks into an in-memory pool ahead of use, so that a
//! crash can only underspend; [`Rights::refund`] hands an unused part of the pool back as rights
//! of the same writer. A refund never exceeds what the writer spent, so `spent − refunded` never
//! goes negative. [`Rights::total_spent`] is Σ spent (rights ever debited, refunds included);
//! [`Rights::total_consumed`] is Σ (spent − refunded), what the budget really used.
//!
//! **Reclaiming a dead writer's rights.** When an operator declares a node gone for good, a
//! surviving writer takes over the rights the dead writer held ([`Rights::reclaim`]): it records
//! `reclaimed[dead] += rights(dead)` in its own row, which moves them from `dead` to itself in
//! every replica's formula. Once any row has reclaimed from `dead` for a key, `dead` itself (if
//! it comes back after all) refuses to spend, transfer or refund for that key, its
//! [`Rights::local_rights`] read 0, and nobody transfers to it any more. Rights that reach
//! `dead` later anyway (a transfer sent before its sender saw the reclaim) show in
//! [`Rights::rights`] and can be reclaimed by a second reclaim, which takes only what is left.
//! Two hazards remain, both operational:
//!
//! * the reclaimer must have seen every write the dead writer made (the runtime syncs with every
//!   live peer first): a spend of the dead writer that reached some node but not the reclaimer
//!   makes the dead writer's rights negative there, an overspend of at most that spend;
//! * two operators reclaiming the same dead writer on two nodes **concurrently**, each before
//!   seeing the other's reclaim, both take its rights, which doubles them. Run the reclaim once,
//!   on one node (a reclaim that has seen an earlier one takes 0).
//!
//! Why `received` and whole-key deltas: rows of different writers travel independently. Without
//! care a node could see `w`'s spend of rights that `x` transferred to `w` before it sees `x`'s
//! transfer, and compute a negative balance for `w` (or Σ consumed > Σ minted). So (1) a writer
//! folds every transfer it has seen into its own `received` before it spends or transfers, making
//! its own row self-sufficient (`minted + Σ received − Σ sent − spent + refunded + Σ reclaimed
//! ≥ 0`), and (2) a delta always carries **all** rows of a budget key it touches, so every
//! replica's view of a key is a join of views that were each consistent
//! (`received[w][x] ≤ sent[x][w]`, and a reclaim's amount covers the dead writer's row as the
//! reclaimer saw it), which is again consistent. Hence
//! `Σ_w rights(w) + Σ consumed = Σ minted` holds in every replica at every step, not only after
//! convergence.
//!
//! Merge is the maximum per cell (and union of mint ids); a row carries the seq of its owner's
//! last update, which is its dot, and replicates through [`Rights::delta_since`] like the other
//! types.

use std::collections::{BTreeMap, BTreeSet};

use litemap::LiteMap;

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

/// A budget: a scope (e.g. `"key:abc"`, `"team:t1"`) in one period.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BudgetKey {
    /// What the budget limits.
    pub scope: String,
    /// The budget period; rights of different periods never mix.
    pub period: Period,
}

impl BudgetKey {
    /// A key from its parts.
    pub fn new(scope: impl Into<String>, period: Period) -> Self {
        Self {
            scope: scope.into(),
            period,
        }
    }
}

/// Identifies one mint of a budget key: 0 for the period's initial budget, then one id per
/// top-up (a budget raised mid-period mints the difference under a new id).
pub type MintId = u32;

/// One writer's row for one budget key. Every field only grows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// Rights minted by this writer.
    pub minted: u64,
    /// Rights consumed by this writer.
    pub spent: u64,
    /// Rights this writer transferred, per recipient.
    pub sent: BTreeMap<WriterId, u64>,
    /// Transfers to this writer that it had incorporated, per donor.
    pub received: BTreeMap<WriterId, u64>,
    /// Mint ids this writer used.
    pub mints: BTreeSet<MintId>,
    /// The seq of the writer's last update to this row (its dot).
    pub seq: u64,
    /// Rights this writer spent and then handed back unused (never more than `spent`).
    #[serde(default)]
    pub refunded: u64,
    /// Rights this writer took over from writers declared dead, per dead writer. A key present
    /// (even with 0) marks that writer as reclaimed for this budget key.
    #[serde(default)]
    pub reclaimed: BTreeMap<WriterId, u64>,
}

impl Row {
    /// Whether the row, as its own writer wrote it, is consistent: it never refunds more than
    /// it spent, and it never moves more rights out (sent, spent net of refunds) than came in
    /// (minted, received, reclaimed). Every row a writer writes satisfies this (it folds what
    /// it received before it spends or transfers), and so does the field-wise maximum of two
    /// versions of one row, since the later version dominates. A row that breaks it would
    /// make its writer's rights negative.
    pub fn is_balanced(&self) -> bool {
        let sum = |m: &BTreeMap<WriterId, u64>| m.values().map(|&v| u128::from(v)).sum::<u128>();
        let incoming = u128::from(self.minted)
            + sum(&self.received)
            + sum(&self.reclaimed)
            + u128::from(self.refunded);
        let outgoing = self.sent_total() + u128::from(self.spent);
        self.refunded <= self.spent && outgoing <= incoming
    }

    fn merge(&mut self, other: &Row) -> bool {
        let before = self.clone();
        self.minted = self.minted.max(other.minted);
        self.spent = self.spent.max(other.spent);
        merge_max(&mut self.sent, &other.sent);
        merge_max(&mut self.received, &other.received);
        self.mints.extend(other.mints.iter().copied());
        self.seq = self.seq.max(other.seq);
        self.refunded = self.refunded.max(other.refunded);
        merge_max(&mut self.reclaimed, &other.reclaimed);
        *self != before
    }

    fn sent_total(&self) -> u128 {
        self.sent.values().map(|&v| u128::from(v)).sum()
    }
}

fn merge_max(mine: &mut BTreeMap<WriterId, u64>, theirs: &BTreeMap<WriterId, u64>) {
    for (w, &v) in theirs {
        let cur = mine.entry(w.clone()).or_insert(0);
        *cur = (*cur).max(v);
    }
}

/// One budget key's rows, by writer. A sorted vector, not a `BTreeMap`: a key has one row per
/// writer that touched it, usually one or two, and a B-tree's first node reserves room for
/// eleven (about 1.7 KB per budget period, the largest per-key cost of a governed node's
/// memory; docs/benchmarks.md). Same order and the same serde map encoding as the `BTreeMap`
/// it replaces, so digests and snapshots are unchanged.
type Rows = LiteMap<WriterId, Row>;

/// All rows of one key as shipped.
pub type RightsItem = (BudgetKey, Vec<(WriterId, Row)>);

/// The payload of a rights delta.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RightsItems {
    /// Whole keys (every row) with at least one row the peer has not seen.
    pub keys: Vec<RightsItem>,
    /// Period floors the peer has not seen.
    pub floors: Vec<FloorItem>,
}

impl RightsItems {
    /// Whether there is nothing to merge.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.floors.is_empty()
    }
}

/// A rights delta.
pub type RightsDelta = CausalDelta<RightsItems>;

/// A spend or transfer larger than the rights held locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("insufficient rights: {available} held, {requested} needed")]
pub struct Insufficient {
    /// Rights held by the local writer.
    pub available: u64,
    /// The amount asked for.
    pub requested: u64,
}

/// Why a transfer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// Not enough rights held.
    #[error(transparent)]
    Insufficient(#[from] Insufficient),
    /// A writer cannot transfer to itself.
    #[error("cannot transfer rights to oneself")]
    ToSelf,
    /// The recipient's rights for this key were reclaimed (it was declared dead); rights sent
    /// to it would be stranded until reclaimed again.
    #[error("the recipient's rights for the budget were reclaimed")]
    ToReclaimed,
}

/// Why a refund was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundError {
    /// The refund would exceed what the local writer spent and has not yet refunded.
    #[error("cannot refund {requested}: only {refundable} spent and not yet refunded")]
    Excess {
        /// `spent − refunded` of the local writer's row.
        refundable: u64,
        /// The amount asked for.
        requested: u64,
    },
    /// The local writer's rights for this key were reclaimed by another writer.
    #[error("this writer's rights for the budget were reclaimed")]
    Reclaimed,
    /// The key's period was dropped.
    #[error(transparent)]
    PeriodDropped(#[from] PeriodDropped),
}

/// Why a reclaim was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReclaimRefused {
    /// A writer cannot reclaim its own rights.
    #[error("cannot reclaim one's own rights")]
    FromSelf,
    /// The local writer was itself reclaimed for this key.
    #[error("this writer's rights for the budget were reclaimed")]
    Reclaimed,
    /// The key's period was dropped.
    #[error(transparent)]
    PeriodDropped(#[from] PeriodDropped),
}

/// Why a mint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    /// Some writer already minted this key under this mint id.
    #[error("budget {0:?} was already minted under mint id {1}")]
    AlreadyMinted(BudgetKey, MintId),
    /// The key's period was dropped.
    #[error(transparent)]
    PeriodDropped(#[from] PeriodDropped),
}

/// The rights replica for one local writer.
#[derive(Clone, Debug)]
pub struct Rights {
    me: WriterId,
    keys: BTreeMap<BudgetKey, Rows>,
    floors: Floors,
    ctx: CausalContext,
    recent: DotIndex<BudgetKey>,
}

impl Rights {
    /// Empty rights; local operations write `me`'s rows.
    pub fn new(me: WriterId) -> Self {
        Self {
            me,
            keys: BTreeMap::new(),
            floors: Floors::default(),
            ctx: CausalContext::new(),
            recent: DotIndex::default(),
        }
    }

    /// The local writer.
    pub fn writer(&self) -> &WriterId {
        &self.me
    }

    /// The first row of `items` that, merged with this replica's row of the same writer,
    /// would not be balanced ([`Row::is_balanced`]): merging it would make that writer's
    /// rights negative. Keys of dropped periods are skipped (they are not merged).
    pub fn unbalanced_row(&self, items: &RightsItems) -> Option<(BudgetKey, WriterId)> {
        for (key, rows) in &items.keys {
            if self.floors.is_dropped(&key.period) {
                continue;
            }
            let mine = self.keys.get(key);
            for (writer, row) in rows {
                if row.seq == 0 {
                    continue;
                }
                let balanced = match mine.and_then(|m| m.get(writer)) {
                    Some(current) => {
                        let mut merged = current.clone();
                        merged.merge(row);
                        merged.is_balanced()
                    }
                    None => row.is_balanced(),
                };
                if !balanced {
                    return Some((key.clone(), writer.clone()));
                }
            }
        }
        None
    }

    /// Rights held by `writer` for `key`, as this replica sees them (never negative).
    pub fn rights(&self, key: &BudgetKey, writer: &WriterId) -> u64 {
        self.keys.get(key).map_or(0, |rows| rights_in(rows, writer))
    }

    /// Rights the local writer may use: [`Self::rights`] of the local writer, or 0 once its
    /// rights for `key` were reclaimed (it refuses to use them from then on).
    pub fn local_rights(&self, key: &BudgetKey) -> u64 {
        if self.is_reclaimed(key, &self.me) {
            return 0;
        }
        self.rights(key, &self.me)
    }

    /// Whether some row reclaimed `writer`'s rights for `key` (it was declared dead).
    pub fn is_reclaimed(&self, key: &BudgetKey, writer: &WriterId) -> bool {
        self.rows(key)
            .any(|(_, r)| r.reclaimed.contains_key(writer))
    }

    /// Σ minted over writers.
    pub fn total_minted(&self, key: &BudgetKey) -> u64 {
        self.sum(key, |r| r.minted)
    }

    /// Σ spent over writers: every right ever debited, including those later refunded.
    pub fn total_spent(&self, key: &BudgetKey) -> u64 {
        self.sum(key, |r| r.spent)
    }

    /// Σ (spent − refunded) over writers: the rights the budget really consumed. Always at
    /// most [`Self::total_minted`]; `total_minted − total_consumed` is what the writers hold.
    pub fn total_consumed(&self, key: &BudgetKey) -> u64 {
        self.sum(key, |r| r.spent.saturating_sub(r.refunded))
    }

    fn sum(&self, key: &BudgetKey, f: impl Fn(&Row) -> u64) -> u64 {
        self.keys.get(key).map_or(0, |rows| {
            rows.values().fold(0u64, |acc, r| acc.saturating_add(f(r)))
        })
    }

    /// Every writer holding or owed rights for `key` with its rights (owners of rows,
    /// recipients of transfers and reclaimed writers), in writer order, as [`Self::rights`]
    /// computes them (a reclaimed writer shows what reached it after the reclaim).
    pub fn holders(&self, key: &BudgetKey) -> Vec<(WriterId, u64)> {
        let Some(rows) = self.keys.get(key) else {
            return Vec::new();
        };
        let mut who: BTreeSet<&WriterId> = rows.keys().collect();
        who.extend(rows.values().flat_map(|r| r.sent.keys()));
        who.extend(rows.values().flat_map(|r| r.reclaimed.keys()));
        who.into_iter()
            .map(|w| (w.clone(), rights_in(rows, w)))
            .collect()
    }

    /// The rows of `key`, in writer order.
    pub fn rows(&self, key: &BudgetKey) -> impl Iterator<Item = (&WriterId, &Row)> {
        self.keys.get(key).into_iter().flatten()
    }

    /// Every key with at least one row.
    pub fn keys(&self) -> impl Iterator<Item = &BudgetKey> {
        self.keys.keys()
    }

    /// Whether some writer already minted `key` under `mint`.
    pub fn is_minted(&self, key: &BudgetKey, mint: MintId) -> bool {
        self.rows(key).any(|(_, r)| r.mints.contains(&mint))
    }

    /// The replicated period floors.
    pub fn floors(&self) -> &Floors {
        &self.floors
    }

    /// Mints `amount` rights for `key` into our row, once per `(key, mint)`: a mint id that any
    /// writer has already used is refused, so a retried or repeated mint creates nothing.
    pub fn mint(
        &mut self,
        key: &BudgetKey,
        mint: MintId,
        amount: u64,
    ) -> Result<RightsDelta, MintError> {
        let dot = self.ctx.next_dot(&self.me);
        self.mint_at(key, mint, amount, dot)
    }

    pub(crate) fn mint_at(
        &mut self,
        key: &BudgetKey,
        mint: MintId,
        amount: u64,
        dot: Dot,
    ) -> Result<RightsDelta, MintError> {
        if self.floors.is_dropped(&key.period) {
            return Err(PeriodDropped(key.period).into());
        }
        if self.is_minted(key, mint) {
            return Err(MintError::AlreadyMinted(key.clone(), mint));
        }
        Ok(self.write_own(key, dot, |row| {
            row.minted = row.minted.saturating_add(amount);
            row.mints.insert(mint);
        }))
    }

    /// Consumes `amount` of our rights for `key`; refused if we hold less.
    pub fn spend(&mut self, key: &BudgetKey, amount: u64) -> Result<RightsDelta, Insufficient> {
        let dot = self.ctx.next_dot(&self.me);
        self.spend_at(key, amount, dot)
    }

    pub(crate) fn spend_at(
        &mut self,
        key: &BudgetKey,
        amount: u64,
        dot: Dot,
    ) -> Result<RightsDelta, Insufficient> {
        self.check(key, amount)?;
        Ok(self.write_own(key, dot, |row| {
            row.spent = row.spent.saturating_add(amount);
        }))
    }

    /// Transfers `amount` of our rights for `key` to `to`; refused if we hold less.
    pub fn transfer(
        &mut self,
        key: &BudgetKey,
        to: &WriterId,
        amount: u64,
    ) -> Result<RightsDelta, TransferError> {
        let dot = self.ctx.next_dot(&self.me);
        self.transfer_at(key, to, amount, dot)
    }

    pub(crate) fn transfer_at(
        &mut self,
        key: &BudgetKey,
        to: &WriterId,
        amount: u64,
        dot: Dot,
    ) -> Result<RightsDelta, TransferError> {
        if *to == self.me {
            return Err(TransferError::ToSelf);
        }
        self.check(key, amount)?;
        if self.is_reclaimed(key, to) {
            return Err(TransferError::ToReclaimed);
        }
        let to = self.ctx.intern(to).unwrap_or_else(|| to.clone());
        Ok(self.write_own(key, dot, |row| {
            let cur = row.sent.entry(to).or_insert(0);
            *cur = cur.saturating_add(amount);
        }))
    }

    /// Hands `amount` of what we spent on `key` back as our rights (an unused pool returned).
    /// Refused if it exceeds what we spent and have not refunded yet, or if our rights for
    /// `key` were reclaimed.
    pub fn refund(&mut self, key: &BudgetKey, amount: u64) -> Result<RightsDelta, RefundError> {
        let dot = self.ctx.next_dot(&self.me);
        self.refund_at(key, amount, dot)
    }

    pub(crate) fn refund_at(
        &mut self,
        key: &BudgetKey,
        amount: u64,
        dot: Dot,
    ) -> Result<RightsDelta, RefundError> {
        if self.floors.is_dropped(&key.period) {
            return Err(PeriodDropped(key.period).into());
        }
        if self.is_reclaimed(key, &self.me) {
            return Err(RefundError::Reclaimed);
        }
        let refundable = self
            .keys
            .get(key)
            .and_then(|rows| rows.get(&self.me))
            .map_or(0, |r| r.spent.saturating_sub(r.refunded));
        if amount > refundable {
            return Err(RefundError::Excess {
                refundable,
                requested: amount,
            });
        }
        Ok(self.write_own(key, dot, |row| {
            row.refunded = row.refunded.saturating_add(amount);
        }))
    }

    /// Takes over every right `dead` holds for `key` (as this replica sees them) into our own
    /// row, and returns the delta and the amount taken. From then on `dead` refuses to use
    /// rights for `key`. A second reclaim of the same writer takes only what reached it since.
    ///
    /// Run it only for a writer that is gone for good, after having seen all its writes, and on
    /// one node only (see the module docs for why).
    pub fn reclaim(
        &mut self,
        key: &BudgetKey,
        dead: &WriterId,
    ) -> Result<(RightsDelta, u64), ReclaimRefused> {
        let dot = self.ctx.next_dot(&self.me);
        self.reclaim_at(key, dead, dot)
    }

    pub(crate) fn reclaim_at(
        &mut self,
        key: &BudgetKey,
        dead: &WriterId,
        dot: Dot,
    ) -> Result<(RightsDelta, u64), ReclaimRefused> {
        if *dead == self.me {
            return Err(ReclaimRefused::FromSelf);
        }
        if self.floors.is_dropped(&key.period) {
            return Err(PeriodDropped(key.period).into());
        }
        if self.is_reclaimed(key, &self.me) {
            return Err(ReclaimRefused::Reclaimed);
        }
        let amount = self.rights(key, dead);
        let dead = self.ctx.intern(dead).unwrap_or_else(|| dead.clone());
        let delta = self.write_own(key, dot, |row| {
            let cur = row.reclaimed.entry(dead).or_insert(0);
            *cur = cur.saturating_add(amount);
        });
        Ok((delta, amount))
    }

    /// Refuses `amount` unless the local writer holds it. A dropped period or a reclaimed
    /// writer holds nothing, and refuses even an amount of 0: a write to its row would
    /// resurrect a dropped key locally, or keep a writer declared dead writing.
    fn check(&self, key: &BudgetKey, amount: u64) -> Result<(), Insufficient> {
        let available = self.local_rights(key);
        let blocked = self.floors.is_dropped(&key.period) || self.is_reclaimed(key, &self.me);
        if amount > available || blocked {
            return Err(Insufficient {
                available,
                requested: amount,
            });
        }
        Ok(())
    }

    /// Updates our row for `key` under `dot`, after folding in every transfer we can see, and
    /// returns the whole key as a delta.
    fn write_own(
        &mut self,
        key: &BudgetKey,
        dot: Dot,
        update: impl FnOnce(&mut Row),
    ) -> RightsDelta {
        self.ctx.insert(&dot);
        let me = self.me.clone();
        let rows = self.keys.entry(key.clone()).or_default();
        let seen: Vec<(WriterId, u64)> = rows
            .iter()
            .filter(|(w, _)| **w != me)
            .filter_map(|(w, r)| r.sent.get(&me).map(|&v| (w.clone(), v)))
            .collect();
        let row = rows.entry(me).or_default();
        for (donor, v) in seen {
            let cur = row.received.entry(donor).or_insert(0);
            *cur = (*cur).max(v);
        }
        let old = (row.seq > 0).then(|| Dot {
            writer: self.me.clone(),
            seq: row.seq,
        });
        update(row);
        row.seq = dot.seq;
        let rows = rows.iter().map(|(w, r)| (w.clone(), r.clone())).collect();
        self.recent.record(old.as_ref(), &dot, key.clone());
        CausalDelta {
            context: CausalContext::of_dot(&dot),
            items: RightsItems {
                keys: vec![(key.clone(), rows)],
                floors: Vec::new(),
            },
        }
    }

    /// The whole of `key` (every row) as the local writer last wrote it: a delta claiming only
    /// the local writer's last dot, as [`Self::spend`] returned it, for re-sending. `None` if
    /// the local writer has no row for `key`.
    pub fn own_key_delta(&self, key: &BudgetKey) -> Option<RightsDelta> {
        let rows = self.keys.get(key)?;
        let seq = rows.get(&self.me).map(|r| r.seq).filter(|s| *s > 0)?;
        let dot = Dot {
            writer: self.me.clone(),
            seq,
        };
        let rows = rows.iter().map(|(w, r)| (w.clone(), r.clone())).collect();
        Some(CausalDelta {
            context: CausalContext::of_dot(&dot),
            items: RightsItems {
                keys: vec![(key.clone(), rows)],
                floors: Vec::new(),
            },
        })
    }

    /// Drops every period of `cutoff.unit` below `cutoff.index`, here and everywhere.
    pub fn drop_periods_before(&mut self, cutoff: Period) -> RightsDelta {
        let dot = self.ctx.next_dot(&self.me);
        self.drop_at(cutoff, dot)
    }

    pub(crate) fn drop_at(&mut self, cutoff: Period, dot: Dot) -> RightsDelta {
        let floor = self.floors.drop_local(&mut self.ctx, &dot, cutoff);
        self.prune();
        CausalDelta {
            context: CausalContext::of_dot(&dot),
            items: RightsItems {
                keys: Vec::new(),
                floors: vec![floor],
            },
        }
    }

    fn prune(&mut self) {
        let floors = &self.floors;
        self.keys.retain(|k, _| !floors.is_dropped(&k.period));
        self.recent.retain(|k| !floors.is_dropped(&k.period));
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

    /// Every key with a row whose dot `vv` does not cover (all of its rows), and floors.
    pub fn delta_since(&self, vv: &VersionVector) -> RightsDelta {
        CausalDelta {
            context: self.ctx.above(vv),
            items: self.items_since(vv),
        }
    }

    /// Everything: the delta for a peer that has nothing.
    pub fn full_state(&self) -> RightsDelta {
        self.delta_since(&VersionVector::new())
    }

    pub(crate) fn items_since(&self, vv: &VersionVector) -> RightsItems {
        if self.ctx.above(vv).is_empty() {
            return RightsItems::default();
        }
        let missing = |rows: &Rows| rows.iter().any(|(w, r)| vv.get(w) < r.seq);
        let whole = |(k, rows): (&BudgetKey, &Rows)| {
            let rows = rows.iter().map(|(w, r)| (w.clone(), r.clone())).collect();
            (k.clone(), rows)
        };
        let keys = match self.recent.since(vv) {
            Some(mut keys) => {
                keys.sort_unstable();
                keys.dedup();
                keys.into_iter()
                    .filter_map(|k| self.keys.get_key_value(&k))
                    .filter(|(_, rows)| missing(rows))
                    .map(whole)
                    .collect()
            }
            None => self
                .keys
                .iter()
                .filter(|(_, rows)| missing(rows))
                .map(whole)
                .collect(),
        };
        RightsItems {
            keys,
            floors: self.floors.since(vv),
        }
    }

    /// Merges a delta (maximum per cell), then its context. Returns the keys that changed.
    pub fn apply(&mut self, delta: RightsDelta) -> Vec<BudgetKey> {
        self.apply_parts(delta.items, &delta.context)
    }

    pub(crate) fn apply_parts(
        &mut self,
        items: RightsItems,
        context: &CausalContext,
    ) -> Vec<BudgetKey> {
        self.ctx.union(context);
        if self.floors.merge_shipped(&mut self.ctx, items.floors) {
            self.prune();
        }
        let mut changed = Vec::new();
        for (key, rows) in items.keys {
            if self.floors.is_dropped(&key.period) {
                continue;
            }
            let mut key_changed = false;
            for (writer, row) in rows {
                if row.seq == 0 {
                    continue;
                }
                let dot = Dot {
                    writer,
                    seq: row.seq,
                };
                self.ctx.insert(&dot);
                let writer = self.ctx.intern(&dot.writer).unwrap_or(dot.writer);
                let mine = self.keys.entry(key.clone()).or_default();
                let (old_seq, new_seq) = match mine.get_mut(&writer) {
                    Some(cur) => {
                        let old = cur.seq;
                        key_changed |= cur.merge(&row);
                        (old, cur.seq)
                    }
                    None => {
                        let seq = row.seq;
                        mine.insert(writer.clone(), row);
                        key_changed = true;
                        (0, seq)
                    }
                };
                if new_seq != old_seq {
                    let old = (old_seq > 0).then(|| Dot {
                        writer: writer.clone(),
                        seq: old_seq,
                    });
                    let new = Dot {
                        writer,
                        seq: new_seq,
                    };
                    self.recent.record(old.as_ref(), &new, key.clone());
                }
            }
            if key_changed {
                changed.push(key);
            }
        }
        changed
    }

    /// SHA-256 over the canonical encoding of rows, floors and context.
    pub fn digest(&self) -> Result<[u8; 32], CodecError> {
        codec::digest(&(&self.keys, &self.floors, &self.ctx))
    }
}

/// `rights(w)` over one key's rows (see the module docs); clamped at 0 for rows a faulty peer
/// could have made inconsistent.
fn rights_in(rows: &Rows, w: &WriterId) -> u64 {
    let own = rows.get(w);
    let mut plus: u128 = own.map_or(0, |r| {
        u128::from(r.minted)
            + u128::from(r.refunded)
            + r.reclaimed.values().map(|&v| u128::from(v)).sum::<u128>()
    });
    let mut minus: u128 = own.map_or(0, |r| u128::from(r.spent) + r.sent_total());
    for (x, r) in rows {
        minus += u128::from(r.reclaimed.get(w).copied().unwrap_or(0));
        if x == w {
            continue;
        }
        let sent = r.sent.get(w).copied().unwrap_or(0);
        let received = own.and_then(|o| o.received.get(x)).copied().unwrap_or(0);
        plus += u128::from(sent.max(received));
    }
    if let Some(o) = own {
        for (x, &v) in &o.received {
            if x != w && !rows.contains_key(x) {
                plus += u128::from(v);
            }
        }
    }
    u64::try_from(plus.saturating_sub(minus)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::{Period, PeriodUnit};
    use crate::hlc::NodeId;

    fn writer(name: &str) -> WriterId {
        WriterId::new(NodeId::new(name).expect("valid node id"), 1)
    }

    /// Rows moved from `BTreeMap` to `LiteMap`; their encoding, and so every digest a peer of
    /// an older version compares with, must not change.
    #[test]
    fn rows_encode_as_the_btree_map_they_replace() {
        let key = BudgetKey::new("key:a", Period::new(PeriodUnit::Month, 600));
        let mut b = Rights::new(writer("b"));
        let mut a = Rights::new(writer("a"));
        b.apply(a.mint(&key, 0, 1_000).expect("mints"));
        a.apply(b.mint(&key, 1, 500).expect("mints"));
        a.apply(b.spend(&key, 200).expect("spends"));
        let rows = a.keys.get(&key).expect("the key has rows");
        assert_eq!(rows.len(), 2);
        let as_btree: BTreeMap<BudgetKey, BTreeMap<WriterId, Row>> = a
            .keys
            .iter()
            .map(|(k, rows)| {
                (
                    k.clone(),
                    rows.iter().map(|(w, r)| (w.clone(), r.clone())).collect(),
                )
            })
            .collect();
        let lite = codec::digest(&(&a.keys, &a.floors, &a.ctx)).expect("encodes");
        let btree = codec::digest(&(&as_btree, &a.floors, &a.ctx)).expect("encodes");
        assert_eq!(lite, btree);
    }
}
