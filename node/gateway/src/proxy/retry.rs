//! The retry policy: which upstream answers are worth another attempt, how long to wait
//! before it (exponential backoff with full jitter, at least the upstream's `retry-after`),
//! and how long a failing deployment cools down.

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use metrics::{SharedString, counter};
use rand::Rng;

use crate::config::RoutingConfig;
use crate::metrics as m;
use crate::routing::Deployment;

/// How a request retries, as `[routing]` configures it.
#[derive(Debug, Clone, Copy)]
pub(super) struct RetryPolicy<'a>(pub &'a RoutingConfig);

impl RetryPolicy<'_> {
    /// Retries per model after its first attempt.
    pub fn retries(self) -> u32 {
        self.0.retries
    }

    /// The delay before retry number `attempt + 1`: exponential with full jitter, at least
    /// the upstream's `retry-after`. `None` when that exceeds the longest wait we accept.
    pub fn backoff(self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        let max = Duration::from_millis(self.0.backoff_max_ms);
        let ceiling = Duration::from_millis(self.0.backoff_initial_ms)
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(max);
        let jittered = ceiling.mul_f64(rand::rng().random_range(0.5..=1.0));
        match retry_after {
            Some(wait) if wait > max => None,
            Some(wait) => Some(wait.max(jittered)),
            None => Some(jittered),
        }
    }

    /// Takes `deployment` out of rotation for the upstream's `retry-after`, else for
    /// `routing.cooldown_ms`.
    pub fn trip_cooldown(self, deployment: &Deployment, retry_after: Option<Duration>) {
        let duration = retry_after.map_or(self.0.cooldown_ms, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        deployment.cooldown.trip(duration);
        counter!(m::COOLDOWNS, "provider" => SharedString::from_shared(deployment.provider.name.clone()), "model" => deployment.metric_model.clone())
            .increment(1);
    }
}

/// Whether an upstream status is worth another attempt.
pub(super) fn retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
}

/// Reads `retry-after-ms` (OpenAI) or `retry-after` in seconds.
pub(super) fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let read = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    if let Some(ms) = read("retry-after-ms")
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1_000.0));
    }
    read("retry-after")
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 86_400.0)
        .map(Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RoutingConfig {
        RoutingConfig {
            backoff_initial_ms: 100,
            backoff_max_ms: 1_000,
            ..RoutingConfig::default()
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let s = settings();
        for attempt in 0..10 {
            let d = RetryPolicy(&s)
                .backoff(attempt, None)
                .expect("no retry-after");
            let ceiling = (100u64 << attempt.min(20)).min(1_000);
            assert!(d <= Duration::from_millis(ceiling), "{attempt}: {d:?}");
            assert!(d >= Duration::from_millis(ceiling / 2), "{attempt}: {d:?}");
        }
    }

    #[test]
    fn backoff_honours_retry_after_up_to_the_max() {
        let s = settings();
        assert!(
            RetryPolicy(&s)
                .backoff(0, Some(Duration::from_millis(700)))
                .expect("waits")
                >= Duration::from_millis(700)
        );
        assert_eq!(
            RetryPolicy(&s).backoff(0, Some(Duration::from_secs(30))),
            None
        );
    }

    #[test]
    fn retry_after_headers() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "2".parse().expect("valid"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "150".parse().expect("valid"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_millis(150)));
        let mut bad = HeaderMap::new();
        bad.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("valid"),
        );
        assert_eq!(parse_retry_after(&bad), None);
    }

    #[test]
    fn which_statuses_retry() {
        for s in [429, 500, 502, 503, 504, 529, 408] {
            assert!(
                retryable_status(StatusCode::from_u16(s).expect("valid")),
                "{s}"
            );
        }
        for s in [400, 401, 403, 404, 413, 422] {
            assert!(
                !retryable_status(StatusCode::from_u16(s).expect("valid")),
                "{s}"
            );
        }
    }
}
