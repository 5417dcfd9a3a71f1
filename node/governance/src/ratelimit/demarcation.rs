//! The demarcation rule that keeps the sum of shares in force at or under the limit.
//!
//! A node lowers its share at once: that is always safe. It raises its share only into room
//! that the others already leave for it. Peers leave room for `max(share, intent)` of this node
//! as they last heard it, so this node first announces the higher intent and raises only once
//! every report a peer may still be holding carries it. With delivery within `D`, a peer holds
//! a report published at or after the last one published `D` ago; hence the raise is capped at
//! the smallest `max(share, intent)` published since then.

use std::collections::VecDeque;

/// Reports kept once they are this many; older neighbours are merged, conservatively, so that
/// a caller reporting far more often than expected cannot grow the history without bound.
const MAX_PROMISES: usize = 64;

/// What one published report told peers this node may hold: `max(share, intent)`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Promise {
    at_ms: u64,
    value: f64,
}

/// This node's share in force, its intent, and what its recent reports promised.
#[derive(Debug, Clone)]
pub(super) struct Demarcation {
    share: f64,
    intent: f64,
    promises: VecDeque<Promise>,
}

impl Demarcation {
    /// Starts at `share`, with the same intent and nothing published yet.
    pub(super) fn new(share: f64) -> Self {
        Self {
            share,
            intent: share,
            promises: VecDeque::new(),
        }
    }

    /// The share in force: the most this node may admit at.
    pub(super) fn share(&self) -> f64 {
        self.share
    }

    /// The share this node aims for and announces.
    pub(super) fn intent(&self) -> f64 {
        self.intent
    }

    /// Records that a report published at `now_ms` told peers this node may hold `held` (its
    /// share, or more for slots still in use) and intends [`intent`](Self::intent).
    pub(super) fn published(&mut self, now_ms: u64, held: f64, delivery_ms: u64) {
        // Keep the history in time order even if the caller's clock steps back.
        let at_ms = self
            .promises
            .back()
            .map_or(now_ms, |last| last.at_ms.max(now_ms));
        self.promises.push_back(Promise {
            at_ms,
            value: held.max(self.intent),
        });
        if self.promises.len() > MAX_PROMISES {
            // Merging the two newest into one that is as early as the first and as small as
            // the smaller can only delay or lower a raise.
            if let (Some(newest), Some(previous)) =
                (self.promises.pop_back(), self.promises.pop_back())
            {
                self.promises.push_back(Promise {
                    at_ms: previous.at_ms,
                    value: previous.value.min(newest.value),
                });
            }
        }
        self.forget_unneeded(now_ms, delivery_ms);
    }

    /// Moves towards `target`: down at once, up only as far as the published promises, the
    /// `room` the others leave (limit minus what they may hold) and `may_raise` allow.
    pub(super) fn retarget(
        &mut self,
        target: f64,
        room: f64,
        may_raise: bool,
        now_ms: u64,
        delivery_ms: u64,
    ) {
        self.intent = target;
        if target < self.share {
            self.share = target;
            return;
        }
        if !may_raise {
            return;
        }
        if let Some(ceiling) = self.raise_ceiling(now_ms, delivery_ms) {
            let raised = target.min(ceiling).min(room);
            if raised > self.share {
                self.share = raised;
            }
        }
    }

    /// Lowers share and intent to at most `value`, at once.
    pub(super) fn lower_to(&mut self, value: f64) {
        self.share = self.share.min(value);
        self.intent = self.intent.min(value);
    }

    /// The highest share every peer already leaves room for, if the oldest report a peer may
    /// still hold is known (`None` until a report has been out for `delivery_ms`).
    fn raise_ceiling(&mut self, now_ms: u64, delivery_ms: u64) -> Option<f64> {
        self.forget_unneeded(now_ms, delivery_ms);
        let oldest = self.promises.front()?;
        if oldest.at_ms.saturating_add(delivery_ms) > now_ms {
            return None;
        }
        self.promises
            .iter()
            .map(|promise| promise.value)
            .reduce(f64::min)
    }

