//! `/admin/v1/teams` and `/admin/v1/customers`: accounts whose budgets and limits their keys
//! share. The two differ only in their id prefix and in that customers have no model list.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::Field;
use super::error::{AdminError, AdminResult};
use super::input::{AccountBody, apply_account, check_account_id};
use super::store::{self, Change};
use super::{AdminState, body, cluster_of, page_limit, render};
use crate::time::now_ms;
use starling_governance::model::{Account, EntityKind};

/// The routes of one account kind under `base` (`/admin/v1/teams`).
pub(crate) fn routes(kind: EntityKind, base: &str) -> Router<AdminState> {
    Router::new()
        .route(
            base,
            get(move |s, q| list(kind, s, q)).post(move |s, b| create(kind, s, b)),
        )
        .route(
            &format!("{base}/{{id}}"),
            get(move |s, p| show(kind, s, p))
                .patch(move |s, p, b| update(kind, s, p, b))
                .delete(move |s, p| delete(kind, s, p)),
        )
}

/// The prefix of generated ids.
fn id_prefix(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Customer => "cus_",
        EntityKind::Team | EntityKind::Key => "team_",
    }
}

fn not_found(kind: EntityKind, id: &str) -> AdminError {
    AdminError::not_found(format!("no {} {id:?}", kind.noun()))
}

async fn create(kind: EntityKind, State(state): State<AdminState>, body: Bytes) -> AdminResult {
    let cluster = cluster_of(&state)?;
    let mut body: AccountBody = body::parse(&body)?;
    let chosen = match std::mem::take(&mut body.id) {
        Field::Value(id) => {
            check_account_id(&id)?;
            Some(id)
        }
        Field::Absent | Field::Null => None,
    };
    let now = now_ms();
    let mint_node = cluster.writer().node.as_str().to_owned();
    let account = store::change(cluster, |r| {
        let id = match chosen {
            // A deleted id may be chosen again; the new account starts from the old one's
            // usage counters, which are kept by scope.
            Some(id) if r.catalog().get(&kind.catalog_id(&id)).is_some() => {
                return Err(AdminError::conflict(format!(
                    "{} {id:?} already exists",
                    kind.noun()
                )));
            }
            Some(id) => id,
            None => store::fresh_id(r, kind, id_prefix(kind)),
        };
        let mut account = Account::new(id, mint_node, now);
        apply_account(kind, body, &mut account, now)?;
        let cid = kind.catalog_id(&account.id);
        Ok((
            Change::Put(cid, Box::new(store::account_entry(kind, account.clone()))),
            account,
        ))
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(render::account(kind, &account)),
    )
        .into_response())
}

/// Query of an account listing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only accounts after this id (the previous page's `next`).
    after: Option<String>,
    /// Page size (1 to 1000, default 100).
    limit: Option<usize>,
}

async fn list(
    kind: EntityKind,
    State(state): State<AdminState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> AdminResult {
    let cluster = cluster_of(&state)?;
    let q = body::query(query)?;
    let limit = page_limit(q.limit);
    let prefix = kind.catalog_id("");
    let page: Vec<Value> = cluster.read(|r| {
        r.catalog()
            .iter()
            .filter(|(cid, _)| cid.starts_with(&prefix))
            .filter_map(|(cid, _)| store::account(r, kind, &cid[prefix.len()..]))
            .filter(|a| q.after.as_deref().is_none_or(|after| a.id.as_str() > after))
            .take(limit + 1)
            .map(|a| render::account(kind, a))
            .collect()
    });
    Ok(super::page_response(page, limit))
}

async fn show(
    kind: EntityKind,
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> AdminResult {
    let cluster = cluster_of(&state)?;
    let account = cluster
        .read(|r| store::account(r, kind, &id).map(|a| render::account(kind, a)))
        .ok_or_else(|| not_found(kind, &id))?;
    Ok(axum::Json(account).into_response())
}

async fn update(
    kind: EntityKind,
    State(state): State<AdminState>,
    Path(id): Path<String>,
    body: Bytes,
) -> AdminResult {
    let cluster = cluster_of(&state)?;
    let mut body: AccountBody = body::parse(&body)?;
    match std::mem::take(&mut body.id) {
        Field::Value(same) if same == id => {}
        Field::Absent => {}
        _ => return Err(AdminError::field("id", "cannot be changed")),
    }
    let now = now_ms();
    let account = store::change(cluster, |r| {
        let mut account = store::account(r, kind, &id)
            .ok_or_else(|| not_found(kind, &id))?
            .clone();
        apply_account(kind, body, &mut account, now)?;
        account.updated_at_ms = now;
        let cid = kind.catalog_id(&id);
        Ok((
            Change::Put(cid, Box::new(store::account_entry(kind, account.clone()))),
            account,
        ))
    })
    .await?;
    Ok(axum::Json(render::account(kind, &account)).into_response())
}

/// Deletes an account that no live key uses: a key of a deleted team would otherwise point at
/// nothing, and its team budget would silently stop applying.
async fn delete(
    kind: EntityKind,
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> AdminResult {
    let cluster = cluster_of(&state)?;
    store::change(cluster, |r| {
        if store::account(r, kind, &id).is_none() {
            return Err(not_found(kind, &id));
        }
        let keys = store::live_keys_of(r, kind, &id);
        if keys > 0 {
            let (noun, verb) = if keys == 1 { ("key", "is") } else { ("keys", "are") };
            return Err(AdminError::conflict(format!(
                "{} {id:?} still has {keys} {noun} that {verb} not revoked: revoke them or move them to another {} first",
                kind.noun(),
                kind.noun()
            )));
        }
        Ok((Change::Delete(kind.catalog_id(&id)), ()))
    })
    .await?;
    Ok(axum::Json(json!({"id": id, "deleted": true})).into_response())
}
