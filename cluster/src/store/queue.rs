//! The bound on the writer's queue: how many bytes of log records may wait for the writer
//! thread at once, and the room each record takes until its batch is fsynced.
//!
//! Room is taken before a record is queued, and waited for when there is none; that wait is
//! the backpressure. A record's size is not always known when its room must be taken: a
//! local mutation is encoded only after it is applied, and it must be queued at once after
//! that, with no await in between (a caller cancelled there would leave a write applied in
//! memory and never persisted). So room may be taken for fewer bytes than the record turns
//! out to need; the rest is taken at once if free, and otherwise overdrawn: the record is
//! queued anyway and the overdraft is repaid from the next room given back, before anyone
//! else gets room. The queue can then exceed its bound only by the records of writers that
//! were already admitted, each of which held its record in memory anyway.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Semaphore;

use super::StoreError;

/// What one queued record costs beyond its bytes (the command, its acknowledgement channel),
/// counted so that many tiny records cannot slip under a bound meant for bytes.
pub const RECORD_OVERHEAD: usize = 128;

/// The queue's bound and its depth.
#[derive(Debug)]
pub(super) struct Budget {
    /// Free room, in bytes.
    room: Semaphore,
    /// The bound, in bytes.
    limit: u32,
    /// Room taken beyond what was free; repaid before room is given to anyone.
    overdraft: AtomicU64,
    /// Bytes charged to queued records.
    bytes: AtomicU64,
    /// Records queued (or with room taken) and not yet written.
    records: AtomicU64,
    /// Times a writer had to wait for room.
    waits: AtomicU64,
}

/// The depth of the writer's queue, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Bytes of records waiting to be written and fsynced, each counted with
    /// [`RECORD_OVERHEAD`] more.
    pub bytes: u64,
    /// Records waiting to be written and fsynced (counted from the moment their room is
    /// taken).
    pub records: u64,
    /// The bound on `bytes`.
    pub limit: u64,
    /// Times, since start, that a writer had to wait for room.
    pub waits: u64,
}

/// Room held for one record, from before it is queued until its batch is fsynced (or
/// refused after a failure). Dropping it gives the room back.
///
/// Room taken for fewer bytes than the record turns out to need (a local write, whose size is
/// known only once it is applied) takes the rest when the record is queued: at once if it is
/// free, and otherwise as an overdraft that is repaid from the next room given back, before
/// anyone else gets room. So the queue exceeds its bound only by the records of writers that
/// were already admitted.
#[derive(Debug)]
pub struct Room {
    budget: Arc<Budget>,
    /// Bytes charged: held room plus any overdraft.
    charged: u64,
}

impl Budget {
    pub(super) fn new(limit: u32) -> Self {
        Self {
            room: Semaphore::new(limit as usize),
            limit,
            overdraft: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            records: AtomicU64::new(0),
            waits: AtomicU64::new(0),
        }
    }

    pub(super) fn stats(&self) -> QueueStats {
        QueueStats {
            bytes: self.bytes.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            limit: u64::from(self.limit),
            waits: self.waits.load(Ordering::Relaxed),
        }
    }

    /// Waits for room for a record of `len` bytes. A record larger than the whole bound waits
    /// for an empty queue and overdraws the rest.
    pub(super) async fn take(self: &Arc<Self>, len: usize) -> Result<Room, StoreError> {
        let want = charge_of(len);
        let held = u32::try_from(want).unwrap_or(u32::MAX).min(self.limit);
        let permit = match self.room.try_acquire_many(held) {
            Ok(permit) => permit,
            Err(_) => {
                self.waits.fetch_add(1, Ordering::Relaxed);
                self.room
                    .acquire_many(held)
                    .await
                    .map_err(|_| StoreError::Closed("the write queue is closed".to_owned()))?
            }
        };
        permit.forget();
        self.records.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(u64::from(held), Ordering::Relaxed);
        let mut room = Room {
            budget: self.clone(),
            charged: u64::from(held),
        };
        room.cover(len);
        Ok(room)
    }

    /// Gives `n` bytes of room back, repaying any overdraft first.
    fn give_back(&self, n: u64) {
        let owed = self
            .overdraft
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |owed| {
                Some(owed - owed.min(n))
            })
            .unwrap_or(0);
        let free = n - owed.min(n);
        if free > 0 {
            self.room.add_permits(free as usize);
        }
    }
}

