//! Observability settings: OpenTelemetry traces (`[tracing]`) and request logs
//! (`[request_log]`), with their checks.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Environment variable that switches tracing on when the config names no endpoint (the
/// OpenTelemetry convention); `/v1/traces` is appended to it.
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// Environment variable naming the full traces URL; it wins over [`OTLP_ENDPOINT_ENV`].
pub const OTLP_TRACES_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// Environment variable naming the service, when the config leaves `service_name` unset.
pub const SERVICE_NAME_ENV: &str = "OTEL_SERVICE_NAME";

/// OpenTelemetry traces over OTLP/HTTP (protobuf). Off unless an endpoint is configured here
/// or in the environment.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// Collector base URL, e.g. `http://otel-collector:4318`; `/v1/traces` is appended
    /// unless the URL already ends with it.
    pub endpoint: Option<String>,
    /// `false` keeps tracing off even when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    pub enabled: bool,
    /// The `service.name` resource attribute (default `OTEL_SERVICE_NAME`, else `starling`).
    pub service_name: Option<String>,
    /// Share of new traces recorded, 0.0 to 1.0. A request carrying a `traceparent` follows
    /// its caller's sampling decision instead.
    pub sample_ratio: f64,
    /// Extra headers on every export request (e.g. a vendor's API key header). Redacted in
    /// `--print-config`.
    pub headers: BTreeMap<String, String>,
    /// Timeout of one export request.
    pub timeout_ms: u64,
    /// Longest a finished span waits before it is exported in a batch.
    pub batch_delay_ms: u64,
    /// Spans queued for export at most; more are dropped (never blocking a request).
    pub max_queue: usize,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            enabled: true,
            service_name: None,
            sample_ratio: 1.0,
            headers: BTreeMap::new(),
            timeout_ms: 10_000,
            batch_delay_ms: 5_000,
            max_queue: 2_048,
        }
    }
}

impl TracingConfig {
    /// The OTLP traces URL to export to, or `None` when tracing is off. `env` reads an
    /// environment variable (injected so that tests need not touch the process's).
    pub fn traces_url(&self, env: impl Fn(&str) -> Option<String>) -> Option<String> {
        if !self.enabled {
            return None;
        }
        let present = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        if let Some(base) = present(self.endpoint.clone()) {
            return Some(append_traces_path(&base));
        }
        if let Some(full) = present(env(OTLP_TRACES_ENDPOINT_ENV)) {
            return Some(full);
        }
        present(env(OTLP_ENDPOINT_ENV)).map(|base| append_traces_path(&base))
    }

    /// The `service.name` to report.
    pub fn service_name(&self, env: impl Fn(&str) -> Option<String>) -> String {
        self.service_name
            .clone()
            .or_else(|| env(SERVICE_NAME_ENV).filter(|s| !s.trim().is_empty()))
            .unwrap_or_else(|| "starling".to_owned())
    }
}

fn append_traces_path(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

/// Recent request records: an in-memory ring read through `GET /admin/v1/logs`, and
/// optionally JSON-lines files.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestLogConfig {
    /// Records kept in memory, newest first out; 0 turns the ring off.
    pub capacity: usize,
    /// Append one JSON object per request to this file (rotated by size). Unset: no file.
    pub file: Option<PathBuf>,
    /// Rotate the file when a write would take it past this size.
    pub max_file_bytes: u64,
    /// Rotated files kept besides the current one (`FILE.1` newest … `FILE.N` oldest).
    pub keep_files: usize,
    /// Records waiting for the file writer at most; when full, records are counted and
    /// dropped instead of slowing requests.
    pub queue: usize,
    /// Record request and response bodies (truncated to `max_body_bytes`). They may hold
    /// personal data: off by default.
    pub bodies: bool,
    /// Longest body prefix recorded when `bodies` is on.
    pub max_body_bytes: usize,
}

impl Default for RequestLogConfig {
    fn default() -> Self {
        Self {
            capacity: 1_000,
            file: None,
            max_file_bytes: 100 * 1024 * 1024,
            keep_files: 5,
            queue: 4_096,
            bodies: false,
            max_body_bytes: 4_096,
        }
    }
}

