//! The node-local meter of a rate limit: a token bucket refilled at this node's share.
//!
//! A token bucket admits exactly what GCRA admits (GCRA's "theoretical arrival time" is the
//! time at which the bucket would be full again). The bucket form is used because the rate
//! changes whenever the share moves, and a bucket changes rate without rescaling any state.
//!
//! Over any window of length `W`, a bucket of capacity `C` refilled at rate `r` admits at most
//! `C + r·W` units when requests are no larger than `C` (a larger request needs a full bucket
//! and leaves a debt, so the excess becomes the size of that request instead of `C`).

/// Slack for comparisons, so that a bucket refilled in many small float steps is not refused
/// because of a rounding error.
const EPSILON: f64 = 1e-9;

/// Tokens that refill continuously up to a capacity; admissions take tokens, true-ups may
/// leave the bucket in debt (negative), which delays later admissions.
#[derive(Debug, Clone)]
pub(super) struct TokenBucket {
    tokens: f64,
    capacity: f64,
    rate_per_ms: f64,
    last_refill_ms: u64,
}

impl TokenBucket {
    /// A full bucket.
    pub(super) fn full(rate_per_ms: f64, capacity: f64, now_ms: u64) -> Self {
        let capacity = capacity.max(0.0);
        Self {
            tokens: capacity,
            capacity,
            rate_per_ms: rate_per_ms.max(0.0),
            last_refill_ms: now_ms,
        }
    }

    /// Changes the refill rate and capacity from `now_ms` on. Tokens above the new capacity are
    /// dropped; a debt is kept.
    pub(super) fn set_rate(&mut self, rate_per_ms: f64, capacity: f64, now_ms: u64) {
        self.refill(now_ms);
        self.rate_per_ms = rate_per_ms.max(0.0);
        self.capacity = capacity.max(0.0);
        self.tokens = self.tokens.min(self.capacity);
    }

    /// Takes `amount` if the bucket holds at least `min(amount, capacity)`: a request larger
    /// than the capacity needs a full bucket and leaves a debt. On refusal, returns how long
    /// until it would be admitted at the current rate (`None` if the rate is zero).
    pub(super) fn try_take(&mut self, amount: f64, now_ms: u64) -> Result<(), Option<u64>> {
        self.refill(now_ms);
        if self.capacity <= 0.0 {
            return Err(None);
        }
        let needed = amount.min(self.capacity);
        if self.tokens + EPSILON * needed.max(1.0) >= needed {
            self.tokens -= amount;
            return Ok(());
        }
        Err(self.ms_until(needed))
    }

    /// Charges `delta` more units (positive: may go into debt) or gives units back (negative:
    /// up to the capacity; what does not fit is lost, which only errs on the safe side).
    pub(super) fn charge(&mut self, delta: f64, now_ms: u64) {
        self.refill(now_ms);
        self.tokens = (self.tokens - delta).min(self.capacity);
    }

    /// Tokens available now (negative while in debt).
    pub(super) fn tokens(&mut self, now_ms: u64) -> f64 {
        self.refill(now_ms);
        self.tokens
    }

    /// Milliseconds until the bucket is full again (0 if it is; `u64::MAX` if it never refills).
    pub(super) fn ms_until_full(&mut self, now_ms: u64) -> u64 {
        self.refill(now_ms);
        self.ms_until(self.capacity).unwrap_or(u64::MAX)
    }

    fn ms_until(&self, level: f64) -> Option<u64> {
        let missing = level - self.tokens;
        if missing <= EPSILON * level.max(1.0) {
            return Some(0);
        }
        if self.rate_per_ms <= 0.0 {
            return None;
        }
        // The slack keeps a rounding error from adding a whole millisecond; `as` saturates
        // on overflow, which is the right answer for "practically never".
        Some((missing / self.rate_per_ms - EPSILON).ceil().max(1.0) as u64)
    }

    /// Adds what accrued since the last refill. A clock that went backwards (calls racing on
    /// different threads) adds nothing rather than removing tokens.
    fn refill(&mut self, now_ms: u64) {
        if now_ms <= self.last_refill_ms {
            return;
        }
        let elapsed = (now_ms - self.last_refill_ms) as f64;
        self.tokens = (self.tokens + elapsed * self.rate_per_ms).min(self.capacity);
        self.last_refill_ms = now_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 60 units per 60 s: one unit per second.
    const ONE_PER_SECOND: f64 = 1.0 / 1_000.0;

    #[test]
    fn full_bucket_admits_its_capacity_at_once_then_the_rate() {
        let mut bucket = TokenBucket::full(ONE_PER_SECOND, 3.0, 0);
        for _ in 0..3 {
            assert_eq!(bucket.try_take(1.0, 0), Ok(()));
        }
        assert_eq!(bucket.try_take(1.0, 0), Err(Some(1_000)));
        assert_eq!(bucket.try_take(1.0, 999), Err(Some(1)));
        assert_eq!(bucket.try_take(1.0, 1_000), Ok(()));
    }

    #[test]
    fn admits_at_most_capacity_plus_rate_times_window() {
        // Offered one request per millisecond for 60 s: admitted = C + r·W - (last partial).
        let mut bucket = TokenBucket::full(ONE_PER_SECOND, 2.0, 0);
        let admitted = (0..60_000)
            .filter(|&t| bucket.try_take(1.0, t).is_ok())
            .count();
        // Refill during [0, 60 000) is 59.999 units, so 2 + 59 whole requests.
        assert_eq!(admitted, 61);
    }

    #[test]
    fn retry_after_is_the_time_to_the_needed_tokens() {
        let mut bucket = TokenBucket::full(0.5, 10.0, 0);
        assert_eq!(bucket.try_take(10.0, 0), Ok(()));
        assert_eq!(bucket.try_take(4.0, 0), Err(Some(8)));
        assert_eq!(bucket.ms_until_full(0), 20);
    }

    #[test]
    fn large_request_needs_a_full_bucket_and_leaves_a_debt() {
        let mut bucket = TokenBucket::full(1.0, 100.0, 0);
        assert_eq!(bucket.try_take(1_000.0, 0), Ok(()));
        assert_eq!(bucket.tokens(0), -900.0);
        // Full again after the debt is repaid and the capacity refilled.
        assert_eq!(bucket.try_take(1_000.0, 999), Err(Some(1)));
        assert_eq!(bucket.try_take(1_000.0, 1_000), Ok(()));
    }

    #[test]
    fn true_ups_charge_into_debt_and_refunds_stop_at_capacity() {
        let mut bucket = TokenBucket::full(1.0, 100.0, 0);
        bucket.charge(250.0, 0);
        assert_eq!(bucket.tokens(0), -150.0);
        bucket.charge(-1_000.0, 0);
        assert_eq!(bucket.tokens(0), 100.0);
    }

    #[test]
    fn lowering_the_rate_drops_tokens_above_the_new_capacity() {
        let mut bucket = TokenBucket::full(1.0, 100.0, 0);
        bucket.set_rate(0.1, 10.0, 0);
        assert_eq!(bucket.tokens(0), 10.0);
        bucket.set_rate(0.0, 0.0, 0);
        assert_eq!(bucket.try_take(1.0, 1_000), Err(None));
    }

    #[test]
    fn clock_going_backwards_adds_nothing() {
        let mut bucket = TokenBucket::full(1.0, 10.0, 1_000);
        assert_eq!(bucket.try_take(10.0, 1_000), Ok(()));
        assert_eq!(bucket.tokens(500), 0.0);
        assert_eq!(bucket.tokens(1_005), 5.0);
    }
}
