//! Summaries of latency samples.

use std::time::Duration;

use serde::Serialize;

/// Percentiles of a set of latency samples, in milliseconds (nearest rank: p99 of 100
/// samples is the 99th smallest).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencySummary {
    /// Number of samples.
    pub samples: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
    /// Arithmetic mean.
    pub mean_ms: f64,
}

impl LatencySummary {
    /// Summarises `samples` (all zero when there are none).
    pub fn of(samples: &[Duration]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let Some(max) = sorted.last().copied() else {
            return Self::default();
        };
        let total: Duration = sorted.iter().sum();
        Self {
            samples: sorted.len(),
            p50_ms: ms(nearest_rank(&sorted, 0.50)),
            p99_ms: ms(nearest_rank(&sorted, 0.99)),
            max_ms: ms(max),
            mean_ms: ms(total) / sorted.len() as f64,
        }
    }
}

/// The sample at percentile `p` (0..=1) of a non-empty sorted slice, by nearest rank.
fn nearest_rank(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A duration in milliseconds, as the results report them.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let s = LatencySummary::of(&samples);
        assert_eq!(s.samples, 100);
        assert_eq!(s.p50_ms, 50.0);
        assert_eq!(s.p99_ms, 99.0);
        assert_eq!(s.max_ms, 100.0);
        assert_eq!(s.mean_ms, 50.5);
        assert_eq!(LatencySummary::of(&[]).samples, 0);
        assert_eq!(LatencySummary::of(&[Duration::from_millis(7)]).p99_ms, 7.0);
    }
}
