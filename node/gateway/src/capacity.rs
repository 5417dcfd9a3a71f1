//! A count of things held at once, up to a limit: the connections open on a listener, the API
//! requests in flight. Taking a place is one compare-and-swap; dropping it gives the place back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Room for at most `limit` holders at once.
#[derive(Debug)]
pub struct Capacity {
    used: Arc<AtomicUsize>,
    limit: usize,
}

impl Capacity {
    /// Room for `limit` holders.
    pub fn new(limit: usize) -> Self {
        Self {
            used: Arc::new(AtomicUsize::new(0)),
            limit,
        }
    }

    /// A place, or `None` when all `limit` are taken.
    pub fn try_take(&self) -> Option<Place> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .ok()?;
        Some(Place {
            used: self.used.clone(),
        })
    }

    /// Places held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// A place held in a [`Capacity`], given back when dropped.
#[derive(Debug)]
pub struct Place {
    used: Arc<AtomicUsize>,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.used.fetch_sub(1, Ordering::AcqRel);
    }
}

/// API requests in flight in this process, all routes: the load this node gossips to its
/// peers. Counted by `proxy::InFlight`.
pub(crate) static REQUESTS_IN_FLIGHT: AtomicU64 = AtomicU64::new(0);

/// API requests in flight in this process right now.
pub fn requests_in_flight() -> u64 {
    REQUESTS_IN_FLIGHT.load(Ordering::Relaxed)
}
