//! Prometheus metrics: names, buckets, and the recorder.
//!
//! Labels carry only bounded values: routes, model names the configuration or the price
//! table knows, provider names, status codes. A client-supplied model name that does not
//! resolve is recorded as `unknown`; one that resolves through a provider's wildcard pattern
//! but is named nowhere in the configuration or the price table is recorded as `other`
//! (see [`crate::routing`]), so clients cannot create series.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests served, by route, model, provider and status.
pub const REQUESTS: &str = "starling_requests_total";
/// Whole-request latency as the client sees it.
pub const REQUEST_DURATION: &str = "starling_request_duration_seconds";
/// Time spent waiting on the upstream.
pub const UPSTREAM_DURATION: &str = "starling_upstream_duration_seconds";
/// Time the gateway itself added: total minus time waiting on the upstream, up to the first
/// byte sent to the client.
pub const GATEWAY_OVERHEAD: &str = "starling_gateway_overhead_seconds";
/// Time from request arrival to the first streamed token sent.
pub const TIME_TO_FIRST_TOKEN: &str = "starling_time_to_first_token_seconds";
/// Tokens, by model, provider and kind (`input`, `output`, `cached_input`, `cache_write`).
pub const TOKENS: &str = "starling_tokens_total";
/// Cost, in micro-dollars.
pub const COST: &str = "starling_cost_microdollars_total";
/// Requests being served now, by route.
pub const IN_FLIGHT: &str = "starling_requests_in_flight";
/// Upstream attempts retried, by provider, model and reason.
pub const RETRIES: &str = "starling_upstream_retries_total";
/// Fallbacks from one model to another.
pub const FALLBACKS: &str = "starling_fallbacks_total";
/// Deployments put into cooldown, by provider and model.
pub const COOLDOWNS: &str = "starling_deployment_cooldowns_total";
/// Streams that ended because the client went away.
pub const CLIENT_DISCONNECTS: &str = "starling_client_disconnects_total";
/// Connections open now, by listener (`api`, `metrics`).
pub const CONNECTIONS_OPEN: &str = "starling_connections_open";
/// Connections closed as they were accepted because `server.max_connections` were open.
pub const CONNECTIONS_REFUSED: &str = "starling_connections_refused_total";
/// Connections closed because a request's headers did not arrive within
/// `server.header_read_timeout_ms` (idle keep-alive connections included).
pub const HEADER_READ_TIMEOUTS: &str = "starling_header_read_timeouts_total";
/// Request bodies that did not arrive within `server.body_read_timeout_ms`.
pub const BODY_READ_TIMEOUTS: &str = "starling_body_read_timeouts_total";
/// API requests refused with a 503 because `server.max_requests_in_flight` were being served.
pub const REQUESTS_SHED: &str = "starling_requests_shed_total";

/// The model label of a request whose model resolved but is named nowhere in the
/// configuration or the price table.
pub const OTHER_MODEL: &str = "other";
/// The model label of a request whose model did not resolve (or was never read).
pub const UNKNOWN_MODEL: &str = "unknown";

/// Latency buckets from 50 µs to 5 minutes: fine at the bottom for gateway overhead.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder once per process and returns its handle. Later calls (tests
/// start several gateways in one process) share it.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS);
            let recorder = match builder {
                Ok(b) => b.build_recorder(),
                // Only fails on empty buckets, which LATENCY_BUCKETS is not.
                Err(_) => PrometheusBuilder::new().build_recorder(),
            };
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            describe();
            handle
        })
        .clone()
}

/// Runs the exporter's periodic upkeep (histogram buckets draining) until the task is dropped.
pub async fn upkeep(handle: PrometheusHandle) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        REQUESTS,
        "Requests served, by route, model, provider and status."
    );
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Request latency as the client sees it."
    );
    describe_histogram!(
        UPSTREAM_DURATION,
        Unit::Seconds,
        "Time spent waiting on the upstream."
    );
    describe_histogram!(
        GATEWAY_OVERHEAD,
        Unit::Seconds,
        "Latency the gateway added before the first byte to the client."
    );
    describe_histogram!(
        TIME_TO_FIRST_TOKEN,
        Unit::Seconds,
        "Time to the first streamed token."
    );
    describe_counter!(TOKENS, "Tokens by model, provider and kind.");
    describe_counter!(
        COST,
        "Cost in micro-dollars, from provider usage and the price table."
    );
    describe_gauge!(IN_FLIGHT, "Requests in flight, by route.");
    describe_counter!(RETRIES, "Upstream attempts retried, by reason.");
    describe_counter!(FALLBACKS, "Requests that fell back to another model.");
    describe_counter!(COOLDOWNS, "Deployments put into cooldown.");
    describe_counter!(CLIENT_DISCONNECTS, "Streams cut short by the client.");
    describe_gauge!(CONNECTIONS_OPEN, "Connections open, by listener.");
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections closed at accept: the listener had server.max_connections open."
    );
    describe_counter!(
        HEADER_READ_TIMEOUTS,
        "Connections closed: request headers not received within server.header_read_timeout_ms."
    );
    describe_counter!(
        BODY_READ_TIMEOUTS,
        "Request bodies not received within server.body_read_timeout_ms."
    );
    describe_counter!(
        REQUESTS_SHED,
        "API requests refused with 503: server.max_requests_in_flight were being served."
    );
    describe_counter!(
        crate::request_log::DROPPED,
        "Request records not written to the request log file, by reason."
    );
    describe_counter!(
        crate::telemetry::EXPORTED_SPANS,
        "Spans handed to the OTLP collector, by result."
    );
    describe_counter!(
        crate::telemetry::EXPORT_ERRORS,
        "OTLP trace export requests that failed."
    );
    starling_governance::describe_metrics();
    crate::cluster::describe_metrics();
}
