//! The admin API under `/admin/v1`, guarded by a bearer token that is separate from client keys:
//!
//! - cluster status and state digests (here);
//! - generic catalog documents ([`catalog`]);
//! - governance: virtual keys ([`keys`]), teams and customers ([`accounts`]) and their usage
//!   ([`usage`]), read from and written to the replicated catalog and counters.
//!
//! - recent request records ([`logs`]), from the node's request log.
//!
//! Every error has the shape `{"error":{"type","message"}}` ([`error`]); request bodies are
//! bounded and strict, and errors name the field ([`body`]). See docs/governance.md.

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::cluster::Cluster;
use crate::config::secrets::{Secret, secret_from_env, secret_from_file};
use crate::config::{AdminConfig, ConfigError};
use starling_governance::model::EntityKind;

mod accounts;
mod body;
mod catalog;
mod error;
mod input;
mod keys;
mod logs;
mod money;
mod reclaim;
mod render;
mod store;
mod usage;

use error::{AdminError, AdminResult, error};

/// Environment variable read for the admin token when the config names no source.
pub const DEFAULT_TOKEN_ENV: &str = "STARLING_ADMIN_TOKEN";

/// Shortest admin token a node starts with.
pub const MIN_TOKEN_BYTES: usize = 16;

/// Default page size of listings.
const DEFAULT_PAGE: usize = 100;
/// Largest page size of listings.
const MAX_PAGE: usize = 1_000;

/// What the admin routes need.
#[derive(Clone, Default)]
pub struct AdminState {
    /// The bearer token; `None` turns the admin API off.
    pub token: Option<Secret>,
    /// The cluster member, when clustering is on.
    pub cluster: Option<Cluster>,
}

impl AdminState {
    /// Reads the admin token named by the config (or `STARLING_ADMIN_TOKEN`), and refuses one
    /// shorter than [`MIN_TOKEN_BYTES`].
    pub fn token_from_config(config: &AdminConfig) -> Result<Option<Secret>, ConfigError> {
        let (field, token) = match &config.token_file {
            Some(path) => (
                "admin.token_file",
                secret_from_file(path).map_err(|e| {
                    ConfigError::invalid(
                        "admin.token_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?,
            ),
            None => (
                "admin.token_env",
                secret_from_env(config.token_env.as_deref().unwrap_or(DEFAULT_TOKEN_ENV)),
            ),
        };
        if let Some(token) = &token
            && token.expose().len() < MIN_TOKEN_BYTES
        {
            return Err(ConfigError::invalid(
                field,
                format!(
                    "the admin token is {} bytes; it must be at least {MIN_TOKEN_BYTES} (make one with `openssl rand -hex 32`)",
                    token.expose().len()
                ),
            ));
        }
        Ok(token)
    }
}

/// The `/admin/v1` routes.
pub fn routes(state: AdminState) -> Router {
    Router::new()
        .route("/admin/v1/cluster", get(cluster_status))
        .route("/admin/v1/state/digest", get(digest))
        .route("/admin/v1/state/dump", get(dump))
        .route("/admin/v1/catalog", get(catalog::list))
        .route(
            "/admin/v1/catalog/{id}",
            get(catalog::read)
                .put(catalog::write)
                .delete(catalog::remove),
        )
        .route("/admin/v1/keys", post(keys::create).get(keys::list))
        .route(
            "/admin/v1/keys/{id}",
            get(keys::show).patch(keys::update).delete(keys::revoke),
        )
        .route("/admin/v1/keys/{id}/revoke", post(keys::revoke))
        .route("/admin/v1/keys/{id}/rotate", post(keys::rotate))
        .merge(accounts::routes(EntityKind::Team, "/admin/v1/teams"))
        .merge(accounts::routes(
            EntityKind::Customer,
            "/admin/v1/customers",
        ))
        .route("/admin/v1/usage", get(usage::usage))
        .route("/admin/v1/budget/reclaim", post(reclaim::reclaim))
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state)
}

pub use logs::routes as log_routes;

/// A listing's page size: 1 to [`MAX_PAGE`], [`DEFAULT_PAGE`] when not given.
fn page_limit(limit: Option<usize>) -> usize {
    limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
}

/// A page of a listing: `rows` holds up to `limit + 1` rows in id order, each with an `id`;
/// the extra row only tells that there is more, and `next` is the last id shown.
fn page_response(mut rows: Vec<Value>, limit: usize) -> Response {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more {
        rows.last().map(|row| row["id"].clone())
    } else {
        None
    };
    axum::Json(json!({"data": rows, "next": next})).into_response()
}

/// Whether `presented` is the admin token. Both are hashed first and the digests compared in
/// constant time, so the time taken reveals neither how much matched nor the token's length.
fn is_admin_token(presented: &str, token: &str) -> bool {
    let presented = Sha256::digest(presented.as_bytes());
    let token = Sha256::digest(token.as_bytes());
    presented.ct_eq(&token).into()
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
        Some(p) if is_admin_token(p, token.expose()) => next.run(request).await,
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

/// `GET /admin/v1/state/dump`: every replicated row (catalog entries, counter cells, rights
/// rows, period floors) as JSON, with the digest, so that a checker can compare two nodes row
/// by row where their digests differ. Keys' secret hashes are left out. Rows come in the
/// replica's own (canonical) order.
async fn dump(State(state): State<AdminState>) -> AdminResult {
    let cluster = cluster_of(&state)?;
    let internal = |e: String| error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", e);
    let (digest, rows) = cluster
        .read(|r| {
            let digest = r.digest().map_err(|e| e.to_string())?;
            let items = r.full_state().items;
            let rows = dump_rows(&items);
            Ok::<_, String>((digest, rows))
        })
        .map_err(internal)?;
    Ok(axum::Json(json!({
        "node_id": cluster.writer().node.as_str(),
        "digest": digest.to_string(),
        "rows": rows,
    }))
    .into_response())
}

/// Every row of a full state, each as `{"kind", "row"}`. A row is JSON where it can be, and
/// its debug form where JSON cannot hold it (maps keyed by writer ids); both are canonical,
/// so equal rows print equal on every node.
fn dump_rows(
    items: &starling_cluster::state::ReplicaItems<crate::cluster::CatalogDoc>,
) -> Vec<Value> {
    fn row(kind: &str, item: &(impl serde::Serialize + std::fmt::Debug)) -> Value {
        let row = serde_json::to_value(item).unwrap_or_else(|_| Value::String(format!("{item:?}")));
        json!({"kind": kind, "row": render::without_secret_hashes(row)})
    }
    let catalog = items.catalog.iter().map(|i| row("catalog", i));
    let cells = items.counters.cells.iter().map(|i| row("counter", i));
    let counter_floors = items
        .counters
        .floors
        .iter()
        .map(|i| row("counter_floor", i));
    let rights = items.rights.keys.iter().map(|i| row("rights", i));
    let rights_floors = items.rights.floors.iter().map(|i| row("rights_floor", i));
    catalog
        .chain(cells)
        .chain(counter_floors)
        .chain(rights)
        .chain(rights_floors)
        .collect()
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
