//! What the request log and the trace learn about a request on its way, carried to the one
//! place it ends: settlement, or the error answer before there was anything to settle.
//!
//! With tracing and the request log both off, a [`Trail`] holds nothing and every method
//! returns at its first check, so the request path pays a few branches and no allocation.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde_json::Value;

use super::outcome::Outcome;
use crate::request_log::{RequestLog, RequestRecord, Rfc3339, body_prefix};
use crate::telemetry::{AttemptSpan, Finish, RequestSpan};
use starling_wire::api::Endpoint;

/// Observations of one request, until it ends.
#[derive(Debug, Default)]
pub(crate) struct Trail {
    /// The request's span; inert when tracing is off.
    pub span: RequestSpan,
    /// The span of the attempt that answered; ends with the request.
    pub attempt_span: Option<AttemptSpan>,
    /// The resolved public model, once resolution got that far.
    pub model: Option<String>,
    /// Its metric label (see [`crate::routing::ModelRoute::metric_label`]).
    pub metric_model: Option<metrics::SharedString>,
    log: Option<Arc<RequestLog>>,
    time_ms: u64,
    key_id: Option<String>,
    requested_model: Option<String>,
    stream: bool,
    /// Upstream attempts made so far.
    pub attempts: u32,
    request_body: Option<Bytes>,
    /// The start of the client's response frames, for streams, with bodies on.
    pub response_body: Option<BytesMut>,
    /// Finish reasons seen, when tracing is on.
    pub finish_reasons: Vec<String>,
    open: bool,
}

impl Trail {
    /// Starts observing a request.
    pub fn start(
        telemetry: &crate::telemetry::Telemetry,
        log: Option<&Arc<RequestLog>>,
        endpoint: Endpoint,
        path: &str,
        headers: &http::HeaderMap,
    ) -> Self {
        let log = log.cloned();
        Self {
            span: telemetry.start_request(endpoint, path, headers),
            time_ms: if log.is_some() {
                crate::time::now_ms()
            } else {
                0
            },
            log,
            open: true,
            ..Self::default()
        }
    }

    /// Whether anything is recorded about this request.
    pub fn is_recording(&self) -> bool {
        self.log.is_some() || self.span.is_on()
    }

    /// Whether this request has not ended yet.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// How much of the response body to keep, when bodies are recorded.
    pub fn body_limit(&self) -> Option<usize> {
        self.log.as_ref().and_then(|l| l.body_limit())
    }

    /// Records the parsed request.
    pub fn set_request(&mut self, model: &str, max_tokens: Option<u64>, stream: bool, raw: &Bytes) {
        self.span.set_request(model, max_tokens, stream);
        if self.log.is_some() {
            self.requested_model = Some(model.to_owned());
            self.stream = stream;
            // A slice of the body's shared buffer: nothing is copied until the record.
            self.request_body = self
                .body_limit()
                .map(|limit| raw.slice(..raw.len().min(limit)));
        }
    }

    /// Records the request id and the virtual key that authenticated it.
    pub fn set_identity(&mut self, request_id: &str, key_id: Option<&str>) {
        self.span.set_identity(request_id, key_id);
        if self.log.is_some() {
            self.key_id = key_id.map(str::to_owned);
        }
    }

