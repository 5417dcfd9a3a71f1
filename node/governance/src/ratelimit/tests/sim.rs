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
        let mut run = Run::new(self);
        for now in 0..self.duration_ms {
            run.deliver_due(now);
            for node in 0..self.nodes {
                let phase = node as u64 * self.tuning.report_interval_ms / self.nodes as u64;
                if now % self.tuning.report_interval_ms == phase {
                    run.exchange(node, now);
                }
            }
            for node in 0..self.nodes {
                run.arrivals(node, now);
            }
            run.record(now);
        }
        run.outcome
    }
}

/// The state of one run.
struct Run<'a> {
    scenario: &'a Scenario,
    limits: Vec<SharedLimit>,
    /// `views[to][from]`: the latest report `to` has from `from`.
    views: Vec<Vec<Option<PeerReport>>>,
    reports: Vec<ShareReport>,
    events: BinaryHeap<Reverse<(u64, u64, Event)>>,
    /// Breaks ties between events due at the same millisecond, in the order they were made.
    order: u64,
    rng: Rng,
    /// Fractional arrivals carried to the next millisecond, per node.
    pending: Vec<f64>,
    /// Slots in use per node, counted by the simulation itself.
    in_use: Vec<u64>,
    /// Share in force per node, as of its latest update.
    shares: Vec<f64>,
    outcome: Outcome,
}

impl<'a> Run<'a> {
    fn new(scenario: &'a Scenario) -> Self {
        let n = scenario.nodes;
        let limits: Vec<SharedLimit> = (0..n)
            .map(|node| {
                SharedLimit::with_tuning(scenario.kind, scenario.limit, n, 0, scenario.tuning)
                    .with_tiebreak(node as u64)
            })
            .collect();
        let shares = limits.iter().map(|limit| limit.status(0).share).collect();
        let duration = scenario.duration_ms as usize;
        Self {
            scenario,
            limits,
            views: vec![vec![None; n]; n],
            reports: Vec::new(),
            events: BinaryHeap::new(),
            order: 0,
            rng: Rng::new(scenario.seed),
            // Stagger the nodes' arrivals within a millisecond's worth.
            pending: (0..n).map(|node| node as f64 / n as f64).collect(),
            in_use: vec![0; n],
            shares,
            outcome: Outcome {
                admitted: vec![0; duration],
                max_total_share: 0.0,
                max_in_flight: 0,
                in_flight: vec![0; duration],
                usable: vec![0.0; duration],
            },
        }
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.order += 1;
        self.events.push(Reverse((at, self.order, event)));
    }

    fn deliver_due(&mut self, now: u64) {
        while let Some(&Reverse((at, _, event))) = self.events.peek() {
            if at > now {
                break;
            }
            self.events.pop();
            match event {
                Event::Deliver { to, from, report } => {
                    let report = self.reports[report];
                    let view = &mut self.views[to][from];
                    // The transport's job: keep the newest report of each peer.
                    if view.is_none_or(|held| held.report.seq < report.seq) {
                        *view = Some(PeerReport {
                            report,
                            received_ms: now,
                        });
                    }
                }
                Event::Settle { node, delta } => self.limits[node].adjust(delta, now),
                Event::Release { node } => {
                    self.limits[node].adjust(-1, now);
                    self.in_use[node] -= 1;
                }
            }
        }
    }

    /// `node` updates its share from what it has heard and reports to everyone else.
    fn exchange(&mut self, node: usize, now: u64) {
        let peers: Vec<(usize, PeerReport)> = self.views[node]
            .iter()
            .enumerate()
            .filter_map(|(from, peer)| peer.map(|peer| (from, peer)))
            .collect();
        let limit = &self.limits[node];
        limit.update_share(&peers, self.scenario.nodes, now);
        self.shares[node] = limit.status(now).share;
        self.reports.push(limit.report(now));
        let report = self.reports.len() - 1;
        for to in (0..self.scenario.nodes).filter(|&to| to != node) {
            let delay = match self.scenario.delay {
                Delay::Fixed(ms) => ms,
                Delay::Jitter(low, high) => self.rng.between((low, high)),
            };
            let deliver = Event::Deliver {
                to,
                from: node,
                report,
            };
            self.schedule(now + delay, deliver);
        }
        self.check_total_share();
    }

