//! The attempt loop: deployments by weight, retries with backoff, cooldowns, fallbacks.
//!
//! A request may be retried only until its first byte has gone to the client: non-streaming
//! responses are read whole before answering, and streams are primed with their first event
//! before the response starts.

use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use metrics::{SharedString, counter};
use tokio::time::Instant;

use super::context::{Payload, RequestCtx};
use super::outcome::{AttemptFailure, AttemptSuccess};
use super::prepare::prepare;
use super::retry::{RetryPolicy, parse_retry_after, retryable_status};
use super::settle::{InFlight, Settlement};
use super::trail::Trail;
use super::{complete, count_tokens, stream};
use crate::admission::Permit;
use crate::config::ServerConfig;
use crate::metrics as m;
use crate::routing::{Deployment, ModelRoute, Router};
use crate::telemetry::AttemptSpan;
use starling_providers::UpstreamResponse;
use starling_wire::api::{ApiError, Endpoint, ErrorKind};

/// Largest upstream error body the gateway reads to pass through.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What the attempts need of the gateway.
pub(super) struct Upstreams<'a> {
    /// Routes, deployments and the retry settings.
    pub router: &'a Router,
    /// Limits on reading upstream answers.
    pub server: &'a ServerConfig,
    /// Whether tracing is on (finish reasons are collected only then).
    pub tracing_on: bool,
}

/// Runs attempts until one succeeds or every candidate is exhausted. A request that ends
/// without a usable answer gives its reservations back, unless an attempt may have been
/// billed (a timeout or a broken connection after sending): then they count as spent.
pub(super) async fn run(
    up: &Upstreams<'_>,
    ctx: RequestCtx,
    route: Arc<ModelRoute>,
    payload: Payload,
    permit: Permit,
    in_flight: InFlight,
    trail: &mut Trail,
) -> Result<Response, ApiError> {
    let mut state = Loop {
        permit: Some(permit),
        in_flight: Some(in_flight),
        maybe_billed: false,
        trail,
    };
    let result = run_attempts(up, ctx, route, payload, &mut state).await;
    if let Some(permit) = state.permit.take()
        && !state.maybe_billed
    {
        permit.release_unbilled();
    }
    result
}

/// What the attempt loop hands on to the request that settles, or gives back.
struct Loop<'a> {
    permit: Option<Permit>,
    in_flight: Option<InFlight>,
    /// An attempt may have been billed by the upstream (see [`run`]).
    maybe_billed: bool,
    trail: &'a mut Trail,
}

async fn run_attempts(
    up: &Upstreams<'_>,
    ctx: RequestCtx,
    route: Arc<ModelRoute>,
    payload: Payload,
    state: &mut Loop<'_>,
) -> Result<Response, ApiError> {
    let mut tries = Tries {
        policy: RetryPolicy(&up.router.settings),
        waited: Duration::ZERO,
        last_error: None,
    };
    let candidates = route.fallbacks.len() + 1;
    let mut current = route.clone();
    for candidate in 0..candidates {
        if candidate > 0 {
            let Some(name) = route.fallbacks.get(candidate - 1) else {
                break;
            };
            let Ok(next) = up.router.resolve(name) else {
                continue;
            };
            counter!(m::FALLBACKS, "from" => route.metric_label.clone(), "to" => next.metric_label.clone())
                .increment(1);
            tracing::info!(request_id = %ctx.id, from = %current.name, to = %next.name, "falling back");
            current = next;
        }
        if ctx.endpoint == Endpoint::CountTokens
            && !current
                .deployments
                .iter()
                .any(|d| d.provider.supports(Endpoint::CountTokens))
        {
            return count_tokens::local(&ctx, &payload.body);
        }
        let last_candidate = candidate + 1 == candidates;
        if let Some(response) = try_candidate(
            up,
            &ctx,
            &current,
            &payload,
            last_candidate,
            &mut tries,
            state,
        )
        .await?
        {
            return Ok(response);
        }
    }
    Err(tries.last_error.unwrap_or_else(|| {
        ApiError::new(
            ErrorKind::Unavailable,
            format!("no deployment of model `{}` is available", route.name),
        )
    }))
}

/// What the tries of one request have in common across its candidates.
struct Tries<'a> {
    policy: RetryPolicy<'a>,
    /// Time spent in failed attempts and backoff, before the answering attempt.
    waited: Duration,
    /// The error of the last failed attempt: the client's answer if none succeeds.
    last_error: Option<ApiError>,
}

