//! The spans of one request. Each type wraps an `Option`: `None` when tracing is off, so the
//! request path calls the same methods either way and, off, builds and allocates nothing.

use std::sync::Arc;

use http::HeaderMap;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_http::HeaderInjector;

use super::Tracing;
use starling_wire::translate::Usage;

/// A live span and what its children need.
struct Active {
    tracing: Arc<Tracing>,
    cx: Context,
    operation: &'static str,
}

/// The span of one request (kind `SERVER`), named `{gen_ai.operation.name} {model}`.
pub struct RequestSpan(Option<Active>);

impl std::fmt::Debug for RequestSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "RequestSpan(on)"
        } else {
            "RequestSpan(off)"
        })
    }
}

impl Default for RequestSpan {
    fn default() -> Self {
        Self::off()
    }
}

/// How a request ended, for its span. Built on the stack from borrowed values, so building
/// it costs nothing when tracing is off.
#[derive(Debug, Default)]
pub struct Finish<'a> {
    /// The HTTP status answered (200 for a stream that started).
    pub status: u16,
    /// `error.type` and a message, when the request failed.
    pub error: Option<(&'a str, &'a str)>,
    /// The configured provider that answered and its `gen_ai.provider.name`.
    pub provider: Option<(&'a str, &'static str)>,
    /// The public model that answered (after fallbacks).
    pub model: Option<&'a str>,
    /// The provider's model name that answered (`gen_ai.response.model`).
    pub response_model: Option<&'a str>,
    /// Token usage reported by the provider.
    pub usage: Option<&'a Usage>,
    /// Cost in micro-dollars.
    pub cost_micros: Option<u64>,
    /// `gen_ai.response.finish_reasons`.
    pub finish_reasons: &'a [String],
    /// Upstream attempts made.
    pub attempts: u32,
}

impl RequestSpan {
    /// A span that records nothing.
    pub fn off() -> Self {
        Self(None)
    }

    pub(super) fn start(
        tracing: Arc<Tracing>,
        parent: &Context,
        operation: &'static str,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
    ) -> Self {
        let span = tracing
            .tracer
            .span_builder(operation)
            .with_kind(kind)
            .with_attributes(attributes)
            .start_with_context(&tracing.tracer, parent);
        let cx = parent.with_span(span);
        Self(Some(Active {
            tracing,
            cx,
            operation,
        }))
    }

    /// Whether tracing is on for this request (recording or not, its context propagates).
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// The trace id in hex, when tracing is on.
    pub fn trace_id(&self) -> Option<String> {
        let active = self.0.as_ref()?;
        Some(active.cx.span().span_context().trace_id().to_string())
    }

    /// Names the span after the requested model and records the request's parameters.
    pub fn set_request(&self, requested_model: &str, max_tokens: Option<u64>, stream: bool) {
        let Some(a) = &self.0 else { return };
        let span = a.cx.span();
        span.update_name(format!("{} {requested_model}", a.operation));
        span.set_attribute(KeyValue::new(
            "gen_ai.request.model",
            requested_model.to_owned(),
        ));
        if let Some(max) = max_tokens {
            span.set_attribute(KeyValue::new(
                "gen_ai.request.max_tokens",
                i64::try_from(max).unwrap_or(i64::MAX),
            ));
        }
        span.set_attribute(KeyValue::new("starling.stream", stream));
    }

    /// Records the request id and the virtual key (by id, never its secret).
    pub fn set_identity(&self, request_id: &str, key_id: Option<&str>) {
        let Some(a) = &self.0 else { return };
        let span = a.cx.span();
        span.set_attribute(KeyValue::new("starling.request_id", request_id.to_owned()));
        if let Some(key) = key_id {
            span.set_attribute(KeyValue::new("starling.virtual_key.id", key.to_owned()));
        }
    }

    /// A child span (kind `INTERNAL`) such as `starling.admission`; it ends when dropped.
    pub fn child(&self, name: &'static str) -> ChildSpan {
        let Some(a) = &self.0 else {
            return ChildSpan(None);
        };
        let span = a
            .tracing
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .start_with_context(&a.tracing.tracer, &a.cx);
        ChildSpan(Some(a.cx.with_span(span)))
    }

