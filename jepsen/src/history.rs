//! The history: every client and admin operation of a run, one JSON line each.
//!
//! Times are milliseconds since the Unix epoch on the harness's clock, which is also the mock
//! provider's clock (both run in the harness process), so history and ledger line up. Node
//! clocks may be skewed on purpose; nothing here reads them.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch on the harness's clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How an operation ended, from the client's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Acknowledged: a success response was received in full.
    Ok,
    /// Refused before anything reached the provider (auth, limits, budget, fail-closed).
    Rejected,
    /// Definitely not performed: the connection to the node could not be made.
    Failed,
    /// Unknown: a timeout, a broken connection, or an upstream error after sending. The
    /// provider may or may not have served it.
    Indeterminate,
}

/// What an operation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum OpKind {
    /// A chat completion through the gateway.
    Chat {
        /// The secret's generation (0 = as created, 1 = after the first rotation, ...).
        secret_generation: u32,
        /// The `max_tokens` asked for.
        max_tokens: u64,
    },
    /// An admin API write.
    Admin {
        /// `create`, `update`, `rotate` or `revoke`.
        action: String,
    },
}

/// One operation, recorded when it completes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Unique in the run; chat operations send it upstream as `user = "op-<id>"`.
    pub id: u64,
    /// `budget`, `rate`, `catalog` or `probe`.
    pub workload: String,
    /// Which client (task) ran it.
    pub client: u32,
    /// The node it went to (0-based host index).
    pub node: usize,
    /// The virtual key it used or changed (its id).
    pub key: String,
    /// What it did.
    #[serde(flatten)]
    pub kind: OpKind,
    /// When it was sent.
    pub invoke_ms: u64,
    /// When it completed (or gave up).
    pub complete_ms: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// HTTP status, if one came back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The gateway's error code (`x-starling-error-code`) or the transport error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Op {
    /// The `user` tag sent upstream, which the mock's ledger records.
    pub fn user_tag(id: u64) -> String {
        format!("op-{id}")
    }

    /// The operation id in a ledger entry's `user` tag.
    pub fn parse_user_tag(tag: &str) -> Option<u64> {
        tag.strip_prefix("op-")?.parse().ok()
    }

    /// Latency in milliseconds.
    pub fn latency_ms(&self) -> u64 {
        self.complete_ms.saturating_sub(self.invoke_ms)
    }
}

/// Appends operations to `history.jsonl` as they complete, and keeps them for the checkers.
#[derive(Debug)]
pub struct History {
    inner: Mutex<HistoryInner>,
}

#[derive(Debug)]
struct HistoryInner {
    file: std::io::BufWriter<std::fs::File>,
    ops: Vec<Op>,
}

impl History {
    /// A history written to `path` (truncated).
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let file = std::io::BufWriter::new(std::fs::File::create(path)?);
        Ok(Self {
            inner: Mutex::new(HistoryInner {
                file,
                ops: Vec::new(),
            }),
        })
    }

    /// Records a completed operation.
    pub fn record(&self, op: Op) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(line) = serde_json::to_string(&op) {
            // A history that cannot be written is reported at the end by `finish`.
            let _ = writeln!(inner.file, "{line}");
        }
        inner.ops.push(op);
    }

    /// Flushes the file and returns every operation, in completion order.
    pub fn finish(&self) -> std::io::Result<Vec<Op>> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.file.flush()?;
        Ok(inner.ops.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip_as_json_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("history.jsonl");
        let history = History::create(&path).expect("create");
        let op = Op {
            id: 7,
            workload: "budget".into(),
            client: 1,
            node: 2,
            key: "vk_1".into(),
            kind: OpKind::Chat {
                secret_generation: 0,
                max_tokens: 32,
            },
            invoke_ms: 10,
            complete_ms: 15,
            outcome: Outcome::Rejected,
            status: Some(429),
            error: Some("budget_exceeded".into()),
        };
        history.record(op.clone());
        assert_eq!(history.finish().expect("finish"), vec![op.clone()]);
        let text = std::fs::read_to_string(&path).expect("read");
        let back: Op = serde_json::from_str(text.trim()).expect("parse");
        assert_eq!(back, op);
        assert_eq!(Op::parse_user_tag(&Op::user_tag(7)), Some(7));
        assert_eq!(Op::parse_user_tag("someone"), None);
    }
}
