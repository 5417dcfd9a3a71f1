//! `/admin/v1/keys`: virtual keys. A key's secret is generated here, returned once (on create
//! and rotate) and stored only as its SHA-256; revoking keeps the record, so that a revoked key
//! is refused as revoked rather than as unknown. Rotations and revocations are entries of
//! their own beside the key's record (see [`starling_governance::model::KeySecret`]), so that
//! no update, wherever it is made, can undo them.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::error::{AdminError, AdminResult};
use super::input::{KeyBody, apply_key};
use super::store::{self, Change};
use super::{AdminState, body, cluster_of, page_limit, render};
use crate::time::now_ms;
use starling_governance::model::{
    EntityKind, Entry, KEY_REVOKED_PREFIX, KEY_SECRET_PREFIX, KeyRevoked, KeySecret, VirtualKey,
};
use starling_governance::secret;

/// The prefix of generated key ids.
const ID_PREFIX: &str = "vk_";

fn not_found(id: &str) -> AdminError {
    AdminError::not_found(format!("no key {id:?}"))
}

fn revoked(id: &str, what: &str) -> AdminError {
    AdminError::conflict(format!("key {id:?} is revoked and cannot be {what}"))
}

/// A new secret's stored hash and hint.
fn seal(secret: &str) -> (String, String) {
    (secret::to_hex(&secret::hash(secret)), secret::hint(secret))
}

/// `POST /admin/v1/keys`.
pub(crate) async fn create(State(state): State<AdminState>, body: Bytes) -> AdminResult {
    let cluster = cluster_of(&state)?;
    let body: KeyBody = body::parse(&body)?;
    let now = now_ms();
    let secret = secret::generate();
    let (secret_sha256, secret_hint) = seal(&secret);
    let mint_node = cluster.writer().node.as_str().to_owned();
    let key = store::change(cluster, |r| {
        let mut key = VirtualKey::new(
            store::fresh_id(r, EntityKind::Key, ID_PREFIX),
            secret_sha256,
            secret_hint,
            mint_node,
            now,
        );
        apply_key(body, &mut key, now, |kind, id| {
            store::account(r, kind, id).is_some()
        })?;
        let id = EntityKind::Key.catalog_id(&key.id);
        Ok((
            Change::Put(id, Box::new(Entry::Key(Arc::new(key.clone())))),
            key,
        ))
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(render::key_with_secret(&key, &secret)),
    )
        .into_response())
}

/// Query of the key listing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only keys of this team.
    team: Option<String>,
    /// Only keys of this customer.
    customer: Option<String>,
    /// Only keys after this id (the previous page's `next`).
    after: Option<String>,
    /// Page size (1 to 1000, default 100).
    limit: Option<usize>,
}

/// `GET /admin/v1/keys`: keys in id order, paginated.
pub(crate) async fn list(
    State(state): State<AdminState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> AdminResult {
    let cluster = cluster_of(&state)?;
    let q = body::query(query)?;
    let limit = page_limit(q.limit);
    let page: Vec<Value> = cluster.read(|r| {
        r.catalog()
            .iter()
            .filter_map(|(_, entry)| match entry {
                Entry::Key(k) => Some(store::in_force(r, k)),
                _ => None,
            })
            .filter(|k| q.after.as_deref().is_none_or(|after| k.id.as_str() > after))
            .filter(|k| q.team.is_none() || k.team == q.team)
            .filter(|k| q.customer.is_none() || k.customer == q.customer)
            .take(limit + 1)
            .map(|k| render::key(&k))
            .collect()
    });
    Ok(super::page_response(page, limit))
}

/// `GET /admin/v1/keys/{id}`.
pub(crate) async fn show(State(state): State<AdminState>, Path(id): Path<String>) -> AdminResult {
    let cluster = cluster_of(&state)?;
    let key = cluster
        .read(|r| store::key(r, &id).map(|k| render::key(&k)))
        .ok_or_else(|| not_found(&id))?;
    Ok(axum::Json(key).into_response())
}

/// `PATCH /admin/v1/keys/{id}`: a partial update; `null` clears a field.
pub(crate) async fn update(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    body: Bytes,
) -> AdminResult {
    let cluster = cluster_of(&state)?;
    let body: KeyBody = body::parse(&body)?;
    let now = now_ms();
    let key = store::change(cluster, |r| {
        let mut key = store::key(r, &id).ok_or_else(|| not_found(&id))?;
        if key.revoked_at_ms.is_some() {
            return Err(revoked(&id, "updated"));
        }
        apply_key(body, &mut key, now, |kind, id| {
            store::account(r, kind, id).is_some()
        })?;
        key.updated_at_ms = now;
        let cid = EntityKind::Key.catalog_id(&id);
        Ok((
            Change::Put(cid, Box::new(Entry::Key(Arc::new(key.clone())))),
            key,
        ))
    })
    .await?;
    Ok(axum::Json(render::key(&key)).into_response())
}

/// `POST /admin/v1/keys/{id}/revoke` and `DELETE /admin/v1/keys/{id}`: the key never works
/// again. Idempotent: revoking a revoked key keeps its first revocation time.
pub(crate) async fn revoke(State(state): State<AdminState>, Path(id): Path<String>) -> AdminResult {
    let cluster = cluster_of(&state)?;
    let now = now_ms();
    let key = store::change(cluster, |r| {
        let key = store::key(r, &id).ok_or_else(|| not_found(&id))?;
        if key.revoked_at_ms.is_some() {
            return Ok((Change::Nothing, key));
        }
        let revocation = KeyRevoked { revoked_at_ms: now };
        let key = key.in_force(None, Some(&revocation));
        let cid = format!("{KEY_REVOKED_PREFIX}{id}");
        Ok((
            Change::Put(cid, Box::new(Entry::KeyRevoked(revocation))),
            key,
        ))
    })
    .await?;
    Ok(axum::Json(render::key(&key)).into_response())
}

/// `POST /admin/v1/keys/{id}/rotate`: a new secret, returned once; the old one stops working
/// on each node as soon as the update reaches it.
pub(crate) async fn rotate(State(state): State<AdminState>, Path(id): Path<String>) -> AdminResult {
    let cluster = cluster_of(&state)?;
    let now = now_ms();
    let secret = secret::generate();
    let (secret_sha256, secret_hint) = seal(&secret);
    let key = store::change(cluster, |r| {
        let key = store::key(r, &id).ok_or_else(|| not_found(&id))?;
        if key.revoked_at_ms.is_some() {
            return Err(revoked(&id, "rotated"));
        }
        let rotated = KeySecret {
            secret_sha256,
            secret_hint,
            rotated_at_ms: now,
        };
        let key = key.in_force(Some(&rotated), None);
        let cid = format!("{KEY_SECRET_PREFIX}{id}");
        Ok((Change::Put(cid, Box::new(Entry::KeySecret(rotated))), key))
    })
    .await?;
    Ok(axum::Json(render::key_with_secret(&key, &secret)).into_response())
}
