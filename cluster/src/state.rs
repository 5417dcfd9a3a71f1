//! A node's full replica of the governance state.
//!
//! [`Replica`] holds the catalog, the usage counters and the budget rights under **one** dot
//! sequence and **one** causal context: every local operation takes the next dot of the local
//! writer, whatever structure it touches, and every delta carries one context for all three. The
//! structures keep copies of that context in lockstep, so each of them is also usable on its own.
//!
//! * Local mutations return the [`Delta`] to ship (push). [`Replica::delta_since`] answers a
//!   peer's version vector (pull); [`Replica::full_state`] is the delta since nothing, for a
//!   joiner or a node that fell behind, and also the snapshot to persist.
//! * [`Replica::apply`] first passes the newest catalog stamp through the hybrid logical clock,
//!   refusing the whole delta if it is too far in the future, then merges.
//! * [`Replica::digest`] is a SHA-256 over a canonical encoding (ordered maps only), so two
//!   replicas can be compared byte for byte without shipping state.
//!
//! The catalog value type `V` is generic: governance code stores its own structs, and the codec
//! (bincode, not self-describing) could not decode a `serde_json::Value` anyway.

use std::collections::{BTreeMap, HashSet};
use std::{fmt, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{
    codec::CodecError,
    crdt::{
        BudgetKey, CatalogItem, CausalContext, CausalDelta, CounterItems, CounterKey, Counters,
        DonorPolicy, Dot, Insufficient, MintError, MintId, Period, PeriodDropped, ReclaimRefused,
        RefundError, Rights, RightsGrant, RightsItems, RightsRequest, TransferError, Usage,
        VersionVector, catalog::Catalog,
    },
    hlc::{ClockError, Hlc, HlcClock, WriterId},
};

/// The payload of a replica delta: one part per structure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaItems<V> {
    /// Catalog entries.
    pub catalog: Vec<CatalogItem<V>>,
    /// Counter cells and floors.
    pub counters: CounterItems,
    /// Rights rows (whole keys) and floors.
    pub rights: RightsItems,
}

impl<V> Default for ReplicaItems<V> {
    fn default() -> Self {
        Self {
            catalog: Vec::new(),
            counters: CounterItems::default(),
            rights: RightsItems::default(),
        }
    }
}

/// A replica delta: what to ship after a local mutation, or in answer to a pull.
pub type Delta<V> = CausalDelta<ReplicaItems<V>>;

impl<V> CausalDelta<ReplicaItems<V>> {
    /// Whether the delta carries nothing (no dot, no item): no need to send it.
    pub fn is_empty(&self) -> bool {
        self.context.is_empty()
            && self.items.catalog.is_empty()
            && self.items.counters.is_empty()
            && self.items.rights.is_empty()
    }

    fn catalog(context: CausalContext, catalog: Vec<CatalogItem<V>>) -> Self {
        Self {
            context,
            items: ReplicaItems {
                catalog,
                ..ReplicaItems::default()
            },
        }
    }

    fn counters(context: CausalContext, counters: CounterItems) -> Self {
        Self {
            context,
            items: ReplicaItems {
                counters,
                ..ReplicaItems::default()
            },
        }
    }

    fn rights(context: CausalContext, rights: RightsItems) -> Self {
        Self {
            context,
            items: ReplicaItems {
                rights,
                ..ReplicaItems::default()
            },
        }
    }
}

/// A SHA-256 digest of a replica's state.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Digest(pub [u8; 32]);

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// What [`Replica::apply`] changed; feeds hot-path mirrors and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Catalog ids whose entry was created or replaced (including deletes).
    pub catalog_changed: Vec<Box<str>>,
    /// Catalog entries skipped as already incorporated (duplicates, or collected tombstones).
    pub catalog_skipped: usize,
    /// Counter cells that changed.
    pub counters_changed: usize,
    /// Budget keys whose rows changed.
    pub rights_changed: Vec<BudgetKey>,
    /// The delta held dots of our own writer that we did not have: we are recovering our own
    /// slot from peers (e.g. after reloading an old snapshot). Do not write before catching up;
    /// if this happens after we wrote, our incarnation was reused unsafely (see [`crate::hlc`]).
    pub own_slot_recovered: bool,
    /// A catalog stamp was further ahead of our clock than the forward bound: the data was
    /// merged, but our clock moved only up to the bound (see [`HlcClock::observe_bounded`]).
    pub clock_skew: Option<ClockError>,
    /// The delta was refused as a whole and nothing was merged (see [`DeltaRejected`]).
    pub rejected: Option<DeltaRejected>,
}

