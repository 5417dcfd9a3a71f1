//! The ledger: ground truth of every call the mock served, with tokens and cost.
//!
//! Each API request gets a [`Ticket`] when it arrives; the ticket becomes a [`LedgerEntry`]
//! when the call ends: when the response is sent, when a stream finishes or is cut, or, through
//! `Drop`, when the client goes away first. So no call can go unrecorded, whatever path it takes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::ids::unix_ms;
use super::pricing::PriceTable;

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A complete successful answer was sent.
    Ok,
    /// An error response (auth, validation, injected) was sent.
    Error,
    /// The mock cut the connection on purpose (fault or directive).
    Dropped,
    /// The client disconnected before the answer was complete.
    ClientGone,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Dropped => "dropped",
            Outcome::ClientGone => "client_gone",
        }
    }
}

/// One served call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Arrival order, starting at 1, never reused (not even after a clear).
    pub seq: u64,
    /// The request id the mock returned (`x-request-id` / `request-id`).
    pub request_id: String,
    /// The incoming `x-starling-request-id` header, so the gateway's calls can be matched.
    pub upstream_request_id_header: Option<String>,
    /// The request's end-user tag (OpenAI `user`, Anthropic `metadata.user_id`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `openai.chat`, `openai.completions`, `openai.embeddings`, `azure.chat`,
    /// `azure.completions`, `azure.embeddings`, `anthropic.messages`, `anthropic.count_tokens`.
    pub api: String,
    /// Requested model (the deployment name for Azure); empty if the body had none.
    pub model: String,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// Prompt tokens billed (0 for errors and for `count_tokens`, which is free).
    pub input_tokens: u64,
    /// The part of `input_tokens` reported as read from the prompt cache.
    pub cached_input_tokens: u64,
    /// Output tokens generated (for cut streams: those sent before the cut).
    pub output_tokens: u64,
    /// Cost in micro-dollars from the built-in price table.
    pub cost_micros: u64,
    /// HTTP status sent (0 if none was sent: dropped before headers or client gone).
    pub status: u16,
    /// How the call ended.
    pub outcome: Outcome,
    /// When the request arrived (ms since the Unix epoch).
    pub started_at_ms: u64,
    /// When the call ended (ms since the Unix epoch).
    pub completed_at_ms: u64,
}

/// Totals for one model (or overall).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelTotals {
    /// Calls recorded.
    pub calls: u64,
    /// Sum of `input_tokens`.
    pub input_tokens: u64,
    /// Sum of `cached_input_tokens`.
    pub cached_input_tokens: u64,
    /// Sum of `output_tokens`.
    pub output_tokens: u64,
    /// Sum of `cost_micros`.
    pub cost_micros: u64,
}

impl ModelTotals {
    fn add(&mut self, e: &LedgerEntry) {
        self.calls += 1;
        self.input_tokens += e.input_tokens;
        self.cached_input_tokens += e.cached_input_tokens;
        self.output_tokens += e.output_tokens;
        self.cost_micros += e.cost_micros;
    }
}

/// Aggregates over all calls since the last clear (exact even when old entries were evicted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerSummary {
    /// Calls recorded.
    pub calls: u64,
    /// Sum of `input_tokens`.
    pub input_tokens: u64,
    /// Sum of `cached_input_tokens`.
    pub cached_input_tokens: u64,
    /// Sum of `output_tokens`.
    pub output_tokens: u64,
    /// Sum of `cost_micros`.
    pub cost_micros: u64,
    /// Totals per model.
    pub by_model: BTreeMap<String, ModelTotals>,
    /// Call counts per outcome (`ok`, `error`, `dropped`, `client_gone`).
    pub by_outcome: BTreeMap<String, u64>,
    /// Entries still held (less than `calls` once `ledger_limit` evicted some).
    pub retained_entries: u64,
}

#[derive(Default)]
struct Inner {
    entries: VecDeque<LedgerEntry>,
    summary: LedgerSummary,
}

