//! [`SharedLimit`]: one limited quantity of one scope, as enforced by this node.

use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::allocation::{Claim, Granularity, claim_amount, floor_share, max_min_fair};
use super::bucket::TokenBucket;
use super::demand::{DemandMeter, Horizon};
use super::demarcation::Demarcation;
use super::report::{PeerReport, ShareReport};
use super::tuning::Tuning;
use super::view::{initial_share, survey};

/// The longest wait suggested for a slot: holds are estimates, and a minute is long enough.
const MAX_SLOT_WAIT_MS: u64 = 60_000;

/// What a [`SharedLimit`] limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    /// Units (requests, or tokens) per sliding window of `window_ms` (0 is read as 1).
    Rate {
        /// Length of the window, e.g. 60 000 for per-minute limits.
        window_ms: u64,
    },
    /// Requests in flight at once; each holds one slot until released.
    Concurrency,
}

/// A request was admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admitted {
    /// Units this node would still admit right now without going into debt (rates), or free
    /// slots of this node's share (concurrency). Node-local, hence conservative: the other
    /// nodes have their own.
    pub remaining: u64,
    /// Milliseconds until this node's bucket is full again (rates; 0 for concurrency).
    pub reset_ms: u64,
}

/// A request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// When to try again: when this node's bucket will hold the request at its current share
    /// (at most a window), or for slots the expected time until one frees up; at most about a
    /// staleness bound while this node's share is on its way up, and that long if it has none.
    pub retry_after_ms: u64,
    /// The cluster-wide limit.
    pub limit: u64,
}

/// The figures for response headers and metrics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LimitStatus {
    /// The cluster-wide limit.
    pub limit: u64,
    /// As [`Admitted::remaining`]: this node's, not scaled to the cluster.
    pub remaining: u64,
    /// As [`Admitted::reset_ms`].
    pub reset_ms: u64,
    /// This node's share in force (units per window, or slots).
    pub share: f64,
}

/// One limited quantity of one scope (e.g. key k's RPM) on this node: admits locally, at this
/// node's share of the cluster-wide limit, and moves the share with the cluster's demand.
///
/// All methods take `&self` and hold an internal lock for a few arithmetic operations. Time
/// is always passed in (`now_ms`, any millisecond clock shared by all calls on this node), so
/// that nothing here reads a clock.
#[derive(Debug)]
pub struct SharedLimit {
    state: Mutex<State>,
    /// When the last arrival (admitted or not) came, for callers that report only limits in
    /// use: read without the lock.
    last_arrival_ms: std::sync::atomic::AtomicU64,
}

#[derive(Debug)]
struct State {
    kind: LimitKind,
    limit: u64,
    tuning: Tuning,
    tiebreak: u64,
    seq: u64,
    demarcation: Demarcation,
    demand: DemandMeter,
    /// The demand in this node's latest report: the split uses it rather than the current
    /// estimate, so that this node computes the same split as peers reading that report.
    published_demand: f64,
    meter: Meter,
}

#[derive(Debug)]
enum Meter {
    Bucket { bucket: TokenBucket, window_ms: u64 },
    Slots { in_use: u64 },
}

impl SharedLimit {
    /// A limit of `limit` units shared by `live_nodes` nodes (this one included), starting at
    /// an even split, with [`Tuning::default`].
    pub fn new(kind: LimitKind, limit: u64, live_nodes: usize, now_ms: u64) -> Self {
        Self::with_tuning(kind, limit, live_nodes, now_ms, Tuning::default())
    }

