//! The request path, a stage per module, called in order from [`Gateway::handle`]:
//! authenticate (`crate::admission`) → [`ingress`] (read, parse and check the body) → resolve
//! the route (`crate::routing`) → [`admit`] (reserve, clamp) → [`attempt`] (candidates,
//! retries, fallbacks; [`prepare`] shapes each upstream body) → answer ([`complete`] or
//! [`stream`]) → [`settle`] (cost, usage, metrics, exactly once). [`context`] and [`outcome`]
//! hold what the stages share; [`trail`] carries what the trace and the request log learn.

mod admit;
mod attempt;
mod complete;
mod context;
mod count_tokens;
mod ingress;
mod outcome;
mod prepare;
mod retry;
mod settle;
mod stream;
mod trail;

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Request};
use tokio::time::Instant;

use crate::admission::Admission;
use crate::api::ClientError;
use crate::capacity::Capacity;
use crate::config::secrets::ResolvedKey;
use crate::config::{Config, ConfigError, secrets};
use crate::request_log::RequestLog;
use crate::routing::Router;
use crate::telemetry::Telemetry;
use context::{Payload, RequestCtx};
use outcome::{Outcome, RequestFailure};
use starling_governance::pricing::PriceTable;
use starling_providers::Provider;
use starling_wire::api::{ApiError, Endpoint};
use trail::Trail;

pub use context::{COST_HEADER, MODEL_HEADER, PROVIDER_HEADER, REQUEST_ID_HEADER};
pub use settle::InFlight;

/// Everything a node needs to serve requests; shared by all connections.
#[derive(Debug)]
pub struct Gateway {
    /// The effective configuration.
    pub config: Arc<Config>,
    /// Model resolution and deployments.
    pub router: Router,
    /// Authentication and admission.
    pub admission: Admission,
    /// Set when the node is shutting down: `/readyz` fails so load balancers move away.
    pub draining: std::sync::atomic::AtomicBool,
    /// OpenTelemetry traces (off unless configured).
    pub telemetry: Telemetry,
    /// Recent request records, when `[request_log]` keeps any.
    pub request_log: Option<Arc<RequestLog>>,
    /// Room for API requests in flight (`server.max_requests_in_flight`).
    pub request_slots: Capacity,
}

impl Gateway {
    /// Builds a gateway from a validated config: resolves provider keys and builds routes.
    pub fn from_config(config: Config) -> Result<Self, ConfigError> {
        let mut providers = Vec::new();
        for (i, p) in config.providers.iter().enumerate() {
            let key = match secrets::resolve_provider_key(i, p)? {
                ResolvedKey::Found(key) => Some(key),
                ResolvedKey::NotNeeded => None,
                ResolvedKey::Missing(why) if p.optional => {
                    tracing::info!(provider = %p.name, "provider is off: {why}");
                    continue;
                }
                ResolvedKey::Missing(why) => {
                    let field = if p.api_key_env.is_some() {
                        "api_key_env"
                    } else {
                        "api_key_file"
                    };
                    return Err(ConfigError::invalid(format!("providers[{i}].{field}"), why));
                }
            };
            providers.push(Arc::new(Provider::build(i, p, key)?));
        }
        let prices = PriceTable::with_overrides(&config.pricing.models)
            .map_err(|e| ConfigError::invalid("pricing", e.to_string()))?;
        let router = Router::build(&config, providers, prices)?;
        let admission = Admission::new(&config.auth);
        let telemetry = Telemetry::from_config(&config.tracing)
            .map_err(|e| ConfigError::invalid("tracing", e.to_string()))?;
        let request_log = RequestLog::from_config(&config.request_log).map_err(|e| {
            ConfigError::invalid(
                "request_log.file",
                format!("cannot open the request log: {e}"),
            )
        })?;
        let request_slots = Capacity::new(config.server.max_requests_in_flight);
        Ok(Self {
            request_slots,
            config: Arc::new(config),
            router,
            admission,
            draining: std::sync::atomic::AtomicBool::new(false),
            telemetry,
            request_log,
        })
    }

    /// Serves one API request end to end. Errors are answered in the endpoint's dialect.
    pub async fn handle(self: &Arc<Self>, endpoint: Endpoint, request: Request<Body>) -> Response {
        let started = Instant::now();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let Some(in_flight) = InFlight::try_enter(endpoint, &self.request_slots) else {
            let error = settle::shed(endpoint);
            settle::record_rejection(endpoint, None, &error, started);
            return ClientError::new(error, endpoint.format()).into_response();
        };
        let mut trail = Trail::start(
            &self.telemetry,
            self.request_log.as_ref(),
            endpoint,
            request.uri().path(),
            request.headers(),
        );
        let served = self
            .serve(endpoint, request, started, &id, in_flight, &mut trail)
            .await;
        let mut response = match served {
            Ok(response) => {
                // Answers that settle nothing (a local token count) end here.
                if trail.is_open() {
                    let status = response.status().as_u16();
                    trail.finish(&Outcome::unsettled(&id, endpoint, started, status, None));
                }
                response
            }
            Err(error) => {
                settle::record_rejection(endpoint, trail.metric_model.take(), &error, started);
                tracing::debug!(request_id = %id, status = %error.status(), "request failed: {}", error.message());
                trail.finish(&Outcome::unsettled(
                    &id,
                    endpoint,
                    started,
                    error.status().as_u16(),
                    Some(RequestFailure::Api(&error)),
                ));
                ClientError::new(error, endpoint.format()).into_response()
            }
        };
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        response
    }

    async fn serve(
        self: &Arc<Self>,
        endpoint: Endpoint,
        request: Request<Body>,
        started: Instant,
        id: &str,
        in_flight: InFlight,
        trail: &mut Trail,
    ) -> Result<Response, ApiError> {
        let (parts, body) = request.into_parts();
        let principal = self.admission.authenticate(&parts.headers)?;
        let key_id = principal.virtual_key.as_ref().map(|k| k.key.id.as_str());
        trail.set_identity(id, key_id);
        let mut request =
            ingress::read(endpoint, body, &parts.headers, &self.config.server).await?;
        let meta = &request.meta;
        trail.set_request(&meta.model, meta.max_tokens, meta.stream, &request.raw);
        let route = self.router.resolve(&meta.model)?;
        // From here on, failures are labelled with the resolved (bounded) model name.
        trail.model = Some(route.name.clone());
        trail.metric_model = Some(route.metric_label.clone());
        let admitted = admit::admit(
            &principal,
            self.admission.governance(),
            &self.router,
            endpoint,
            &route,
            &mut request,
            &trail.span,
        )
        .await?;
        let limit_headers = admitted.permit.headers().cloned();
        let ingress::ClientRequest { raw, object, meta } = request;
        let ctx = RequestCtx {
            id: id.to_owned(),
            endpoint,
            started,
            meta,
            headers: parts.headers,
            allowed_providers: admitted.allowed_providers,
        };
        let body = serde_json::Value::Object(object);
        let upstreams = attempt::Upstreams {
            router: &self.router,
            server: &self.config.server,
            tracing_on: self.telemetry.is_on(),
        };
        let mut response = attempt::run(
            &upstreams,
            ctx,
            route,
            Payload { raw, body },
            admitted.permit,
            in_flight,
            trail,
        )
        .await?;
        if let Some(extra) = limit_headers {
            response.headers_mut().extend(extra);
        }
        Ok(response)
    }
}
