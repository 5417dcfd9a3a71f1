//! The request path: authenticate, read and check the body, resolve the model, admit, call
//! upstream with retries and fallbacks, and answer, streaming or not, in the client's dialect.

mod attempt;
mod complete;
mod count_tokens;
mod prepare;
mod settle;
mod stream;
mod trail;

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request};
use tokio::time::Instant;

use crate::admission::{Admission, Permit};
use crate::api::{ClientError, request};
use crate::capacity::Capacity;
use crate::config::secrets::ResolvedKey;
use crate::config::{Config, ConfigError, secrets};
use crate::request_log::RequestLog;
use crate::routing::{ModelRoute, Router};
use crate::telemetry::Telemetry;
use starling_governance::estimate::{Tokenizer, tokenizer_for};
use starling_governance::pricing::PriceTable;
use starling_governance::{AdmitRequest, ReservePrice};
use starling_providers::Provider;
use starling_wire::api::ErrorKind;
use starling_wire::api::validate::{RequestMeta, validate};
use starling_wire::api::{ApiError, ApiFormat, Endpoint, json};
use trail::{Failure, Outcome, Trail};

pub use settle::{InFlight, in_flight_now};

/// Response header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Response header carrying the request's cost in USD.
pub const COST_HEADER: &str = "x-starling-cost-usd";
/// Response header naming the provider that served the request.
pub const PROVIDER_HEADER: &str = "x-starling-provider";
/// Response header naming the public model that served the request (after fallbacks).
pub const MODEL_HEADER: &str = "x-starling-model";

/// Names the provider and public model that answered, on a response to the client.
pub(crate) fn set_route_headers(headers: &mut HeaderMap, provider: &str, model: &str) {
    if let Ok(v) = HeaderValue::from_str(provider) {
        headers.insert(PROVIDER_HEADER, v);
    }
    if let Ok(v) = HeaderValue::from_str(model) {
        headers.insert(MODEL_HEADER, v);
    }
}

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

/// Per-request facts the stages below share.
#[derive(Debug)]
pub(crate) struct RequestCtx {
    pub id: String,
    pub endpoint: Endpoint,
    pub started: Instant,
    pub meta: RequestMeta,
    pub headers: HeaderMap,
    /// Providers a virtual key restricts the request to (empty: any).
    pub allowed_providers: Vec<String>,
}

impl RequestCtx {
    pub fn format(&self) -> ApiFormat {
        self.endpoint.format()
    }
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
                    Some(Failure::Api(&error)),
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
        let server = &self.config.server;
        let mut raw = request::read_body(body, &parts.headers, server.max_body_bytes).await?;
        let mut object = json::parse_json_object(&raw, server.max_json_depth)?;
        let meta = validate(endpoint, &object)?;
        trail.set_request(&meta.model, meta.max_tokens, meta.stream, &raw);
        let route = self.router.resolve(&meta.model)?;
        // From here on, failures are labelled with the resolved (bounded) model name.
        trail.model = Some(route.name.clone());
        trail.metric_model = Some(route.metric_label.clone());
        let admission = trail.span.child("starling.admission");
        admission.set_bool("starling.governed", principal.virtual_key.is_some());
        let (permit, allowed_providers) =
            match (&principal.virtual_key, self.admission.governance()) {
                (Some(key), Some(governance)) => {
                    let candidates = self.candidates(&route);
                    let providers: Vec<&str> = route
                        .deployments
                        .iter()
                        .map(|d| d.provider.name.as_ref())
                        .collect();
                    let admitted = governance
                        .admit(
                            key,
                            AdmitRequest {
                                endpoint,
                                requested_model: &meta.model,
                                route_name: &route.name,
                                route_providers: &providers,
                                price: reserve_price(&candidates),
                                tokenizer: tokenizer_of(&candidates),
                                body: &mut object,
                            },
                        )
                        .await
                        .inspect_err(|e| admission.fail(e.error_type(), e.message()))?;
                    if admitted.body_changed {
                        raw = Bytes::from(serde_json::to_vec(&object).map_err(|e| {
                            ApiError::new(
                                ErrorKind::Internal,
                                format!("cannot encode the request: {e}"),
                            )
                        })?);
                    }
                    (
                        Permit::governed(admitted.permit),
                        admitted.allowed_providers,
                    )
                }
                _ => (Permit::unlimited(), Vec::new()),
            };
        drop(admission);
        let limit_headers = permit.headers().cloned();
        let ctx = RequestCtx {
            id: id.to_owned(),
            endpoint,
            started,
            meta,
            headers: parts.headers,
            allowed_providers,
        };
        let body = serde_json::Value::Object(object);
        let mut response = attempt::run(
            self,
            ctx,
            route,
            attempt::Payload { raw, body },
            permit,
            in_flight,
            trail,
        )
        .await?;
        if let Some(extra) = limit_headers {
            response.headers_mut().extend(extra);
        }
        Ok(response)
    }

    /// The route and its configured fallbacks: every deployment that may serve the request.
    fn candidates(&self, route: &Arc<ModelRoute>) -> Vec<Arc<ModelRoute>> {
        std::iter::once(route.clone())
            .chain(
                route
                    .fallbacks
                    .iter()
                    .filter_map(|name| self.router.resolve(name).ok()),
            )
            .collect()
    }
}

/// The dearest prices among the candidates: a reservation must cover whichever serves.
fn reserve_price(candidates: &[Arc<ModelRoute>]) -> ReservePrice {
    let mut price = ReservePrice::default();
    for d in candidates.iter().flat_map(|r| r.deployments.iter()) {
        let p = d.price;
        price.input_nanos = price
            .input_nanos
            .max(p.input)
            .max(p.cached_input)
            .max(p.cache_write);
        price.output_nanos = price.output_nanos.max(p.output);
    }
    price
}

/// The tokenizer to bound input with: a real one only if every candidate uses it, else the
/// byte bound, which holds for any byte-level tokenizer.
fn tokenizer_of(candidates: &[Arc<ModelRoute>]) -> Tokenizer {
    let mut chosen = None;
    for d in candidates.iter().flat_map(|r| r.deployments.iter()) {
        let t = tokenizer_for(&d.upstream_model);
        match chosen {
            None => chosen = Some(t),
            Some(c) if c == t => {}
            Some(_) => return Tokenizer::Bytes,
        }
    }
    chosen.unwrap_or(Tokenizer::Bytes)
}