/// The record of all calls. Shared between the server and its [`super::MockServer`] handle.
pub struct Ledger {
    next_seq: AtomicU64,
    /// Tickets recorded so far (not reset by `clear`), to compute calls in flight.
    closed: AtomicU64,
    limit: Option<usize>,
    inner: Mutex<Inner>,
}

impl Ledger {
    pub(crate) fn new(limit: Option<usize>) -> Self {
        Self {
            next_seq: AtomicU64::new(1),
            closed: AtomicU64::new(0),
            limit,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// A poisoned lock only means another thread panicked while holding it; the data (plain
    /// counters and a queue) is still consistent, so keep going.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a ticket for a call that just arrived.
    pub(crate) fn open(
        self: &Arc<Self>,
        api: &'static str,
        request_id: &str,
        upstream: Option<&str>,
    ) -> Ticket {
        let seq = self.next_seq.fetch_add(1, Ordering::AcqRel);
        Ticket {
            ledger: Arc::clone(self),
            entry: Some(LedgerEntry {
                seq,
                request_id: request_id.to_owned(),
                upstream_request_id_header: upstream.map(str::to_owned),
                user: None,
                api: api.to_owned(),
                model: String::new(),
                stream: false,
                input_tokens: 0,
                cached_input_tokens: 0,
                output_tokens: 0,
                cost_micros: 0,
                status: 0,
                outcome: Outcome::ClientGone,
                started_at_ms: unix_ms(),
                completed_at_ms: 0,
            }),
        }
    }

    fn record(&self, mut e: LedgerEntry) {
        e.completed_at_ms = unix_ms();
        e.cost_micros = PriceTable::builtin().cost_micros(
            &e.model,
            e.input_tokens,
            e.cached_input_tokens,
            e.output_tokens,
        );
        tracing::debug!(seq = e.seq, api = %e.api, model = %e.model, outcome = e.outcome.as_str(),
            status = e.status, input = e.input_tokens, output = e.output_tokens, "call recorded");
        let mut inner = self.lock();
        let s = &mut inner.summary;
        s.calls += 1;
        s.input_tokens += e.input_tokens;
        s.cached_input_tokens += e.cached_input_tokens;
        s.output_tokens += e.output_tokens;
        s.cost_micros += e.cost_micros;
        s.by_model.entry(e.model.clone()).or_default().add(&e);
        *s.by_outcome
            .entry(e.outcome.as_str().to_owned())
            .or_default() += 1;
        inner.entries.push_back(e);
        if let Some(limit) = self.limit {
            while inner.entries.len() > limit {
                inner.entries.pop_front();
            }
        }
        drop(inner);
        self.closed.fetch_add(1, Ordering::Release);
    }

    /// Calls that arrived but are not recorded yet (in progress, streaming or hanging).
    pub fn in_flight(&self) -> u64 {
        let closed = self.closed.load(Ordering::Acquire);
        let opened = self.next_seq.load(Ordering::Acquire) - 1;
        opened.saturating_sub(closed)
    }

    /// All retained entries, ordered by `seq` (arrival order).
    pub fn snapshot(&self) -> Vec<LedgerEntry> {
        let mut v: Vec<LedgerEntry> = self.lock().entries.iter().cloned().collect();
        v.sort_by_key(|e| e.seq);
        v
    }

    /// Totals since the last clear.
    pub fn summary(&self) -> LedgerSummary {
        let inner = self.lock();
        let mut s = inner.summary.clone();
        s.retained_entries = inner.entries.len() as u64;
        s
    }

    /// Forgets all entries and totals (sequence numbers keep increasing).
    pub fn clear(&self) {
        *self.lock() = Inner::default();
    }
}

/// A call in progress. Recorded exactly once: by [`Ticket::finish`], or as `client_gone` when
/// dropped unfinished (the request future or stream task was dropped because the client left).
pub(crate) struct Ticket {
    ledger: Arc<Ledger>,
    entry: Option<LedgerEntry>,
}

impl Ticket {
    fn entry(&mut self) -> Option<&mut LedgerEntry> {
        self.entry.as_mut()
    }

    pub(crate) fn set_model(&mut self, model: &str) {
        if let Some(e) = self.entry() {
            model.clone_into(&mut e.model);
        }
    }

    pub(crate) fn set_user(&mut self, user: &str) {
        if let Some(e) = self.entry() {
            e.user = Some(user.to_owned());
        }
    }

    pub(crate) fn set_stream(&mut self, stream: bool) {
        if let Some(e) = self.entry() {
            e.stream = stream;
        }
    }

    pub(crate) fn set_status(&mut self, status: u16) {
        if let Some(e) = self.entry() {
            e.status = status;
        }
    }

    /// Sets the usage to bill.
    pub(crate) fn set_usage(&mut self, input: u64, cached: u64, output: u64) {
        if let Some(e) = self.entry() {
            e.input_tokens = input;
            e.cached_input_tokens = cached;
            e.output_tokens = output;
        }
    }

    /// Sets only the output tokens (a stream that was cut records what it sent).
    pub(crate) fn set_output(&mut self, output: u64) {
        if let Some(e) = self.entry() {
            e.output_tokens = output;
        }
    }

    /// Moves the pending entry into a new ticket (for a stream task), leaving this one inert.
    pub(crate) fn detach(&mut self) -> Ticket {
        Ticket {
            ledger: Arc::clone(&self.ledger),
            entry: self.entry.take(),
        }
    }

    /// Records the call now with this outcome. Later calls are no-ops.
    pub(crate) fn finish(&mut self, outcome: Outcome) {
        if let Some(mut e) = self.entry.take() {
            e.outcome = outcome;
            if outcome == Outcome::Error {
                // Providers do not bill failed calls.
                e.input_tokens = 0;
                e.cached_input_tokens = 0;
                e.output_tokens = 0;
            }
            self.ledger.record(e);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.finish(Outcome::ClientGone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_record_once_and_on_drop() {
        let l = Arc::new(Ledger::new(Some(2)));
        let mut t = l.open("openai.chat", "req_1", Some("up-1"));
        t.set_model("gpt-4o-mini");
        t.set_usage(100, 0, 10);
        t.set_status(200);
        t.finish(Outcome::Ok);
        t.finish(Outcome::Error);
        drop(t);
        {
            let mut t2 = l.open("anthropic.messages", "req_2", None);
            t2.set_model("claude-haiku-4-5");
            t2.set_usage(10, 0, 3);
        }
        let mut t3 = l.open("openai.chat", "req_3", None);
        t3.set_usage(5, 0, 5);
        t3.set_status(429);
        t3.finish(Outcome::Error);

        let s = l.summary();
        assert_eq!(s.calls, 3);
        assert_eq!(s.retained_entries, 2, "limit keeps the newest two");
        assert_eq!(s.by_outcome.get("ok"), Some(&1));
        assert_eq!(s.by_outcome.get("client_gone"), Some(&1));
        assert_eq!(s.by_outcome.get("error"), Some(&1));
        // 100 × 0.15 + 10 × 0.6 = 15 + 6; 10 × 1 + 3 × 5 = 25.
        assert_eq!(s.cost_micros, 21 + 25);
        let snap = l.snapshot();
        assert_eq!(snap.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(snap[0].outcome, Outcome::ClientGone);
        assert_eq!(snap[1].input_tokens, 0, "errors are not billed");
        l.clear();
        assert_eq!(l.summary().calls, 0);
        assert!(l.snapshot().is_empty());
        assert_eq!(l.in_flight(), 0);
        let pending = l.open("openai.chat", "req_4", None);
        assert_eq!(l.in_flight(), 1);
        drop(pending);
        assert_eq!(l.in_flight(), 0);
    }
}
