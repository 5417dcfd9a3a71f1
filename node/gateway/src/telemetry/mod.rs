//! OpenTelemetry traces: one span per request, following the GenAI semantic conventions, with
//! child spans for admission, each upstream attempt and settlement; W3C trace context
//! continued from the client and propagated to the provider; OTLP/HTTP export in batches.
//!
//! - [`export`]: the OTLP exporter, its batch processor, and the export metrics;
//! - [`span`]: [`RequestSpan`] and its children, inert when tracing is off;
//! - [`genai`]: operation and provider names of the GenAI conventions.
//!
//! Off costs nothing on the request path: [`Telemetry::start_request`] returns a
//! [`RequestSpan`] holding `None`, every method on it is an `if let Some` that builds no
//! attribute, name or header, and allocates nothing (checked by `tests/tracing_off.rs`).

mod export;
pub mod genai;
mod span;

use std::sync::Arc;

use http::HeaderMap;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

pub use export::{EXPORT_ERRORS, EXPORTED_SPANS};
pub use span::{AttemptSpan, ChildSpan, Finish, RequestSpan};

use crate::config::TracingConfig;
use starling_wire::api::Endpoint;

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built (bad endpoint, HTTP client).
    #[error("cannot start the OTLP trace exporter: {0}")]
    Exporter(String),
}

/// The node's tracer, or nothing when tracing is off. Cheap to clone.
#[derive(Clone, Default)]
pub struct Telemetry {
    inner: Option<Arc<Tracing>>,
}

/// What an active tracer holds.
struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
    /// Where spans go, for logs.
    url: String,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Some(t) => write!(f, "Telemetry(on: {})", t.url),
            None => f.write_str("Telemetry(off)"),
        }
    }
}

impl Telemetry {
    /// Tracing off.
    pub fn off() -> Self {
        Self::default()
    }

    /// Starts tracing when `[tracing]` or the environment names an endpoint. Exports run on
    /// the batch processor's own thread, so this works outside a Tokio runtime too.
    pub fn from_config(config: &TracingConfig) -> Result<Self, TelemetryError> {
        let env = |name: &str| std::env::var(name).ok();
        let Some(url) = config.traces_url(env) else {
            return Ok(Self::off());
        };
        let service = config.service_name(env);
        let provider = export::provider(config, &url, &service)?;
        let scope = InstrumentationScope::builder("starling")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        let tracer = provider.tracer_with_scope(scope);
        Ok(Self {
            inner: Some(Arc::new(Tracing {
                provider,
                tracer,
                propagator: TraceContextPropagator::new(),
                url,
            })),
        })
    }

    /// Whether spans are recorded and exported.
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// The OTLP URL spans go to, when on.
    pub fn endpoint(&self) -> Option<&str> {
        self.inner.as_deref().map(|t| t.url.as_str())
    }

    /// Starts the span of one request, continuing the caller's `traceparent`/`tracestate`.
    /// Its name is the operation alone until [`RequestSpan::set_model`] adds the model.
    pub fn start_request(
        &self,
        endpoint: Endpoint,
        path: &str,
        headers: &HeaderMap,
    ) -> RequestSpan {
        let Some(tracing) = &self.inner else {
            return RequestSpan::off();
        };
        let parent = tracing.propagator.extract(&HeaderExtractor(headers));
        let operation = genai::operation(endpoint);
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", operation),
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new("url.path", path.to_owned()),
            KeyValue::new("starling.route", endpoint.label()),
        ];
        if let Some(host) = headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
        {
            let (address, port) = split_host(host);
            attributes.push(KeyValue::new("server.address", address.to_owned()));
            if let Some(port) = port {
                attributes.push(KeyValue::new("server.port", i64::from(port)));
            }
        }
        RequestSpan::start(
            tracing.clone(),
            &parent,
            operation,
            SpanKind::Server,
            attributes,
        )
    }

    /// Exports every finished span now; blocks until done or the export timeout.
    pub fn flush(&self) {
        if let Some(t) = &self.inner
            && let Err(e) = t.provider.force_flush()
        {
            tracing::warn!("flushing traces failed: {e}");
        }
    }

    /// Flushes and stops the exporter; blocks, so call it from a blocking context.
    pub fn shutdown(&self) {
        if let Some(t) = &self.inner
            && let Err(e) = t.provider.shutdown()
        {
            tracing::warn!("stopping the trace exporter failed: {e}");
        }
    }
}

/// `host[:port]` from a `Host` header (bracketed IPv6 included).
fn split_host(host: &str) -> (&str, Option<u16>) {
    if let Some(rest) = host.strip_prefix('[')
        && let Some((address, after)) = rest.split_once(']')
    {
        return (
            address,
            after.strip_prefix(':').and_then(|p| p.parse().ok()),
        );
    }
    match host.rsplit_once(':') {
        Some((address, port)) if !address.contains(':') => (address, port.parse().ok()),
        _ => (host, None),
    }
}

#[cfg(test)]
mod tests {
    use super::split_host;

    #[test]
    fn host_headers_split() {
        assert_eq!(split_host("gw:8080"), ("gw", Some(8080)));
        assert_eq!(split_host("gw"), ("gw", None));
        assert_eq!(split_host("[::1]:80"), ("::1", Some(80)));
        assert_eq!(split_host("::1"), ("::1", None));
    }
}
