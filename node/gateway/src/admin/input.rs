//! Create and update bodies of keys, teams and customers, checked and applied to the model.
//!
//! One body type serves both create and update: on create, absent and `null` leave a field at
//! its default; on update, absent keeps it and `null` clears it. Every error names its field.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::body::Field;
use super::error::AdminError;
use super::money::{MAX_USD, usd_to_micros};
use crate::time::{parse_rfc3339, rfc3339};
use starling_governance::model::{
    Account, Budget, BudgetMode, BudgetPeriod, EntityKind, Limits, Metadata, VirtualKey,
};

/// Longest name, model pattern or provider name.
const MAX_TEXT: usize = 256;
/// Most entries in a model or provider list.
const MAX_LIST: usize = 1_000;
/// Most budgets on one entity (one per period label).
const MAX_BUDGETS: usize = 16;
/// Longest operator-chosen team or customer id.
const MAX_ID: usize = 64;

/// The fields of a key (`POST /keys`, `PATCH /keys/{id}`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyBody {
    #[serde(default)]
    name: Field<String>,
    #[serde(default)]
    team: Field<String>,
    #[serde(default)]
    customer: Field<String>,
    #[serde(default)]
    models: Field<Vec<String>>,
    #[serde(default)]
    providers: Field<Vec<String>>,
    #[serde(default)]
    budgets: Field<Vec<BudgetBody>>,
    #[serde(default)]
    rpm: Field<u64>,
    #[serde(default)]
    tpm: Field<u64>,
    #[serde(default)]
    max_concurrent: Field<u64>,
    /// An RFC 3339 string or epoch milliseconds; checked by hand for a precise message.
    #[serde(default)]
    expires_at: Field<Value>,
    #[serde(default)]
    expires_in: Field<String>,
    #[serde(default)]
    enabled: Field<bool>,
    #[serde(default)]
    metadata: Field<Map<String, Value>>,
}

/// The fields of a team or customer (`POST`, `PATCH` on `/teams` and `/customers`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccountBody {
    /// Only on create: the operator's id.
    #[serde(default)]
    pub(crate) id: Field<String>,
    #[serde(default)]
    name: Field<String>,
    #[serde(default)]
    models: Field<Vec<String>>,
    #[serde(default)]
    budgets: Field<Vec<BudgetBody>>,
    #[serde(default)]
    rpm: Field<u64>,
    #[serde(default)]
    tpm: Field<u64>,
    #[serde(default)]
    max_concurrent: Field<u64>,
    #[serde(default)]
    enabled: Field<bool>,
    #[serde(default)]
    metadata: Field<Map<String, Value>>,
}

/// One budget as the API takes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BudgetBody {
    amount_usd: f64,
    period: String,
    #[serde(default)]
    mode: Option<String>,
}

/// Applies a key body to `key` (a fresh key on create). `exists` says whether a team or
/// customer is in the catalog.
pub(crate) fn apply_key(
    body: KeyBody,
    key: &mut VirtualKey,
    now_ms: u64,
    exists: impl Fn(EntityKind, &str) -> bool,
) -> Result<(), AdminError> {
    set_name(body.name, &mut key.name)?;
    for (field, kind, value, target) in [
        ("team", EntityKind::Team, body.team, &mut key.team),
        (
            "customer",
            EntityKind::Customer,
            body.customer,
            &mut key.customer,
        ),
    ] {
        match value {
            Field::Absent => {}
            Field::Null => *target = None,
            Field::Value(id) => {
                if !exists(kind, &id) {
                    return Err(AdminError::field(
                        field,
                        format!("no {} {id:?}: create it first", kind.noun()),
                    ));
                }
                *target = Some(id);
            }
        }
    }
    set_list("models", body.models, &mut key.models)?;
    set_list("providers", body.providers, &mut key.providers)?;
    set_limits(
        body.budgets,
        [body.rpm, body.tpm, body.max_concurrent],
        &mut key.limits,
        now_ms,
    )?;
    set_expiry(
        body.expires_at,
        body.expires_in,
        &mut key.expires_at_ms,
        now_ms,
    )?;
    set_enabled(body.enabled, &mut key.enabled)?;
    set_metadata(body.metadata, &mut key.metadata);
    if key.name.is_empty() {
        return Err(AdminError::field("name", "is required"));
    }
    Ok(())
}

