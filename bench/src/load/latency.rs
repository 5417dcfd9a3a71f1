//! Latency recording in HDR histograms (microseconds, three significant digits), and the
//! percentiles the reports quote.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency recorded, µs (ten minutes): anything slower is clamped, not lost.
const MAX_MICROS: u64 = 600_000_000;

/// One histogram of latencies, in microseconds.
#[derive(Clone, Debug)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        // 1 µs to ten minutes at three significant digits: a fixed ~200 KB, no growth.
        let histogram = Histogram::new_with_bounds(1, MAX_MICROS, 3)
            .unwrap_or_else(|_| unreachable!("the bounds are valid constants"));
        Self(histogram)
    }
}

impl Latencies {
    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(MAX_MICROS);
        self.0.saturating_record(micros.clamp(1, MAX_MICROS));
    }

    /// Adds everything `other` recorded.
    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The quoted percentiles, or `None` when nothing was recorded.
    pub fn percentiles(&self) -> Option<Percentiles> {
        if self.0.is_empty() {
            return None;
        }
        let at = |q: f64| self.0.value_at_quantile(q);
        Some(Percentiles {
            p50_us: at(0.50),
            p90_us: at(0.90),
            p99_us: at(0.99),
            p999_us: at(0.999),
            max_us: self.0.max(),
            mean_us: self.0.mean(),
        })
    }
}

/// Latency percentiles, µs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
    /// Mean.
    pub mean_us: f64,
}

/// What a target adds to the baseline at each percentile, µs (negative when it measured
/// faster, which is noise).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Added {
    /// At the median.
    pub p50_us: i64,
    /// At the 90th percentile.
    pub p90_us: i64,
    /// At the 99th percentile.
    pub p99_us: i64,
    /// At the 99.9th percentile.
    pub p999_us: i64,
}

impl Percentiles {
    /// This minus `baseline`, percentile by percentile.
    pub fn minus(&self, baseline: &Percentiles) -> Added {
        let d = |a: u64, b: u64| a as i64 - b as i64;
        Added {
            p50_us: d(self.p50_us, baseline.p50_us),
            p90_us: d(self.p90_us, baseline.p90_us),
            p99_us: d(self.p99_us, baseline.p99_us),
            p999_us: d(self.p999_us, baseline.p999_us),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_differences() {
        let mut a = Latencies::default();
        for us in 1..=1000 {
            a.record(Duration::from_micros(us));
        }
        let mut b = Latencies::default();
        b.merge(&a);
        assert_eq!(b.count(), 1000);
        let p = b.percentiles().expect("recorded");
        assert!((499..=501).contains(&p.p50_us), "{p:?}");
        assert!((989..=991).contains(&p.p99_us), "{p:?}");
        let base = Percentiles { p50_us: 400, ..p };
        assert_eq!(p.minus(&base).p50_us, p.p50_us as i64 - 400);
        assert!(Latencies::default().percentiles().is_none());
        // Absurd values are clamped, not dropped.
        a.record(Duration::from_secs(100_000));
        assert_eq!(a.count(), 1001);
    }
}
