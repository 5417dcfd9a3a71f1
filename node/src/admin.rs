//! The admin API under `/admin/v1`: cluster status, state digests, and generic catalog reads and
//! writes (governance builds keys, teams and customers on these). Guarded by a bearer token
//! that is separate from client keys.

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::config::secrets::{Secret, secret_from_env, secret_from_file};
use crate::config::{AdminConfig, ConfigError};

/// Environment variable read for the admin token when the config names no source.
pub const DEFAULT_TOKEN_ENV: &str = "STARLING_ADMIN_TOKEN";
/// Largest catalog document accepted.
const MAX_DOC_BYTES: usize = 1024 * 1024;
/// Largest catalog id accepted.
const MAX_ID_BYTES: usize = 256;

/// What the admin routes need.
#[derive(Clone, Default)]
pub struct AdminState {
    /// The bearer token; `None` turns the admin API off.
    pub token: Option<Secret>,
    /// The cluster member, when clustering is on.
    pub cluster: Option<Cluster>,
}

impl AdminState {
    /// Reads the admin token named by the config (or `STARLING_ADMIN_TOKEN`).
    pub fn token_from_config(config: &AdminConfig) -> Result<Option<Secret>, ConfigError> {
        if let Some(path) = &config.token_file {
            return secret_from_file(path).map_err(|e| {
                ConfigError::invalid(
                    "admin.token_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            });
        }
        Ok(secret_from_env(
            config.token_env.as_deref().unwrap_or(DEFAULT_TOKEN_ENV),
        ))
    }
}

/// An admin API error: `{"error":{"type","message"}}` with its status.
struct AdminError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"type": self.kind, "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}

fn error(status: StatusCode, kind: &'static str, message: impl Into<String>) -> AdminError {
    AdminError {
        status,
        kind,
        message: message.into(),
    }
}

type AdminResult = Result<Response, AdminError>;

/// The `/admin/v1` routes.
pub fn routes(state: AdminState) -> Router {
    Router::new()
        .route("/admin/v1/cluster", get(cluster_status))
        .route("/admin/v1/state/digest", get(digest))
        .route("/admin/v1/catalog", get(list))
        .route(
            "/admin/v1/catalog/{id}",
            get(read).put(write).delete(remove),
        )
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state)
}

/// Compares without an early exit, so the time taken does not reveal how much matched.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn authorize(
    State(state): State<AdminState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = &state.token else {
        return error(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            format!(
                "the admin API is off: set {DEFAULT_TOKEN_ENV} (or admin.token_env / admin.token_file)"
            ),
        )
        .into_response();
    };
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(p) if same(p.as_bytes(), token.expose().as_bytes()) => next.run(request).await,
        _ => error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "missing or wrong admin token",
        )
        .into_response(),
    }
}

fn cluster_of(state: &AdminState) -> Result<&Cluster, AdminError> {
    state.cluster.as_ref().ok_or_else(|| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster_off",
            "clustering is off: set cluster.node_id (or --node-id)",
        )
    })
}

async fn cluster_status(State(state): State<AdminState>) -> AdminResult {
    let cluster = cluster_of(&state)?;
    let members = cluster.members().await;
    let digest = cluster.digest().map(|d| d.to_string()).unwrap_or_default();
    let writer = cluster.writer();
    let members: Vec<Value> = members
        .iter()
        .map(|m| {
            json!({
                "node_id": m.node_id,
                "gossip_addr": m.gossip_addr.to_string(),
                "live": m.live,
                "http": m.metadata.get("http"),
                "version": m.metadata.get("version"),
                "ready": m.metadata.get("ready").map(|v| v == "true"),
                "load": m.metadata.get("load").and_then(|l| l.parse::<u64>().ok()),
                "digest": m.metadata.get("digest"),
                "replication_lag_ms": m.last_sync_ms_ago,
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "node_id": writer.node.as_str(),
        "incarnation": writer.incarnation,
        "digest": digest,
        "members": members,
    }))
    .into_response())
}

async fn digest(State(state): State<AdminState>) -> AdminResult {
    let cluster = cluster_of(&state)?;
    let digest = cluster.digest().map_err(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            e.to_string(),
        )
    })?;
    Ok(axum::Json(json!({
        "node_id": cluster.writer().node.as_str(),
        "digest": digest.to_string(),
    }))
    .into_response())
}

fn check_id(id: &str) -> Result<(), AdminError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES || id.chars().any(char::is_control) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!("id: 1 to {MAX_ID_BYTES} bytes, no control characters"),
        ));
    }
    Ok(())
}

fn not_found(id: &str) -> AdminError {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no catalog entry {id:?}"),
    )
}

/// A stored document as JSON (documents are stored as JSON text).
fn document(doc: String) -> Value {
    serde_json::from_str(&doc).unwrap_or(Value::String(doc))
}

async fn read(State(state): State<AdminState>, Path(id): Path<String>) -> AdminResult {
    let cluster = cluster_of(&state)?;
    let doc = cluster
        .catalog_view()
        .get(&id)
        .ok_or_else(|| not_found(&id))?;
    Ok(axum::Json(json!({"id": id, "value": document(doc)})).into_response())
}

async fn write(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    body: Bytes,
) -> AdminResult {
    let cluster = cluster_of(&state)?;
    check_id(&id)?;
    if body.len() > MAX_DOC_BYTES {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("documents are limited to {MAX_DOC_BYTES} bytes"),
        ));
    }
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    cluster
        .catalog_put(&id, value.to_string())
        .await
        .map_err(|e| {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_error",
                e.to_string(),
            )
        })?;
    Ok(axum::Json(json!({"id": id, "value": value})).into_response())
}

async fn remove(State(state): State<AdminState>, Path(id): Path<String>) -> AdminResult {
    let cluster = cluster_of(&state)?;
    if cluster.read(|r| r.catalog().get(&id).is_none()) {
        return Err(not_found(&id));
    }
    cluster.catalog_delete(&id).await.map_err(|e| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_error",
            e.to_string(),
        )
    })?;
    Ok(axum::Json(json!({"id": id, "deleted": true})).into_response())
}

/// Query of the catalog listing.
#[derive(Debug, Deserialize)]
struct ListQuery {
    /// Only ids starting with this.
    #[serde(default)]
    prefix: String,
    /// Only ids after this one (the previous page's `next`).
    #[serde(default)]
    after: Option<String>,
    /// Page size (1 to 1000, default 100).
    #[serde(default)]
    limit: Option<usize>,
}

async fn list(State(state): State<AdminState>, Query(query): Query<ListQuery>) -> AdminResult {
    let cluster = cluster_of(&state)?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1_000);
    // The catalog iterates in id order, so a page is the first `limit + 1` matches.
    let mut page: Vec<(String, String)> = cluster.read(|r| {
        r.catalog()
            .iter()
            .filter(|(id, _)| id.starts_with(&query.prefix))
            .filter(|(id, _)| query.after.as_deref().is_none_or(|after| *id > after))
            .take(limit + 1)
            .map(|(id, doc)| (id.to_owned(), doc.clone()))
            .collect()
    });
    let more = page.len() > limit;
    page.truncate(limit);
    let next = more
        .then(|| page.last().map(|(id, _)| id.clone()))
        .flatten();
    let data: Vec<Value> = page
        .into_iter()
        .map(|(id, doc)| json!({"id": id, "value": document(doc)}))
        .collect();
    Ok(axum::Json(json!({"data": data, "next": next})).into_response())
}