/// Tries the deployments of one candidate route, retrying with backoff. `Ok(None)` when it
/// is exhausted (the next candidate may serve); `Err` for a failure no retry can help.
async fn try_candidate(
    up: &Upstreams<'_>,
    ctx: &RequestCtx,
    current: &ModelRoute,
    payload: &Payload,
    last_candidate: bool,
    tries: &mut Tries<'_>,
    state: &mut Loop<'_>,
) -> Result<Option<Response>, ApiError> {
    // Deployments of providers the key may not use count as tried from the start.
    let mut tried: Vec<usize> = current
        .deployments
        .iter()
        .enumerate()
        .filter(|(_, d)| {
            !ctx.allowed_providers.is_empty()
                && !ctx
                    .allowed_providers
                    .iter()
                    .any(|p| **p == *d.provider.name)
        })
        .map(|(i, _)| i)
        .collect();
    for attempt in 0..=tries.policy.retries() {
        let Some(index) = current.pick(&tried, attempt > 0 || last_candidate) else {
            break;
        };
        if !tried.contains(&index) {
            tried.push(index);
        }
        let Some(deployment) = current.deployments.get(index) else {
            break;
        };
        let attempt_started = Instant::now();
        let this = Attempt {
            route: current,
            deployment,
            started: attempt_started,
            waited: tries.waited,
        };
        let failure = match try_once(up, ctx, this, payload, state).await? {
            Tried::Answered(response) => return Ok(Some(response)),
            Tried::Failed(failure) => failure,
        };
        tries.waited += attempt_started.elapsed();
        let (error, retry_after) = match failure {
            AttemptFailure::Fatal(error) => return Err(error),
            AttemptFailure::Retryable { error, retry_after } => (error, retry_after),
        };
        tries.policy.trip_cooldown(deployment, retry_after);
        let reason = error.status().as_u16().to_string();
        tracing::warn!(
            request_id = %ctx.id,
            provider = %deployment.provider.name,
            model = %deployment.upstream_model,
            attempt,
            "upstream attempt failed: {}",
            error.message()
        );
        tries.last_error = Some(error);
        if attempt == tries.policy.retries() {
            break;
        }
        let Some(delay) = tries.policy.backoff(attempt, retry_after) else {
            // The upstream asks for a longer pause than we wait out: move on.
            break;
        };
        counter!(m::RETRIES, "provider" => SharedString::from_shared(deployment.provider.name.clone()), "model" => current.metric_label.clone(), "reason" => reason)
            .increment(1);
        tokio::time::sleep(delay).await;
        tries.waited += delay;
    }
    Ok(None)
}

/// How one attempt went.
enum Tried {
    /// The upstream answered well, and the client has its response.
    Answered(Response),
    /// It failed; another attempt may do better.
    Failed(AttemptFailure),
}

/// One attempt: where it goes and when.
#[derive(Clone, Copy)]
struct Attempt<'a> {
    route: &'a ModelRoute,
    deployment: &'a Deployment,
    started: Instant,
    /// Time the request spent in earlier attempts and backoff.
    waited: Duration,
}

/// One attempt on one deployment: send it, and on a good answer hand it, with the request's
/// settlement, to the client.
async fn try_once(
    up: &Upstreams<'_>,
    ctx: &RequestCtx,
    this: Attempt<'_>,
    payload: &Payload,
    state: &mut Loop<'_>,
) -> Result<Tried, ApiError> {
    match send(up, ctx, this, payload, state).await? {
        Ok((success, span)) => answer(up, ctx, this, success, span, state).await,
        Err(failure) => Ok(Tried::Failed(failure)),
    }
}

