//! The first stage after authentication: the client's body, read within the server's limits
//! (size, time, JSON depth), parsed, and checked for the endpoint.

use axum::body::Body;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Map, Value};
use starling_wire::api::validate::{RequestMeta, validate};
use starling_wire::api::{ApiError, Endpoint, json};

use crate::api::request;
use crate::config::ServerConfig;

/// A client's request, read and checked.
pub(super) struct ClientRequest {
    /// The body's bytes as they arrived (admission may re-encode them).
    pub raw: Bytes,
    /// The body, parsed.
    pub object: Map<String, Value>,
    /// What validation read from it: model, stream, output cap.
    pub meta: RequestMeta,
}

/// Reads the body (413 over `max_body_bytes`, 408 past the body deadline), parses it (400
/// deeper than `max_json_depth` or not an object) and validates it for `endpoint` (400
/// naming the field).
pub(super) async fn read(
    endpoint: Endpoint,
    body: Body,
    headers: &HeaderMap,
    server: &ServerConfig,
) -> Result<ClientRequest, ApiError> {
    let raw = request::read_body(body, headers, server.max_body_bytes).await?;
    let object = json::parse_json_object(&raw, server.max_json_depth)?;
    let meta = validate(endpoint, &object)?;
    Ok(ClientRequest { raw, object, meta })
}
