//! `GET /admin/v1/usage?scope=key:<id>|team:<id>|customer:<id>[&period=P]`: cluster-wide usage
//! of one entity, from the replicated counters, in the current hour, day, week, month and in
//! total, and against each of its budgets.
//!
//! The counters are summed over every writer this node has heard from, so a figure lags the
//! other nodes' latest requests by their replication delay.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use starling_cluster::crdt::{CounterKey, Period, PeriodUnit, Usage};

use super::error::{AdminError, AdminResult};
use super::money::micros_to_usd;
use super::store;
use super::{AdminState, body, cluster_of};
use crate::time::{now_ms, rfc3339};
use starling_governance::model::{self, EntityKind, USAGE_UNITS};

/// Query of the usage report.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsageQuery {
    /// `key:<id>`, `team:<id>` or `customer:<id>`.
    scope: String,
    /// Only this period: a usage period or one of the entity's budget periods.
    period: Option<String>,
}

/// The API label of a usage period unit.
fn unit_label(unit: PeriodUnit) -> Option<&'static str> {
    Some(match unit {
        PeriodUnit::Hour => "hourly",
        PeriodUnit::Day => "daily",
        PeriodUnit::Week => "weekly",
        PeriodUnit::Month => "monthly",
        PeriodUnit::Lifetime => "total",
        _ => return None,
    })
}

/// Splits `kind:id` (or the counter form `kind/id`).
fn parse_scope(scope: &str) -> Result<(EntityKind, &str), AdminError> {
    let (kind, id) = scope
        .split_once([':', '/'])
        .and_then(|(kind, id)| {
            let kind = match kind {
                "key" => EntityKind::Key,
                "team" => EntityKind::Team,
                "customer" => EntityKind::Customer,
                _ => return None,
            };
            (!id.is_empty()).then_some((kind, id))
        })
        .ok_or_else(|| {
            AdminError::field(
                "scope",
                format!("{scope:?}: use key:<id>, team:<id> or customer:<id>"),
            )
        })?;
    Ok((kind, id))
}

/// A period's window and usage.
fn window(start: Option<u64>, end: Option<u64>, usage: Usage) -> Value {
    json!({
        "start": start.map(rfc3339),
        "end": end.map(rfc3339),
        "spend_usd": micros_to_usd(usage.spend_micros),
        "tokens": usage.tokens,
        "requests": usage.requests,
    })
}

/// A period's `[start, end)` for people: the lifetime period has neither.
fn bounds(period: Period) -> (Option<u64>, Option<u64>) {
    if period.unit == PeriodUnit::Lifetime {
        return (None, None);
    }
    let (start, end) = period.bounds_ms();
    (Some(start), Some(end))
}

/// `GET /admin/v1/usage`.
pub(crate) async fn usage(
    State(state): State<AdminState>,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> AdminResult {
    let cluster = cluster_of(&state)?;
    let q = body::query(query)?;
    let (kind, id) = parse_scope(&q.scope)?;
    let now = now_ms();
    let (mut periods, mut budgets) = cluster.read(|r| {
        let limits = match kind {
            EntityKind::Key => store::key(r, id).map(|k| k.limits),
            _ => store::account(r, kind, id).map(|a| a.limits.clone()),
        }
        .ok_or_else(|| AdminError::not_found(format!("no {} {id:?}", kind.noun())))?;
        let scope = model::scope(kind, id);
        let total = |period: Period| r.counters().total(&CounterKey::new(scope.clone(), period));
        let mut periods = Map::new();
        for unit in USAGE_UNITS {
            let Some(label) = unit_label(unit) else {
                continue;
            };
            let period = Period::containing(unit, now);
            let (start, end) = bounds(period);
            periods.insert(label.to_owned(), window(start, end, total(period)));
        }
        let mut budgets = Vec::new();
        for budget in &limits.budgets {
            let label = budget.period.label();
            let (period, start, end) = budget.period.current(now);
            let used = total(period);
            if !periods.contains_key(&label) {
                let (start, end) = match period.unit {
                    PeriodUnit::Lifetime => (None, None),
                    _ => (Some(start), Some(end)),
                };
                periods.insert(label.clone(), window(start, end, used));
            }
            budgets.push(json!({
                "period": label,
                "mode": budget.mode.as_str(),
                "amount_usd": micros_to_usd(budget.amount_micros),
                "spent_usd": micros_to_usd(used.spend_micros),
                "remaining_usd": micros_to_usd(budget.amount_micros.saturating_sub(used.spend_micros)),
            }));
        }
        Ok::<_, AdminError>((periods, budgets))
    })?;
    if let Some(wanted) = &q.period {
        if !periods.contains_key(wanted) {
            let known: Vec<&str> = periods.keys().map(String::as_str).collect();
            return Err(AdminError::field(
                "period",
                format!("{wanted:?}: use one of {}", known.join(", ")),
            ));
        }
        periods.retain(|label, _| label == wanted);
        budgets.retain(|b| b["period"] == wanted.as_str());
    }
    Ok(axum::Json(json!({
        "scope": format!("{}:{id}", kind.prefix()),
        "periods": periods,
        "budgets": budgets,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse() {
        assert_eq!(
            parse_scope("key:vk_1").map_err(|e| e.message),
            Ok((EntityKind::Key, "vk_1"))
        );
        assert_eq!(
            parse_scope("team/t1").map_err(|e| e.message),
            Ok((EntityKind::Team, "t1"))
        );
        for bad in ["", "key", "key:", "org:x", "vk_1"] {
            let e = parse_scope(bad).expect_err(bad);
            assert!(e.message.starts_with("scope: "), "{}", e.message);
        }
    }
}
