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
use http::{HeaderMap, StatusCode};
use metrics::{SharedString, counter};
use rand::Rng;
use tokio::time::Instant;

use super::context::{Payload, RequestCtx};
use super::outcome::{AttemptFailure, AttemptSuccess};
use super::prepare::prepare;
use super::settle::{InFlight, Settlement};
use super::trail::Trail;
use super::{Gateway, complete, count_tokens, stream};
use crate::admission::Permit;
use crate::config::RoutingConfig;
use crate::metrics as m;
use crate::routing::{Deployment, ModelRoute};
use starling_providers::UpstreamResponse;
use starling_wire::api::{ApiError, Endpoint, ErrorKind};

/// Largest upstream error body the gateway reads to pass through.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Runs attempts until one succeeds or every candidate is exhausted. A request that ends
/// without a usable answer gives its reservations back, unless an attempt may have been
/// billed (a timeout or a broken connection after sending): then they count as spent.
pub(super) async fn run(
    gw: &Arc<Gateway>,
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
    let result = run_attempts(gw, ctx, route, payload, &mut state).await;
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
    gw: &Arc<Gateway>,
    ctx: RequestCtx,
    route: Arc<ModelRoute>,
    payload: Payload,
    state: &mut Loop<'_>,
) -> Result<Response, ApiError> {
    let Payload { raw, body } = payload;
    let settings = &gw.router.settings;
    let mut waited = Duration::ZERO;
    let mut last_error: Option<ApiError> = None;
    let mut current = route.clone();
    let candidates = route.fallbacks.len() + 1;
    for candidate in 0..candidates {
        if candidate > 0 {
            let Some(name) = route.fallbacks.get(candidate - 1) else {
                break;
            };
            match gw.router.resolve(name) {
                Ok(next) => {
                    counter!(m::FALLBACKS, "from" => route.metric_label.clone(), "to" => next.metric_label.clone())
                        .increment(1);
                    tracing::info!(request_id = %ctx.id, from = %current.name, to = %next.name, "falling back");
                    current = next;
                }
                Err(_) => continue,
            }
        }
        if ctx.endpoint == Endpoint::CountTokens
            && !current
                .deployments
                .iter()
                .any(|d| d.provider.supports(Endpoint::CountTokens))
        {
            return count_tokens::local(&ctx, &body);
        }
        let last_candidate = candidate + 1 == candidates;
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
        for attempt in 0..=settings.retries {
            let Some(index) = current.pick(&tried, attempt > 0 || last_candidate) else {
                break;
            };
            if !tried.contains(&index) {
                tried.push(index);
            }
            let Some(deployment) = current.deployments.get(index) else {
                break;
            };
            let prepared = prepare(
                &ctx,
                &raw,
                &body,
                deployment,
                settings.anthropic_default_max_tokens,
            )?;
            let attempt_started = Instant::now();
            let deadline =
                attempt_started + Duration::from_millis(deployment.provider.timeouts.total_ms);
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
            if let Ok(response) = &sent {
                span.status(response.status.as_u16());
            }
            let failure = match sent {
                Ok(response) if response.status.is_success() => {
                    let success = AttemptSuccess {
                        route: &current,
                        deployment,
                        prepared,
                        response,
                        deadline,
                    };
                    let result = if ctx.meta.stream {
                        stream::prime(&ctx, success, attempt_started, waited)
                            .await
                            .map(|primed| Answer::Stream(Box::new(primed)))
                    } else {
                        complete::read(
                            &ctx,
                            success,
                            &gw.config.server,
                            gw.telemetry.is_on(),
                            attempt_started,
                            waited,
                        )
                        .await
                        .map(Answer::Complete)
                    };
                    match result {
                        Ok(ready) => {
                            deployment.cooldown.clear();
                            let (Some(permit), Some(in_flight)) =
                                (state.permit.take(), state.in_flight.take())
                            else {
                                return Err(ApiError::new(
                                    ErrorKind::Internal,
                                    "request settled twice",
                                ));
                            };
                            // The answering attempt's span ends with the request.
                            state.trail.attempt_span = Some(span);
                            let settlement = Settlement::new(
                                &ctx,
                                &current,
                                deployment,
                                permit,
                                in_flight,
                                std::mem::take(state.trail),
                            );
                            return Ok(ready.into_response(&ctx, settlement).await);
                        }
                        Err(failure) => {
                            // The upstream accepted the request; it may bill what it began.
                            state.maybe_billed = true;
                            let error = failure.error();
                            span.fail(error.error_type(), error.message());
                            failure
                        }
                    }
                }
                Ok(response) => {
                    error_response(&ctx, response, prepared.endpoint.format(), deadline).await
                }
                Err(failure) => {
                    if !matches!(failure, starling_providers::UpstreamFailure::Connect { .. }) {
                        state.maybe_billed = true;
                    }
                    span.fail(failure.kind(), &failure.to_string());
                    AttemptFailure::from_upstream(&failure)
                }
            };
            drop(span);
            waited += attempt_started.elapsed();
            let (error, retry_after) = match failure {
                AttemptFailure::Fatal(error) => return Err(error),
                AttemptFailure::Retryable { error, retry_after } => (error, retry_after),
            };
            trip_cooldown(settings, deployment, retry_after);
            let reason = error.status().as_u16().to_string();
            tracing::warn!(
                request_id = %ctx.id,
                provider = %deployment.provider.name,
                model = %deployment.upstream_model,
                attempt,
                "upstream attempt failed: {}",
                error.message()
            );
            last_error = Some(error);
            if attempt == settings.retries {
                break;
            }
            let Some(delay) = backoff(settings, attempt, retry_after) else {
                // The upstream asks for a longer pause than we wait out: move on.
                break;
            };
            counter!(m::RETRIES, "provider" => SharedString::from_shared(deployment.provider.name.clone()), "model" => current.metric_label.clone(), "reason" => reason)
                .increment(1);
            tokio::time::sleep(delay).await;
            waited += delay;
        }
    }
    Err(last_error.unwrap_or_else(|| {
        ApiError::new(
            ErrorKind::Unavailable,
            format!("no deployment of model `{}` is available", route.name),
        )
    }))
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

fn trip_cooldown(settings: &RoutingConfig, deployment: &Deployment, retry_after: Option<Duration>) {
    let duration = retry_after.map_or(settings.cooldown_ms, |d| {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
    });
    deployment.cooldown.trip(duration);
    counter!(m::COOLDOWNS, "provider" => SharedString::from_shared(deployment.provider.name.clone()), "model" => deployment.metric_model.clone())
        .increment(1);
}

/// The delay before retry number `attempt + 1`: exponential with full jitter, at least the
/// upstream's `retry-after`. `None` when that exceeds the longest wait we accept.
pub(super) fn backoff(
    settings: &RoutingConfig,
    attempt: u32,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    let max = Duration::from_millis(settings.backoff_max_ms);
    let ceiling = Duration::from_millis(settings.backoff_initial_ms)
        .saturating_mul(2u32.saturating_pow(attempt))
        .min(max);
    let jittered = ceiling.mul_f64(rand::rng().random_range(0.5..=1.0));
    match retry_after {
        Some(wait) if wait > max => None,
        Some(wait) => Some(wait.max(jittered)),
        None => Some(jittered),
    }
}

/// Whether an upstream status is worth another attempt.
pub(super) fn retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
}

