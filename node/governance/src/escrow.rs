//! This node's side of the strict-budget escrow: minting, debiting rights into the local pool,
//! fetching rights from peers, and refunding idle pools.
//!
//! * **Mint.** Each budget has a mint node (recorded on its key, team or customer). Only it
//!   mints, under mint id 0 for a period's amount and new ids for top-ups, from
//!   `mint_lead_ms` before the period starts, so the rights are there when it begins. A mint
//!   id is used once, so a retried mint creates nothing.
//! * **Debit.** The pool is refilled with a durable spend of local rights, sized to
//!   `refill_horizon_ms` of this node's own spend rate (at least `min_chunk_micros`), and the
//!   refill starts at half that, so requests rarely find the pool empty.
//! * **Fetch.** The node asks the peers holding the most for a transfer (the donor persists
//!   the transfer before it answers) in the background, as soon as its local rights fall
//!   below one refill of its own spend rate: the low-water mark. A request that finds no
//!   rights at all (a cold start) waits for a transfer at most `rights_wait_ms`; after that it
//!   is refused.
//! * **Refund.** A pool unused for `idle_refund_ms`, or any pool once the budget is nearly
//!   spent, is handed back to the escrow, where peers can ask for it.

use std::collections::BTreeMap;
use std::time::Duration;

use starling_cluster::crdt::{BudgetKey, CounterKey, Period};
use starling_cluster::state::Delta;
use starling_cluster::store::IncarnationStart;

use super::Governance;
use super::budget::{BudgetState, Snapshot};
use super::model::{BudgetMode, Entry};

impl Governance {
    /// Refills the pool of `period` up to at least `target` if the cluster has the rights.
    /// Returns whether the pool covers `target` afterwards (another request may take it
    /// before the caller does; callers retry a few times).
    pub(super) async fn refill(&self, state: &BudgetState, period: Period, target: u64) -> bool {
        let _one_at_a_time = state.refill.lock().await;
        let target_level = i64::try_from(target).unwrap_or(i64::MAX);
        let pool = state.snapshot(period);
        // Another request may have refilled while we waited for the lock.
        if pool.pool_available >= target_level {
            return true;
        }
        let need = deficit(target_level, pool.pool_available);
        // Debit ahead: two of these requests, or the spend of the refill horizon.
        let chunk = need
            .max(self.chunk_for(pool.rate_per_sec))
            .max(target.saturating_mul(2));
        let key = state.key(period);
        let mut local = self.cluster.read(|r| r.rights().local_rights(&key));
        if local < need && self.mint_if_due(state, period).await {
            local = self.cluster.read(|r| r.rights().local_rights(&key));
        }
        if local < need {
            local = self.fetch_rights(&key, chunk - local).await;
        }
        let amount = chunk.min(local);
        if amount > 0 {
            self.debit(state, period, amount).await;
        }
        state.snapshot(period).pool_available >= target_level
    }

    /// How much to debit at a time, given a spend rate in micro-dollars per second.
    fn chunk_for(&self, rate_per_sec: u64) -> u64 {
        let horizon = rate_per_sec.saturating_mul(self.config.refill_horizon_ms) / 1_000;
        horizon.max(self.config.min_chunk_micros)
    }

    /// Spends `amount` of our rights into the pool, durably, and credits the pool once a peer
    /// holds the debit too. Returns what was credited.
    ///
    /// Why the witness: if this node's disk is lost, its next incarnation hands the old one's
    /// unused rights back to the budget, computed from what its peers know; a debit used here
    /// but known to no peer would be handed out twice. So a member of a cluster uses a debit
    /// only after a live peer has it on disk (`ClusterNode::witness`). A debit no peer could
    /// take yet is held back (durable, counted as spent) and credited with the next witness.
    pub(super) async fn debit(&self, state: &BudgetState, period: Period, amount: u64) -> u64 {
        // While an earlier debit waits for a witness, a new one would wait too: debiting the
        // node's whole escrow into pools nobody can use helps no one.
        if state.has_unwitnessed(period) && self.credit_witnessed(state, period).await == 0 {
            return 0;
        }
        let key = state.key(period);
        let spent = self
            .cluster
            .mutate(|r| match r.spend(&key, amount) {
                Ok(delta) => (delta, true),
                Err(_) => (Delta::<Entry>::default(), false),
            })
            .await;
        match spent {
            Ok(true) => {
                super::metrics::debited(amount);
                state.hold_unwitnessed(period, amount);
                self.credit_witnessed(state, period).await
            }
            Ok(false) => 0,
            Err(e) => {
                tracing::error!(budget = %state.rights_scope, "cannot persist a budget debit: {e}");
                0
            }
        }
    }

