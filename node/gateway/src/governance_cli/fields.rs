//! Command-line flags of keys, teams and customers, turned into the admin API's JSON fields.

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde_json::{Map, Value};

/// The fields of a key, on create and update.
#[derive(Args)]
pub struct KeyFields {
    /// The team the key belongs to (must exist).
    #[arg(long)]
    team: Option<String>,
    /// The customer the key bills to (must exist).
    #[arg(long)]
    customer: Option<String>,
    #[command(flatten)]
    common: AccountFields,
    /// An allowed provider (repeatable; default: every provider).
    #[arg(long = "provider", value_name = "NAME")]
    providers: Vec<String>,
    /// When the key stops working: RFC 3339 (2030-01-31T00:00:00Z) or epoch milliseconds.
    #[arg(long, conflicts_with = "expires_in")]
    expires_at: Option<String>,
    /// How long the key works from now: 30d, 12h, 90m.
    #[arg(long)]
    expires_in: Option<String>,
}

/// The fields teams, customers and keys share.
#[derive(Args)]
pub struct AccountFields {
    /// An allowed model: a name, an alias or a `*` pattern (repeatable; default: every model).
    #[arg(long = "model", value_name = "MODEL")]
    models: Vec<String>,
    /// A budget, AMOUNT_USD:PERIOD[:MODE]: 100:monthly, 5:daily:available, 20:30d (repeatable;
    /// periods hourly, daily, weekly, monthly, total or a duration; modes strict, available).
    #[arg(long = "budget", value_name = "BUDGET")]
    budgets: Vec<String>,
    /// Requests per minute.
    #[arg(long)]
    rpm: Option<u64>,
    /// Tokens per minute.
    #[arg(long)]
    tpm: Option<u64>,
    /// Requests in flight at once.
    #[arg(long)]
    max_concurrent: Option<u64>,
    /// Metadata, a JSON object: '{"owner":"ci"}'.
    #[arg(long)]
    metadata: Option<String>,
}

impl KeyFields {
    /// The JSON fields the flags set.
    pub fn to_body(&self) -> Result<Map<String, Value>> {
        let mut body = self.common.to_body()?;
        set(&mut body, "team", self.team.clone());
        set(&mut body, "customer", self.customer.clone());
        if !self.providers.is_empty() {
            body.insert("providers".into(), self.providers.clone().into());
        }
        if let Some(at) = &self.expires_at {
            // Digits are epoch milliseconds, as the API takes them; anything else is a date.
            let value = at
                .parse::<u64>()
                .map_or_else(|_| at.clone().into(), Value::from);
            body.insert("expires_at".into(), value);
        }
        set(&mut body, "expires_in", self.expires_in.clone());
        Ok(body)
    }
}

impl AccountFields {
    /// The JSON fields the flags set.
    pub fn to_body(&self) -> Result<Map<String, Value>> {
        let mut body = Map::new();
        if !self.models.is_empty() {
            body.insert("models".into(), self.models.clone().into());
        }
        if !self.budgets.is_empty() {
            let budgets = self
                .budgets
                .iter()
                .map(|b| budget(b))
                .collect::<Result<Vec<_>>>()?;
            body.insert("budgets".into(), Value::Array(budgets));
        }
        set(&mut body, "rpm", self.rpm);
        set(&mut body, "tpm", self.tpm);
        set(&mut body, "max_concurrent", self.max_concurrent);
        if let Some(text) = &self.metadata {
            let value: Value = serde_json::from_str(text)
                .with_context(|| format!("--metadata {text:?} is not JSON"))?;
            if !value.is_object() {
                bail!("--metadata must be a JSON object, like '{{\"owner\":\"ci\"}}'");
            }
            body.insert("metadata".into(), value);
        }
        Ok(body)
    }
}

fn set(body: &mut Map<String, Value>, field: &str, value: Option<impl Into<Value>>) {
    if let Some(v) = value {
        body.insert(field.into(), v.into());
    }
}

