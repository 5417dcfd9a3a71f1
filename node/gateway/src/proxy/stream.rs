//! Streaming responses: SSE passed through event by event, or translated between dialects,
//! never buffered whole.
//!
//! The stream is primed with its first event before the response starts, so a provider that
//! fails before sending anything can still be retried. After that, a failure becomes an error
//! event in the client's dialect. Dropping the body (the client went away) drops the upstream
//! connection with it, and settles what was generated so far.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, StatusCode, header};
use metrics::{SharedString, histogram};
use serde_json::Value;
use tokio::time::Instant;

use super::context::{RequestCtx, set_route_headers};
use super::outcome::{AttemptFailure, AttemptSuccess};
use super::prepare::Translation;
use super::settle::{Ending, Settlement, record_overhead};
use crate::metrics as m;
use starling_governance::usage::UsageReceipt;
use starling_providers::{ByteStream, UpstreamFailure};
use starling_wire::api::{ApiError, ApiFormat, ErrorKind};
use starling_wire::translate::sse::{self, SseEvent, SseParser};
use starling_wire::translate::{
    self, AnthropicToOpenAiStream, OpenAiToAnthropicStream, StreamTranslator, Usage,
};

/// Largest single SSE event accepted from upstream.
const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// How events are carried from the provider to the client.
enum Mode {
    /// OpenAI in, OpenAI out.
    PassOpenAi { strip_usage_chunk: bool },
    /// Anthropic in, Anthropic out.
    PassAnthropic,
    /// Different dialects: the translator writes the client's frames.
    Translate(Box<dyn StreamTranslator>),
}