/// How far beyond the last dot it issued a replica accepts claims about its own writer's
/// dots (2^20). A node can legitimately be behind its own slot: a peer may pull a local write
/// after it is applied and before it is fsynced, and a crash then loses it here but not
/// there (or an operator restores an older snapshot); merging those dots back is how the slot
/// is recovered ([`ApplyOutcome::own_slot_recovered`]), and writes then continue above them.
/// Such a gap is a few batches of writes, far below this bound. A claim beyond it is forged:
/// it is refused, so no peer can push our sequence to `u64::MAX`. (A node restored from a
/// snapshot older than a million of its own writes must start on a fresh data dir instead.)
pub const OWN_RECOVERY_WINDOW: u64 = 1 << 20;

/// Why [`Replica::apply`] refused a peer's delta. A refused delta is dropped whole; the
/// replica is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeltaRejected {
    /// The delta claims a dot of the local writer more than [`OWN_RECOVERY_WINDOW`] beyond
    /// the last one it issued. Merged, a claim of `(us, u64::MAX)` would make our next dot
    /// overflow and leave our later writes, revocations included, looking already seen.
    #[error(
        "claims seq {claimed} of the local writer, which has issued only {issued} \
         (at most {OWN_RECOVERY_WINDOW} more are taken as our own history)"
    )]
    FutureOwnSeq {
        /// The highest local seq the delta claims.
        claimed: u64,
        /// The highest local seq issued.
        issued: u64,
    },
    /// An item without a dot (sequence 0), or two items of one delta with the same dot:
    /// no writer produces either (every write takes a dot of its own), and a replica merging
    /// them would hold an item that it never ships (the recent-writes index keeps one item
    /// per dot), so replicas would stay different for good.
    #[error("item dot ({writer:?}, {seq}) is {problem}")]
    MalformedDot {
        /// The dot's writer.
        writer: WriterId,
        /// The dot's sequence number.
        seq: u64,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A rights row that, merged, would make its writer's rights negative
    /// ([`crate::crdt::Row::is_balanced`]).
    #[error("rights row of {writer:?} for {key:?} would make its rights negative")]
    NegativeRights {
        /// The budget key.
        key: BudgetKey,
        /// The row's writer.
        writer: WriterId,
    },
}

impl DeltaRejected {
    /// A short, fixed label for metrics: `future_own_seq` or `negative_rights`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::FutureOwnSeq { .. } => "future_own_seq",
            Self::NegativeRights { .. } => "negative_rights",
            Self::MalformedDot { .. } => "malformed_dot",
        }
    }
}

/// A node's replica: catalog of `V`, counters and rights, one context, one clock.
#[derive(Clone, Debug)]
pub struct Replica<V> {
    clock: HlcClock,
    catalog: Catalog<V>,
    counters: Counters,
    rights: Rights,
}

impl<V: Clone + Eq> Replica<V> {
    /// An empty replica writing as `clock.writer()`.
    pub fn new(clock: HlcClock) -> Self {
        let me = clock.writer().clone();
        Self {
            clock,
            catalog: Catalog::new(),
            counters: Counters::new(me.clone()),
            rights: Rights::new(me),
        }
    }

    /// A replica reloaded from a persisted [`Self::full_state`]. The clock adopts the newest
    /// stamp without the forward bound (it is our own history), so it stays monotonic across
    /// restarts even if the physical clock went back.
    pub fn restore(clock: HlcClock, state: Delta<V>) -> Self {
        let mut replica = Self::new(clock);
        if let Some(max) = state.items.catalog.iter().map(|(_, e)| &e.stamp).max() {
            replica.clock.adopt(max);
        }
        replica.merge(state);
        replica
    }

    /// The local writer.
    pub fn writer(&self) -> &WriterId {
        self.clock.writer()
    }