/// Applies an account body (its `id` aside) to `account` (a fresh one on create).
pub(crate) fn apply_account(
    kind: EntityKind,
    body: AccountBody,
    account: &mut Account,
    now_ms: u64,
) -> Result<(), AdminError> {
    set_name(body.name, &mut account.name)?;
    if kind == EntityKind::Customer && body.models.is_present() {
        return Err(AdminError::field(
            "models",
            "customers have no model list: set models on their keys or teams",
        ));
    }
    set_list("models", body.models, &mut account.models)?;
    set_limits(
        body.budgets,
        [body.rpm, body.tpm, body.max_concurrent],
        &mut account.limits,
        now_ms,
    )?;
    set_enabled(body.enabled, &mut account.enabled)?;
    set_metadata(body.metadata, &mut account.metadata);
    Ok(())
}

/// Checks an operator-chosen team or customer id: `[A-Za-z0-9_.-]{1,64}`.
pub(crate) fn check_account_id(id: &str) -> Result<(), AdminError> {
    let ok = (1..=MAX_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(AdminError::field(
            "id",
            format!("{id:?}: use 1 to {MAX_ID} letters, digits, '_', '.' or '-'"),
        ))
    }
}

fn check_text(field: &str, text: &str) -> Result<(), AdminError> {
    if text.trim().is_empty() || text.len() > MAX_TEXT || text.chars().any(char::is_control) {
        return Err(AdminError::field(
            field,
            format!("1 to {MAX_TEXT} bytes, not blank, no control characters"),
        ));
    }
    Ok(())
}

fn set_name(value: Field<String>, name: &mut String) -> Result<(), AdminError> {
    match value {
        Field::Absent => Ok(()),
        Field::Null => Err(AdminError::field("name", "cannot be null")),
        Field::Value(v) => {
            check_text("name", &v)?;
            *name = v;
            Ok(())
        }
    }
}

fn set_list(
    field: &str,
    value: Field<Vec<String>>,
    list: &mut Vec<String>,
) -> Result<(), AdminError> {
    match value {
        Field::Absent => {}
        Field::Null => list.clear(),
        Field::Value(items) => {
            if items.len() > MAX_LIST {
                return Err(AdminError::field(
                    field,
                    format!("at most {MAX_LIST} entries"),
                ));
            }
            for (i, item) in items.iter().enumerate() {
                check_text(&format!("{field}[{i}]"), item)?;
            }
            // A repeated entry means nothing more; keep the first, in the order given.
            let mut seen = std::collections::BTreeSet::new();
            *list = items
                .into_iter()
                .filter(|item| seen.insert(item.clone()))
                .collect();
        }
    }
    Ok(())
}

fn set_limits(
    budgets: Field<Vec<BudgetBody>>,
    [rpm, tpm, max_concurrent]: [Field<u64>; 3],
    limits: &mut Limits,
    now_ms: u64,
) -> Result<(), AdminError> {
    match budgets {
        Field::Absent => {}
        Field::Null => limits.budgets.clear(),
        Field::Value(list) => limits.budgets = parse_budgets(list, &limits.budgets, now_ms)?,
    }
    for (field, value, target) in [
        ("rpm", rpm, &mut limits.rpm),
        ("tpm", tpm, &mut limits.tpm),
        ("max_concurrent", max_concurrent, &mut limits.max_concurrent),
    ] {
        match value {
            Field::Absent => {}
            Field::Null => *target = None,
            Field::Value(0) => {
                return Err(AdminError::field(
                    field,
                    "must be a positive integer (null removes the limit)",
                ));
            }
            Field::Value(n) => *target = Some(n),
        }
    }
    Ok(())
}

