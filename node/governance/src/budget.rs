//! One budget's live state on this node: the pool of debited rights (strict mode) or the spend
//! figures (available mode), and the reservations of requests in flight.
//!
//! **Strict.** Rights are debited from the replicated escrow in chunks, durably, *before* they
//! are used; the debited amount is this node's **pool**. A request reserves its maximum cost
//! from the pool in memory, and settles to its real cost, giving the difference back to the
//! pool. So the request path never writes to disk or talks to peers while the pool suffices,
//! and a crash loses at most the pool, which then counts as spent: a crash can only
//! underspend. Unused pool is refunded to the escrow when idle, so that rights are not
//! stranded.
//!
//! **Available.** A request is admitted while the cluster-wide spend this node has seen, plus
//! its own unreplicated spend and reservations, plus the new reservation, stays within the
//! amount. The overspend bound is in docs/guarantees.md.

use std::collections::BTreeMap;
use std::sync::Mutex;

use starling_cluster::crdt::{BudgetKey, Period};

use super::model::{Budget, BudgetMode};

/// What a reservation attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserve {
    /// Reserved.
    Done,
    /// Strict: the pool lacks `deficit` micro-dollars; debit or fetch rights, then retry.
    NeedRights {
        /// What the pool lacks.
        deficit: u64,
    },
    /// Available: the amount would be exceeded.
    Exhausted,
}

/// The strict pool of one period.
#[derive(Debug, Default, Clone)]
struct Pool {
    /// Debited and not reserved (negative after a request cost more than it reserved).
    available: i64,
    /// Reserved by requests in flight.
    reserved: u64,
    /// Debited durably here but not yet held by a peer, so not usable yet (see
    /// `Governance::debit`).
    unwitnessed: u64,
}

/// Spend figures of one period, available mode.
#[derive(Debug, Default, Clone)]
struct Figures {
    /// Other writers' replicated spend, as last seen.
    others: u64,
    /// This node's settled spend in the period.
    mine: u64,
    /// Reserved by requests in flight here.
    reserved: u64,
    /// Whether `mine` was initialised from our replicated slot.
    loaded: bool,
}

impl Figures {
    /// Spend seen plus reservations, saturating: the replicated figures come from peers and
    /// settled costs from providers' usage, either of which may be near `u64::MAX`.
    fn committed(&self) -> u64 {
        self.others
            .saturating_add(self.mine)
            .saturating_add(self.reserved)
    }
}

#[derive(Debug, Default)]
struct Inner {
    budget: Option<Budget>,
    mint_node: String,
    pools: BTreeMap<Period, Pool>,
    figures: BTreeMap<Period, Figures>,
    /// Rights held by this node in the escrow (not yet debited), as last read.
    local_rights: u64,
    /// Rights held by every writer, as last read: what the cluster could still debit.
    cluster_rights: u64,
    /// Micro-dollars reserved per second, smoothed: drives the refill size.
    rate: f64,
    rate_window_start_ms: u64,
    rate_window_amount: u64,
    last_used_ms: u64,
}

/// One budget (scope and period kind) on this node.
#[derive(Debug)]
pub struct BudgetState {
    /// The escrow scope of the budget (`key/<id>#monthly`).
    pub rights_scope: String,
    /// The usage counter scope of its owner (`key/<id>`).
    pub usage_scope: String,
    inner: Mutex<Inner>,
    /// One debit or transfer at a time per budget: concurrent requests that find the pool
    /// short wait for the same refill rather than each debiting a chunk.
    pub refill: tokio::sync::Mutex<()>,
}

/// Figures for headers, metrics and the refiller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Unreserved pool (strict), or 0.
    pub pool_available: i64,
    /// Reserved in flight.
    pub reserved: u64,
    /// Escrow rights held here.
    pub local_rights: u64,
    /// Escrow rights held cluster-wide.
    pub cluster_rights: u64,
    /// Micro-dollars reserved per second, smoothed.
    pub rate_per_sec: u64,
    /// When the budget was last used.
    pub last_used_ms: u64,
}