    /// Keeps the start of the response body (a whole body, or each frame of a stream in
    /// turn), when bodies are recorded.
    pub fn capture_body(&mut self, bytes: &[u8]) {
        let Some(limit) = self.body_limit() else {
            return;
        };
        let buffer = self
            .response_body
            .get_or_insert_with(|| BytesMut::with_capacity(limit.min(bytes.len())));
        let room = limit.saturating_sub(buffer.len());
        buffer.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Ends the request: closes its spans and keeps its record. Only the first call counts.
    pub fn finish(&mut self, outcome: &Outcome<'_>) {
        if !std::mem::take(&mut self.open) {
            return;
        }
        if let Some(attempt) = self.attempt_span.take() {
            if let Some(error) = &outcome.error {
                attempt.fail(error.kind(), error.message());
            }
            drop(attempt);
        }
        let span = std::mem::take(&mut self.span);
        let trace_id = if self.log.is_some() {
            span.trace_id()
        } else {
            None
        };
        span.finish(&Finish {
            status: outcome.status,
            error: outcome.error.as_ref().map(|e| (e.kind(), e.message())),
            provider: outcome.provider,
            model: outcome.model.or(self.model.as_deref()),
            response_model: outcome.response_model,
            usage: outcome.usage,
            cost_micros: outcome.usage.map(|_| outcome.cost_micros),
            finish_reasons: &self.finish_reasons,
            attempts: self.attempts,
        });
        let Some(log) = self.log.take() else { return };
        let usage = outcome.usage.copied().unwrap_or_default();
        let limit = log.body_limit().unwrap_or(0);
        log.record(RequestRecord {
            id: outcome.request_id.to_owned(),
            time_ms: self.time_ms,
            time: Rfc3339(self.time_ms),
            route: outcome.endpoint.label(),
            model: outcome
                .model
                .map(str::to_owned)
                .or_else(|| self.model.take())
                .or_else(|| self.requested_model.take()),
            provider: outcome.provider.map(|(name, _)| name.to_owned()),
            key_id: self.key_id.take(),
            status: outcome.status,
            stream: self.stream,
            latency_ms: outcome.started.elapsed().as_secs_f64() * 1_000.0,
            input_tokens: usage.total_input(),
            output_tokens: usage.output_tokens,
            cost_micros: outcome.cost_micros,
            error: outcome.error.as_ref().map(|e| e.message().to_owned()),
            attempts: self.attempts,
            trace_id,
            request_body: self
                .request_body
                .take()
                .map(|body| body_prefix(&body, limit)),
            response_body: self
                .response_body
                .take()
                .map(|body| body_prefix(&body, limit)),
        });
    }
}

/// `gen_ai.response.finish_reasons` of a whole response: OpenAI's `choices[].finish_reason`
/// or Anthropic's `stop_reason`.
pub(crate) fn finish_reasons(response: &Value) -> Vec<String> {
    if let Some(reason) = response.get("stop_reason").and_then(Value::as_str) {
        return vec![reason.to_owned()];
    }
    response
        .get("choices")
        .and_then(Value::as_array)
        .map(|choices| {
            choices
                .iter()
                .filter_map(|c| c.get("finish_reason").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The `finish_reason` string in an OpenAI stream chunk, found by scanning rather than
/// parsing (most chunks have none, or `null`).
pub(crate) fn chunk_finish_reason(data: &str) -> Option<&str> {
    let at = data.find("\"finish_reason\"")?;
    let after = data.get(at + 15..)?.trim_start().strip_prefix(':')?;
    let value = after.trim_start().strip_prefix('"')?;
    value.split('"').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons_in_both_dialects() {
        let openai = serde_json::json!({"choices": [{"finish_reason": "stop"}, {"finish_reason": "length"}]});
        assert_eq!(finish_reasons(&openai), ["stop", "length"]);
        let anthropic = serde_json::json!({"stop_reason": "end_turn"});
        assert_eq!(finish_reasons(&anthropic), ["end_turn"]);
        assert!(finish_reasons(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn stream_chunks_are_scanned() {
        assert_eq!(
            chunk_finish_reason(r#"{"choices":[{"delta":{},"finish_reason": "stop"}]}"#),
            Some("stop")
        );
        assert_eq!(
            chunk_finish_reason(r#"{"choices":[{"delta":{"content":"x"},"finish_reason":null}]}"#),
            None
        );
        assert_eq!(chunk_finish_reason(r#"{"choices":[]}"#), None);
    }

    #[test]
    fn an_inert_trail_records_nothing() {
        let mut trail = Trail::default();
        assert!(!trail.is_recording());
        trail.capture_body(b"body");
        assert!(trail.response_body.is_none());
        trail.set_identity("id", Some("vk_1"));
        assert!(trail.key_id.is_none());
    }
}