    /// The replica's clock.
    pub fn clock(&self) -> &HlcClock {
        &self.clock
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog<V> {
        &self.catalog
    }

    /// The usage counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The budget rights.
    pub fn rights(&self) -> &Rights {
        &self.rights
    }

    /// The dots incorporated here.
    pub fn context(&self) -> &CausalContext {
        self.catalog.context()
    }

    /// The version vector to send when pulling from a peer.
    pub fn version(&self) -> VersionVector {
        self.context().version()
    }

    fn next_dot(&self) -> Dot {
        self.context().next_dot(self.writer())
    }

    /// Records `dot` in the contexts of all three structures (lockstep).
    fn note(&mut self, dot: &Dot) {
        let one = CausalContext::of_dot(dot);
        self.catalog.union_context(&one);
        self.counters.union_context(&one);
        self.rights.union_context(&one);
    }

    /// Writes `value` under `id`.
    pub fn put(&mut self, id: &str, value: V) -> Delta<V> {
        let dot = self.next_dot();
        let stamp = self.stamp_over(id);
        let d = self.catalog.write_at(id, Some(value), stamp, dot.clone());
        self.note(&dot);
        Delta::catalog(d.context, d.items)
    }

    /// A stamp for a write of `id` that is greater than the entry it replaces. A write made
    /// after reading an entry must win over it, even when this node's clock is behind the
    /// entry's writer (a clock that jumped back, or one held within the forward bound):
    /// otherwise an acknowledged update could lose to the older value it replaced (found by
    /// the Jepsen-style clock nemesis). The clock moves up to the entry's stamp, which this
    /// replica has already accepted.
    fn stamp_over(&mut self, id: &str) -> Hlc {
        if let Some(current) = self.catalog.entry(id) {
            let current = current.stamp.clone();
            self.clock.adopt(&current);
        }
        self.clock.now()
    }

    /// Deletes `id` (writes a tombstone).
    pub fn delete(&mut self, id: &str) -> Delta<V> {
        let dot = self.next_dot();
        let stamp = self.stamp_over(id);
        let d = self.catalog.write_at(id, None, stamp, dot.clone());
        self.note(&dot);
        Delta::catalog(d.context, d.items)
    }

    /// Adds usage to our own counter slot for `key`.
    pub fn add_usage(&mut self, key: &CounterKey, usage: Usage) -> Result<Delta<V>, PeriodDropped> {
        let dot = self.next_dot();
        let d = self.counters.add_at(key, usage, dot.clone())?;
        self.note(&dot);
        Ok(Delta::counters(d.context, d.items))
    }

    /// Adds many usages to our own counter slots, each under its own dot as
    /// [`Self::add_usage`] would, and returns **one** delta for all of them (its context is the
    /// union of the dots; a key added to several times ships its final cell once) plus how many
    /// items were skipped because their period was dropped. No items (or all skipped): an
    /// empty delta.
    pub fn add_usage_many(&mut self, items: &[(CounterKey, Usage)]) -> (Delta<V>, usize) {
        let mut context = CausalContext::new();
        let mut cells: Vec<crate::crdt::CounterItem> = Vec::new();
        let mut at: std::collections::HashMap<CounterKey, usize> = Default::default();
        let mut skipped = 0;
        for (key, usage) in items {
            let dot = self.next_dot();
            let Ok(d) = self.counters.add_at(key, *usage, dot.clone()) else {
                skipped += 1;
                continue;
            };
            self.note(&dot);
            context.insert(&dot);
            // Our own cell for a key only grows: a later cell supersedes an earlier one.
            for cell in d.items.cells {
                match at.get(&cell.0) {
                    Some(&i) => cells[i] = cell,
                    None => {
                        at.insert(cell.0.clone(), cells.len());
                        cells.push(cell);
                    }
                }
            }
        }
        let items = CounterItems {
            cells,
            floors: Vec::new(),
        };
        (Delta::counters(context, items), skipped)
    }

    /// Mints rights for `key` once per mint id (see [`Rights::mint`]).
    pub fn mint(
        &mut self,
        key: &BudgetKey,
        mint: MintId,
        amount: u64,
    ) -> Result<Delta<V>, MintError> {
        let dot = self.next_dot();
        let d = self.rights.mint_at(key, mint, amount, dot.clone())?;
        self.note(&dot);
        Ok(Delta::rights(d.context, d.items))
    }

    /// Spends our rights for `key`; refused if we hold less than `amount`.
    pub fn spend(&mut self, key: &BudgetKey, amount: u64) -> Result<Delta<V>, Insufficient> {
        let dot = self.next_dot();
        let d = self.rights.spend_at(key, amount, dot.clone())?;
        self.note(&dot);
        Ok(Delta::rights(d.context, d.items))
    }

    /// Transfers our rights for `key` to `to`; refused if we hold less than `amount`.
    pub fn transfer(
        &mut self,
        key: &BudgetKey,
        to: &WriterId,
        amount: u64,
    ) -> Result<Delta<V>, TransferError> {
        let dot = self.next_dot();
        let d = self.rights.transfer_at(key, to, amount, dot.clone())?;
        self.note(&dot);
        Ok(Delta::rights(d.context, d.items))
    }

    /// Hands back `amount` of what we spent on `key` as our rights (see [`Rights::refund`]).
    pub fn refund(&mut self, key: &BudgetKey, amount: u64) -> Result<Delta<V>, RefundError> {
        let dot = self.next_dot();
        let d = self.rights.refund_at(key, amount, dot.clone())?;
        self.note(&dot);
        Ok(Delta::rights(d.context, d.items))
    }

    /// Takes over the rights `dead` holds for `key` (see [`Rights::reclaim`]); returns the
    /// delta and the amount taken.
    pub fn reclaim(
        &mut self,
        key: &BudgetKey,
        dead: &WriterId,
    ) -> Result<(Delta<V>, u64), ReclaimRefused> {
        let dot = self.next_dot();
        let (d, amount) = self.rights.reclaim_at(key, dead, dot.clone())?;
        self.note(&dot);
        Ok((Delta::rights(d.context, d.items), amount))
    }

    /// Budget key `key` as this node last wrote it (see [`Rights::own_key_delta`]).
    pub fn own_rights_delta(&self, key: &BudgetKey) -> Option<Delta<V>> {
        let d = self.rights.own_key_delta(key)?;
        Some(Delta::rights(d.context, d.items))
    }

    /// Whether the replica holds writes of a node other than this one.
    pub fn knows_other_nodes(&self) -> bool {
        let me = &self.clock.writer().node;
        self.version().iter().any(|(w, _)| w.node != *me)
    }

    /// Reclaims, into our writer, the rights of every writer of node `dead_node` (any
    /// incarnation) that holds some for any budget key, as one delta. Returns what was taken
    /// per key and writer. Keys where we were reclaimed ourselves are skipped.
    pub fn reclaim_node(&mut self, dead_node: &str) -> (Delta<V>, Vec<(BudgetKey, WriterId, u64)>) {
        self.reclaim_writers(|w| w.node.as_str() == dead_node)
    }

    /// Reclaims, into our writer, the rights of this node's earlier incarnations (lives that
    /// ended with a wiped, damaged or failed data dir), as [`Self::reclaim_node`] does for a
    /// dead node. Safe only once every debit those lives used is known here (see
    /// `docs/guarantees.md`, "Lost nodes").
    pub fn reclaim_earlier_lives(&mut self) -> (Delta<V>, Vec<(BudgetKey, WriterId, u64)>) {
        let me = self.clock.writer().clone();
        self.reclaim_writers(|w| w.node == me.node && *w != me)
    }

    /// Whether an earlier incarnation of this node holds budget rights (see
    /// [`Self::reclaim_earlier_lives`]).
    pub fn earlier_lives_hold_rights(&self) -> bool {
        let me = self.clock.writer();
        self.rights.keys().any(|k| {
            self.rights
                .holders(k)
                .iter()
                .any(|(w, r)| *r > 0 && w.node == me.node && w != me)
        })
    }

    fn reclaim_writers(
        &mut self,
        which: impl Fn(&WriterId) -> bool,
    ) -> (Delta<V>, Vec<(BudgetKey, WriterId, u64)>) {
        let targets: Vec<(BudgetKey, WriterId)> = self
            .rights
            .keys()
            .flat_map(|k| {
                self.rights
                    .holders(k)
                    .into_iter()
                    .filter(|(w, r)| *r > 0 && which(w))
                    .map(move |(w, _)| (k.clone(), w))
            })
            .collect();
        let mut context = CausalContext::new();
        let mut keys: BTreeMap<BudgetKey, Vec<(WriterId, crate::crdt::Row)>> = BTreeMap::new();
        let mut taken = Vec::new();
        for (key, dead) in targets {
            let Ok((d, amount)) = self.reclaim(&key, &dead) else {
                continue;
            };
            context.union(&d.context);
            // Whole-key items of one key from successive local writes: the last one holds the
            // others (rows only grow), so keep that one.
            for (k, rows) in d.items.rights.keys {
                keys.insert(k, rows);
            }
            taken.push((key, dead, amount));
        }
        let items = RightsItems {
            keys: keys.into_iter().collect(),
            floors: Vec::new(),
        };
        (Delta::rights(context, items), taken)
    }

    /// Answers a peer's rights request under `policy` (see [`crate::crdt::transfer`]).
    pub fn answer_rights_request(
        &mut self,
        req: &RightsRequest,
        policy: &DonorPolicy,
    ) -> Option<(RightsGrant, Delta<V>)> {
        let dot = self.next_dot();
        let (grant, d) = self.rights.answer_at(req, policy, dot.clone())?;
        self.note(&dot);
        Some((grant, Delta::rights(d.context, d.items)))
    }

    /// Drops counters and rights of every period of `cutoff.unit` below `cutoff.index`,
    /// everywhere (the floor replicates). Explicit: derive `cutoff` from a retention policy.
    pub fn drop_periods_before(&mut self, cutoff: Period) -> Delta<V> {
        let dot = self.next_dot();
        let c = self.counters.drop_at(cutoff, dot.clone());
        let r = self.rights.drop_at(cutoff, dot.clone());
        self.note(&dot);
        Delta {
            context: c.context,
            items: ReplicaItems {
                catalog: Vec::new(),
                counters: c.items,
                rights: r.items,
            },
        }
    }

    /// Collects catalog tombstones under the rule of [`Catalog::collect_tombstones`], with the
    /// clock's physical time as now.
    pub fn collect_tombstones(&mut self, acked: &[VersionVector], min_age: Duration) -> usize {
        let now = self.clock.physical_ms();
        self.catalog.collect_tombstones(acked, min_age, now)
    }

    /// Everything a peer at `vv` lacks.
    pub fn delta_since(&self, vv: &VersionVector) -> Delta<V> {
        Delta {
            context: self.context().above(vv),
            items: ReplicaItems {
                catalog: self.catalog.items_since(vv),
                counters: self.counters.items_since(vv),
                rights: self.rights.items_since(vv),
            },
        }
    }

    /// The whole state: the delta since the empty vector (for joiners and snapshots).
    pub fn full_state(&self) -> Delta<V> {
        self.delta_since(&VersionVector::new())
    }

    /// Merges a peer's delta. It is first checked ([`Self::check`]): a delta that claims the
    /// local writer's future or makes a writer's rights negative is refused whole
    /// ([`ApplyOutcome::rejected`]) and nothing changes. Then the newest catalog stamp goes
    /// through [`HlcClock::observe_bounded`]: a stamp too far ahead is merged with its data,
    /// but moves our clock only up to the forward bound (the outcome says so).
    ///
    /// Replaying this node's own log after a restart uses [`Self::replay`] instead: those
    /// records are the local writer's history, ahead of the replica being rebuilt.
    pub fn apply(&mut self, delta: Delta<V>) -> ApplyOutcome {
        if let Err(rejected) = self.check(&delta) {
            return ApplyOutcome {
                rejected: Some(rejected),
                ..ApplyOutcome::default()
            };
        }
        self.apply_unchecked(delta)
    }

    /// Merges a record of this node's own write-ahead log (recovery): like [`Self::apply`]
    /// without the checks, since the records are our own history, however far ahead of the
    /// replica being rebuilt.
    pub fn replay(&mut self, delta: Delta<V>) -> ApplyOutcome {
        self.apply_unchecked(delta)
    }

    /// Checks a peer's delta without merging it: no dot of the local writer more than
    /// [`OWN_RECOVERY_WINDOW`] beyond the last one issued (in the context or on any item), and
    /// no rights row that would leave its writer with negative rights.
    ///
    /// # Errors
    /// The first [`DeltaRejected`] reason found.
    pub fn check(&self, delta: &Delta<V>) -> Result<(), DeltaRejected> {
        let me = self.writer();
        let issued = self.context().max_seq(me);
        let items = &delta.items;
        let claimed = [delta.context.max_seq(me)]
            .into_iter()
            .chain(
                item_dots(items)
                    .filter(|(w, _)| *w == me)
                    .map(|(_, seq)| seq),
            )
            .max()
            .unwrap_or(0);
        if claimed > issued.saturating_add(OWN_RECOVERY_WINDOW) {
            return Err(DeltaRejected::FutureOwnSeq { claimed, issued });
        }
        check_item_dots(items)?;
        if let Some((key, writer)) = self.rights.unbalanced_row(&items.rights) {
            return Err(DeltaRejected::NegativeRights { key, writer });
        }
        Ok(())
    }

    fn apply_unchecked(&mut self, delta: Delta<V>) -> ApplyOutcome {
        let clock_skew = delta
            .items
            .catalog
            .iter()
            .map(|(_, e)| &e.stamp)
            .max()
            .and_then(|max| self.clock.observe_bounded(max));
        ApplyOutcome {
            clock_skew,
            ..self.merge(delta)
        }
    }

    fn merge(&mut self, delta: Delta<V>) -> ApplyOutcome {
        let me = self.writer().clone();
        let own_before = self.context().max_seq(&me);
        let Delta { context, items } = delta;
        let cat = self.catalog.apply_parts(items.catalog, &context);
        let counters_changed = self.counters.apply_parts(items.counters, &context);
        let rights_changed = self.rights.apply_parts(items.rights, &context);
        // Item dots were recorded per structure; bring the three contexts back in lockstep.
        let mut all = self.catalog.context().clone();
        all.union(self.counters.context());
        all.union(self.rights.context());
        self.catalog.union_context(&all);
        self.counters.union_context(&all);
        self.rights.union_context(&all);
        ApplyOutcome {
            catalog_changed: cat.changed,
            catalog_skipped: cat.skipped,
            counters_changed,
            rights_changed,
            own_slot_recovered: self.context().max_seq(&me) > own_before,
            clock_skew: None,
            rejected: None,
        }
    }
}

/// The dots of a delta's catalog entries, counter cells and rights rows: one per write.
fn entry_dots<V>(items: &ReplicaItems<V>) -> impl Iterator<Item = (&WriterId, u64)> {
    items
        .catalog
        .iter()
        .map(|(_, e)| (&e.stamp.writer, e.seq))
        .chain(items.counters.cells.iter().map(|(_, w, c)| (w, c.seq)))
        .chain(
            items
                .rights
                .keys
                .iter()
                .flat_map(|(_, rows)| rows)
                .map(|(w, r)| (w, r.seq)),
        )
}

/// The dots of a delta's period floors (one drop of old periods writes the counters' and the
/// rights' floors under one dot).
fn floor_dots<V>(items: &ReplicaItems<V>) -> impl Iterator<Item = (&WriterId, u64)> {
    items
        .counters
        .floors
        .iter()
        .chain(&items.rights.floors)
        .map(|(_, w, f)| (w, f.seq))
}

/// Every dot the items of a delta carry: its entries', cells', rights rows' and floors'.
pub(crate) fn item_dots<V>(items: &ReplicaItems<V>) -> impl Iterator<Item = (&WriterId, u64)> {
    entry_dots(items).chain(floor_dots(items))
}

/// Every catalog entry, counter cell and rights row of a delta carries a dot of its own: none
/// has sequence 0, and no two share one.
fn check_item_dots<V>(items: &ReplicaItems<V>) -> Result<(), DeltaRejected> {
    let mut seen = HashSet::new();
    for (writer, seq) in entry_dots(items) {
        let problem = if seq == 0 {
            "sequence 0, which no write takes"
        } else if !seen.insert((writer, seq)) {
            "carried by two items"
        } else {
            continue;
        };
        return Err(DeltaRejected::MalformedDot {
            writer: writer.clone(),
            seq,
            problem,
        });
    }
    Ok(())
}

impl<V: Clone + Eq + Serialize> Replica<V> {
    /// SHA-256 over the canonical encoding of the whole replicated state (catalog, counters,
    /// rights, floors, context); equal digests mean byte-identical replicas. Local-only state
    /// (writer, clock) is not included.
    pub fn digest(&self) -> Result<Digest, CodecError> {
        let parts = [
            self.catalog.digest()?,
            self.counters.digest()?,
            self.rights.digest()?,
        ];
        crate::codec::digest(&parts).map(Digest)
    }
}