/// Parses `AMOUNT_USD:PERIOD[:MODE]`; the API checks the period and mode themselves.
fn budget(flag: &str) -> Result<Value> {
    let mut parts = flag.splitn(3, ':');
    let (Some(amount), Some(period)) = (parts.next(), parts.next()) else {
        bail!(
            "--budget {flag:?}: use AMOUNT_USD:PERIOD[:MODE], like 100:monthly or 5:daily:available"
        );
    };
    let amount: f64 = amount
        .trim_start_matches('$')
        .parse()
        .ok()
        .filter(|a: &f64| a.is_finite())
        .with_context(|| format!("--budget {flag:?}: {amount:?} is not a dollar amount"))?;
    let mut b = Map::new();
    b.insert("amount_usd".into(), amount.into());
    b.insert("period".into(), period.into());
    if let Some(mode) = parts.next() {
        b.insert("mode".into(), mode.into());
    }
    Ok(Value::Object(b))
}

/// Key fields `--clear` can remove.
#[derive(Clone, Copy, ValueEnum)]
pub enum KeyClear {
    /// The team.
    Team,
    /// The customer.
    Customer,
    /// The model list (every model allowed).
    Models,
    /// The provider list (every provider allowed).
    Providers,
    /// Every budget.
    Budgets,
    /// The requests-per-minute limit.
    Rpm,
    /// The tokens-per-minute limit.
    Tpm,
    /// The concurrency limit.
    MaxConcurrent,
    /// The expiry.
    Expiry,
    /// The metadata.
    Metadata,
}

impl KeyClear {
    /// The API field set to `null`.
    pub fn field(self) -> &'static str {
        match self {
            Self::Team => "team",
            Self::Customer => "customer",
            Self::Models => "models",
            Self::Providers => "providers",
            Self::Budgets => "budgets",
            Self::Rpm => "rpm",
            Self::Tpm => "tpm",
            Self::MaxConcurrent => "max_concurrent",
            Self::Expiry => "expires_at",
            Self::Metadata => "metadata",
        }
    }
}

/// Team and customer fields `--clear` can remove.
#[derive(Clone, Copy, ValueEnum)]
pub enum AccountClear {
    /// The model list (teams only).
    Models,
    /// Every budget.
    Budgets,
    /// The requests-per-minute limit.
    Rpm,
    /// The tokens-per-minute limit.
    Tpm,
    /// The concurrency limit.
    MaxConcurrent,
    /// The metadata.
    Metadata,
}

impl AccountClear {
    /// The API field set to `null`.
    pub fn field(self) -> &'static str {
        match self {
            Self::Models => "models",
            Self::Budgets => "budgets",
            Self::Rpm => "rpm",
            Self::Tpm => "tpm",
            Self::MaxConcurrent => "max_concurrent",
            Self::Metadata => "metadata",
        }
    }
}

/// Sets each of `fields` to `null`, refusing a field that a flag also sets.
pub fn clear<'a>(
    body: &mut Map<String, Value>,
    fields: impl Iterator<Item = &'a str>,
) -> Result<()> {
    for field in fields {
        let clashes =
            body.contains_key(field) || (field == "expires_at" && body.contains_key("expires_in"));
        if clashes {
            bail!("--clear {field} and a flag setting it: give one or the other");
        }
        body.insert(field.into(), Value::Null);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse() {
        assert_eq!(
            budget("100:monthly").expect("valid"),
            serde_json::json!({"amount_usd": 100.0, "period": "monthly"})
        );
        assert_eq!(
            budget("$5:daily:available").expect("valid"),
            serde_json::json!({"amount_usd": 5.0, "period": "daily", "mode": "available"})
        );
        for bad in ["100", "x:daily", "inf:daily"] {
            assert!(budget(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn clearing_a_field_that_is_set_is_refused() {
        let mut body = Map::new();
        body.insert("rpm".into(), 5.into());
        assert!(clear(&mut body, ["rpm"].into_iter()).is_err());
        clear(&mut body, ["tpm"].into_iter()).expect("valid");
        assert_eq!(body["tpm"], Value::Null);
    }
}