    /// Credits the pool of `period` with the debits that waited for a witness, once a peer
    /// holds the budget key as this node last wrote it (at once on a node without peers).
    /// Returns what was credited.
    async fn credit_witnessed(&self, state: &BudgetState, period: Period) -> u64 {
        if self.cluster.is_clustered() {
            let key = state.key(period);
            let bound = Duration::from_millis(self.config.rights_wait_ms);
            let started = std::time::Instant::now();
            let outcome = match tokio::time::timeout(bound, self.cluster.witness(&key)).await {
                Ok(Ok(())) => "witnessed",
                Ok(Err(e)) => {
                    tracing::debug!(budget = %state.rights_scope, "debit not witnessed: {e}");
                    "failed"
                }
                Err(_) => "timeout",
            };
            super::metrics::witness(outcome, started.elapsed());
            if outcome != "witnessed" {
                return 0;
            }
        }
        let amount = state.take_unwitnessed(period);
        if amount > 0 {
            state.credit(period, amount);
        }
        amount
    }

    /// Asks peers for `want` rights of `key`, richest first, until satisfied or out of time.
    /// Returns the local rights afterwards.
    async fn fetch_rights(&self, key: &BudgetKey, want: u64) -> u64 {
        let holders = self.cluster.read(|r| r.rights().holders(key));
        let me = self.cluster.writer().clone();
        let peers: BTreeMap<String, std::net::SocketAddr> =
            self.cluster.live_peers_info().into_iter().collect();
        let mut donors: Vec<(u64, std::net::SocketAddr)> = holders
            .into_iter()
            .filter(|(w, rights)| *w != me && *rights > 0)
            .filter_map(|(w, rights)| peers.get(w.node.as_str()).map(|addr| (rights, *addr)))
            .collect();
        donors.sort_by_key(|d| std::cmp::Reverse(d.0));
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(self.config.rights_wait_ms);
        let mut got = 0u64;
        for (_, addr) in donors {
            if got >= want {
                break;
            }
            let started = std::time::Instant::now();
            let asked = tokio::time::timeout_at(
                deadline,
                self.cluster.request_rights(addr, key, want - got),
            )
            .await;
            match asked {
                Ok(Ok(Some(grant))) => {
                    got = got.saturating_add(grant.amount);
                    super::metrics::transfer("granted", started.elapsed());
                }
                Ok(Ok(None)) => super::metrics::transfer("refused", started.elapsed()),
                Ok(Err(e)) => {
                    tracing::debug!(peer = %addr, "rights request failed: {e}");
                    super::metrics::transfer("failed", started.elapsed());
                }
                Err(_) => {
                    super::metrics::transfer("timeout", started.elapsed());
                    break;
                }
            }
        }
        self.cluster.read(|r| r.rights().local_rights(key))
    }

    /// Mints the current and (within the lead) next period of every strict budget this node
    /// is the mint node of, and tops up raised amounts.
    pub(super) async fn mint_due(&self, now: u64) {
        for state in self.index.budget_states() {
            let Some((budget, _)) = state.budget() else {
                continue;
            };
            let (period, _, end) = budget.period.current(now);
            self.mint_if_due(&state, period).await;
            if end.saturating_sub(now) <= self.config.mint_lead_ms {
                let (next, _, _) = budget.period.current(end);
                if next != period {
                    self.mint_if_due(&state, next).await;
                }
            }
        }
    }

