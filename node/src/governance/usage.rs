//! Usage recording: settled requests are collected in memory and flushed into the replicated
//! counters in batches, off the request path.
//!
//! Each flush is one replica mutation with one delta for every counter cell touched since the
//! last one, appended to the log without waiting for its fsync. A crash may lose the last
//! flush interval of these *billing* figures; the *enforcement* figure (debited budget rights)
//! is durable before use and is never lost (docs/guarantees.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use starling_cluster::crdt::{CounterKey, Period, Usage};

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
#[derive(Debug, Default)]
pub struct UsageSink {
    pending: Mutex<Vec<Record>>,
}

impl UsageSink {
    /// Queues a record.
    pub fn record(&self, record: Record) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
    }

    /// Takes everything queued, summed per counter cell.
    pub fn drain(&self) -> Vec<(CounterKey, Usage)> {
        let records = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
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
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_cluster::crdt::PeriodUnit;

    #[test]
    fn records_are_summed_per_cell_and_period() {
        let sink = UsageSink::default();
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
        let cells = sink.drain();
        assert_eq!(cells.len(), 2 * USAGE_UNITS.len() + 1);
        let day = CounterKey::new("team/t", Period::containing(PeriodUnit::Day, 1_000));
        let found = cells.iter().find(|(k, _)| *k == day).map(|(_, u)| *u);
        assert_eq!(found.map(|u| (u.spend_micros, u.requests)), Some((30, 3)));
        assert!(sink.drain().is_empty());
    }
}
