//! Whether a count of arrivals contradicts an expected rate: the test that tells a real shift
//! of load from the noise of a few random arrivals.

/// How unlikely a count must be, under the expected rate, to be taken as a shift. Counts are
/// tested a handful of times per report, so this keeps false alarms to about one a quarter of
/// an hour per node at ten reports a second.
const SIGNIFICANCE: f64 = 1e-4;

/// Above this many expected arrivals the Poisson law is replaced by its normal approximation
/// (the exact terms would underflow), with the matching threshold in standard deviations.
const NORMAL_FROM: f64 = 30.0;
const NORMAL_SIGMAS: f64 = 3.8;

/// Whether `observed` arrivals are so far from `expected` (the mean of a Poisson count) in
/// either direction that the rate has most likely changed.
pub(super) fn is_surprising(observed: u64, expected: f64) -> bool {
    if !expected.is_finite() || expected < 0.0 {
        return false;
    }
    if expected > NORMAL_FROM {
        let sigmas = (observed as f64 - expected) / expected.sqrt();
        return sigmas.abs() > NORMAL_SIGMAS;
    }
    let at_most = cumulative(observed, expected);
    let below = observed
        .checked_sub(1)
        .map_or(0.0, |fewer| cumulative(fewer, expected));
    at_most < SIGNIFICANCE || 1.0 - below < SIGNIFICANCE
}

/// `P(X <= count)` for `X` Poisson with mean `expected` (at most [`NORMAL_FROM`]).
fn cumulative(count: u64, expected: f64) -> f64 {
    let mut term = (-expected).exp();
    let mut sum = term;
    for i in 1..=count {
        term *= expected / i as f64;
        sum += term;
        // The remaining terms are negligible once they are tiny and shrinking.
        if term < f64::EPSILON * sum && (i as f64) > expected {
            break;
        }
    }
    sum.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_fluctuations_are_not_surprising() {
        assert!(!is_surprising(0, 1.0));
        assert!(!is_surprising(3, 1.0));
        assert!(!is_surprising(5, 9.0));
        assert!(!is_surprising(100, 90.0));
    }

    #[test]
    fn a_collapse_is_surprising() {
        assert!(is_surprising(0, 11.0));
        assert!(is_surprising(1, 15.0));
        assert!(is_surprising(20, 100.0));
    }

    #[test]
    fn a_surge_is_surprising() {
        assert!(is_surprising(5, 0.15));
        assert!(is_surprising(1_000, 10.0));
        assert!(is_surprising(200, 100.0));
    }

    #[test]
    fn cumulative_matches_the_poisson_law() {
        assert!((cumulative(0, 2.0) - (-2.0f64).exp()).abs() < 1e-15);
        assert!((cumulative(2, 2.0) - 5.0 * (-2.0f64).exp()).abs() < 1e-15);
        assert!((cumulative(200, 3.0) - 1.0).abs() < 1e-12);
    }
}
