//! Usage recording: settled requests are collected in memory and flushed into the replicated
//! counters in batches (group commit), off the request path.
//!
//! Each flush is one replica mutation with one delta for every counter cell touched since the
//! last one. With `governance.usage_durability = "acknowledged"` (the default) a flush starts
//! as soon as a record waits, and a request's response is completed only once the flush that
//! holds its usage is fsynced ([`UsageReceipt`]): no acknowledged spend is lost in a crash.
//! With `"batched"`, flushes run every `usage_flush_ms` without waiting for the fsync, and a
//! crash may lose the last interval of these *billing* figures. Either way the *enforcement*
//! figure (debited budget rights) is durable before use (docs/guarantees.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use starling_cluster::crdt::{CounterKey, Period, Usage};
use tokio::sync::{Notify, watch};

use super::model::USAGE_UNITS;

/// One settled request's usage, with where to count it.
#[derive(Debug)]
pub struct Record {
    /// The scopes charged: the key, then its team and customer.
    pub scopes: Vec<Arc<str>>,
    /// Extra periods to count in, per scope (budgets with their own duration).
    pub extra_periods: Vec<(Arc<str>, Period)>,
    /// What was used.
    pub usage: Usage,
    /// When it settled (epoch ms), which decides the periods.
    pub at_ms: u64,
}

/// Settled usage waiting for the next flush.
#[derive(Debug)]
pub struct UsageSink {
    pending: Mutex<Pending>,
    /// Wakes the flusher when a record waits (acknowledged durability).
    waiting: Notify,
    /// The highest record sequence number whose flush is durable.
    durable: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct Pending {
    records: Vec<Record>,
    /// Sequence number of the last record queued.
    last_seq: u64,
}

impl Default for UsageSink {
    fn default() -> Self {
        Self {
            pending: Mutex::default(),
            waiting: Notify::new(),
            durable: watch::Sender::new(0),
        }
    }
}

/// A settled request's place in the usage log: [`Self::durable`] completes once its usage is
/// on disk.
#[derive(Debug)]
pub struct UsageReceipt {
    sink: Arc<UsageSink>,
    seq: u64,
}

impl UsageReceipt {
    /// Waits until the record is durable (or the node is shutting down).
    pub async fn durable(self) {
        let mut durable = self.sink.durable.subscribe();
        // An error means the sink is gone with the node: nothing left to wait for.
        let _ = durable.wait_for(|&d| d >= self.seq).await;
    }
}

impl UsageSink {
    /// Queues a record and wakes the flusher; the receipt tells when it is durable.
    pub fn record(self: &Arc<Self>, record: Record) -> UsageReceipt {
        let seq = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.records.push(record);
            pending.last_seq += 1;
            pending.last_seq
        };
        self.waiting.notify_one();
        UsageReceipt {
            sink: Arc::clone(self),
            seq,
        }
    }

    /// Waits until a record is queued.
    pub async fn wait_for_records(&self) {
        self.waiting.notified().await;
    }

    /// Marks every record up to `seq` (from [`Self::drain`]) durable.
    pub fn mark_durable(&self, seq: u64) {
        self.durable.send_if_modified(|d| {
            let newer = seq > *d;
            *d = (*d).max(seq);
            newer
        });
    }

    /// Takes everything queued, summed per counter cell, with the last record's sequence
    /// number.
    pub fn drain(&self) -> (Vec<(CounterKey, Usage)>, u64) {
        let (records, last_seq) = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            (std::mem::take(&mut pending.records), pending.last_seq)
        };
        let mut cells: HashMap<CounterKey, Usage> = HashMap::new();
        for r in records {
            for scope in &r.scopes {
                for unit in USAGE_UNITS {
                    let key = CounterKey::new(scope.as_ref(), Period::containing(unit, r.at_ms));
                    let cell = cells.entry(key).or_default();
                    *cell = cell.saturating_add(r.usage);
                }
            }
            for (scope, period) in &r.extra_periods {
                let cell = cells
                    .entry(CounterKey::new(scope.as_ref(), *period))
                    .or_default();
                *cell = cell.saturating_add(r.usage);
            }
        }
        let mut out: Vec<_> = cells.into_iter().collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        (out, last_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_cluster::crdt::PeriodUnit;

    #[test]
    fn records_are_summed_per_cell_and_period() {
        let sink = Arc::new(UsageSink::default());
        let usage = Usage {
            spend_micros: 10,
            tokens: 5,
            requests: 1,
        };
        let key: Arc<str> = Arc::from("key/a");
        let team: Arc<str> = Arc::from("team/t");
        let every = Period::new(PeriodUnit::Every(3_600), 2);
        for _ in 0..3 {
            sink.record(Record {
                scopes: vec![key.clone(), team.clone()],
                extra_periods: vec![(key.clone(), every)],
                usage,
                at_ms: 1_000,
            });
        }
        let (cells, last) = sink.drain();
        assert_eq!(last, 3);
        assert_eq!(cells.len(), 2 * USAGE_UNITS.len() + 1);
        let day = CounterKey::new("team/t", Period::containing(PeriodUnit::Day, 1_000));
        let found = cells.iter().find(|(k, _)| *k == day).map(|(_, u)| *u);
        assert_eq!(found.map(|u| (u.spend_micros, u.requests)), Some((30, 3)));
        assert!(sink.drain().0.is_empty());
    }

    #[tokio::test]
    async fn a_receipt_completes_once_its_flush_is_durable() {
        let sink = Arc::new(UsageSink::default());
        let record = || Record {
            scopes: vec![Arc::from("key/k")],
            extra_periods: Vec::new(),
            usage: Usage::default(),
            at_ms: 1_000,
        };
        let first = sink.record(record());
        let (_, through) = sink.drain();
        let second = sink.record(record());
        let waiting = second.durable();
        tokio::pin!(waiting);
        sink.mark_durable(through);
        first.durable().await;
        // The second record was queued after the drain: its flush has not happened.
        assert!(futures::poll!(&mut waiting).is_pending());
        let (_, through) = sink.drain();
        sink.mark_durable(through);
        waiting.await;
    }
}
