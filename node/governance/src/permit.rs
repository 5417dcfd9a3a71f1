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

use super::budget::BudgetState;
use super::model::BudgetMode;
use super::ratelimit::SharedLimit;
use super::usage::{Record, UsageReceipt, UsageSink};

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
    usage: Arc<UsageSink>,
    held: Vec<Held>,
    scopes: Vec<Arc<str>>,
    extra_periods: Vec<(Arc<str>, Period)>,
    headers: HeaderMap,
    admitted: bool,
    done: bool,
    admitted_at_ms: u64,
    /// Hand out receipts, so that the response waits for its usage to be durable.
    durable_acks: bool,
}

impl GovPermit {
    pub(super) fn new(usage: Arc<UsageSink>, now_ms: u64, durable_acks: bool) -> Self {
        Self {
            usage,
            durable_acks,
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

    /// Admission succeeded, with these response headers: from now on the permit must settle,
    /// and an unsettled drop counts its reservations as spent.
    pub(super) fn confirm(&mut self, headers: HeaderMap) {
        self.headers = headers;
        self.admitted = true;
    }

    /// Where the usage is counted: the scopes charged, and the extra periods of budgets with
    /// their own durations.
    pub(super) fn set_usage_scopes(
        &mut self,
        scopes: impl IntoIterator<Item = Arc<str>>,
        extra_periods: impl IntoIterator<Item = (Arc<str>, Period)>,
    ) {
        self.scopes.extend(scopes);
        self.extra_periods.extend(extra_periods);
    }

    /// Response headers: rate-limit figures, the budget remainder, a clamp notice.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Settles at the real usage: `tokens` input plus output, `cost` in micro-dollars. The
    /// receipt tells when the usage is durable (see [`super::usage`]).
    pub fn settle(mut self, tokens: u64, cost: u64) -> Option<UsageReceipt> {
        self.finish(Some((tokens, cost)), false)
    }

    /// Settles a response cut short: `tokens` and `cost` are what reached the gateway and are
    /// recorded as usage, but the upstream may have generated more, so the budgets and the
    /// token limits keep at least what was reserved (the conservative enforcement figure).
    pub fn settle_cut_short(mut self, tokens: u64, cost: u64) -> Option<UsageReceipt> {
        self.finish(Some((tokens, cost)), true)
    }

    fn finish(&mut self, real: Option<(u64, u64)>, cut_short: bool) -> Option<UsageReceipt> {
        if self.done {
            return None;
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
            let receipt = self.usage.record(Record {
                scopes: std::mem::take(&mut self.scopes),
                extra_periods: std::mem::take(&mut self.extra_periods),
                usage: Usage {
                    spend_micros: cost,
                    tokens,
                    requests: 1,
                },
                at_ms: self.admitted_at_ms,
            });
            return self.durable_acks.then_some(receipt);
        }
        None
    }
}

impl Drop for GovPermit {
    fn drop(&mut self) {
        self.finish(None, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Budget, BudgetPeriod};
    use crate::ratelimit::LimitKind;
    use starling_cluster::crdt::PeriodUnit;

    const DAY: Period = Period {
        unit: PeriodUnit::Day,
        index: 1,
    };

    struct Fixture {
        usage: Arc<UsageSink>,
        budget: Arc<BudgetState>,
        rpm: Arc<SharedLimit>,
        slots: Arc<SharedLimit>,
    }

    impl Fixture {
        fn new() -> Self {
            let budget = Arc::new(BudgetState::new("key/a#daily".into(), "key/a".into()));
            budget.set_budget(
                Budget {
                    amount_micros: 1_000,
                    period: BudgetPeriod::Daily,
                    mode: BudgetMode::Strict,
                },
                "n1",
            );
            budget.credit(DAY, 500);
            Self {
                usage: Arc::default(),
                budget,
                rpm: Arc::new(SharedLimit::new(
                    LimitKind::Rate { window_ms: 60_000 },
                    100,
                    1,
                    0,
                )),
                slots: Arc::new(SharedLimit::new(LimitKind::Concurrency, 2, 1, 0)),
            }
        }

        /// A permit holding a slot, a request and a 200 µ$ reservation.
        fn permit(&self, admitted: bool) -> GovPermit {
            let mut p = GovPermit::new(self.usage.clone(), 0, true);
            assert!(self.slots.try_acquire(1, 0).is_ok());
            p.hold(Held::Slot(self.slots.clone()));
            assert!(self.rpm.try_acquire(1, 0).is_ok());
            p.hold(Held::Request(self.rpm.clone()));
            assert_eq!(
                self.budget.reserve(BudgetMode::Strict, 1_000, DAY, 200, 0),
                crate::budget::Reserve::Done
            );
            p.hold(Held::Budget {
                state: self.budget.clone(),
                mode: BudgetMode::Strict,
                period: DAY,
                reserved: 200,
            });
            if admitted {
                p.confirm(HeaderMap::new());
            }
            p
        }

        fn pool(&self) -> (i64, u64) {
            let s = self.budget.snapshot(DAY);
            (s.pool_available, s.reserved)
        }
    }

    #[test]
    fn settling_charges_the_real_cost_and_records_usage() {
        let f = Fixture::new();
        f.permit(true).settle(42, 30);
        assert_eq!(f.pool(), (470, 0));
        assert_eq!(f.slots.in_use(), 0);
        let (cells, _) = f.usage.drain();
        assert!(
            cells
                .iter()
                .all(|(_, u)| u.spend_micros == 30 && u.requests == 1)
        );
    }

    #[test]
    fn a_cut_short_response_keeps_its_reservation_but_records_what_was_seen() {
        let f = Fixture::new();
        f.permit(true).settle_cut_short(10, 30);
        assert_eq!(f.pool(), (300, 0));
        assert!(f.usage.drain().0.iter().all(|(_, u)| u.spend_micros == 30));
    }

    #[test]
    fn a_permit_dropped_unsettled_counts_its_reservation_as_spent() {
        let f = Fixture::new();
        drop(f.permit(true));
        assert_eq!(f.pool(), (300, 0));
        assert_eq!(f.slots.in_use(), 0);
        assert!(f.usage.drain().0.is_empty(), "no usage is invented");
    }

    #[test]
    fn a_refusal_during_admission_gives_everything_back() {
        let f = Fixture::new();
        let before = f.rpm.status(0).remaining;
        drop(f.permit(false));
        assert_eq!(f.pool(), (500, 0));
        assert_eq!(f.slots.in_use(), 0);
        assert_eq!(f.rpm.status(0).remaining, before);
        assert!(f.usage.drain().0.is_empty());
    }
}