    /// Drops promises that every peer has certainly replaced: all but the newest one published
    /// at least `delivery_ms` ago.
    fn forget_unneeded(&mut self, now_ms: u64, delivery_ms: u64) {
        while self
            .promises
            .get(1)
            .is_some_and(|next| next.at_ms.saturating_add(delivery_ms) <= now_ms)
        {
            self.promises.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: u64 = 200;

    #[test]
    fn lowering_is_immediate() {
        let mut shares = Demarcation::new(120.0);
        shares.retarget(50.0, 0.0, false, 0, D);
        assert_eq!(shares.share(), 50.0);
        assert_eq!(shares.intent(), 50.0);
    }

    #[test]
    fn raise_waits_until_the_intent_has_been_out_for_the_delivery_bound() {
        let mut shares = Demarcation::new(50.0);
        shares.retarget(100.0, 1_000.0, true, 0, D);
        assert_eq!(shares.share(), 50.0, "nothing published yet");
        shares.published(0, 50.0, D);
        shares.retarget(100.0, 1_000.0, true, 100, D);
        assert_eq!(shares.share(), 50.0, "intent out for 100 ms only");
        shares.published(100, 50.0, D);
        shares.retarget(100.0, 1_000.0, true, 200, D);
        assert_eq!(shares.share(), 100.0);
    }

    #[test]
    fn raise_is_capped_by_the_room_the_others_leave() {
        let mut shares = Demarcation::new(50.0);
        shares.retarget(100.0, 1_000.0, true, 0, D);
        shares.published(0, 50.0, D);
        shares.retarget(100.0, 70.0, true, 300, D);
        assert_eq!(shares.share(), 70.0);
        assert_eq!(shares.intent(), 100.0);
    }

    #[test]
    fn raise_is_capped_by_the_smallest_promise_a_peer_may_still_hold() {
        let mut shares = Demarcation::new(100.0);
        shares.published(0, 100.0, D);
        shares.retarget(50.0, 1_000.0, true, 10, D);
        shares.published(100, 50.0, D);
        shares.retarget(100.0, 1_000.0, true, 150, D);
        shares.published(200, 50.0, D);
        // At 300 a peer may hold the report of 100 (which promised only 50).
        shares.retarget(100.0, 1_000.0, true, 300, D);
        assert_eq!(shares.share(), 50.0);
        // At 400 every peer holds the report of 200 or later, which promised 100.
        shares.retarget(100.0, 1_000.0, true, 400, D);
        assert_eq!(shares.share(), 100.0);
    }

    #[test]
    fn no_raise_while_a_peer_is_not_heard_from() {
        let mut shares = Demarcation::new(50.0);
        shares.retarget(100.0, 1_000.0, true, 0, D);
        shares.published(0, 50.0, D);
        shares.retarget(100.0, 1_000.0, false, 1_000, D);
        assert_eq!(shares.share(), 50.0);
    }

    #[test]
    fn frequent_reports_keep_a_bounded_conservative_history() {
        const LONG: u64 = 1_000;
        let mut shares = Demarcation::new(10.0);
        for now in 0..2_000 {
            shares.published(now, 10.0, LONG);
            assert!(shares.promises.len() <= MAX_PROMISES);
        }
        shares.retarget(20.0, 1_000.0, true, 2_000, LONG);
        for now in 2_000..2_100 {
            shares.published(now, 10.0, LONG);
        }
        shares.retarget(20.0, 1_000.0, true, 2_100, LONG);
        assert_eq!(shares.share(), 10.0, "peers may hold reports promising 10");
        for now in 2_100..5_000 {
            shares.published(now, 10.0, LONG);
        }
        shares.retarget(20.0, 1_000.0, true, 5_000, LONG);
        assert_eq!(shares.share(), 20.0);
    }
}