#[derive(Debug, thiserror::Error)]
enum PumpError {
    #[error(transparent)]
    Upstream(#[from] UpstreamFailure),
    #[error("the upstream stream is malformed: {0}")]
    Protocol(String),
    #[error("the upstream closed the stream before it finished")]
    Truncated,
}

/// Moves events from the upstream body to the client.
struct Pump {
    upstream: ByteStream,
    parser: SseParser,
    mode: Mode,
    pending: VecDeque<Bytes>,
    usage: Usage,
    /// The upstream sent its terminal event.
    finished: bool,
    /// Nothing more will be produced.
    closed: bool,
    failed: bool,
    deadline: Instant,
    client_format: ApiFormat,
    provider: Arc<str>,
    attempt_started: Instant,
    settlement: Option<Settlement>,
    /// Collect finish reasons (tracing is on).
    want_reasons: bool,
    finish_reasons: Vec<String>,
}

/// A stream whose first events have arrived.
pub(super) struct Primed {
    pump: Pump,
    model: String,
    model_label: SharedString,
    upstream_wait: Duration,
}

/// Reads the upstream stream until its first event is ready for the client.
pub(super) async fn prime(
    ctx: &RequestCtx,
    success: AttemptSuccess<'_>,
    attempt_started: Instant,
    waited: Duration,
) -> Result<Primed, AttemptFailure> {
    let wire = success.prepared.endpoint.format();
    let mode = match (success.prepared.translation, wire) {
        (Translation::ChatViaMessages, _) => Mode::Translate(Box::new(
            AnthropicToOpenAiStream::new(&ctx.meta.model, ctx.meta.include_usage),
        )),
        (Translation::MessagesViaChat, _) => {
            Mode::Translate(Box::new(OpenAiToAnthropicStream::new(&ctx.meta.model)))
        }
        (Translation::None, ApiFormat::OpenAi) => Mode::PassOpenAi {
            strip_usage_chunk: success.prepared.strip_usage_chunk,
        },
        (Translation::None, ApiFormat::Anthropic) => Mode::PassAnthropic,
    };
    let provider = &success.deployment.provider;
    let mut pump = Pump {
        upstream: success.response.body,
        parser: SseParser::new(MAX_EVENT_BYTES),
        mode,
        pending: VecDeque::new(),
        usage: Usage::default(),
        finished: false,
        closed: false,
        failed: false,
        deadline: success.deadline,
        client_format: ctx.format(),
        provider: provider.name.clone(),
        attempt_started,
        settlement: None,
        want_reasons: false,
        finish_reasons: Vec::new(),
    };
    let first_byte = Duration::from_millis(provider.timeouts.first_byte_ms);
    let primed = tokio::time::timeout(first_byte, pump.fill()).await;
    let failure = match primed {
        Ok(Ok(())) if !pump.pending.is_empty() => None,
        Ok(Ok(())) => Some(PumpError::Truncated),
        Ok(Err(e)) => Some(e),
        Err(_) => Some(PumpError::Upstream(UpstreamFailure::Timeout {
            provider: provider.name.clone(),
            stage: "first byte",
        })),
    };
    if let Some(failure) = failure {
        let kind = match failure {
            PumpError::Upstream(UpstreamFailure::Timeout { .. }) => ErrorKind::Timeout,
            _ => ErrorKind::Upstream,
        };
        return Err(AttemptFailure::Retryable {
            error: ApiError::new(kind, failure.to_string()),
            retry_after: None,
        });
    }
    Ok(Primed {
        pump,
        model: success.route.name.clone(),
        model_label: success.route.metric_label.clone(),
        upstream_wait: waited + attempt_started.elapsed(),
    })
}

impl Primed {
    /// Starts the client's response.
    pub(super) fn into_response(mut self, ctx: &RequestCtx, settlement: Settlement) -> Response {
        record_overhead(ctx.endpoint, ctx.started, self.upstream_wait);
        histogram!(m::TIME_TO_FIRST_TOKEN, "model" => self.model_label.clone(), "provider" => SharedString::from_shared(self.pump.provider.clone()))
            .record(ctx.started.elapsed().as_secs_f64());
        let provider = self.pump.provider.clone();
        self.pump.want_reasons = settlement.trail.span.is_on();
        self.pump.settlement = Some(settlement);
        let body = futures::stream::unfold(self.pump, |mut pump| async move {
            pump.next_frame()
                .await
                .map(|frame| (Ok::<Bytes, Infallible>(frame), pump))
        });
        let mut response = Response::new(Body::from_stream(body));
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        // Tells nginx-style proxies in front not to buffer the stream.
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        set_route_headers(headers, &provider, &self.model);
        response
    }
}

impl Pump {
    /// The next frame for the client, or `None` when the stream is over.
    async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            // The terminal event acknowledges the spend to the client: settle before it goes
            // out, and hold it until the usage is durable where that is required.
            if self.finished
                && !self.failed
                && let Some(receipt) = self.settle(Ending::Completed)
            {
                receipt.durable().await;
            }
            if let Some(frame) = self.pending.pop_front() {
                if let Some(settlement) = &mut self.settlement {
                    settlement.trail.capture_body(&frame);
                }
                return Some(frame);
            }
            if self.closed {
                let ending = if self.failed {
                    Ending::UpstreamFailed
                } else {
                    Ending::Completed
                };
                if let Some(receipt) = self.settle(ending) {
                    receipt.durable().await;
                }
                return None;
            }
            if let Err(error) = self.fill().await {
                let request_id = self.settlement.as_ref().map(|s| s.request_id.clone());
                tracing::warn!(request_id = ?request_id, provider = %self.provider, "stream failed: {error}");
                let kind = match error {
                    PumpError::Upstream(UpstreamFailure::Timeout { .. }) => ErrorKind::Timeout,
                    _ => ErrorKind::Upstream,
                };
                self.pending.push_back(error_frame(
                    self.client_format,
                    &ApiError::new(kind, error.to_string()),
                ));
                self.closed = true;
                self.failed = true;
            }
        }
    }

    /// Reads upstream until a frame is pending or the stream has closed.
    async fn fill(&mut self) -> Result<(), PumpError> {
        loop {
            if !self.pending.is_empty() || self.closed {
                return Ok(());
            }
            match self.parser.next_event() {
                Err(e) => return Err(PumpError::Protocol(e.to_string())),
                Ok(Some(event)) => {
                    self.process(&event)?;
                    continue;
                }
                Ok(None) => {}
            }
            if self.finished {
                self.closed = true;
                return Ok(());
            }
            match tokio::time::timeout_at(self.deadline, self.upstream.next()).await {
                Err(_) => {
                    return Err(PumpError::Upstream(UpstreamFailure::Timeout {
                        provider: self.provider.clone(),
                        stage: "completion",
                    }));
                }
                Ok(Some(Ok(chunk))) => self.parser.push(&chunk),
                Ok(Some(Err(failure))) => return Err(failure.into()),
                Ok(None) => return self.upstream_ended(),
            }
        }
    }

    fn upstream_ended(&mut self) -> Result<(), PumpError> {
        if let Some(event) = self
            .parser
            .finish()
            .map_err(|e| PumpError::Protocol(e.to_string()))?
        {
            self.process(&event)?;
        }
        if !self.finished
            && let Mode::Translate(translator) = &mut self.mode
        {
            // Some servers end without their terminal event (OpenAI-compatible ones without
            // `[DONE]`); the translator closes the stream if the content had finished.
            self.pending.extend(translator.finish());
            self.finished = translator.finished();
        }
        if self.finished {
            self.closed = true;
            Ok(())
        } else {
            Err(PumpError::Truncated)
        }
    }

    fn process(&mut self, event: &SseEvent) -> Result<(), PumpError> {
        let protocol = |e: translate::TranslateError| PumpError::Protocol(e.to_string());
        match &mut self.mode {
            Mode::PassOpenAi { strip_usage_chunk } => {
                if self.want_reasons
                    && let Some(reason) = super::trail::chunk_finish_reason(&event.data)
                {
                    self.finish_reasons.push(reason.to_owned());
                }
                if event.data.trim() == "[DONE]" {
                    self.finished = true;
                } else if let Some(chunk) = parse_if_has_usage(&event.data) {
                    if let Some(usage) = translate::usage_from_openai(&chunk) {
                        self.usage = usage;
                    }
                    let usage_only = chunk
                        .get("choices")
                        .and_then(Value::as_array)
                        .is_some_and(Vec::is_empty);
                    if *strip_usage_chunk && usage_only {
                        return Ok(());
                    }
                }
                self.pending.push_back(event.raw.clone());
            }
            Mode::PassAnthropic => {
                match event.event.as_deref() {
                    Some("message_start" | "message_delta") => {
                        if let Ok(value) = serde_json::from_str::<Value>(&event.data) {
                            translate::merge_anthropic_stream_usage(&mut self.usage, &value);
                            if self.want_reasons
                                && let Some(reason) =
                                    value.pointer("/delta/stop_reason").and_then(Value::as_str)
                            {
                                self.finish_reasons.push(reason.to_owned());
                            }
                        }
                    }
                    Some("message_stop" | "error") => self.finished = true,
                    _ => {}
                }
                self.pending.push_back(event.raw.clone());
            }
            Mode::Translate(translator) => {
                self.pending
                    .extend(translator.on_event(event).map_err(protocol)?);
                self.finished = translator.finished();
            }
        }
        Ok(())
    }

    fn usage(&self) -> Usage {
        match &self.mode {
            Mode::Translate(t) => t.usage(),
            _ => self.usage,
        }
    }

    fn settle(&mut self, ending: Ending) -> Option<UsageReceipt> {
        let mut settlement = self.settlement.take()?;
        settlement.trail.finish_reasons = std::mem::take(&mut self.finish_reasons);
        histogram!(m::UPSTREAM_DURATION, "provider" => self.provider.to_string())
            .record(self.attempt_started.elapsed().as_secs_f64());
        settlement.settle(&self.usage(), 200, ending).1
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        // Dropped with a settlement pending: the client went away mid-stream. The upstream
        // connection closes with this struct; settle what was generated so far. Nobody is
        // left to acknowledge, so nothing waits for the receipt.
        let _ = self.settle(Ending::ClientGone);
    }
}

/// Parses an OpenAI chunk only when it carries a usage object, which is rare (the last chunk).
fn parse_if_has_usage(data: &str) -> Option<Value> {
    let at = data.find("\"usage\"")?;
    let after = data.get(at + 7..)?.trim_start().strip_prefix(':')?;
    if !after.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str(data).ok()
}

/// An error as an SSE frame in the client's dialect.
fn error_frame(format: ApiFormat, error: &ApiError) -> Bytes {
    let body = error.json(format);
    match format {
        ApiFormat::OpenAi => sse::openai_data_frame(&body),
        ApiFormat::Anthropic => sse::anthropic_event_frame("error", &body),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_if_has_usage;

    #[test]
    fn usage_chunks_are_recognised_cheaply() {
        assert!(parse_if_has_usage(r#"{"choices":[],"usage": {"prompt_tokens":1}}"#).is_some());
        assert!(parse_if_has_usage(r#"{"choices":[{"delta":{}}],"usage":null}"#).is_none());
        assert!(parse_if_has_usage(r#"{"choices":[{"delta":{"content":"x"}}]}"#).is_none());
    }
}