impl RequestLogConfig {
    /// Whether any record is kept at all.
    pub fn enabled(&self) -> bool {
        self.capacity > 0 || self.file.is_some()
    }
}

/// Checks `[tracing]` and `[request_log]`.
pub(super) fn validate(tracing: &TracingConfig, log: &RequestLogConfig) -> Result<(), ConfigError> {
    if !(0.0..=1.0).contains(&tracing.sample_ratio) {
        return Err(ConfigError::invalid(
            "tracing.sample_ratio",
            "must be between 0.0 and 1.0",
        ));
    }
    if let Some(endpoint) = &tracing.endpoint
        && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
    {
        return Err(ConfigError::invalid(
            "tracing.endpoint",
            "must be an http:// or https:// URL (OTLP/HTTP), e.g. http://localhost:4318",
        ));
    }
    for (name, value) in &tracing.headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || http::HeaderValue::from_str(value).is_err()
        {
            return Err(ConfigError::invalid(
                format!("tracing.headers.{name}"),
                "not a valid HTTP header",
            ));
        }
    }
    if tracing.max_queue == 0 {
        return Err(ConfigError::invalid(
            "tracing.max_queue",
            "must be greater than 0",
        ));
    }
    if log.file.is_some() && log.max_file_bytes == 0 {
        return Err(ConfigError::invalid(
            "request_log.max_file_bytes",
            "must be greater than 0",
        ));
    }
    if log.file.is_some() && log.queue == 0 {
        return Err(ConfigError::invalid(
            "request_log.queue",
            "must be greater than 0",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn tracing_is_off_without_an_endpoint() {
        assert_eq!(TracingConfig::default().traces_url(env(&[])), None);
    }

    #[test]
    fn the_config_endpoint_wins_and_gets_the_traces_path() {
        let config = TracingConfig {
            endpoint: Some("http://c:4318/".to_owned()),
            ..TracingConfig::default()
        };
        let e = env(&[(OTLP_ENDPOINT_ENV, "http://other:4318")]);
        assert_eq!(
            config.traces_url(e).as_deref(),
            Some("http://c:4318/v1/traces")
        );
        let full = TracingConfig {
            endpoint: Some("http://c:4318/v1/traces".to_owned()),
            ..TracingConfig::default()
        };
        assert_eq!(
            full.traces_url(env(&[])).as_deref(),
            Some("http://c:4318/v1/traces")
        );
    }

    #[test]
    fn the_environment_switches_tracing_on_unless_disabled() {
        let base = env(&[(OTLP_ENDPOINT_ENV, "http://e:4318")]);
        assert_eq!(
            TracingConfig::default().traces_url(base).as_deref(),
            Some("http://e:4318/v1/traces")
        );
        let both = env(&[
            (OTLP_ENDPOINT_ENV, "http://e:4318"),
            (OTLP_TRACES_ENDPOINT_ENV, "http://t:9999/custom"),
        ]);
        assert_eq!(
            TracingConfig::default().traces_url(both).as_deref(),
            Some("http://t:9999/custom")
        );
        let off = TracingConfig {
            enabled: false,
            ..TracingConfig::default()
        };
        assert_eq!(
            off.traces_url(env(&[(OTLP_ENDPOINT_ENV, "http://e")])),
            None
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        let bad_ratio = TracingConfig {
            sample_ratio: 1.5,
            ..TracingConfig::default()
        };
        let e = validate(&bad_ratio, &RequestLogConfig::default()).expect_err("refused");
        assert!(e.to_string().contains("tracing.sample_ratio"), "{e}");
        let grpc = TracingConfig {
            endpoint: Some("otel:4317".to_owned()),
            ..TracingConfig::default()
        };
        let e = validate(&grpc, &RequestLogConfig::default()).expect_err("refused");
        assert!(e.to_string().contains("tracing.endpoint"), "{e}");
    }
}