impl Room {
    /// Makes the room cover a record of `len` bytes: takes what is missing as far as it is
    /// free, and overdraws the rest (never waits).
    pub(super) fn cover(&mut self, len: usize) {
        let want = charge_of(len);
        let Some(mut missing) = want.checked_sub(self.charged).filter(|m| *m > 0) else {
            return;
        };
        let budget = &self.budget;
        // What is free is taken first, so that an overdraft never leaves room for others.
        loop {
            let free = (budget.room.available_permits() as u64).min(missing);
            let Ok(take) = u32::try_from(free) else {
                break;
            };
            if take == 0 {
                break;
            }
            // Another writer may have taken it meanwhile: look again.
            if let Ok(permit) = budget.room.try_acquire_many(take) {
                permit.forget();
                missing -= free;
            }
        }
        budget.overdraft.fetch_add(missing, Ordering::AcqRel);
        budget
            .bytes
            .fetch_add(want - self.charged, Ordering::Relaxed);
        self.charged = want;
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        self.budget.bytes.fetch_sub(self.charged, Ordering::Relaxed);
        self.budget.records.fetch_sub(1, Ordering::Relaxed);
        self.budget.give_back(self.charged);
    }
}

/// Bytes charged for a record of `len` bytes.
fn charge_of(len: usize) -> u64 {
    (len as u64).saturating_add(RECORD_OVERHEAD as u64)
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    fn free(budget: &Budget) -> usize {
        budget.room.available_permits()
    }

    #[tokio::test]
    async fn a_full_queue_makes_writers_wait_until_room_is_given_back() {
        let budget = Arc::new(Budget::new(1_000));
        let first = budget.take(600).await.expect("room");
        assert_eq!(free(&budget), 1_000 - 728);
        assert!(
            budget.take(300).now_or_never().is_none(),
            "428 bytes cannot hold 300 + 128"
        );
        assert_eq!(budget.stats().waits, 1);
        let small = budget.take(100).await.expect("228 bytes fit");
        drop(first);
        let second = budget.take(300).await.expect("room once given back");
        let stats = budget.stats();
        assert_eq!((stats.records, stats.bytes), (2, 228 + 428));
        drop((small, second));
        assert_eq!(free(&budget), 1_000);
        assert_eq!(
            budget.stats(),
            QueueStats {
                limit: 1_000,
                waits: 1,
                ..QueueStats::default()
            }
        );
    }

    #[tokio::test]
    async fn an_overdraft_is_repaid_before_anyone_gets_room() {
        let budget = Arc::new(Budget::new(1_000));
        let other = budget.take(500).await.expect("room");
        // A local write: room for its overhead, then a record larger than what is free.
        let mut local = budget.take(0).await.expect("room");
        local.cover(700);
        assert_eq!(free(&budget), 0, "what was free is taken, 456 overdrawn");
        assert_eq!(budget.stats().bytes, 628 + 828);
        // Over the bound now: nobody gets room until the queue is back under it.
        drop(other);
        assert_eq!(free(&budget), 172, "628 given back, 456 of it repaid");
        assert!(budget.take(100).now_or_never().is_none());
        drop(local);
        assert_eq!(free(&budget), 1_000);
        assert_eq!(budget.overdraft.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_record_larger_than_the_bound_waits_for_an_empty_queue() {
        let budget = Arc::new(Budget::new(1_000));
        let small = budget.take(10).await.expect("room");
        assert!(budget.take(5_000).now_or_never().is_none());
        drop(small);
        let big = budget.take(5_000).await.expect("an empty queue takes it");
        assert_eq!(budget.stats().bytes, 5_128);
        drop(big);
        assert_eq!(free(&budget), 1_000);
    }

    #[tokio::test]
    async fn room_covering_less_than_it_holds_keeps_what_it_holds() {
        let budget = Arc::new(Budget::new(1_000));
        let mut room = budget.take(300).await.expect("room");
        room.cover(100);
        assert_eq!(budget.stats().bytes, 428);
        drop(room);
        assert_eq!(free(&budget), 1_000);
    }
}
