//! Demand: how much a node is asked for, admitted or not, over its recent past.
//!
//! Shares must follow the offered load, not what was admitted: a node held to a small share
//! admits little, and judged by admissions alone it would never be given more.
//!
//! The estimate averages over the most recent report periods that span both a minimum time
//! and a minimum number of arrivals (up to a maximum time). A busy node's estimate therefore
//! follows its load within about the minimum time, while a lightly loaded node's averages over
//! enough arrivals to be steady: a fixed short average would swing between zero and several
//! times its real rate with every single arrival, and every swing would move shares around.

use std::collections::VecDeque;

use super::surprise::is_surprising;

/// Periods kept at most, whatever their length, to bound memory if reports come very often.
const MAX_PERIODS: usize = 512;

/// How far back demand is measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Horizon {
    /// Average over at least this long...
    pub(super) min_ms: u64,
    /// ...and over at least this many arrivals...
    pub(super) min_arrivals: u64,
    /// ...but never over more than this long.
    pub(super) max_ms: u64,
}

/// What happened during one period between two reports (or since the last one).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Period {
    duration_ms: u64,
    /// Units asked for, rejected ones included, true-ups applied.
    arrived: f64,
    /// Units admitted, true-ups applied.
    admitted: f64,
    /// Requests asked for.
    arrivals: u64,
    /// Slots in use times milliseconds (concurrency only).
    in_use_area: f64,
    /// The largest request asked for, in units.
    largest: f64,
}

impl Period {
    fn add(&mut self, other: &Period) {
        self.duration_ms += other.duration_ms;
        self.arrived += other.arrived;
        self.admitted += other.admitted;
        self.arrivals += other.arrivals;
        self.in_use_area += other.in_use_area;
        self.largest = self.largest.max(other.largest);
    }
}

/// Counts arrivals per period and estimates demand over a recent span of periods.
#[derive(Debug, Clone)]
pub(super) struct DemandMeter {
    horizon: Horizon,
    current: Period,
    period_start_ms: u64,
    in_use_since_ms: u64,
    closed: VecDeque<Period>,
    /// The span the latest estimate was taken over (empty before the first report).
    estimate: Period,
    /// The arrival rate of `estimate`, corrected for how its span was chosen.
    arrived_per_ms: f64,
    /// The largest request over all kept periods.
    largest: f64,
}

impl DemandMeter {
    pub(super) fn new(horizon: Horizon, now_ms: u64) -> Self {
        Self {
            horizon,
            current: Period::default(),
            period_start_ms: now_ms,
            in_use_since_ms: now_ms,
            closed: VecDeque::new(),
            estimate: Period::default(),
            arrived_per_ms: 0.0,
            largest: 0.0,
        }
    }

    /// A request of `amount` units arrived and was admitted or not.
    pub(super) fn arrival(&mut self, amount: f64, admitted: bool) {
        self.current.largest = self.current.largest.max(amount);
        self.current.arrivals += 1;
        self.current.arrived += amount;
        if admitted {
            self.current.admitted += amount;
        }
    }

    /// A true-up after settlement: the request really needed `delta` more (or fewer) units.
    pub(super) fn true_up(&mut self, delta: f64) {
        self.current.arrived += delta;
        self.current.admitted += delta;
    }

    /// Accounts for `in_use` slots having been held from the last call until `now_ms`. Called
    /// before every change of the slots in use, so that the average is exact.
    pub(super) fn hold_until(&mut self, now_ms: u64, in_use: u64) {
        if now_ms > self.in_use_since_ms {
            self.current.in_use_area += in_use as f64 * (now_ms - self.in_use_since_ms) as f64;
            self.in_use_since_ms = now_ms;
        }
    }

    /// Closes the current period (at a report) and re-estimates demand.
    pub(super) fn close_period(&mut self, now_ms: u64, in_use: u64) {
        if now_ms <= self.period_start_ms {
            return;
        }
        self.hold_until(now_ms, in_use);
        let mut period = std::mem::take(&mut self.current);
        period.duration_ms = now_ms - self.period_start_ms;
        self.period_start_ms = now_ms;
        self.closed.push_front(period);
        self.forget_beyond(self.horizon.max_ms);
        self.forget_before_a_shift();
        self.largest = self
            .closed
            .iter()
            .map(|period| period.largest)
            .fold(0.0, f64::max);
        self.estimate();
    }

