//! Settlement: turning a finished (or abandoned) request's usage into cost, metrics and the
//! release of its admission permit. Every admitted request settles exactly once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use metrics::{SharedString, counter, gauge, histogram};
use tokio::time::Instant;

use super::context::RequestCtx;
use super::outcome::{Outcome, RequestFailure};
use super::trail::Trail;
use crate::admission::Permit;
use crate::capacity::{Capacity, Place, REQUESTS_IN_FLIGHT};
use crate::metrics as m;
use crate::routing::{Deployment, ModelRoute};
use starling_governance::pricing::ModelPrice;
use starling_governance::usage::UsageReceipt;
use starling_wire::api::{ApiError, Endpoint, ErrorKind};
use starling_wire::translate::Usage;

/// Counts a request in flight, and holds its place among the API requests a gateway serves
/// at once (`server.max_requests_in_flight`), until dropped (the end of its response, streams
/// included).
#[derive(Debug)]
pub struct InFlight {
    endpoint: Endpoint,
    _place: Place,
}

impl InFlight {
    /// Enters a request, or `None` when every place is taken.
    pub fn try_enter(endpoint: Endpoint, slots: &Capacity) -> Option<Self> {
        let place = slots.try_take()?;
        gauge!(m::IN_FLIGHT, "route" => endpoint.label()).increment(1.0);
        REQUESTS_IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        Some(Self {
            endpoint,
            _place: place,
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        REQUESTS_IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
        gauge!(m::IN_FLIGHT, "route" => self.endpoint.label()).decrement(1.0);
    }
}

/// The answer to a request refused because every slot was taken: a 503 in the endpoint's
/// dialect, with `retry-after`, counted.
pub fn shed(endpoint: Endpoint) -> ApiError {
    counter!(m::REQUESTS_SHED, "route" => endpoint.label()).increment(1);
    ApiError::new(
        ErrorKind::Unavailable,
        "the gateway is serving as many requests as it is configured to; retry shortly",
    )
    .with_code("overloaded")
    .with_retry_after(1)
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
    /// The model's metric label, resolved with the route.
    model_label: SharedString,
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
        route: &ModelRoute,
        deployment: &Deployment,
        permit: Permit,
        in_flight: InFlight,
        trail: Trail,
    ) -> Self {
        Self {
            endpoint: ctx.endpoint,
            model: route.name.clone(),
            model_label: route.metric_label.clone(),
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
        let model = self.model_label.clone();
        let provider = SharedString::from_shared(self.provider.clone());
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
            Ending::ClientGone => Some(RequestFailure::Stream(
                "client_disconnected",
                "the client went away mid-stream",
            )),
            Ending::UpstreamFailed => Some(RequestFailure::Stream(
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
/// `model` is the resolved public model's label, when resolution got that far.
pub fn record_rejection(
    endpoint: Endpoint,
    model: Option<SharedString>,
    error: &ApiError,
    started: Instant,
) {
    let status = error.status().as_u16().to_string();
    let model = model.unwrap_or(SharedString::const_str(m::UNKNOWN_MODEL));
    counter!(m::REQUESTS, "route" => endpoint.label(), "model" => model.clone(), "provider" => "none", "status" => status)
        .increment(1);
    histogram!(m::REQUEST_DURATION, "route" => endpoint.label(), "model" => model, "provider" => "none")
        .record(started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_slots_refuse_past_the_limit_and_free_on_drop() {
        let slots = Capacity::new(2);
        let a = InFlight::try_enter(Endpoint::ChatCompletions, &slots).expect("first");
        let b = InFlight::try_enter(Endpoint::Messages, &slots).expect("second");
        assert!(InFlight::try_enter(Endpoint::ChatCompletions, &slots).is_none());
        assert_eq!(slots.used(), 2);
        drop(a);
        assert_eq!(slots.used(), 1);
        let c = InFlight::try_enter(Endpoint::ChatCompletions, &slots).expect("freed");
        drop((b, c));
        assert_eq!(slots.used(), 0);
    }
}
