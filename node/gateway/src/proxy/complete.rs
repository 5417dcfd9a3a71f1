//! Non-streaming responses: read the upstream body whole, take its usage, translate it if the
//! dialects differ, and answer with the cost in a header.

use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::{HeaderValue, StatusCode, header};
use metrics::histogram;
use serde_json::Value;
use tokio::time::Instant;

use super::context::{COST_HEADER, RequestCtx, set_route_headers};
use super::outcome::{AttemptFailure, AttemptSuccess};
use super::prepare::Translation;
use super::settle::{Ending, Settlement, record_overhead};
use crate::config::ServerConfig;
use crate::metrics as m;
use starling_governance::pricing::micros_to_usd_string;
use starling_providers::UpstreamFailure;
use starling_wire::api::{ApiError, ApiFormat, ErrorKind};
use starling_wire::translate::{self, Usage};

/// A complete upstream answer in the client's dialect.
pub(super) struct Completed {
    body: Bytes,
    usage: Usage,
    provider: Arc<str>,
    model: String,
    upstream_wait: Duration,
    /// Collected only when tracing is on.
    finish_reasons: Vec<String>,
}

/// Reads and converts the upstream body.
pub(super) async fn read(
    ctx: &RequestCtx,
    success: AttemptSuccess<'_>,
    server: &ServerConfig,
    tracing_on: bool,
    attempt_started: Instant,
    waited: Duration,
) -> Result<Completed, AttemptFailure> {
    let limit = server.max_upstream_body_bytes;
    let provider = success.deployment.provider.name.clone();
    let mut body = BytesMut::new();
    let mut stream = success.response.body;
    loop {
        match tokio::time::timeout_at(success.deadline, stream.next()).await {
            Err(_) => {
                return Err(AttemptFailure::from_upstream(&UpstreamFailure::Timeout {
                    provider,
                    stage: "completion",
                }));
            }
            Ok(None) => break,
            Ok(Some(Err(failure))) => return Err(AttemptFailure::from_upstream(&failure)),
            Ok(Some(Ok(chunk))) => {
                if body.len() + chunk.len() > limit {
                    return Err(AttemptFailure::Fatal(ApiError::new(
                        ErrorKind::Upstream,
                        format!("the upstream response exceeds {limit} bytes"),
                    )));
                }
                body.extend_from_slice(&chunk);
            }
        }
    }
    let upstream_time = attempt_started.elapsed();
    histogram!(m::UPSTREAM_DURATION, "provider" => provider.to_string())
        .record(upstream_time.as_secs_f64());
    let body = body.freeze();
    let parsed: Value = serde_json::from_slice(&body).map_err(|e| AttemptFailure::Retryable {
        error: ApiError::new(
            ErrorKind::Upstream,
            format!("{provider} returned a response that is not JSON: {e}"),
        ),
        retry_after: None,
    })?;
    let wire = success.prepared.endpoint.format();
    let usage = match wire {
        ApiFormat::OpenAi => translate::usage_from_openai(&parsed),
        ApiFormat::Anthropic => translate::usage_from_anthropic(&parsed),
    }
    .unwrap_or_default();
    let finish_reasons = if tracing_on {
        super::trail::finish_reasons(&parsed)
    } else {
        Vec::new()
    };
    let converted = match success.prepared.translation {
        Translation::None => Ok(None),
        Translation::ChatViaMessages => {
            translate::messages_response_to_chat(&parsed, &ctx.meta.model).map(Some)
        }
        Translation::MessagesViaChat => {
            translate::chat_response_to_messages(&parsed, &ctx.meta.model).map(Some)
        }
    }
    .map_err(|e| {
        AttemptFailure::Fatal(ApiError::new(
            ErrorKind::Upstream,
            format!("could not translate the {provider} response: {e}"),
        ))
    })?;
    let body = match converted {
        None => body,
        Some(value) => Bytes::from(value.to_string()),
    };
    Ok(Completed {
        body,
        usage,
        provider,
        model: success.route.name.clone(),
        upstream_wait: waited + upstream_time,
        finish_reasons,
    })
}

impl Completed {
    /// Settles and builds the client's response, once the usage is durable where that is
    /// required (the response is the acknowledgement of the spend).
    pub(super) async fn into_response(
        self,
        ctx: &RequestCtx,
        mut settlement: Settlement,
    ) -> Response {
        settlement.trail.finish_reasons = self.finish_reasons;
        settlement.trail.capture_body(&self.body);
        let (cost, receipt) = settlement.settle(&self.usage, 200, Ending::Completed);
        if let Some(receipt) = receipt {
            receipt.durable().await;
        }
        // After the wait: making the spend durable is part of what the gateway adds.
        record_overhead(ctx.endpoint, ctx.started, self.upstream_wait);
        let mut response = (StatusCode::OK, self.body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(v) = HeaderValue::from_str(&micros_to_usd_string(cost)) {
            headers.insert(COST_HEADER, v);
        }
        set_route_headers(headers, &self.provider, &self.model);
        response
    }
}
