//! `POST /admin/v1/budget/reclaim`: hands the budget rights of a node that is gone for good to
//! this node, and makes this node the mint node of the budgets the dead one minted, so that
//! their next periods are minted again.

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::error::{AdminError, AdminResult};
use super::{AdminState, body, cluster_of};
use starling_governance::model::Entry;

/// The request body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReclaimBody {
    /// The id of the dead node.
    node: String,
}

/// `POST /admin/v1/budget/reclaim`.
pub(crate) async fn reclaim(State(state): State<AdminState>, body: Bytes) -> AdminResult {
    let cluster = cluster_of(&state)?;
    let ReclaimBody { node } = body::parse(&body)?;
    let taken = cluster
        .reclaim_node(&node)
        .await
        .map_err(|e| AdminError::conflict(e.to_string()))?;
    let me = cluster.writer().node.as_str().to_owned();
    // Re-home mint duty: catalog entries whose mint node is the dead one.
    let orphans: Vec<(String, Entry)> = cluster.read(|r| {
        r.catalog()
            .iter()
            .filter_map(|(id, entry)| {
                let mut entry = entry.clone();
                let mint = match &mut entry {
                    Entry::Key(k) => &mut Arc::make_mut(k).mint_node,
                    Entry::Team(a) | Entry::Customer(a) => &mut a.mint_node,
                    Entry::Doc(_) | Entry::KeySecret(_) | Entry::KeyRevoked(_) => return None,
                };
                if *mint != node {
                    return None;
                }
                mint.clone_from(&me);
                Some((id.to_owned(), entry))
            })
            .collect()
    });
    let rehomed = orphans.len();
    for (id, entry) in orphans {
        cluster
            .catalog_put(&id, entry)
            .await
            .map_err(AdminError::storage)?;
    }
    let total = taken
        .iter()
        .fold(0u64, |sum, (_, amount)| sum.saturating_add(*amount));
    let budgets: Vec<_> = taken
        .iter()
        .map(|(key, amount)| {
            json!({
                "budget": key.scope,
                "period": format!("{:?}", key.period),
                "reclaimed_usd": starling_governance::pricing::micros_to_usd_string(*amount),
            })
        })
        .collect();
    tracing::warn!(dead = %node, budgets = budgets.len(), total_micros = total, rehomed, "reclaimed the rights of a dead node");
    Ok(axum::Json(json!({
        "node": node,
        "reclaimed_by": me,
        "reclaimed_usd": starling_governance::pricing::micros_to_usd_string(total),
        "budgets": budgets,
        "mint_duty_moved": rehomed,
    }))
    .into_response())
}
