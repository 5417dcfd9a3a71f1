//! Request logs: one [`RequestRecord`] per request, built once where the request settles
//! (`proxy/settle.rs`), kept in a bounded in-memory ring ([`ring`]) that `GET /admin/v1/logs`
//! reads, and optionally appended to JSON-lines files with size-based rotation by a writer
//! thread ([`file`]).
//!
//! Recording never waits: the ring's lock is held only to push or copy out `Arc`s, and the
//! file writer is fed through a bounded queue; when it is full, the record is counted in
//! `starling_request_log_dropped_total` and dropped.

pub mod file;
pub mod ring;

use std::sync::Arc;

use serde::Serialize;

pub use file::FileSink;
pub use ring::{Filter, Ring, StatusFilter};

use crate::config::RequestLogConfig;

/// Records not written to the request log file, by `reason` (`queue_full`, `write_failed`).
pub const DROPPED: &str = "starling_request_log_dropped_total";

/// One request, as the request log keeps it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RequestRecord {
    /// Starling's request id (the `x-request-id` header).
    pub id: String,
    /// Arrival time, epoch milliseconds.
    pub time_ms: u64,
    /// Arrival time, written as RFC 3339 (UTC).
    pub time: Rfc3339,
    /// The route's label (`chat_completions`, `messages`, …).
    pub route: &'static str,
    /// The public model that answered (after fallbacks), the resolved model for a request that
    /// failed after resolution, else the name the client sent, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The provider that answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The virtual key's id (never its secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// HTTP status answered (200 for a stream that started).
    pub status: u16,
    /// Whether the response was a stream.
    pub stream: bool,
    /// Arrival to settlement (the last byte of a stream), milliseconds.
    pub latency_ms: f64,
    /// Input tokens, cached and cache writes included.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cost, micro-dollars (1e-6 USD).
    pub cost_micros: u64,
    /// What went wrong, for failed requests and streams cut short.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Upstream attempts made (0 when the request never reached one).
    pub attempts: u32,
    /// The OpenTelemetry trace id, when tracing is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The start of the request body, with `request_log.bodies` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    /// The start of the response body (the client's frames for a stream), with
    /// `request_log.bodies` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
}

/// A time in epoch milliseconds that serialises as RFC 3339: formatted when a record is
/// written out, not when it is built on the request path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rfc3339(pub u64);

impl Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&crate::time::rfc3339(self.0))
    }
}

/// The node's request log: the ring and the optional file.
#[derive(Debug)]
pub struct RequestLog {
    ring: Option<Ring>,
    file: Option<FileSink>,
    bodies: Option<usize>,
}

impl RequestLog {
    /// Builds the log from `[request_log]`; `None` when it keeps nothing, so the request path
    /// builds no record at all.
    pub fn from_config(config: &RequestLogConfig) -> std::io::Result<Option<Arc<Self>>> {
        if !config.enabled() {
            return Ok(None);
        }
        let ring = (config.capacity > 0).then(|| Ring::new(config.capacity));
        let file = match &config.file {
            Some(path) => Some(FileSink::start(
                path.clone(),
                config.max_file_bytes,
                config.keep_files,
                config.queue,
            )?),
            None => None,
        };
        Ok(Some(Arc::new(Self {
            ring,
            file,
            bodies: config.bodies.then_some(config.max_body_bytes),
        })))
    }

    /// The longest body prefix to record, when bodies are recorded at all.
    pub fn body_limit(&self) -> Option<usize> {
        self.bodies
    }

    /// Keeps a record: into the ring, and queued for the file without waiting.
    pub fn record(&self, record: RequestRecord) {
        let record = Arc::new(record);
        if let Some(file) = &self.file {
            file.send(record.clone());
        }
        if let Some(ring) = &self.ring {
            ring.push(record);
        }
    }

    /// The newest records matching `filter`, newest first.
    pub fn query(&self, filter: &Filter) -> Vec<Arc<RequestRecord>> {
        self.ring
            .as_ref()
            .map(|r| r.query(filter))
            .unwrap_or_default()
    }

    /// How many records the ring holds at most (0 when it is off).
    pub fn capacity(&self) -> usize {
        self.ring.as_ref().map_or(0, Ring::capacity)
    }

    /// Writes what is queued and closes the file; later records go to the ring only.
    pub fn close(&self) {
        if let Some(file) = &self.file {
            file.close();
        }
    }
}

/// The first `limit` bytes of a body as text (lossy UTF-8, cut at a character boundary).
pub fn body_prefix(body: &[u8], limit: usize) -> String {
    let cut = &body[..body.len().min(limit)];
    match std::str::from_utf8(cut) {
        Ok(text) => text.to_owned(),
        // A multi-byte character cut in two at the limit: drop the partial character.
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&cut[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(cut).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_prefixes_are_bounded_and_valid_text() {
        assert_eq!(body_prefix(b"hello", 3), "hel");
        assert_eq!(body_prefix(b"hi", 10), "hi");
        // "é" is two bytes; a cut inside it drops it rather than emitting a replacement.
        assert_eq!(body_prefix("aé".as_bytes(), 2), "a");
    }

    #[test]
    fn an_empty_config_keeps_nothing() {
        let off = RequestLogConfig {
            capacity: 0,
            file: None,
            ..RequestLogConfig::default()
        };
        assert!(RequestLog::from_config(&off).expect("no I/O").is_none());
    }
}