/// Reads `retry-after-ms` (OpenAI) or `retry-after` in seconds.
pub(super) fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let read = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    if let Some(ms) = read("retry-after-ms")
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1_000.0));
    }
    read("retry-after")
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 86_400.0)
        .map(Duration::from_secs_f64)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RoutingConfig {
        RoutingConfig {
            backoff_initial_ms: 100,
            backoff_max_ms: 1_000,
            ..RoutingConfig::default()
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let s = settings();
        for attempt in 0..10 {
            let d = backoff(&s, attempt, None).expect("no retry-after");
            let ceiling = (100u64 << attempt.min(20)).min(1_000);
            assert!(d <= Duration::from_millis(ceiling), "{attempt}: {d:?}");
            assert!(d >= Duration::from_millis(ceiling / 2), "{attempt}: {d:?}");
        }
    }

    #[test]
    fn backoff_honours_retry_after_up_to_the_max() {
        let s = settings();
        assert!(
            backoff(&s, 0, Some(Duration::from_millis(700))).expect("waits")
                >= Duration::from_millis(700)
        );
        assert_eq!(backoff(&s, 0, Some(Duration::from_secs(30))), None);
    }

    #[test]
    fn retry_after_headers() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "2".parse().expect("valid"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "150".parse().expect("valid"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_millis(150)));
        let mut bad = HeaderMap::new();
        bad.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("valid"),
        );
        assert_eq!(parse_retry_after(&bad), None);
    }

    #[test]
    fn which_statuses_retry() {
        for s in [429, 500, 502, 503, 504, 529, 408] {
            assert!(
                retryable_status(StatusCode::from_u16(s).expect("valid")),
                "{s}"
            );
        }
        for s in [400, 401, 403, 404, 413, 422] {
            assert!(
                !retryable_status(StatusCode::from_u16(s).expect("valid")),
                "{s}"
            );
        }
    }
}