/// Checks budgets. A duration budget whose label was already set keeps its anchor, so that
/// changing its amount does not restart its window.
fn parse_budgets(
    list: Vec<BudgetBody>,
    old: &[Budget],
    now_ms: u64,
) -> Result<Vec<Budget>, AdminError> {
    if list.len() > MAX_BUDGETS {
        return Err(AdminError::field(
            "budgets",
            format!("at most {MAX_BUDGETS} budgets"),
        ));
    }
    let mut out: Vec<Budget> = Vec::with_capacity(list.len());
    for (i, b) in list.into_iter().enumerate() {
        let at = |field: &str| format!("budgets[{i}].{field}");
        let micros = usd_to_micros(b.amount_usd)
            .filter(|m| *m > 0)
            .ok_or_else(|| {
                AdminError::field(
                    &at("amount_usd"),
                    format!(
                        "{}: use a dollar amount from 0.000001 to {MAX_USD}",
                        b.amount_usd
                    ),
                )
            })?;
        let mut period = BudgetPeriod::parse(&b.period, now_ms)
            .map_err(|e| AdminError::field(&at("period"), e))?;
        let label = period.label();
        if out.iter().any(|o| o.period.label() == label) {
            return Err(AdminError::field(
                &at("period"),
                format!("a {label} budget is already set: one budget per period"),
            ));
        }
        if let Some(prev) = old.iter().find(|o| o.period.label() == label) {
            period = prev.period;
        }
        let mode = match b.mode.as_deref() {
            None | Some("strict") => BudgetMode::Strict,
            Some("available") => BudgetMode::Available,
            Some(other) => {
                return Err(AdminError::field(
                    &at("mode"),
                    format!("unknown mode {other:?}: use strict or available"),
                ));
            }
        };
        out.push(Budget {
            amount_micros: micros,
            period,
            mode,
        });
    }
    Ok(out)
}

fn set_expiry(
    at: Field<Value>,
    within: Field<String>,
    expires_at_ms: &mut Option<u64>,
    now_ms: u64,
) -> Result<(), AdminError> {
    if at.is_present() && within.is_present() {
        return Err(AdminError::field(
            "expires_in",
            "give expires_at or expires_in, not both",
        ));
    }
    let (field, when) = match (at, within) {
        (Field::Null, _) | (_, Field::Null) => {
            *expires_at_ms = None;
            return Ok(());
        }
        (Field::Value(v), _) => ("expires_at", expiry_time(&v)?),
        (_, Field::Value(text)) => {
            let secs = match BudgetPeriod::parse(&text, now_ms) {
                Ok(BudgetPeriod::Every { secs, .. }) => secs,
                _ => {
                    return Err(AdminError::field(
                        "expires_in",
                        format!("{text:?}: use a duration like 30d, 12h or 90m"),
                    ));
                }
            };
            ("expires_in", now_ms.saturating_add(u64::from(secs) * 1_000))
        }
        (Field::Absent, Field::Absent) => return Ok(()),
    };
    if when <= now_ms {
        return Err(AdminError::field(
            field,
            format!("{} is in the past", rfc3339(when)),
        ));
    }
    *expires_at_ms = Some(when);
    Ok(())
}

fn expiry_time(value: &Value) -> Result<u64, AdminError> {
    let parsed = match value {
        Value::String(text) => parse_rfc3339(text),
        Value::Number(n) => n.as_u64(),
        _ => None,
    };
    parsed.ok_or_else(|| {
        AdminError::field(
            "expires_at",
            format!("{value}: use an RFC 3339 time such as \"2030-01-31T00:00:00Z\" or epoch milliseconds"),
        )
    })
}

