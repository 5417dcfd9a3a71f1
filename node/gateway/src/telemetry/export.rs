//! The OTLP/HTTP (protobuf) exporter behind the SDK's batch processor.
//!
//! The batch processor owns a thread of its own: finished spans go into its bounded queue
//! (`try_send`; a full queue drops the span instead of blocking a request), and exports run
//! there, away from the request path. The exporter uses reqwest's blocking client, which is
//! the same reqwest build the providers use (rustls with ring), so no second TLS stack is
//! compiled in; the async client would need a Tokio runtime on the processor's thread.

use std::collections::HashMap;
use std::time::Duration;

use metrics::counter;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter,
};

use super::TelemetryError;
use crate::config::TracingConfig;

/// Spans handed to the collector, by `result` (`ok`, `failed`).
pub const EXPORTED_SPANS: &str = "starling_otlp_exported_spans_total";
/// Export requests that failed (collector unreachable, refused, timed out).
pub const EXPORT_ERRORS: &str = "starling_otlp_export_errors_total";

/// Builds the tracer provider: sampler, resource, batch processor, exporter.
pub(super) fn provider(
    config: &TracingConfig,
    url: &str,
    service: &str,
) -> Result<SdkTracerProvider, TelemetryError> {
    // reqwest is built without a crypto provider of its own (ring only, see
    // docs/architecture.md): install ring before the exporter builds its client.
    starling_providers::ensure_crypto_provider();
    let headers: HashMap<String, String> = config
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(Duration::from_millis(config.timeout_ms))
        .with_headers(headers)
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(config.max_queue)
        .with_max_export_batch_size(config.max_queue.min(512))
        .with_scheduled_delay(Duration::from_millis(config.batch_delay_ms))
        .build();
    let processor = BatchSpanProcessor::builder(Counted(exporter))
        .with_batch_config(batch)
        .build();
    let resource = Resource::builder()
        .with_service_name(service.to_owned())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        // A caller's sampling decision (the traceparent flag) wins; new traces are sampled
        // by trace id, so every node of a trace decides alike.
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sample_ratio,
        ))))
        .with_resource(resource)
        .build())
}

/// The OTLP exporter, counting what it sends and what fails into `/metrics`.
#[derive(Debug)]
struct Counted(opentelemetry_otlp::SpanExporter);

impl SpanExporter for Counted {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let result = self.0.export(batch).await;
        match &result {
            Ok(()) => counter!(EXPORTED_SPANS, "result" => "ok").increment(spans),
            Err(e) => {
                counter!(EXPORTED_SPANS, "result" => "failed").increment(spans);
                counter!(EXPORT_ERRORS).increment(1);
                tracing::warn!("exporting {spans} spans failed: {e}");
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}