    /// The span of upstream attempt number `attempt` (from 1), kind `CLIENT`, named like a
    /// GenAI client span; its context goes upstream as `traceparent`.
    pub fn attempt(
        &self,
        attempt: u32,
        provider: &str,
        genai_provider: &'static str,
        upstream_model: &str,
        url: &str,
    ) -> AttemptSpan {
        let Some(a) = &self.0 else {
            return AttemptSpan::off();
        };
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", a.operation),
            KeyValue::new("gen_ai.provider.name", genai_provider),
            KeyValue::new("gen_ai.request.model", upstream_model.to_owned()),
            KeyValue::new("starling.attempt", i64::from(attempt)),
            KeyValue::new("starling.provider", provider.to_owned()),
            KeyValue::new("http.request.method", "POST"),
        ];
        if let Ok(parsed) = url.parse::<http::Uri>() {
            if let Some(host) = parsed.host() {
                attributes.push(KeyValue::new("server.address", host.to_owned()));
            }
            if let Some(port) = parsed.port_u16() {
                attributes.push(KeyValue::new("server.port", i64::from(port)));
            }
        }
        let span = a
            .tracing
            .tracer
            .span_builder(format!("{} {upstream_model}", a.operation))
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(&a.tracing.tracer, &a.cx);
        let cx = a.cx.with_span(span);
        let mut headers = HeaderMap::new();
        a.tracing
            .propagator
            .inject_context(&cx, &mut HeaderInjector(&mut headers));
        AttemptSpan {
            cx: Some(cx),
            headers,
        }
    }

    /// Ends the span with the request's outcome.
    pub fn finish(self, finish: &Finish<'_>) {
        let Some(a) = self.0 else { return };
        let span = a.cx.span();
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(finish.status),
        ));
        span.set_attribute(KeyValue::new(
            "starling.attempts",
            i64::from(finish.attempts),
        ));
        if let Some((name, genai)) = finish.provider {
            span.set_attribute(KeyValue::new("gen_ai.provider.name", genai));
            // The older attribute, still read by some backends.
            span.set_attribute(KeyValue::new("gen_ai.system", genai));
            span.set_attribute(KeyValue::new("starling.provider", name.to_owned()));
        }
        if let Some(model) = finish.model {
            span.set_attribute(KeyValue::new("starling.model", model.to_owned()));
        }
        if let Some(model) = finish.response_model {
            span.set_attribute(KeyValue::new("gen_ai.response.model", model.to_owned()));
        }
        if let Some(usage) = finish.usage {
            let input = usage.total_input();
            span.set_attribute(KeyValue::new("gen_ai.usage.input_tokens", tokens(input)));
            span.set_attribute(KeyValue::new(
                "gen_ai.usage.output_tokens",
                tokens(usage.output_tokens),
            ));
            if usage.cached_input_tokens > 0 {
                span.set_attribute(KeyValue::new(
                    "gen_ai.usage.cache_read.input_tokens",
                    tokens(usage.cached_input_tokens),
                ));
            }
            if usage.cache_write_tokens > 0 {
                span.set_attribute(KeyValue::new(
                    "gen_ai.usage.cache_creation.input_tokens",
                    tokens(usage.cache_write_tokens),
                ));
            }
        }
        if let Some(cost) = finish.cost_micros {
            span.set_attribute(KeyValue::new("starling.cost_micros", tokens(cost)));
            span.set_attribute(KeyValue::new(
                "starling.cost_usd",
                cost as f64 / 1_000_000.0,
            ));
        }
        if !finish.finish_reasons.is_empty() {
            let reasons: Vec<StringValue> = finish
                .finish_reasons
                .iter()
                .map(|r| StringValue::from(r.clone()))
                .collect();
            span.set_attribute(KeyValue::new(
                "gen_ai.response.finish_reasons",
                Value::Array(Array::String(reasons)),
            ));
        }
        if let Some((kind, message)) = finish.error {
            span.set_attribute(KeyValue::new("error.type", kind.to_owned()));
            span.set_status(Status::error(message.to_owned()));
        }
        span.end();
    }
}

fn tokens(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An internal child span; ends when dropped.
pub struct ChildSpan(Option<Context>);

impl ChildSpan {
    /// Records a boolean attribute.
    pub fn set_bool(&self, key: &'static str, value: bool) {
        if let Some(cx) = &self.0 {
            cx.span().set_attribute(KeyValue::new(key, value));
        }
    }

    /// Marks the span failed with `error.type`.
    pub fn fail(&self, kind: &str, message: &str) {
        if let Some(cx) = &self.0 {
            let span = cx.span();
            span.set_attribute(KeyValue::new("error.type", kind.to_owned()));
            span.set_status(Status::error(message.to_owned()));
        }
    }
}

impl Drop for ChildSpan {
    fn drop(&mut self) {
        if let Some(cx) = &self.0 {
            cx.span().end();
        }
    }
}

/// One upstream attempt's span, with the trace headers to send on its request.
pub struct AttemptSpan {
    cx: Option<Context>,
    headers: HeaderMap,
}

impl std::fmt::Debug for AttemptSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttemptSpan")
            .field("on", &self.cx.is_some())
            .finish()
    }
}

impl AttemptSpan {
    /// An attempt span that records nothing.
    pub fn off() -> Self {
        // `HeaderMap::new` does not allocate.
        Self {
            cx: None,
            headers: HeaderMap::new(),
        }
    }

    /// `traceparent` (and `tracestate`) for the upstream request; empty when off.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Records the upstream's HTTP status; 4xx and 5xx mark the attempt failed.
    pub fn status(&self, status: u16) {
        let Some(cx) = self.cx.as_ref() else { return };
        let span = cx.span();
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        if status >= 400 {
            span.set_attribute(KeyValue::new("error.type", status.to_string()));
            span.set_status(Status::error(format!("upstream answered {status}")));
        }
    }

    /// Marks the attempt failed without (or after) a status: connect error, timeout, a
    /// broken or unreadable body.
    pub fn fail(&self, kind: &str, message: &str) {
        let Some(cx) = self.cx.as_ref() else { return };
        let span = cx.span();
        span.set_attribute(KeyValue::new("error.type", kind.to_owned()));
        span.set_status(Status::error(message.to_owned()));
    }
}

impl Drop for AttemptSpan {
    fn drop(&mut self) {
        if let Some(cx) = &self.cx {
            cx.span().end();
        }
    }
}