fn set_enabled(value: Field<bool>, enabled: &mut bool) -> Result<(), AdminError> {
    match value {
        Field::Absent => Ok(()),
        Field::Null => Err(AdminError::field("enabled", "must be true or false")),
        Field::Value(v) => {
            *enabled = v;
            Ok(())
        }
    }
}

fn set_metadata(value: Field<Map<String, Value>>, metadata: &mut Metadata) {
    match value {
        Field::Absent => {}
        Field::Null => metadata.0.clear(),
        Field::Value(map) => metadata.0 = map,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account_of(body: &str) -> Result<Account, String> {
        let body: AccountBody = serde_json::from_str(body).map_err(|e| e.to_string())?;
        let mut a = Account::new("t".into(), "n".into(), 0);
        apply_account(EntityKind::Team, body, &mut a, 1_000)
            .map(|()| a)
            .map_err(|e| e.message)
    }

    #[test]
    fn budgets_are_checked_and_keep_their_anchor() {
        let a = account_of(
            r#"{"budgets": [{"amount_usd": 1.5, "period": "monthly"}, {"amount_usd": 2, "period": "30d", "mode": "available"}]}"#,
        )
        .expect("valid");
        assert_eq!(a.limits.budgets[0].amount_micros, 1_500_000);
        assert_eq!(a.limits.budgets[1].mode, BudgetMode::Available);
        let old = a.limits.budgets.clone();
        let again = parse_budgets(
            vec![BudgetBody {
                amount_usd: 3.0,
                period: "30d".into(),
                mode: None,
            }],
            &old,
            99_999,
        )
        .expect("valid");
        assert_eq!(
            again[0].period,
            BudgetPeriod::Every {
                secs: 30 * 86_400,
                anchor_ms: 1_000
            }
        );
        for (body, field) in [
            (
                r#"{"budgets": [{"amount_usd": -1, "period": "daily"}]}"#,
                "budgets[0].amount_usd",
            ),
            (
                r#"{"budgets": [{"amount_usd": 1, "period": "yearly"}]}"#,
                "budgets[0].period",
            ),
            (
                r#"{"budgets": [{"amount_usd": 1, "period": "daily"}, {"amount_usd": 2, "period": "daily"}]}"#,
                "budgets[1].period",
            ),
            (
                r#"{"budgets": [{"amount_usd": 1, "period": "daily", "mode": "x"}]}"#,
                "budgets[0].mode",
            ),
            (r#"{"rpm": 0}"#, "rpm"),
            (r#"{"name": " "}"#, "name"),
            (r#"{"name": null}"#, "name"),
            (r#"{"models": ["a", ""]}"#, "models[1]"),
        ] {
            let e = account_of(body).expect_err(body);
            assert!(e.starts_with(&format!("{field}: ")), "{body}: {e}");
        }
    }

    #[test]
    fn account_ids_are_restricted() {
        assert!(check_account_id("team-1.a_B").is_ok());
        for bad in ["", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(check_account_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn expiry_takes_a_time_or_a_duration() {
        let mut at = None;
        let now = 1_794_746_096_000;
        set_expiry(
            Field::Value(Value::from("2030-01-01T00:00:00Z")),
            Field::Absent,
            &mut at,
            now,
        )
        .expect("valid");
        assert_eq!(at, Some(1_893_456_000_000));
        set_expiry(Field::Absent, Field::Value("1d".into()), &mut at, now).expect("valid");
        assert_eq!(at, Some(now + 86_400_000));
        set_expiry(Field::Null, Field::Absent, &mut at, now).expect("valid");
        assert_eq!(at, None);
        for (a, w) in [
            (Field::Value(Value::from(now - 1)), Field::Absent),
            (Field::Value(Value::from(true)), Field::Absent),
            (Field::Value(Value::from("tomorrow")), Field::Absent),
            (Field::Absent, Field::Value("monthly".into())),
            (
                Field::Value(Value::from(now + 1)),
                Field::Value("1d".into()),
            ),
        ] {
            assert!(set_expiry(a, w, &mut at, now).is_err());
        }
    }
}
