//! What the stages of the request path share about one request: its context, its body, and
//! the response headers that say how it was served.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use serde_json::Value;
use starling_wire::api::validate::RequestMeta;
use starling_wire::api::{ApiFormat, Endpoint};
use tokio::time::Instant;

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

/// Per-request facts the stages share.
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

/// The client's request body: its bytes as they arrived (or as admission rewrote them) and
/// parsed.
pub(crate) struct Payload {
    pub raw: Bytes,
    pub body: Value,
}
