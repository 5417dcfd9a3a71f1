//! The generic catalog routes, `/admin/v1/catalog[/{id}]`: free-form JSON documents by id.
//! Governance ids ([`GovernedId`]) are readable here but written only through their own
//! endpoints, which check them.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{AdminError, AdminResult};
use super::{AdminState, body, cluster_of, render};
use starling_governance::model::{Entry, GovernedId};

/// Largest catalog document accepted.
const MAX_DOC_BYTES: usize = 1024 * 1024;
/// Largest catalog id accepted.
const MAX_ID_BYTES: usize = 256;

fn check_id(id: &str) -> Result<(), AdminError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES || id.chars().any(char::is_control) {
        return Err(AdminError::invalid(format!(
            "id: 1 to {MAX_ID_BYTES} bytes, no control characters"
        )));
    }
    Ok(())
}

/// Every id governance owns is written only through its own endpoints, which check it: a
/// revocation or a rotated secret written around them could bring a revoked key back.
fn not_governance(id: &str) -> Result<(), AdminError> {
    if GovernedId::parse(id).is_some() {
        return Err(AdminError::invalid(format!(
            "ids under {} belong to governance: use /admin/v1/keys, /teams or /customers",
            GovernedId::PREFIXES.join(", ")
        )));
    }
    Ok(())
}

fn not_found(id: &str) -> AdminError {
    AdminError::not_found(format!("no catalog entry {id:?}"))
}

/// A stored entry as JSON: generic documents as the JSON they were written as, governance
/// entities in their stored form (their own endpoints render them for people), except a key's
/// secret hash, which the admin API never shows.
fn document(entry: Entry) -> Value {
    match entry {
        Entry::Doc(doc) => serde_json::from_str(&doc).unwrap_or(Value::String(doc)),
        other => render::without_secret_hashes(serde_json::to_value(other).unwrap_or(Value::Null)),
    }
}

pub(crate) async fn read(State(state): State<AdminState>, Path(id): Path<String>) -> AdminResult {
    let cluster = cluster_of(&state)?;
    let doc = cluster.catalog_get(&id).ok_or_else(|| not_found(&id))?;
    Ok(axum::Json(json!({"id": id, "value": document(doc)})).into_response())
}

pub(crate) async fn write(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    body: Bytes,
) -> AdminResult {
    let cluster = cluster_of(&state)?;
    check_id(&id)?;
    not_governance(&id)?;
    if body.len() > MAX_DOC_BYTES {
        return Err(AdminError::too_large(MAX_DOC_BYTES));
    }
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| AdminError::invalid(format!("the body is not valid JSON: {e}")))?;
    cluster
        .catalog_put(&id, Entry::Doc(value.to_string()))
        .await
        .map_err(AdminError::storage)?;
    Ok(axum::Json(json!({"id": id, "value": value})).into_response())
}

pub(crate) async fn remove(State(state): State<AdminState>, Path(id): Path<String>) -> AdminResult {
    let cluster = cluster_of(&state)?;
    not_governance(&id)?;
    if cluster.read(|r| r.catalog().get(&id).is_none()) {
        return Err(not_found(&id));
    }
    cluster
        .catalog_delete(&id)
        .await
        .map_err(AdminError::storage)?;
    Ok(axum::Json(json!({"id": id, "deleted": true})).into_response())
}

/// Query of the catalog listing.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
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

pub(crate) async fn list(
    State(state): State<AdminState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> AdminResult {
    let cluster = cluster_of(&state)?;
    let query = body::query(query)?;
    let limit = super::page_limit(query.limit);
    // The catalog iterates in id order, so a page is the first `limit + 1` matches.
    let page: Vec<(String, Entry)> = cluster.read(|r| {
        r.catalog()
            .iter()
            .filter(|(id, _)| id.starts_with(&query.prefix))
            .filter(|(id, _)| query.after.as_deref().is_none_or(|after| *id > after))
            .take(limit + 1)
            .map(|(id, doc)| (id.to_owned(), doc.clone()))
            .collect()
    });
    let rows = page
        .into_iter()
        .map(|(id, doc)| json!({"id": id, "value": document(doc)}))
        .collect();
    Ok(super::page_response(rows, limit))
}
