//! A deterministic simulation of a cluster sharing one limit, in simulated milliseconds.
//!
//! Every node reports every report interval (phases staggered) and each report reaches every
//! other node after a fixed or jittered delay; arrivals are spread evenly in time at a rate
//! per node that may change over time. The outcome records what was admitted per millisecond,
//! so that every sliding window can be checked.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::super::{LimitKind, PeerReport, ShareReport, SharedLimit, Tuning};

/// SplitMix64: small, deterministic, good enough to jitter a simulation.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high`.
    pub(super) fn between(&mut self, (low, high): (u64, u64)) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }

    /// Uniform in `[low, high)`.
    pub(super) fn fraction(&mut self, (low, high): (f64, f64)) -> f64 {
        low + (high - low) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How long a report takes from one node to another.
#[derive(Clone, Copy, Debug)]
pub(super) enum Delay {
    Fixed(u64),
    Jitter(u64, u64),
}

/// What each arrival asks for.
#[derive(Clone, Copy, Debug)]
pub(super) enum Work {
    /// One unit (a request).
    Requests,
    /// An estimate of tokens charged at admission, trued up to `estimate × factor` after a
    /// settlement delay.
    Tokens {
        estimate: (u64, u64),
        factor: (f64, f64),
        settle_ms: (u64, u64),
    },
    /// One slot, held for a while.
    Slots { hold_ms: (u64, u64) },
}

/// Arrivals per millisecond at `(node, now_ms)`.
pub(super) type Load = Box<dyn Fn(usize, u64) -> f64>;

/// One run's setup.
pub(super) struct Scenario {
    pub(super) nodes: usize,
    pub(super) kind: LimitKind,
    pub(super) limit: u64,
    pub(super) duration_ms: u64,
    pub(super) tuning: Tuning,
    pub(super) delay: Delay,
    pub(super) work: Work,
    pub(super) load: Load,
    pub(super) seed: u64,
}

/// What a run measured.
pub(super) struct Outcome {
    /// Units admitted per millisecond (true tokens for [`Work::Tokens`], at admission time).
    pub(super) admitted: Vec<u64>,
    /// The largest sum over nodes of what they may hold, at any millisecond.
    pub(super) max_total_share: f64,
    /// The most slots in use across the cluster at any instant.
    pub(super) max_in_flight: u64,
    /// Slots in use across the cluster, per millisecond.
    pub(super) in_flight: Vec<u64>,
    /// Per millisecond: `Σ min(share, offered load)` over the limit, the part of the limit
    /// that the current shares make usable by the current load.
    pub(super) usable: Vec<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Deliver {
        to: usize,
        from: usize,
        report: usize,
    },
    Settle {
        node: usize,
        delta: i64,
    },
    Release {
        node: usize,
    },
}

impl Scenario {
    pub(super) fn run(&self) -> Outcome {
        let n = self.nodes;
        let interval = self.tuning.report_interval_ms;
        let window_ms = match self.kind {
            LimitKind::Rate { window_ms } => window_ms as f64,
            LimitKind::Concurrency => 1.0,
        };
        let limits: Vec<SharedLimit> = (0..n)
            .map(|node| {
                SharedLimit::with_tuning(self.kind, self.limit, n, 0, self.tuning)
                    .with_tiebreak(node as u64)
            })
            .collect();
        let mut views: Vec<Vec<Option<PeerReport>>> = vec![vec![None; n]; n];
        let mut reports: Vec<ShareReport> = Vec::new();
        let mut events: BinaryHeap<Reverse<(u64, u64, Event)>> = BinaryHeap::new();
        let mut order = 0u64;
        let mut rng = Rng::new(self.seed);
        let mut pending: Vec<f64> = (0..n).map(|node| node as f64 / n as f64).collect();
        let duration = self.duration_ms as usize;
        let mut outcome = Outcome {
            admitted: vec![0; duration],
            max_total_share: 0.0,
            max_in_flight: 0,
            in_flight: vec![0; duration],
            usable: vec![0.0; duration],
        };
        let mut in_flight = 0u64;

        for now in 0..self.duration_ms {
            while let Some(&Reverse((at, _, event))) = events.peek() {
                if at > now {
                    break;
                }
                events.pop();
                match event {
                    Event::Deliver { to, from, report } => {
                        let report = reports[report];
                        let slot = &mut views[to][from];
                        if slot.is_none_or(|held| held.report.seq < report.seq) {
                            *slot = Some(PeerReport {
                                report,
                                received_ms: now,
                            });
                        }
                    }
                    Event::Settle { node, delta } => limits[node].adjust(delta, now),
                    Event::Release { node } => {
                        limits[node].adjust(-1, now);
                        in_flight -= 1;
                    }
                }
            }

            for (node, limit) in limits.iter().enumerate() {
                if now % interval != node as u64 * interval / n as u64 {
                    continue;
                }
                let peers: Vec<(usize, PeerReport)> = views[node]
                    .iter()
                    .enumerate()
                    .filter_map(|(from, peer)| peer.map(|peer| (from, peer)))
                    .collect();
                limit.update_share(&peers, n, now);
                reports.push(limit.report(now));
                if std::env::var("SIM_TRACE").is_ok() && (30_000..36_000).contains(&now) && node < 2
                {
                    let r = reports.last().unwrap();
                    let st = limit.status(now);
                    eprintln!(
                        "TRACE t={now} node={node} demand={:.1} share={:.1} intent={:.1} remaining={} reset={}",
                        r.demand, r.share, r.intent, st.remaining, st.reset_ms
                    );
                }
                for to in (0..n).filter(|&to| to != node) {
                    let delay = match self.delay {
                        Delay::Fixed(ms) => ms,
                        Delay::Jitter(low, high) => rng.between((low, high)),
                    };
                    order += 1;
                    let report = reports.len() - 1;
                    let deliver = Event::Deliver {
                        to,
                        from: node,
                        report,
                    };
                    events.push(Reverse((now + delay, order, deliver)));
                }
            }

            let slot = now as usize;
            for (node, limit) in limits.iter().enumerate() {
                pending[node] += (self.load)(node, now);
                while pending[node] >= 1.0 {
                    pending[node] -= 1.0;
                    match self.work {
                        Work::Requests => {
                            if limit.try_acquire(1, now).is_ok() {
                                outcome.admitted[slot] += 1;
                            }
                        }
                        Work::Tokens {
                            estimate,
                            factor,
                            settle_ms,
                        } => {
                            let estimate = rng.between(estimate);
                            let real = (estimate as f64 * rng.fraction(factor)).round() as u64;
                            let settle_at = now + rng.between(settle_ms);
                            let res = limit.try_acquire(estimate, now);
                            if std::env::var("SIM_TRACE").is_ok()
                                && (30_000..36_000).contains(&now)
                                && node == 1
                            {
                                eprintln!(
                                    "TRACE t={now} node={node} est={estimate} real={real} -> {res:?}"
                                );
                            }
                            if res.is_ok() {
                                outcome.admitted[slot] += real;
                                order += 1;
                                let delta = real as i64 - estimate as i64;
                                let settle = Event::Settle { node, delta };
                                events.push(Reverse((settle_at, order, settle)));
                            }
                        }
                        Work::Slots { hold_ms } => {
                            let release_at = now + rng.between(hold_ms);
                            if limit.try_acquire(1, now).is_ok() {
                                in_flight += 1;
                                outcome.max_in_flight = outcome.max_in_flight.max(in_flight);
                                order += 1;
                                let release = Event::Release { node };
                                events.push(Reverse((release_at, order, release)));
                            }
                        }
                    }
                }
            }

            let mut total_share = 0.0;
            let mut usable = 0.0;
            for (node, limit) in limits.iter().enumerate() {
                let share = limit.status(now).share;
                total_share += share.max(limit.in_use() as f64);
                usable += share.min((self.load)(node, now) * window_ms);
            }
            outcome.max_total_share = outcome.max_total_share.max(total_share);
            outcome.usable[slot] = usable / self.limit as f64;
            outcome.in_flight[slot] = in_flight;
        }
        outcome
    }
}

impl Outcome {
    /// Sums over every window `[start, start + window_ms)` that fits in the run, in order of
    /// `start`. Windows reaching past either end hold no more than one that fits.
    pub(super) fn window_sums(&self, window_ms: u64) -> Vec<u64> {
        let window = window_ms as usize;
        let mut sums = Vec::with_capacity(self.admitted.len().saturating_sub(window) + 1);
        let mut sum: u64 = self.admitted.iter().take(window).sum();
        sums.push(sum);
        for start in 1..=self.admitted.len().saturating_sub(window) {
            sum += self.admitted[start + window - 1];
            sum -= self.admitted[start - 1];
            sums.push(sum);
        }
        sums
    }

    /// The most admitted in any window.
    pub(super) fn max_window(&self, window_ms: u64) -> u64 {
        self.window_sums(window_ms).into_iter().max().unwrap_or(0)
    }

    /// The least admitted in any window starting at or after `from_ms`.
    pub(super) fn min_window_from(&self, window_ms: u64, from_ms: u64) -> u64 {
        self.window_sums(window_ms)
            .into_iter()
            .skip(from_ms as usize)
            .min()
            .unwrap_or(0)
    }

    /// How long after `from_ms` the usable fraction first reaches `level` and stays there
    /// to the end of the run (`None` if it never settles).
    pub(super) fn settles_after(&self, from_ms: u64, level: f64) -> Option<u64> {
        let from = from_ms as usize;
        let last_below = self.usable[from..]
            .iter()
            .rposition(|&usable| usable < level);
        match last_below {
            None => Some(0),
            Some(index) if from + index + 1 < self.usable.len() => Some(index as u64 + 1),
            Some(_) => None,
        }
    }

    /// Average slots in use from `from_ms` on, over `limit`.
    pub(super) fn slot_utilisation_from(&self, from_ms: u64, limit: u64) -> f64 {
        let tail = &self.in_flight[from_ms as usize..];
        tail.iter().sum::<u64>() as f64 / (tail.len() as f64 * limit as f64)
    }
}
