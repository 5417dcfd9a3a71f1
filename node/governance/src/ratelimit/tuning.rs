//! The knobs of the share exchange: its timing and the shape of the allocation.

/// Timing and allocation parameters. Every node of a cluster must use the same values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tuning {
    /// How often the caller calls [`SharedLimit::report`] and
    /// [`SharedLimit::update_share`] (`P`). Together with
    /// [`max_delivery_delay_ms`](Self::max_delivery_delay_ms) it bounds how long a peer may stay
    /// silent before its report counts as stale.
    ///
    /// [`SharedLimit::report`]: super::SharedLimit::report
    /// [`SharedLimit::update_share`]: super::SharedLimit::update_share
    pub report_interval_ms: u64,
    /// The longest time (`D`) between a [`SharedLimit::report`] call on one node and the
    /// report being passed to `update_share` on every other node. A node raises its share only
    /// to what it has announced for at least this long, which is what keeps the sum of shares
    /// under the limit; if delivery can take longer, the guarantee does not hold.
    ///
    /// [`SharedLimit::report`]: super::SharedLimit::report
    pub max_delivery_delay_ms: u64,
    /// Demand is averaged over the most recent report periods spanning at least this long...
    pub demand_min_window_ms: u64,
    /// ...and at least this many arrivals...
    pub demand_min_arrivals: u64,
    /// ...but no longer than this. A busy node's estimate follows its load within the minimum
    /// window; a lightly loaded node's averages over enough arrivals to be steady, so that
    /// shares do not swing with every single request. After a node's load collapses, its
    /// estimate falls as fast as the evidence allows: it takes the minimum number of arrivals
    /// at the new rate (or the maximum window) to be sure the rate is low.
    pub demand_max_window_ms: u64,
    /// Extra share given to a node whose demand is below its fair share, as a fraction of that
    /// demand, so that ordinary fluctuations of its load are not rejected.
    pub headroom: f64,
    /// The burst a node may admit at once beyond one request, as a fraction of its share: its
    /// bucket holds one mean-sized request plus this fraction of its share.
    pub burst_fraction: f64,
    /// The share a node keeps however idle it is, as a fraction of the limit (at least one
    /// unit, at most a fifth of an even split), so that its first request is not rejected.
    pub floor_fraction: f64,
}

impl Tuning {
    /// How old (by receipt time) a peer's latest report may be before it is treated as stale:
    /// one report interval plus the delivery bound, the longest gap a healthy peer leaves.
    pub fn stale_after_ms(&self) -> u64 {
        self.report_interval_ms
            .saturating_add(self.max_delivery_delay_ms)
    }
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            report_interval_ms: 100,
            max_delivery_delay_ms: 200,
            demand_min_window_ms: 1_000,
            demand_min_arrivals: 5,
            demand_max_window_ms: 10_000,
            headroom: 0.1,
            burst_fraction: 0.01,
            floor_fraction: 0.005,
        }
    }
}