    /// Drops periods beyond `max_ms` back from now (the newest stays, however long it was).
    fn forget_beyond(&mut self, max_ms: u64) {
        let mut kept_ms = 0;
        let mut keep = 0;
        for period in &self.closed {
            if keep > 0 && kept_ms + period.duration_ms > max_ms {
                break;
            }
            kept_ms += period.duration_ms;
            keep += 1;
        }
        self.closed.truncate(keep.min(MAX_PERIODS));
    }

    /// If the latest periods contradict the ones before them (far fewer or far more arrivals
    /// than the older rate predicts), forgets the older ones. Without this, the estimate of a
    /// node whose load collapsed would keep reaching back into its busy past for the minimum
    /// number of arrivals, and fall only as fast as new arrivals at the low rate come in.
    fn forget_before_a_shift(&mut self) {
        let arrivals: u64 = self.closed.iter().map(|period| period.arrivals).sum();
        if arrivals < self.horizon.min_arrivals {
            // Too few arrivals for any older rate to judge by: nothing to test.
            return;
        }
        // Detect with the newest 1, 2, 4, ... periods: a handful of tests covers every scale.
        let mut length = 1;
        while length < self.closed.len() {
            if self.shifted_within(length) {
                // Cut where the shift is first evident, so that as little as possible from
                // before it stays in the estimate.
                let cut = (1..=length)
                    .find(|&shorter| self.shifted_within(shorter))
                    .unwrap_or(length);
                self.closed.truncate(cut);
                return;
            }
            length *= 2;
        }
    }

    /// Whether the newest `length` periods are surprising given the rate of the older ones.
    fn shifted_within(&self, length: usize) -> bool {
        let mut recent = Period::default();
        self.closed.iter().take(length).for_each(|p| recent.add(p));
        let mut past = Period::default();
        self.closed.iter().skip(length).for_each(|p| past.add(p));
        // A rate from fewer arrivals is itself too noisy to judge by.
        if past.arrivals < self.horizon.min_arrivals || past.duration_ms == 0 {
            return false;
        }
        let expected = past.arrivals as f64 * recent.duration_ms as f64 / past.duration_ms as f64;
        is_surprising(recent.arrivals, expected)
    }

    /// Re-estimates over the newest periods spanning the minimum time and arrivals.
    fn estimate(&mut self) {
        let mut span = Period::default();
        for period in &self.closed {
            if span.duration_ms >= self.horizon.min_ms && span.arrivals >= self.horizon.min_arrivals
            {
                break;
            }
            span.add(period);
        }
        let mut arrived = span.arrived;
        if span.duration_ms > self.horizon.min_ms && span.arrivals > 0 {
            // The span was stretched back to an arrival, so it holds one arrival more than a
            // span of the same length placed at random would; counting half of it roughly
            // halves that bias for regular arrivals and keeps a little margin for random ones.
            arrived *= (span.arrivals as f64 - 0.5) / span.arrivals as f64;
        }
        self.estimate = span;
        self.arrived_per_ms = if span.duration_ms > 0 {
            (arrived / span.duration_ms as f64).max(0.0)
        } else {
            0.0
        };
    }

    /// Demand of a rate limit: units asked for per window.
    pub(super) fn units_per_window(&self, window_ms: u64) -> f64 {
        self.arrived_per_ms * window_ms as f64
    }

    /// Demand of a concurrency limit, in slots. By Little's law the slots a node would hold if
    /// it admitted everything are its average in use times arrivals over admissions; a node
    /// that admitted nothing but was asked wants at least one slot more than it holds.
    pub(super) fn slots(&self) -> f64 {
        let span = &self.estimate;
        let in_use = self.per_ms(span.in_use_area);
        let asked_more = span.arrived > span.admitted * (1.0 + 1e-9);
        let little = if span.admitted > 0.0 {
            in_use * (span.arrived / span.admitted).max(1.0)
        } else {
            in_use
        };
        if asked_more {
            little.max(in_use + 1.0)
        } else {
            little
        }
    }

    /// Average time a slot is held, if anything was admitted recently.
    pub(super) fn mean_hold_ms(&self) -> Option<f64> {
        let span = &self.estimate;
        (span.admitted > 0.0).then(|| span.in_use_area / span.admitted)
    }

    /// The largest request asked for over the kept periods (up to the maximum window), in
    /// units; 0 before the first report.
    pub(super) fn largest_request(&self) -> f64 {
        self.largest
    }

