//! Dollars in the API, integer micro-dollars in the model.

/// The largest budget accepted, in dollars: far above any real budget, and far below where
/// micro-dollars would overflow a `u64` (about 1.8e13 dollars).
pub(crate) const MAX_USD: u64 = 1_000_000_000_000;

/// Converts a dollar amount to micro-dollars, rounding half up at the sixth decimal.
///
/// It rounds the decimal the client wrote, not its binary approximation: `0.0000015` is
/// `1.4999…e-6` as an `f64`, and multiplying would round it down. Rust prints an `f64` as the
/// shortest decimal that reads back to it (never in exponent form), which is that decimal.
/// `None` if the amount is not finite, not above zero, or above [`MAX_USD`].
pub(crate) fn usd_to_micros(amount: f64) -> Option<u64> {
    if !amount.is_finite() || amount <= 0.0 || amount > MAX_USD as f64 {
        return None;
    }
    let text = format!("{amount}");
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let whole: u64 = whole.parse().ok()?;
    let mut micros = whole.checked_mul(1_000_000)?;
    let mut digits = fraction.bytes().map(|b| u64::from(b.wrapping_sub(b'0')));
    for scale in [100_000, 10_000, 1_000, 100, 10, 1] {
        micros += digits.next().unwrap_or(0) * scale;
    }
    if digits.next().is_some_and(|d| d >= 5) {
        micros += 1;
    }
    Some(micros)
}

/// Micro-dollars as dollars, for JSON.
pub(crate) fn micros_to_usd(micros: u64) -> f64 {
    micros as f64 / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_up_on_the_written_decimal() {
        assert_eq!(usd_to_micros(1.5), Some(1_500_000));
        assert_eq!(usd_to_micros(100.0), Some(100_000_000));
        assert_eq!(usd_to_micros(0.1), Some(100_000));
        assert_eq!(usd_to_micros(0.000_001), Some(1));
        assert_eq!(usd_to_micros(0.000_001_5), Some(2));
        assert_eq!(usd_to_micros(0.000_001_49), Some(1));
        assert_eq!(usd_to_micros(2.999_999_5), Some(3_000_000));
        assert_eq!(usd_to_micros(0.000_000_4), Some(0));
        assert_eq!(usd_to_micros(MAX_USD as f64), Some(MAX_USD * 1_000_000));
    }

    #[test]
    fn refuses_what_is_not_a_budget() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, MAX_USD as f64 * 2.0] {
            assert_eq!(usd_to_micros(bad), None, "{bad}");
        }
    }

    #[test]
    fn renders_back() {
        assert_eq!(micros_to_usd(1_500_000), 1.5);
        assert_eq!(micros_to_usd(100_000), 0.1);
    }
}