impl BudgetState {
    /// A budget with no figures yet.
    pub fn new(rights_scope: String, usage_scope: String) -> Self {
        Self {
            rights_scope,
            usage_scope,
            inner: Mutex::new(Inner::default()),
            refill: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the configured budget and the node that mints it (catalog changes).
    pub fn set_budget(&self, budget: Budget, mint_node: &str) {
        let mut inner = self.lock();
        inner.budget = Some(budget);
        if inner.mint_node != mint_node {
            inner.mint_node = mint_node.to_owned();
        }
    }

    /// The configured budget and its mint node.
    pub fn budget(&self) -> Option<(Budget, String)> {
        let inner = self.lock();
        inner.budget.clone().map(|b| (b, inner.mint_node.clone()))
    }

    /// The escrow key of `period`.
    pub fn key(&self, period: Period) -> BudgetKey {
        BudgetKey::new(self.rights_scope.clone(), period)
    }

    /// What a request could reserve from this budget (the clamp works from it): strict,
    /// the pool plus the rights held anywhere in the cluster (they can be moved here);
    /// available, the amount less the spend seen and the reservations in flight here.
    pub fn room(&self, mode: BudgetMode, amount: u64, period: Period) -> u64 {
        let inner = self.lock();
        match mode {
            BudgetMode::Strict => {
                let pool = inner.pools.get(&period).map_or(0, |p| p.available.max(0));
                // Rights anywhere in the cluster can be moved here; the clamp may count them.
                u64::try_from(pool)
                    .unwrap_or(0)
                    .saturating_add(inner.cluster_rights)
            }
            BudgetMode::Available => {
                let f = inner.figures.get(&period).cloned().unwrap_or_default();
                amount.saturating_sub(f.committed())
            }
        }
    }

    /// Reserves `amount` micro-dollars of `period` for a request.
    pub fn reserve(
        &self,
        mode: BudgetMode,
        limit: u64,
        period: Period,
        amount: u64,
        now_ms: u64,
    ) -> Reserve {
        let mut inner = self.lock();
        inner.note_use(amount, now_ms);
        match mode {
            BudgetMode::Strict => {
                let pool = inner.pools.entry(period).or_default();
                let want = i64::try_from(amount).unwrap_or(i64::MAX);
                if pool.available >= want {
                    pool.available -= want;
                    pool.reserved = pool.reserved.saturating_add(amount);
                    Reserve::Done
                } else {
                    Reserve::NeedRights {
                        deficit: u64::try_from(want.saturating_sub(pool.available))
                            .unwrap_or(u64::MAX),
                    }
                }
            }
            BudgetMode::Available => {
                let f = inner.figures.entry(period).or_default();
                if f.committed().saturating_add(amount) <= limit {
                    f.reserved = f.reserved.saturating_add(amount);
                    Reserve::Done
                } else {
                    Reserve::Exhausted
                }
            }
        }
    }

    /// Settles a reservation of `reserved` at the real `cost`.
    pub fn settle(&self, mode: BudgetMode, period: Period, reserved: u64, cost: u64) {
        let mut inner = self.lock();
        match mode {
            BudgetMode::Strict => {
                let pool = inner.pools.entry(period).or_default();
                pool.reserved = pool.reserved.saturating_sub(reserved);
                let back = i64::try_from(reserved).unwrap_or(i64::MAX)
                    - i64::try_from(cost).unwrap_or(i64::MAX);
                pool.available = pool.available.saturating_add(back);
            }
            BudgetMode::Available => {
                let f = inner.figures.entry(period).or_default();
                f.reserved = f.reserved.saturating_sub(reserved);
                f.mine = f.mine.saturating_add(cost);
            }
        }
    }

    /// Adds freshly debited rights to the pool of `period`.
    pub fn credit(&self, period: Period, amount: u64) {
        let mut inner = self.lock();
        let pool = inner.pools.entry(period).or_default();
        pool.available = pool
            .available
            .saturating_add(i64::try_from(amount).unwrap_or(i64::MAX));
        // The debited rights left the escrow: the hints must not count them twice.
        inner.local_rights = inner.local_rights.saturating_sub(amount);
        inner.cluster_rights = inner.cluster_rights.saturating_sub(amount);
    }

    /// Holds `amount` debited for `period` until a peer witnesses it.
    pub fn hold_unwitnessed(&self, period: Period, amount: u64) {
        let mut inner = self.lock();
        let pool = inner.pools.entry(period).or_default();
        pool.unwitnessed = pool.unwitnessed.saturating_add(amount);
    }

    /// Whether debits of `period` wait for a witness.
    pub fn has_unwitnessed(&self, period: Period) -> bool {
        self.lock()
            .pools
            .get(&period)
            .is_some_and(|pool| pool.unwitnessed > 0)
    }

    /// Takes the debits of `period` that wait for a witness, for crediting once one has.
    pub fn take_unwitnessed(&self, period: Period) -> u64 {
        let mut inner = self.lock();
        inner
            .pools
            .get_mut(&period)
            .map_or(0, |pool| std::mem::take(&mut pool.unwitnessed))
    }

    /// Every period with debits waiting for a witness.
    pub fn unwitnessed_periods(&self) -> Vec<Period> {
        let inner = self.lock();
        inner
            .pools
            .iter()
            .filter(|(_, pool)| pool.unwitnessed > 0)
            .map(|(period, _)| *period)
            .collect()
    }

    /// Takes the unreserved pool of `period` out, for a refund to the escrow; returns it.
    pub fn take_idle_pool(&self, period: Period) -> u64 {
        let mut inner = self.lock();
        let Some(pool) = inner.pools.get_mut(&period) else {
            return 0;
        };
        let amount = u64::try_from(pool.available.max(0)).unwrap_or(0);
        pool.available -= i64::try_from(amount).unwrap_or(0);
        amount
    }

    /// Records the escrow figures read from the replica.
    pub fn set_rights(&self, local: u64, cluster: u64) {
        let mut inner = self.lock();
        inner.local_rights = local;
        inner.cluster_rights = cluster;
    }

    /// Records the other writers' replicated spend of `period` (available mode); `mine` is
    /// our own replicated slot, used once to start the local figure after a restart.
    pub fn set_spend_seen(&self, period: Period, others: u64, mine: u64) {
        let mut inner = self.lock();
        let f = inner.figures.entry(period).or_default();
        f.others = others;
        if !f.loaded {
            f.mine = f.mine.max(mine);
            f.loaded = true;
        }
    }

    /// Drops the state of periods that ended before `period` and hold no reservation.
    pub fn forget_before(&self, period: Period) {
        let mut inner = self.lock();
        inner.pools.retain(|p, pool| {
            p.unit != period.unit || p.index >= period.index || pool.reserved > 0
        });
        inner
            .figures
            .retain(|p, f| p.unit != period.unit || p.index >= period.index || f.reserved > 0);
    }

    /// Figures of `period`.
    pub fn snapshot(&self, period: Period) -> Snapshot {
        let inner = self.lock();
        let pool = inner.pools.get(&period).cloned().unwrap_or_default();
        let reserved = match inner.budget.as_ref().map(|b| b.mode) {
            Some(BudgetMode::Available) => inner.figures.get(&period).map_or(0, |f| f.reserved),
            _ => pool.reserved,
        };
        Snapshot {
            pool_available: pool.available,
            reserved,
            local_rights: inner.local_rights,
            cluster_rights: inner.cluster_rights,
            // As of the last use: the rate a refill after it should provide for.
            rate_per_sec: inner.current_rate(inner.last_used_ms),
            last_used_ms: inner.last_used_ms,
        }
    }

    /// Every period with a pool, for refunds and metrics.
    pub fn pooled_periods(&self) -> Vec<Period> {
        self.lock().pools.keys().copied().collect()
    }

    /// Remaining amount of `period` as this node sees it, for the response header.
    pub fn remaining(&self, mode: BudgetMode, amount: u64, period: Period) -> u64 {
        self.room(mode, amount, period).min(amount)
    }
}

impl Inner {
    /// The reservation rate: the smoothed figure, or the current window's if that is higher
    /// (a burst must size the next refill before its first second is over).
    fn current_rate(&self, now_ms: u64) -> u64 {
        let elapsed = now_ms.saturating_sub(self.rate_window_start_ms);
        let current = if elapsed >= 50 {
            self.rate_window_amount as f64 * 1_000.0 / elapsed as f64
        } else {
            0.0
        };
        self.rate.max(current) as u64
    }

    /// Smooths the reservation rate over one-second windows.
    fn note_use(&mut self, amount: u64, now_ms: u64) {
        self.last_used_ms = now_ms;
        let elapsed = now_ms.saturating_sub(self.rate_window_start_ms);
        if elapsed >= 1_000 {
            let sample = self.rate_window_amount as f64 * 1_000.0 / elapsed as f64;
            self.rate = if self.rate == 0.0 {
                sample
            } else {
                0.7 * self.rate + 0.3 * sample
            };
            self.rate_window_start_ms = now_ms;
            self.rate_window_amount = 0;
        }
        self.rate_window_amount = self.rate_window_amount.saturating_add(amount);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BudgetPeriod;
    use starling_cluster::crdt::PeriodUnit;

    fn budget(mode: BudgetMode) -> Budget {
        Budget {
            amount_micros: 1_000,
            period: BudgetPeriod::Daily,
            mode,
        }
    }

    const DAY: Period = Period {
        unit: PeriodUnit::Day,
        index: 7,
    };

    #[test]
    fn strict_reserves_only_from_the_pool_and_settles_the_difference() {
        let s = BudgetState::new("key/a#daily".into(), "key/a".into());
        s.set_budget(budget(BudgetMode::Strict), "n1");
        assert_eq!(
            s.reserve(BudgetMode::Strict, 1_000, DAY, 100, 0),
            Reserve::NeedRights { deficit: 100 }
        );
        s.credit(DAY, 150);
        assert_eq!(
            s.reserve(BudgetMode::Strict, 1_000, DAY, 100, 0),
            Reserve::Done
        );
        assert_eq!(
            s.reserve(BudgetMode::Strict, 1_000, DAY, 100, 0),
            Reserve::NeedRights { deficit: 50 }
        );
        s.settle(BudgetMode::Strict, DAY, 100, 30);
        let snap = s.snapshot(DAY);
        assert_eq!((snap.pool_available, snap.reserved), (120, 0));
        // A request that cost more than it reserved leaves a debt the next ones must cover.
        assert_eq!(
            s.reserve(BudgetMode::Strict, 1_000, DAY, 120, 0),
            Reserve::Done
        );
        s.settle(BudgetMode::Strict, DAY, 120, 130);
        assert_eq!(s.snapshot(DAY).pool_available, -10);
        assert_eq!(
            s.reserve(BudgetMode::Strict, 1_000, DAY, 5, 0),
            Reserve::NeedRights { deficit: 15 }
        );
        assert_eq!(s.take_idle_pool(DAY), 0);
        s.credit(DAY, 40);
        assert_eq!(s.take_idle_pool(DAY), 30);
    }

    #[test]
    fn available_admits_while_seen_spend_plus_reservations_fit() {
        let s = BudgetState::new("key/a#daily".into(), "key/a".into());
        s.set_budget(budget(BudgetMode::Available), "n1");
        s.set_spend_seen(DAY, 600, 100);
        assert_eq!(
            s.reserve(BudgetMode::Available, 1_000, DAY, 300, 0),
            Reserve::Done
        );
        assert_eq!(
            s.reserve(BudgetMode::Available, 1_000, DAY, 1, 0),
            Reserve::Exhausted
        );
        s.settle(BudgetMode::Available, DAY, 300, 50);
        assert_eq!(s.remaining(BudgetMode::Available, 1_000, DAY), 250);
        // Our own slot is loaded once; later figures come from settlements here.
        s.set_spend_seen(DAY, 600, 0);
        assert_eq!(s.remaining(BudgetMode::Available, 1_000, DAY), 250);
    }

    /// Regression: another writer's replicated spend near `u64::MAX` (a faulty peer, or a
    /// provider's hostile usage priced and replicated) overflowed the available-mode check,
    /// a panic in a debug build and a wrapped sum that admitted the request in release.
    #[test]
    fn available_mode_figures_near_u64_max_refuse_without_overflow() {
        let s = BudgetState::new("key/a#daily".into(), "key/a".into());
        s.set_budget(budget(BudgetMode::Available), "n1");
        s.set_spend_seen(DAY, u64::MAX - 10, 5);
        assert_eq!(s.remaining(BudgetMode::Available, 1_000, DAY), 0);
        assert_eq!(
            s.reserve(BudgetMode::Available, 1_000, DAY, 20, 0),
            Reserve::Exhausted
        );
        assert_eq!(
            s.reserve(BudgetMode::Available, u64::MAX - 1, DAY, u64::MAX, 0),
            Reserve::Exhausted
        );
        s.settle(BudgetMode::Available, DAY, 0, u64::MAX);
        assert_eq!(s.remaining(BudgetMode::Available, u64::MAX, DAY), 0);
    }

    #[test]
    fn old_periods_are_forgotten_unless_reserved() {
        let s = BudgetState::new("key/a#daily".into(), "key/a".into());
        s.credit(DAY, 10);
        let next = Period { index: 8, ..DAY };
        s.credit(next, 10);
        assert_eq!(s.reserve(BudgetMode::Strict, 100, DAY, 5, 0), Reserve::Done);
        s.forget_before(next);
        assert_eq!(s.pooled_periods(), vec![DAY, next]);
        s.settle(BudgetMode::Strict, DAY, 5, 5);
        s.forget_before(next);
        assert_eq!(s.pooled_periods(), vec![next]);
    }
}
