//! A deployment's cooldown: a deadline after which it is used again.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// When a failing deployment may be used again, as milliseconds on the process clock.
#[derive(Debug, Default)]
pub struct Cooldown {
    until_ms: AtomicU64,
}

impl Cooldown {
    /// Milliseconds since the process clock's origin. Tokio's clock, so paused-time tests can
    /// move it.
    pub fn now_ms() -> u64 {
        static ORIGIN: OnceLock<tokio::time::Instant> = OnceLock::new();
        let origin = *ORIGIN.get_or_init(tokio::time::Instant::now);
        u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether the deployment is cooling down at `now_ms`.
    pub fn active(&self, now_ms: u64) -> bool {
        self.until_ms.load(Ordering::Relaxed) > now_ms
    }

    /// The end of the current or last cooldown.
    pub fn until_ms(&self) -> u64 {
        self.until_ms.load(Ordering::Relaxed)
    }

    /// Starts (or extends) a cooldown of `duration_ms` from now.
    pub fn trip(&self, duration_ms: u64) {
        let until = Self::now_ms().saturating_add(duration_ms);
        self.until_ms.fetch_max(until, Ordering::Relaxed);
    }

    /// Ends the cooldown, after a success.
    pub fn clear(&self) {
        self.until_ms.store(0, Ordering::Relaxed);
    }
}