/// Shapes the upstream body for the deployment, sends it under the attempt's span, and
/// sorts the answer: a success status to read, or a failure (an upstream error passed
/// through or retried, a connection that failed or timed out).
async fn send<'a>(
    up: &Upstreams<'_>,
    ctx: &RequestCtx,
    this: Attempt<'a>,
    payload: &Payload,
    state: &mut Loop<'_>,
) -> Result<Result<(AttemptSuccess<'a>, AttemptSpan), AttemptFailure>, ApiError> {
    let deployment = this.deployment;
    let prepared = prepare(
        ctx,
        &payload.raw,
        &payload.body,
        deployment,
        up.router.settings.anthropic_default_max_tokens,
    )?;
    let deadline = this.started + Duration::from_millis(deployment.provider.timeouts.total_ms);
    state.trail.attempts += 1;
    let provider = &deployment.provider;
    let span = state.trail.span.attempt(
        state.trail.attempts,
        &provider.name,
        provider.genai_name,
        &deployment.upstream_model,
        provider.base_url(),
    );
    let sent = provider
        .send(
            prepared.endpoint,
            &deployment.upstream_model,
            prepared.body.clone(),
            &ctx.headers,
            &ctx.id,
            span.headers(),
        )
        .await;
    Ok(match sent {
        Ok(response) if response.status.is_success() => {
            span.status(response.status.as_u16());
            let success = AttemptSuccess {
                route: this.route,
                deployment,
                prepared,
                response,
                deadline,
            };
            Ok((success, span))
        }
        Ok(response) => {
            span.status(response.status.as_u16());
            let wire = prepared.endpoint.format();
            Err(error_response(ctx, response, wire, deadline).await)
        }
        Err(failure) => {
            if !matches!(failure, starling_providers::UpstreamFailure::Connect { .. }) {
                state.maybe_billed = true;
            }
            span.fail(failure.kind(), &failure.to_string());
            Err(AttemptFailure::from_upstream(&failure))
        }
    })
}

/// Reads a successful answer whole, or primes its stream, and hands it to the client with
/// the request's settlement. A body that breaks before that is a failed attempt.
async fn answer(
    up: &Upstreams<'_>,
    ctx: &RequestCtx,
    this: Attempt<'_>,
    success: AttemptSuccess<'_>,
    span: AttemptSpan,
    state: &mut Loop<'_>,
) -> Result<Tried, ApiError> {
    let result = if ctx.meta.stream {
        stream::prime(ctx, success, this.started, this.waited)
            .await
            .map(|primed| Answer::Stream(Box::new(primed)))
    } else {
        let server = up.server;
        complete::read(
            ctx,
            success,
            server,
            up.tracing_on,
            this.started,
            this.waited,
        )
        .await
        .map(Answer::Complete)
    };
    let ready = match result {
        Ok(ready) => ready,
        Err(failure) => {
            // The upstream accepted the request; it may bill what it began.
            state.maybe_billed = true;
            let error = failure.error();
            span.fail(error.error_type(), error.message());
            return Ok(Tried::Failed(failure));
        }
    };
    this.deployment.cooldown.clear();
    let (Some(permit), Some(in_flight)) = (state.permit.take(), state.in_flight.take()) else {
        return Err(ApiError::new(ErrorKind::Internal, "request settled twice"));
    };
    // The answering attempt's span ends with the request.
    state.trail.attempt_span = Some(span);
    let settlement = Settlement::new(
        ctx,
        this.route,
        this.deployment,
        permit,
        in_flight,
        std::mem::take(state.trail),
    );
    Ok(Tried::Answered(ready.into_response(ctx, settlement).await))
}

/// A successful upstream answer, ready to become the client's response.
enum Answer {
    Complete(complete::Completed),
    Stream(Box<stream::Primed>),
}

impl Answer {
    async fn into_response(self, ctx: &RequestCtx, settlement: Settlement) -> Response {
        match self {
            Answer::Complete(c) => c.into_response(ctx, settlement).await,
            Answer::Stream(s) => (*s).into_response(ctx, settlement),
        }
    }
}

async fn error_response(
    ctx: &RequestCtx,
    response: UpstreamResponse,
    wire: starling_wire::api::ApiFormat,
    deadline: Instant,
) -> AttemptFailure {
    let status = response.status;
    let retry_after = parse_retry_after(&response.headers);
    let mut body = Vec::new();
    let mut stream = response.body;
    while body.len() < MAX_ERROR_BODY {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(MAX_ERROR_BODY);
    tracing::debug!(request_id = %ctx.id, %status, "upstream error body: {}", String::from_utf8_lossy(&body));
    let retry_after_secs = retry_after.map(|d| d.as_secs_f64().ceil() as u64);
    let error = ApiError::from_upstream(status, wire, Bytes::from(body), retry_after_secs);
    if retryable_status(status) {
        AttemptFailure::Retryable { error, retry_after }
    } else {
        AttemptFailure::Fatal(error)
    }
}