    /// Mints what `period` of a strict budget lacks, if this node is its mint node. Returns
    /// whether it minted.
    async fn mint_if_due(&self, state: &BudgetState, period: Period) -> bool {
        let Some((budget, mint_node)) = state.budget() else {
            return false;
        };
        if budget.mode != BudgetMode::Strict || mint_node != self.cluster.writer().node.as_str() {
            return false;
        }
        // A life that began afresh may find its earlier life's mint of this period among its
        // peers: minting before it has heard from all of them could mint the period twice.
        if self.cluster.incarnation_start() != IncarnationStart::Resumed
            && !self.cluster.caught_up().await
        {
            return false;
        }
        let key = state.key(period);
        let (total, mints) = self.cluster.read(|r| {
            let mints: usize = r.rights().rows(&key).map(|(_, row)| row.mints.len()).sum();
            (r.rights().total_minted(&key), mints)
        });
        if total >= budget.amount_micros {
            return false;
        }
        // Mint ids are used once each: 0 for the period's amount, then one per top-up.
        let mint_id = u32::try_from(mints).unwrap_or(u32::MAX);
        let amount = budget.amount_micros - total;
        let result = self
            .cluster
            .mutate(|r| match r.mint(&key, mint_id, amount) {
                Ok(delta) => (delta, Ok(())),
                Err(e) => (Delta::<Entry>::default(), Err(e)),
            })
            .await;
        match result {
            Ok(Ok(())) => {
                tracing::info!(budget = %state.rights_scope, period = ?period, amount, mint_id, "minted budget rights");
                true
            }
            Ok(Err(e)) => {
                tracing::debug!(budget = %state.rights_scope, "mint skipped: {e}");
                false
            }
            Err(e) => {
                tracing::error!(budget = %state.rights_scope, "cannot persist a mint: {e}");
                false
            }
        }
    }

    /// Refreshes the cluster-wide spend seen by every available-mode budget: the sooner it is
    /// seen, the smaller the overspend (docs/guarantees.md).
    pub(super) fn refresh_available(&self, now: u64) {
        let me = self.cluster.writer().clone();
        for state in self.index.budget_states() {
            let Some((budget, _)) = state.budget() else {
                continue;
            };
            if budget.mode != BudgetMode::Available {
                continue;
            }
            let (period, _, _) = budget.period.current(now);
            let (total, mine) = self.cluster.read(|r| {
                let counters = r.counters();
                let key = CounterKey::new(state.usage_scope.as_str(), period);
                let total = counters.total(&key).spend_micros;
                let mine = counters
                    .slots(&key)
                    .filter(|(w, _)| w.node == me.node)
                    .fold(0u64, |sum, (_, c)| sum.saturating_add(c.usage.spend_micros));
                (total, mine)
            });
            state.set_spend_seen(period, total.saturating_sub(mine), mine);
        }
    }

    /// Refreshes every strict budget's escrow figures, tops pools up ahead of use, and refunds
    /// pools that sit idle or strand the last of a budget.
    pub(super) async fn maintain_budgets(&self, now: u64) {
        for state in self.index.budget_states() {
            for period in state.unwitnessed_periods() {
                self.credit_witnessed(&state, period).await;
            }
            let Some((budget, _)) = state.budget() else {
                continue;
            };
            let (period, _, _) = budget.period.current(now);
            state.forget_before(period);
            if budget.mode != BudgetMode::Strict {
                continue;
            }
            let key = state.key(period);
            let (local, cluster) = self.cluster.read(|r| {
                let rights = r.rights();
                let cluster = rights
                    .holders(&key)
                    .iter()
                    .fold(0u64, |acc, (_, v)| acc.saturating_add(*v));
                (rights.local_rights(&key), cluster)
            });
            state.set_rights(local, cluster);
            let snap = state.snapshot(period);
            let target = self.chunk_for(snap.rate_per_sec);
            let demand = Demand::at(
                &snap,
                now,
                self.config.idle_refund_ms,
                ACTIVE_WITHIN_MS.min(self.config.refill_horizon_ms),
            );
            // Nearly spent: hold nothing back that another node could use.
            let scarce = cluster < target;
            let plan = PoolPlan::decide(&snap, demand, scarce, target);
            for p in state.pooled_periods() {
                if p != period || plan.refund {
                    self.refund(&state, p).await;
                }
            }
            if plan.top_up {
                let short = deficit(
                    i64::try_from(target).unwrap_or(i64::MAX),
                    snap.pool_available,
                );
                if local > 0 {
                    self.debit(&state, period, short.min(local)).await;
                } else if cluster > 0 {
                    self.refill(&state, period, target).await;
                }
            }
            // Ask peers for rights before the local escrow runs dry, not when a request finds
            // it empty: keep one refill horizon of the node's own spend at hand.
            let local = self.cluster.read(|r| r.rights().local_rights(&key));
            if plan.prefetch && local < target && cluster > local {
                self.fetch_rights(&key, target - local).await;
            }
        }
    }