    fn arrivals(&mut self, node: usize, now: u64) {
        self.pending[node] += (self.scenario.load)(node, now);
        while self.pending[node] >= 1.0 {
            self.pending[node] -= 1.0;
            self.arrival(node, now);
        }
    }

    fn arrival(&mut self, node: usize, now: u64) {
        let slot = now as usize;
        match self.scenario.work {
            Work::Requests => {
                if self.limits[node].try_acquire(1, now).is_ok() {
                    self.outcome.admitted[slot] += 1;
                }
            }
            Work::Tokens {
                estimate,
                factor,
                settle_ms,
            } => {
                let estimate = self.rng.between(estimate);
                let real = (estimate as f64 * self.rng.fraction(factor)).round() as u64;
                let settle_at = now + self.rng.between(settle_ms);
                if self.limits[node].try_acquire(estimate, now).is_ok() {
                    self.outcome.admitted[slot] += real;
                    let delta = real as i64 - estimate as i64;
                    self.schedule(settle_at, Event::Settle { node, delta });
                }
            }
            Work::Slots { hold_ms } => {
                let release_at = now + self.rng.between(hold_ms);
                if self.limits[node].try_acquire(1, now).is_ok() {
                    self.in_use[node] += 1;
                    let in_flight = self.in_use.iter().sum::<u64>();
                    self.outcome.max_in_flight = self.outcome.max_in_flight.max(in_flight);
                    self.schedule(release_at, Event::Release { node });
                    self.check_total_share();
                }
            }
        }
    }

    /// Shares move only at updates and what a node holds grows only at admissions, so
    /// checking there covers every instant.
    fn check_total_share(&mut self) {
        let total: f64 = self
            .shares
            .iter()
            .zip(&self.in_use)
            .map(|(&share, &in_use)| share.max(in_use as f64))
            .sum();
        self.outcome.max_total_share = self.outcome.max_total_share.max(total);
    }

    fn record(&mut self, now: u64) {
        let window_ms = match self.scenario.kind {
            LimitKind::Rate { window_ms } => window_ms as f64,
            LimitKind::Concurrency => 1.0,
        };
        let usable: f64 = self
            .shares
            .iter()
            .enumerate()
            .map(|(node, &share)| share.min((self.scenario.load)(node, now) * window_ms))
            .sum();
        let slot = now as usize;
        self.outcome.usable[slot] = usable / self.scenario.limit as f64;
        self.outcome.in_flight[slot] = self.in_use.iter().sum();
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

    /// How long after `from_ms` the usable fraction reaches `level` for good, up to `until_ms`
    /// (`None` if it is below at `until_ms`).
    pub(super) fn settles_after(&self, from_ms: u64, until_ms: u64, level: f64) -> Option<u64> {
        let span = &self.usable[from_ms as usize..until_ms as usize];
        match span.iter().rposition(|&usable| usable < level) {
            None => Some(0),
            Some(index) if index + 1 < span.len() => Some(index as u64 + 1),
            Some(_) => None,
        }
    }

    /// The least usable fraction from `from_ms` to `until_ms`.
    pub(super) fn min_usable(&self, from_ms: u64, until_ms: u64) -> f64 {
        self.usable[from_ms as usize..until_ms as usize]
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
    }

    /// Average slots in use from `from_ms` on, over `limit`.
    pub(super) fn slot_utilisation_from(&self, from_ms: u64, limit: u64) -> f64 {
        let tail = &self.in_flight[from_ms as usize..];
        tail.iter().sum::<u64>() as f64 / (tail.len() as f64 * limit as f64)
    }
}