    /// As [`new`](Self::new), with explicit tuning (which must be the same on every node).
    /// The tiebreak is random; see [`with_tiebreak`](Self::with_tiebreak).
    pub fn with_tuning(
        kind: LimitKind,
        limit: u64,
        live_nodes: usize,
        now_ms: u64,
        tuning: Tuning,
    ) -> Self {
        let granularity = granularity(kind);
        let share = initial_share(limit as f64, live_nodes, granularity);
        let meter = match kind {
            LimitKind::Rate { window_ms } => {
                let window_ms = window_ms.max(1);
                Meter::Bucket {
                    bucket: TokenBucket::full(
                        share / window_ms as f64,
                        burst_capacity(share, tuning.burst_fraction, 1.0),
                        now_ms,
                    ),
                    window_ms,
                }
            }
            LimitKind::Concurrency => Meter::Slots { in_use: 0 },
        };
        let state = State {
            kind,
            limit,
            tuning,
            tiebreak: RandomState::new().hash_one(now_ms),
            seq: 0,
            demarcation: Demarcation::new(share),
            demand: DemandMeter::new(
                Horizon {
                    min_ms: tuning.demand_min_window_ms,
                    min_arrivals: tuning.demand_min_arrivals,
                    max_ms: tuning.demand_max_window_ms,
                },
                now_ms,
            ),
            published_demand: 0.0,
            meter,
        };
        Self {
            state: Mutex::new(state),
            last_arrival_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// When the last request arrived here (0: never), admitted or not.
    pub fn last_arrival_ms(&self) -> u64 {
        self.last_arrival_ms
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets this node's rank for splitting whole slots: use a hash of the node id, so that the
    /// same node wins ties across restarts and runs are reproducible. Nodes must differ.
    pub fn with_tiebreak(mut self, tiebreak: u64) -> Self {
        self.state
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .tiebreak = tiebreak;
        self
    }

    /// The cluster-wide limit.
    pub fn limit(&self) -> u64 {
        self.lock().limit
    }

    /// The hot path: takes `amount` units (1 request, or the estimated tokens) of a rate, or
    /// `amount` slots (normally 1) of a concurrency limit, if this node's share allows.
    ///
    /// A rate request larger than the bucket's burst is admitted when the bucket is full and
    /// leaves a debt that later requests wait out. Rejected attempts count towards demand.
    pub fn try_acquire(&self, amount: u64, now_ms: u64) -> Result<Admitted, Rejected> {
        self.last_arrival_ms
            .store(now_ms, std::sync::atomic::Ordering::Relaxed);
        let mut state = self.lock();
        let state = &mut *state;
        let limit = state.limit;
        // Shares move within about a staleness bound: the wait for a node without share, and
        // the longest worth suggesting while a raise is already on its way.
        let shares_move_ms = state.tuning.stale_after_ms();
        let raising = state.demarcation.intent() > state.demarcation.share();
        let hint = |wait: Option<u64>, longest: u64| {
            let wait = wait.map_or(shares_move_ms, |ms| ms.min(longest));
            let wait = if raising {
                wait.min(shares_move_ms)
            } else {
                wait
            };
            wait.max(1)
        };
        let units = amount as f64;
        match &mut state.meter {
            Meter::Bucket { bucket, window_ms } => match bucket.try_take(units, now_ms) {
                Ok(()) => {
                    state.demand.arrival(units, true);
                    Ok(Admitted {
                        remaining: whole_units(bucket.tokens(now_ms)),
                        reset_ms: bucket.ms_until_full(now_ms).min(*window_ms),
                    })
                }
                Err(wait) => {
                    state.demand.arrival(units, false);
                    Err(Rejected {
                        retry_after_ms: hint(wait, *window_ms),
                        limit,
                    })
                }
            },
            Meter::Slots { in_use } => {
                let slots = whole_units(state.demarcation.share());
                if in_use.saturating_add(amount) <= slots {
                    state.demand.hold_until(now_ms, *in_use);
                    *in_use += amount;
                    state.demand.arrival(units, true);
                    Ok(Admitted {
                        remaining: slots - *in_use,
                        reset_ms: 0,
                    })
                } else {
                    state.demand.arrival(units, false);
                    // With slots held, one frees up after about a mean hold over their number.
                    let next_free = state
                        .demand
                        .mean_hold_ms()
                        .filter(|_| slots > 0)
                        .map(|hold| (hold / (*in_use).max(1) as f64).ceil() as u64);
                    Err(Rejected {
                        retry_after_ms: hint(next_free, MAX_SLOT_WAIT_MS),
                        limit,
                    })
                }
            }
        }
    }

    /// Rate: the true-up after settlement, `delta` = real − charged units. Negative gives
    /// units back (up to the burst); positive charges more and may leave a debt that delays
    /// later admissions. Concurrency: `-1` releases a slot (a positive `delta` takes slots
    /// without checking the share).
    pub fn adjust(&self, delta: i64, now_ms: u64) {
        let mut state = self.lock();
        let state = &mut *state;
        match &mut state.meter {
            Meter::Bucket { bucket, .. } => {
                bucket.charge(delta as f64, now_ms);
                state.demand.true_up(delta as f64);
            }
            Meter::Slots { in_use } => {
                state.demand.hold_until(now_ms, *in_use);
                *in_use = in_use.saturating_add_signed(delta);
            }
        }
    }

    /// The report to send to every other node now. Call it every report interval and send
    /// every report it returns: it records what peers are being told, which is what allows
    /// this node to raise its share later.
    pub fn report(&self, now_ms: u64) -> ShareReport {
        let mut state = self.lock();
        let in_use = state.in_use();
        state.demand.close_period(now_ms, in_use);
        let demand = match state.meter {
            Meter::Bucket { window_ms, .. } => state.demand.units_per_window(window_ms),
            Meter::Slots { .. } => state.demand.slots(),
        };
        let demand = demand.min(state.limit as f64);
        state.seq += 1;
        let held = state.held();
        let delivery_ms = state.tuning.max_delivery_delay_ms;
        state.demarcation.published(now_ms, held, delivery_ms);
        state.published_demand = demand;
        // The largest recent request, and with it the bucket's capacity, may have changed.
        state.apply_share(now_ms);
        ShareReport {
            demand,
            share: held,
            intent: state.demarcation.intent(),
            seq: state.seq,
            tiebreak: state.tiebreak,
        }
    }

    /// Recomputes this node's share from the latest report of each other node, keyed by node
    /// id (of any type; for a repeated key the highest `seq` counts), under the demarcation
    /// rule: the share drops at once to the target, and rises only as far as the others have
    /// been told and leave room for.
    ///
    /// Membership: `live_nodes` counts this node; `max(live_nodes, distinct keys + 1)` nodes
    /// share the limit. A counted node without a report is assumed at the initial even split;
    /// a report older than [`Tuning::stale_after_ms`] is held at `max(share, intent)` and no
    /// node raises while any peer is stale or missing. When a node leaves, keep passing its
    /// last report (and counting it) for a grace period after it has surely stopped admitting,
    /// then drop it, which frees its share.
    pub fn update_share<K: PartialEq>(
        &self,
        peers: &[(K, PeerReport)],
        live_nodes: usize,
        now_ms: u64,
    ) {
        let mut state = self.lock();
        let granularity = granularity(state.kind);
        let limit = state.limit as f64;
        let tuning = state.tuning;
        let view = survey(
            peers,
            live_nodes,
            now_ms,
            tuning.stale_after_ms(),
            limit,
            granularity,
        );
        let floor = floor_share(limit, view.nodes, tuning.floor_fraction, granularity);
        let claim = |demand| claim_amount(demand, tuning.headroom, floor, granularity);
        let own = Claim {
            amount: claim(state.published_demand),
            tiebreak: state.tiebreak,
        };
        let claims: Vec<Claim> = std::iter::once(own)
            .chain(view.fresh.iter().map(|peer| Claim {
                amount: claim(peer.demand),
                tiebreak: peer.tiebreak,
            }))
            .collect();
        let shares = max_min_fair(limit - view.pinned, &claims, granularity);
        let target = shares.first().copied().unwrap_or(0.0);
        let room = match granularity {
            Granularity::Continuous => limit - view.promised,
            Granularity::Whole => (limit - view.promised).floor(),
        };
        state.demarcation.retarget(
            target,
            room,
            view.complete,
            now_ms,
            tuning.max_delivery_delay_ms,
        );
        state.apply_share(now_ms);
    }

    /// The operator changed the limit. A decrease scales this node's share down at once; an
    /// increase is taken up by later [`update_share`](Self::update_share) calls, through the
    /// demarcation rule, since peers do not know of it yet.
    pub fn set_limit(&self, limit: u64, now_ms: u64) {
        let mut state = self.lock();
        let old = state.limit;
        state.limit = limit;
        if limit < old {
            let scaled = state.demarcation.share() * limit as f64 / old as f64;
            let scaled = match granularity(state.kind) {
                Granularity::Continuous => scaled,
                Granularity::Whole => scaled.floor(),
            };
            state.demarcation.lower_to(scaled);
        }
        state.apply_share(now_ms);
    }

    /// Drops this node's share to the floor at once. Call it right after creating the limit on
    /// a node that joins (or restarts into) a running cluster, whose peers already use the
    /// whole limit: the share then grows through the demarcation rule instead of starting at
    /// an even split that nobody has made room for.
    pub fn lower_to_floor(&self, live_nodes: usize, now_ms: u64) {
        let mut state = self.lock();
        let granularity = granularity(state.kind);
        let floor = floor_share(
            state.limit as f64,
            live_nodes,
            state.tuning.floor_fraction,
            granularity,
        );
        state.demarcation.lower_to(floor);
        state.apply_share(now_ms);
    }

    /// Limit, remaining and reset for response headers, and this node's share.
    pub fn status(&self, now_ms: u64) -> LimitStatus {
        let mut state = self.lock();
        let share = state.demarcation.share();
        let (remaining, reset_ms) = match &mut state.meter {
            Meter::Bucket { bucket, window_ms } => (
                whole_units(bucket.tokens(now_ms)),
                bucket.ms_until_full(now_ms).min(*window_ms),
            ),
            Meter::Slots { in_use } => (whole_units(share).saturating_sub(*in_use), 0),
        };
        LimitStatus {
            limit: state.limit,
            remaining,
            reset_ms,
            share,
        }
    }

    /// Slots in use (concurrency; 0 for rates), e.g. for metrics.
    pub fn in_use(&self) -> u64 {
        self.lock().in_use()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement that could panic, so a panic on
        // another thread leaves nothing half-done worth refusing service over.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn in_use(&self) -> u64 {
        match self.meter {
            Meter::Bucket { .. } => 0,
            Meter::Slots { in_use } => in_use,
        }
    }

    /// What this node may be using: its share, or for slots also those still held after the
    /// share dropped below them (they cannot be taken back).
    fn held(&self) -> f64 {
        self.demarcation.share().max(self.in_use() as f64)
    }

    /// Makes the bucket follow the share in force.
    fn apply_share(&mut self, now_ms: u64) {
        let share = self.demarcation.share();
        let capacity = burst_capacity(
            share,
            self.tuning.burst_fraction,
            self.demand.largest_request(),
        );
        if let Meter::Bucket { bucket, window_ms } = &mut self.meter {
            bucket.set_rate(share / *window_ms as f64, capacity, now_ms);
        }
    }
}

fn granularity(kind: LimitKind) -> Granularity {
    match kind {
        LimitKind::Rate { .. } => Granularity::Continuous,
        LimitKind::Concurrency => Granularity::Whole,
    }
}

/// The most a bucket holds: the largest recent request (at least one unit, at most the share)
/// plus `burst_fraction · share`; nothing without a share.
///
/// Room for a whole request is what lets a node use its share when its requests come a little
/// less often than its refill: with less, the tokens accruing between two arrivals would be
/// clamped away whenever a request found the bucket short, and the node would admit well under
/// its share.
fn burst_capacity(share: f64, burst_fraction: f64, largest_request: f64) -> f64 {
    if share > 0.0 {
        largest_request.max(1.0).min(share) + share * burst_fraction.max(0.0)
    } else {
        0.0
    }
}

/// Whole units of a non-negative amount (negative and NaN read as 0; `as` saturates).
fn whole_units(amount: f64) -> u64 {
    amount.max(0.0).floor() as u64
}