    /// Hands the unreserved pool of `period` back to the escrow.
    async fn refund(&self, state: &BudgetState, period: Period) {
        let amount = state.take_idle_pool(period);
        if amount == 0 {
            return;
        }
        let key = state.key(period);
        let result = self
            .cluster
            .mutate(|r| match r.refund(&key, amount) {
                Ok(delta) => (delta, true),
                Err(_) => (Delta::<Entry>::default(), false),
            })
            .await;
        if !matches!(result, Ok(true)) {
            // Not refunded: it stays debited, which only ever underspends.
            tracing::warn!(budget = %state.rights_scope, amount, "could not refund an idle pool");
        }
    }
}

/// A node that used a budget within this long (or the refill horizon, if shorter) is spending
/// it: housekeeping keeps its pool and local rights ahead of its requests. The one-second
/// window over which the spend rate is measured: a budget used less often than that is
/// refilled by its requests (each debits a refill horizon of its rate), and every round that
/// moves rights for a node that has stopped spending is a write the whole cluster must
/// replicate before its replicas agree again.
const ACTIVE_WITHIN_MS: u64 = 1_000;

/// How recently this node used a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Demand {
    /// Used within [`ACTIVE_WITHIN_MS`]: its pool and local rights are kept ahead of its
    /// requests.
    Active,
    /// Not used within [`ACTIVE_WITHIN_MS`], but within `idle_refund_ms`: its pool is kept for
    /// requests to come, and nothing more is debited or fetched for it (requests refill on
    /// demand). Fetching ahead for a node that is not spending only moves rights between nodes
    /// that all hold less than their targets, back and forth, until they go idle.
    Quiet,
    /// Never used, or not within `idle_refund_ms`: its pool goes back to the escrow.
    Idle,
}

impl Demand {
    fn at(snap: &Snapshot, now: u64, idle_after_ms: u64, active_within_ms: u64) -> Self {
        let since = now.saturating_sub(snap.last_used_ms);
        if snap.last_used_ms == 0 || since >= idle_after_ms {
            Demand::Idle
        } else if since < active_within_ms {
            Demand::Active
        } else {
            Demand::Quiet
        }
    }
}

/// What housekeeping does with a strict budget's current period on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PoolPlan {
    /// Hand the unreserved pool back to the escrow.
    refund: bool,
    /// Debit (or fetch) rights to bring the pool back up to the target.
    top_up: bool,
    /// Ask peers for rights if the local escrow holds less than the target.
    prefetch: bool,
}

impl PoolPlan {
    /// An idle pool is refunded; so is every unreserved pool once the budget is `scarce` (its
    /// remaining rights are less than one refill `target`), so the last dollars can move to
    /// where the demand is. Only while the node is actively spending is its pool topped up
    /// below half the target and are rights fetched ahead, and not when the budget is scarce:
    /// then requests refill on demand, since a pool topped up here would be refunded by the
    /// next round, and debited again by the one after.
    ///
    /// Found by seed 31: after the traffic stopped, nodes kept writing debits, refunds and
    /// transfers every round until their pools went idle (`idle_refund_ms` later), which kept
    /// the replicas' digests apart that long.
    fn decide(snap: &Snapshot, demand: Demand, scarce: bool, target: u64) -> Self {
        let low_water = i64::try_from(target / 2).unwrap_or(i64::MAX);
        let ahead = demand == Demand::Active && !scarce;
        Self {
            refund: demand == Demand::Idle || (scarce && snap.reserved == 0),
            top_up: ahead && snap.pool_available < low_water,
            prefetch: ahead,
        }
    }
}

