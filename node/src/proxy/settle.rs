//! Settlement: turning a finished (or abandoned) request's usage into cost, metrics and the
//! release of its admission permit. Every admitted request settles exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use tokio::time::Instant;

use super::RequestCtx;
use super::trail::{Failure, Outcome, Trail};
use crate::admission::Permit;
use crate::api::{ApiError, Endpoint};
use crate::governance::usage::UsageReceipt;
use crate::metrics as m;
use crate::pricing::ModelPrice;
use crate::routing::Deployment;
use crate::translate::Usage;

/// Counts a request in flight until dropped.
#[derive(Debug)]
pub struct InFlight {
    endpoint: Endpoint,
}

/// Requests in flight in this process, all routes: the load this node gossips to its peers.
static IN_FLIGHT_NOW: AtomicU64 = AtomicU64::new(0);

/// Requests in flight in this process right now.
pub fn in_flight_now() -> u64 {
    IN_FLIGHT_NOW.load(Ordering::Relaxed)
}

impl InFlight {
    /// Enters a request.
    pub fn enter(endpoint: Endpoint) -> Self {
        gauge!(m::IN_FLIGHT, "route" => endpoint.label()).increment(1.0);
        IN_FLIGHT_NOW.fetch_add(1, Ordering::Relaxed);
        Self { endpoint }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT_NOW.fetch_sub(1, Ordering::Relaxed);
        gauge!(m::IN_FLIGHT, "route" => self.endpoint.label()).decrement(1.0);
    }
}

/// How a request that reached upstream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The response completed.
    Completed,
    /// The client went away mid-stream.
    ClientGone,
    /// The upstream failed mid-stream.
    UpstreamFailed,
}

/// A request's pending settlement.
#[derive(Debug)]
pub(crate) struct Settlement {
    pub endpoint: Endpoint,
    pub model: String,
    pub provider: Arc<str>,
    pub price: ModelPrice,
    pub started: Instant,
    pub request_id: String,
    /// The span and record of the request, ended here.
    pub trail: Trail,
    genai_provider: &'static str,
    /// The provider's model name, kept only when the trail records it.
    upstream_model: Option<String>,
    permit: Option<Permit>,
    _in_flight: InFlight,
}

impl Settlement {
    pub fn new(
        ctx: &RequestCtx,
        model: String,
        deployment: &Deployment,
        permit: Permit,
        in_flight: InFlight,
        trail: Trail,
    ) -> Self {
        Self {
            endpoint: ctx.endpoint,
            model,
            provider: deployment.provider.name.clone(),
            price: deployment.price,
            started: ctx.started,
            request_id: ctx.id.clone(),
            genai_provider: deployment.provider.genai_name,
            upstream_model: trail
                .is_recording()
                .then(|| deployment.upstream_model.clone()),
            trail,
            permit: Some(permit),
            _in_flight: in_flight,
        }
    }

    /// The cost of `usage` at this deployment's price, in micro-dollars.
    pub fn cost_micros(&self, usage: &Usage) -> u64 {
        self.price.cost_micros(usage)
    }

    /// Settles once; later calls do nothing. Returns the cost in micro-dollars, and the
    /// receipt to wait on before the response completes, when usage must be durable first.
    pub fn settle(
        &mut self,
        usage: &Usage,
        status: u16,
        ending: Ending,
    ) -> (u64, Option<UsageReceipt>) {
        let Some(permit) = self.permit.take() else {
            return (0, None);
        };
        let span = self.trail.span.child("starling.settlement");
        let cost = self.cost_micros(usage);
        let receipt = if ending == Ending::Completed {
            permit.settle(usage, cost)
        } else {
            permit.settle_cut_short(usage, cost)
        };
        let route = self.endpoint.label();
        let model = self.model.clone();
        let provider = self.provider.to_string();
        counter!(m::REQUESTS, "route" => route, "model" => model.clone(), "provider" => provider.clone(), "status" => status.to_string())
            .increment(1);
        histogram!(m::REQUEST_DURATION, "route" => route, "model" => model.clone(), "provider" => provider.clone())
            .record(self.started.elapsed().as_secs_f64());
        for (kind, tokens) in [
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cached_input", usage.cached_input_tokens),
            ("cache_write", usage.cache_write_tokens),
        ] {
            if tokens > 0 {
                counter!(m::TOKENS, "model" => model.clone(), "provider" => provider.clone(), "kind" => kind)
                    .increment(tokens);
            }
        }
        counter!(m::COST, "model" => model, "provider" => provider).increment(cost);
        if ending == Ending::ClientGone {
            counter!(m::CLIENT_DISCONNECTS, "route" => route).increment(1);
        }
        tracing::info!(
            request_id = %self.request_id,
            route,
            model = %self.model,
            provider = %self.provider,
            status,
            input_tokens = usage.total_input(),
            output_tokens = usage.output_tokens,
            cost_micros = cost,
            ending = ?ending,
            duration_ms = self.started.elapsed().as_millis() as u64,
            "request settled"
        );
        drop(span);
        let error = match ending {
            Ending::Completed => None,
            Ending::ClientGone => Some(Failure::Stream(
                "client_disconnected",
                "the client went away mid-stream",
            )),
            Ending::UpstreamFailed => Some(Failure::Stream(
                "upstream_stream_error",
                "the upstream failed after the stream started",
            )),
        };
        self.trail.finish(&Outcome {
            request_id: &self.request_id,
            endpoint: self.endpoint,
            started: self.started,
            status,
            model: Some(&self.model),
            provider: Some((&self.provider, self.genai_provider)),
            response_model: self.upstream_model.as_deref(),
            usage: Some(usage),
            cost_micros: cost,
            error,
        });
        (cost, receipt)
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        // A request dropped before settling (a bug or a panic elsewhere): its usage is
        // unknown, so the permit is dropped unsettled and keeps its reservations as spent,
        // the conservative choice (see `governance::permit`).
        if let Some(permit) = self.permit.take() {
            tracing::warn!(request_id = %self.request_id, "request dropped before settling");
            drop(permit);
        }
    }
}

/// Records the time the gateway added before the first byte reached the client.
pub fn record_overhead(endpoint: Endpoint, started: Instant, upstream_wait: Duration) {
    let overhead = started.elapsed().saturating_sub(upstream_wait);
    histogram!(m::GATEWAY_OVERHEAD, "route" => endpoint.label()).record(overhead.as_secs_f64());
}

/// Records a request that ended in an error before or instead of an upstream response.
/// `model` is the resolved public model, when resolution got that far.
pub fn record_rejection(
    endpoint: Endpoint,
    model: Option<&str>,
    error: &ApiError,
    started: Instant,
) {
    let status = error.status().as_u16().to_string();
    let model = model.unwrap_or("unknown").to_owned();
    counter!(m::REQUESTS, "route" => endpoint.label(), "model" => model.clone(), "provider" => "none", "status" => status)
        .increment(1);
    histogram!(m::REQUEST_DURATION, "route" => endpoint.label(), "model" => model, "provider" => "none")
        .record(started.elapsed().as_secs_f64());
}
