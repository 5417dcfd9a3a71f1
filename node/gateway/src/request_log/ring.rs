//! The in-memory ring of recent request records and its filters.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use super::RequestRecord;

/// A bounded ring of records: the oldest is dropped when a new one arrives at capacity.
#[derive(Debug)]
pub struct Ring {
    capacity: usize,
    records: Mutex<VecDeque<Arc<RequestRecord>>>,
}

/// Which statuses a query wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Exactly this status.
    Exact(u16),
    /// A class: `4` for 4xx, `5` for 5xx.
    Class(u16),
}

impl StatusFilter {
    /// Parses `429` or `4xx`.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if let Some(class) = text.strip_suffix("xx").or_else(|| text.strip_suffix("XX")) {
            return class
                .parse::<u16>()
                .ok()
                .filter(|c| (1..=5).contains(c))
                .map(Self::Class);
        }
        text.parse::<u16>()
            .ok()
            .filter(|s| (100..=599).contains(s))
            .map(Self::Exact)
    }

    fn matches(self, status: u16) -> bool {
        match self {
            Self::Exact(s) => status == s,
            Self::Class(c) => status / 100 == c,
        }
    }
}

/// What a query of the ring selects. Every set field must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// The virtual key's id.
    pub key_id: Option<String>,
    /// The public model (as recorded).
    pub model: Option<String>,
    /// The status or status class.
    pub status: Option<StatusFilter>,
    /// Arrived at or after this time, epoch milliseconds.
    pub since_ms: Option<u64>,
    /// At most this many records (the newest).
    pub limit: usize,
}

impl Filter {
    fn matches(&self, r: &RequestRecord) -> bool {
        self.key_id
            .as_deref()
            .is_none_or(|k| r.key_id.as_deref() == Some(k))
            && self
                .model
                .as_deref()
                .is_none_or(|m| r.model.as_deref() == Some(m))
            && self.status.is_none_or(|s| s.matches(r.status))
            && self.since_ms.is_none_or(|t| r.time_ms >= t)
    }
}

impl Ring {
    /// An empty ring holding at most `capacity` records (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            // Grows as records arrive, so a large capacity costs nothing until used.
            records: Mutex::new(VecDeque::new()),
        }
    }

    /// Most records held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Adds a record, dropping the oldest at capacity.
    pub fn push(&self, record: Arc<RequestRecord>) {
        // A panic elsewhere while holding the lock leaves a ring that is still consistent.
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if records.len() == self.capacity {
            records.pop_front();
        }
        records.push_back(record);
    }

    /// The newest records matching `filter`, newest first. The lock is held while scanning
    /// (at most `capacity` records, comparing fields), never while serialising.
    pub fn query(&self, filter: &Filter) -> Vec<Arc<RequestRecord>> {
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        records
            .iter()
            .rev()
            .filter(|r| filter.matches(r))
            .take(filter.limit)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64, key: &str, model: &str, status: u16) -> Arc<RequestRecord> {
        Arc::new(RequestRecord {
            id: format!("r{n}"),
            time_ms: 1_000 + n,
            key_id: Some(key.to_owned()),
            model: Some(model.to_owned()),
            status,
            ..RequestRecord::default()
        })
    }

    fn ids(records: &[Arc<RequestRecord>]) -> Vec<&str> {
        records.iter().map(|r| r.id.as_str()).collect()
    }

    fn all(limit: usize) -> Filter {
        Filter {
            limit,
            ..Filter::default()
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_up_to_its_capacity() {
        let ring = Ring::new(3);
        for n in 0..5 {
            ring.push(record(n, "k", "m", 200));
        }
        assert_eq!(ids(&ring.query(&all(10))), ["r4", "r3", "r2"]);
        assert_eq!(ids(&ring.query(&all(2))), ["r4", "r3"]);
    }

    #[test]
    fn filters_combine() {
        let ring = Ring::new(10);
        ring.push(record(0, "a", "gpt", 200));
        ring.push(record(1, "b", "gpt", 429));
        ring.push(record(2, "a", "claude", 502));
        ring.push(record(3, "a", "gpt", 500));
        let by_key = Filter {
            key_id: Some("a".to_owned()),
            ..all(10)
        };
        assert_eq!(ids(&ring.query(&by_key)), ["r3", "r2", "r0"]);
        let key_and_model = Filter {
            model: Some("gpt".to_owned()),
            ..by_key.clone()
        };
        assert_eq!(ids(&ring.query(&key_and_model)), ["r3", "r0"]);
        let server_errors = Filter {
            status: StatusFilter::parse("5xx"),
            ..all(10)
        };
        assert_eq!(ids(&ring.query(&server_errors)), ["r3", "r2"]);
        let exact = Filter {
            status: StatusFilter::parse("429"),
            ..all(10)
        };
        assert_eq!(ids(&ring.query(&exact)), ["r1"]);
        let since = Filter {
            since_ms: Some(1_002),
            ..all(10)
        };
        assert_eq!(ids(&ring.query(&since)), ["r3", "r2"]);
    }

    #[test]
    fn status_filters_parse() {
        assert_eq!(StatusFilter::parse("4xx"), Some(StatusFilter::Class(4)));
        assert_eq!(StatusFilter::parse("200"), Some(StatusFilter::Exact(200)));
        assert_eq!(StatusFilter::parse("9xx"), None);
        assert_eq!(StatusFilter::parse("42"), None);
        assert_eq!(StatusFilter::parse("ok"), None);
    }
}
