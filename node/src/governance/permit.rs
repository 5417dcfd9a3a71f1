//! What an admitted request holds until it settles: budget reservations, concurrency slots and
//! token charges, and where its usage is counted.
//!
//! Every path ends in exactly one of three ways:
//! * [`GovPermit::settle`] with the real usage and cost: reservations settle to the cost, token
//!   charges are trued up, slots are freed, and the usage is queued for the counters;
//! * [`GovPermit::settle_cut_short`] for a response cut short: the usage seen is recorded (the
//!   billing figure), but the budgets keep the whole reservation (the enforcement figure),
//!   since the upstream may have generated more than reached the gateway;
//! * dropped during admission (a later limit refused the request): everything is given back;
//! * dropped after admission without a settlement (a bug or a panic elsewhere): the
//!   reservations count as spent in full, the conservative choice, and slots are freed.

use std::sync::Arc;

use http::HeaderMap;
use starling_cluster::crdt::{Period, Usage};

use super::Governance;
use super::budget::BudgetState;
use super::index::Governed;
use super::model::{BudgetMode, BudgetPeriod};
use super::ratelimit::SharedLimit;
use super::usage::Record;

/// One thing a permit holds.
pub enum Held {
    /// A concurrency slot.
    Slot(Arc<SharedLimit>),
    /// One request counted by a requests-per-minute limiter; given back only if admission
    /// fails later.
    Request(Arc<SharedLimit>),
    /// Tokens charged at admission (an estimate).
    Tokens(Arc<SharedLimit>, u64),
    /// A budget reservation in micro-dollars.
    Budget {
        /// The budget.
        state: Arc<BudgetState>,
        /// Its mode.
        mode: BudgetMode,
        /// The period reserved in.
        period: Period,
        /// The amount reserved.
        reserved: u64,
    },
}

/// What a request admitted under a virtual key holds.
pub struct GovPermit {
    gov: Arc<Governance>,
    held: Vec<Held>,
    scopes: Vec<Arc<str>>,
    extra_periods: Vec<(Arc<str>, Period)>,
    headers: HeaderMap,
    admitted: bool,
    done: bool,
    admitted_at_ms: u64,
}

impl GovPermit {
    pub(super) fn new(gov: Arc<Governance>, now_ms: u64) -> Self {
        Self {
            gov,
            held: Vec::new(),
            scopes: Vec::new(),
            extra_periods: Vec::new(),
            headers: HeaderMap::new(),
            admitted: false,
            done: false,
            admitted_at_ms: now_ms,
        }
    }

    pub(super) fn hold(&mut self, held: Held) {
        self.held.push(held);
    }

    pub(super) fn set_headers(&mut self, headers: HeaderMap) {
        self.headers = headers;
        self.admitted = true;
    }

    pub(super) fn set_usage_scopes(&mut self, governed: &[&Governed], now_ms: u64) {
        for g in governed {
            self.scopes.push(g.scope.clone());
            for b in &g.budgets {
                if let BudgetPeriod::Every { .. } = b.budget.period {
                    let (period, _, _) = b.budget.period.current(now_ms);
                    self.extra_periods.push((g.scope.clone(), period));
                }
            }
        }
    }

    /// Response headers: rate-limit figures, the budget remainder, a clamp notice.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Settles at the real usage: `tokens` input plus output, `cost` in micro-dollars.
    pub fn settle(mut self, tokens: u64, cost: u64) {
        self.finish(Some((tokens, cost)), false);
    }

    /// Settles a response cut short: `tokens` and `cost` are what reached the gateway and are
    /// recorded as usage, but the upstream may have generated more, so the budgets and the
    /// token limits keep at least what was reserved (the conservative enforcement figure).
    pub fn settle_cut_short(mut self, tokens: u64, cost: u64) {
        self.finish(Some((tokens, cost)), true);
    }

    fn finish(&mut self, real: Option<(u64, u64)>, cut_short: bool) {
        if self.done {
            return;
        }
        self.done = true;
        let now = super::now_ms();
        for held in self.held.drain(..) {
            match held {
                Held::Slot(limiter) => limiter.adjust(-1, now),
                Held::Request(limiter) if !self.admitted => limiter.adjust(-1, now),
                Held::Request(_) => {}
                Held::Tokens(limiter, charged) => {
                    let used = match (self.admitted, real) {
                        (true, Some((tokens, _))) if cut_short => tokens.max(charged),
                        (true, Some((tokens, _))) => tokens,
                        // Unsettled after admission: keep the estimate charged.
                        (true, None) => charged,
                        (false, _) => 0,
                    };
                    let delta = i64::try_from(used).unwrap_or(i64::MAX)
                        - i64::try_from(charged).unwrap_or(i64::MAX);
                    if delta != 0 {
                        limiter.adjust(delta, now);
                    }
                }
                Held::Budget {
                    state,
                    mode,
                    period,
                    reserved,
                } => {
                    let cost = match (self.admitted, real) {
                        (true, Some((_, cost))) if cut_short => cost.max(reserved),
                        (true, Some((_, cost))) => cost,
                        (true, None) => reserved,
                        (false, _) => 0,
                    };
                    state.settle(mode, period, reserved, cost);
                }
            }
        }
        if let (true, Some((tokens, cost))) = (self.admitted, real) {
            self.gov.usage.record(Record {
                scopes: std::mem::take(&mut self.scopes),
                extra_periods: std::mem::take(&mut self.extra_periods),
                usage: Usage {
                    spend_micros: cost,
                    tokens,
                    requests: 1,
                },
                at_ms: self.admitted_at_ms,
            });
        }
    }
}

impl Drop for GovPermit {
    fn drop(&mut self) {
        self.finish(None, false);
    }
}