    fn per_ms(&self, amount: f64) -> f64 {
        if self.estimate.duration_ms == 0 {
            return 0.0;
        }
        (amount / self.estimate.duration_ms as f64).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HORIZON: Horizon = Horizon {
        min_ms: 1_000,
        min_arrivals: 4,
        max_ms: 10_000,
    };

    /// Runs `seconds` of reports every 100 ms with `per_second` evenly spread arrivals.
    fn feed(meter: &mut DemandMeter, start_ms: u64, seconds: u64, per_second: u64) -> u64 {
        let mut now = start_ms;
        for _ in 0..seconds {
            for tick in 0..10 {
                let due = per_second * (tick + 1) / 10 - per_second * tick / 10;
                for _ in 0..due {
                    meter.arrival(1.0, false);
                }
                now += 100;
                meter.close_period(now, 0);
            }
        }
        now
    }

    #[test]
    fn counts_rejected_arrivals_as_demand() {
        let mut meter = DemandMeter::new(HORIZON, 0);
        feed(&mut meter, 0, 2, 10);
        // 10 a second is 600 per minute, whatever was admitted.
        assert!((meter.units_per_window(60_000) - 600.0).abs() < 1e-9);
    }

    #[test]
    fn a_busy_node_is_measured_over_the_minimum_time() {
        let mut meter = DemandMeter::new(HORIZON, 0);
        let now = feed(&mut meter, 0, 5, 2);
        let slow = meter.units_per_window(60_000);
        assert!((100.0..=135.0).contains(&slow), "{slow}");
        feed(&mut meter, now, 1, 20);
        // One second after the load rose tenfold, the estimate has followed it.
        assert!((meter.units_per_window(60_000) - 1_200.0).abs() < 1e-9);
    }

    #[test]
    fn a_sparse_node_is_measured_over_enough_arrivals() {
        let mut meter = DemandMeter::new(HORIZON, 0);
        let mut now = 0;
        let mut estimates = Vec::new();
        // One arrival every two seconds: 30 per minute.
        for _ in 0..20 {
            meter.arrival(1.0, true);
            for _ in 0..20 {
                now += 100;
                meter.close_period(now, 0);
                estimates.push(meter.units_per_window(60_000));
            }
        }
        let steady = &estimates[200..];
        let low = steady.iter().copied().fold(f64::INFINITY, f64::min);
        let high = steady.iter().copied().fold(0.0, f64::max);
        assert!(
            low >= 25.0 && high <= 40.0,
            "estimates between {low} and {high}"
        );
    }

    #[test]
    fn a_collapse_of_load_is_followed_within_a_second() {
        let mut meter = DemandMeter::new(HORIZON, 0);
        let now = feed(&mut meter, 0, 5, 20);
        // One arrival, then nothing: after a second the busy past is forgotten.
        meter.arrival(1.0, true);
        feed(&mut meter, now, 1, 0);
        let after = meter.units_per_window(60_000);
        assert!(after <= 60.0, "{after}");
    }

    #[test]
    fn an_idle_node_has_no_demand() {
        let mut meter = DemandMeter::new(HORIZON, 0);
        let now = feed(&mut meter, 0, 2, 10);
        feed(&mut meter, now, 11, 0);
        assert_eq!(meter.units_per_window(60_000), 0.0);
    }

    #[test]
    fn slot_demand_follows_littles_law() {
        let mut meter = DemandMeter::new(HORIZON, 0);
        // Two slots held throughout; 1 admitted and 3 rejected.
        meter.arrival(1.0, true);
        for _ in 0..3 {
            meter.arrival(1.0, false);
        }
        meter.close_period(1_000, 2);
        assert!((meter.slots() - 8.0).abs() < 1e-9);
        assert_eq!(meter.mean_hold_ms(), Some(2_000.0));
    }

    #[test]
    fn slot_demand_without_admissions_asks_for_one_more() {
        let mut meter = DemandMeter::new(HORIZON, 0);
        meter.arrival(1.0, false);
        meter.close_period(100, 0);
        assert_eq!(meter.slots(), 1.0);
    }

    #[test]
    fn true_ups_count_towards_demand() {
        let mut meter = DemandMeter::new(HORIZON, 0);
        for _ in 0..10 {
            meter.arrival(100.0, true);
        }
        meter.true_up(-400.0);
        meter.close_period(1_000, 0);
        assert!((meter.units_per_window(1_000) - 600.0).abs() < 1e-9);
    }

    #[test]
    fn remembers_the_largest_request_for_the_maximum_window() {
        let mut meter = DemandMeter::new(HORIZON, 0);
        meter.arrival(2_000.0, false);
        meter.arrival(10.0, true);
        meter.close_period(100, 0);
        assert_eq!(meter.largest_request(), 2_000.0);
        feed(&mut meter, 100, 10, 1);
        assert_eq!(meter.largest_request(), 1.0);
    }
}
