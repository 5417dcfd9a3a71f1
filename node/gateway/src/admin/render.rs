//! Keys, teams and customers as the admin API shows them to people: dollars rather than
//! micro-dollars, RFC 3339 times rather than epoch milliseconds, period labels, and never a
//! key's secret or its hash.

use serde_json::{Map, Value, json};

use super::money::micros_to_usd;
use crate::time::rfc3339;
use starling_governance::model::{Account, Budget, EntityKind, VirtualKey};

/// The field holding a key's secret hash in stored entries.
const SECRET_HASH_FIELD: &str = "secret_sha256";

/// `value` with every secret hash removed, at any depth: what the generic catalog and the
/// state dump show of stored entries. A hash is the lookup key of a secret, and imported keys
/// may have short secrets that a hash lets someone test guesses against offline.
pub(crate) fn without_secret_hashes(mut value: Value) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.remove(SECRET_HASH_FIELD);
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut value);
    value
}

/// A key.
pub(crate) fn key(k: &VirtualKey) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "key_hint": k.secret_hint,
        "team": k.team,
        "customer": k.customer,
        "models": k.models,
        "providers": k.providers,
        "budgets": budgets(&k.limits.budgets),
        "rpm": k.limits.rpm,
        "tpm": k.limits.tpm,
        "max_concurrent": k.limits.max_concurrent,
        "expires_at": k.expires_at_ms.map(rfc3339),
        "enabled": k.enabled,
        "revoked": k.revoked_at_ms.is_some(),
        "revoked_at": k.revoked_at_ms.map(rfc3339),
        "metadata": k.metadata.0,
        "created_at": rfc3339(k.created_at_ms),
        "updated_at": rfc3339(k.updated_at_ms),
        "mint_node": k.mint_node,
    })
}

/// A key with its secret, on create and rotate: the only time the secret is shown.
pub(crate) fn key_with_secret(k: &VirtualKey, secret: &str) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), Value::from(k.id.clone()));
    out.insert("key".into(), Value::from(secret));
    if let Value::Object(rest) = key(k) {
        out.extend(rest.into_iter().filter(|(name, _)| name != "id"));
    }
    Value::Object(out)
}

/// A team or customer (customers have no model list).
pub(crate) fn account(kind: EntityKind, a: &Account) -> Value {
    let mut v = json!({
        "id": a.id,
        "name": a.name,
        "models": a.models,
        "budgets": budgets(&a.limits.budgets),
        "rpm": a.limits.rpm,
        "tpm": a.limits.tpm,
        "max_concurrent": a.limits.max_concurrent,
        "enabled": a.enabled,
        "metadata": a.metadata.0,
        "created_at": rfc3339(a.created_at_ms),
        "updated_at": rfc3339(a.updated_at_ms),
        "mint_node": a.mint_node,
    });
    if kind == EntityKind::Customer
        && let Some(map) = v.as_object_mut()
    {
        map.remove("models");
    }
    v
}

fn budgets(list: &[Budget]) -> Vec<Value> {
    list.iter()
        .map(|b| {
            json!({
                "amount_usd": micros_to_usd(b.amount_micros),
                "period": b.period.label(),
                "mode": b.mode.as_str(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_governance::model::{BudgetMode, BudgetPeriod, Limits, Metadata};

    #[test]
    fn keys_show_the_hint_and_never_the_hash() {
        let k = VirtualKey {
            id: "vk_1".into(),
            name: "ci".into(),
            secret_sha256: "ab".repeat(32),
            secret_hint: "sk-strl-abcd…wxyz".into(),
            team: Some("t1".into()),
            customer: None,
            models: vec!["gpt-*".into()],
            providers: Vec::new(),
            limits: Limits {
                budgets: vec![Budget {
                    amount_micros: 1_500_000,
                    period: BudgetPeriod::Monthly,
                    mode: BudgetMode::Strict,
                }],
                rpm: Some(60),
                tpm: None,
                max_concurrent: None,
            },
            expires_at_ms: None,
            enabled: true,
            revoked_at_ms: Some(1_794_746_096_000),
            metadata: Metadata::default(),
            created_at_ms: 0,
            updated_at_ms: 0,
            mint_node: "n1".into(),
        };
        let v = key_with_secret(&k, "sk-strl-secret");
        let keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(&keys[..3], ["id", "key", "name"]);
        assert!(!v.to_string().contains(&"ab".repeat(32)));
        assert_eq!(
            v["budgets"],
            json!([{"amount_usd": 1.5, "period": "monthly", "mode": "strict"}])
        );
        assert_eq!(v["revoked"], true);
        assert_eq!(v["revoked_at"], "2026-11-15T12:34:56Z");
        assert_eq!(v["created_at"], "1970-01-01T00:00:00Z");
        assert_eq!(key(&k).get("key"), None);
    }
}