/// How far a pool at `available` is below `target` (0 if it is not). Computed wide: settlements
/// at hostile costs can drive a pool down to `i64::MIN`, where the difference overflows `i64`.
fn deficit(target: i64, available: i64) -> u64 {
    u64::try_from(i128::from(target) - i128::from(available)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::{Demand, PoolPlan, Snapshot, deficit};

    /// Regression (seed 31, after the traffic stopped): with the budget nearly spent, every
    /// housekeeping round refunded a node's pool and debited it back. No round may both refund
    /// a pool and top it up.
    #[test]
    fn a_pool_is_never_refunded_and_topped_up_in_the_same_round() {
        let target = 1_000;
        for reserved in [0, 10] {
            for pool_available in [-5, 0, 400, 600, 2_000] {
                let snap = Snapshot {
                    pool_available,
                    reserved,
                    last_used_ms: 1,
                    ..Snapshot::default()
                };
                for demand in [Demand::Active, Demand::Quiet, Demand::Idle] {
                    for scarce in [false, true] {
                        let plan = PoolPlan::decide(&snap, demand, scarce, target);
                        assert!(
                            !(plan.refund && plan.top_up),
                            "{snap:?} {demand:?} scarce={scarce}: {plan:?}"
                        );
                    }
                }
            }
        }
        // A pool in use below half the target is still topped up while rights are plentiful,
        // and a scarce budget's unreserved pool still goes back to the escrow.
        let low = Snapshot {
            pool_available: 100,
            last_used_ms: 1,
            ..Snapshot::default()
        };
        assert!(PoolPlan::decide(&low, Demand::Active, false, target).top_up);
        assert!(PoolPlan::decide(&low, Demand::Active, true, target).refund);
    }

    /// Regression (seed 31, after the traffic stopped): nodes that had stopped spending kept
    /// fetching rights from each other every round (each below its target, each donating half
    /// of what it held) until their pools went idle. A node not spending within the refill
    /// horizon neither tops up nor fetches ahead; it keeps its pool until it is idle.
    #[test]
    fn a_node_that_stopped_spending_moves_no_rights() {
        let (idle_after, horizon) = (5_000, 2_000);
        let used_at = 10_000;
        let snap = Snapshot {
            pool_available: 0,
            last_used_ms: used_at,
            ..Snapshot::default()
        };
        let at = |now| Demand::at(&snap, now, idle_after, horizon);
        assert_eq!(at(used_at + 1_000), Demand::Active);
        assert_eq!(at(used_at + 3_000), Demand::Quiet);
        assert_eq!(at(used_at + 5_000), Demand::Idle);
        let never = Snapshot::default();
        assert_eq!(
            Demand::at(&never, used_at, idle_after, horizon),
            Demand::Idle
        );
        let active = PoolPlan::decide(&snap, at(used_at + 1_000), false, 1_000);
        assert!(active.top_up && active.prefetch && !active.refund);
        let quiet = PoolPlan::decide(&snap, at(used_at + 3_000), false, 1_000);
        assert_eq!(
            quiet,
            PoolPlan {
                refund: false,
                top_up: false,
                prefetch: false
            }
        );
        let idle = PoolPlan::decide(&snap, at(used_at + 5_000), false, 1_000);
        assert!(idle.refund && !idle.top_up && !idle.prefetch);
    }

    /// Regression: `target - available` in `i64` overflowed (a panic in a debug build) once
    /// a pool was driven towards `i64::MIN` by settlements of hostile usage.
    #[test]
    fn deficit_of_a_pool_deep_in_debt_does_not_overflow() {
        assert_eq!(deficit(100, 40), 60);
        assert_eq!(deficit(100, 400), 0);
        assert_eq!(deficit(1_000, i64::MIN), 1_000 + (1u64 << 63));
        assert_eq!(deficit(i64::MAX, i64::MIN), u64::MAX);
    }
}
