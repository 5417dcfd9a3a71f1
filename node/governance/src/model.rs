//! The governance model: virtual keys, teams and customers, their budgets and limits, as they
//! are stored in the replicated catalog.
//!
//! Catalog ids are `key/<id>`, `team/<id>` and `customer/<id>`, plus a key's rotated secret
//! (`key-secret/<id>`) and its revocation (`key-revoked/<id>`); anything else is a generic
//! document of the admin API. Amounts are integer micro-dollars, times are Unix epoch
//! milliseconds, so that every replica computes the same thing from the same entry.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use starling_cluster::crdt::{Period, PeriodUnit};

/// A replicated catalog entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    /// A virtual key (its record as created or last updated). Shared, because the replica,
    /// the index's parts and its entry for the key in force would otherwise each hold a copy
    /// (about 900 bytes each; docs/benchmarks.md). Serialised as the key itself.
    Key(Arc<VirtualKey>),
    /// A key's secret since its latest rotation.
    KeySecret(KeySecret),
    /// A key's revocation.
    KeyRevoked(KeyRevoked),
    /// A team.
    Team(Account),
    /// A customer.
    Customer(Account),
    /// A free-form JSON document of the generic admin catalog API, as text.
    Doc(String),
}

/// What a catalog id names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityKind {
    /// A virtual key.
    Key,
    /// A team.
    Team,
    /// A customer.
    Customer,
}

impl EntityKind {
    /// The catalog id prefix, and the first part of budget and counter scopes.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Team => "team",
            Self::Customer => "customer",
        }
    }

    /// The catalog id of the entity `id` of this kind.
    pub fn catalog_id(self, id: &str) -> String {
        format!("{}/{id}", self.prefix())
    }

    /// Splits a catalog id into kind and entity id, for governance ids.
    pub fn parse_catalog_id(catalog_id: &str) -> Option<(Self, &str)> {
        let (prefix, id) = catalog_id.split_once('/')?;
        let kind = match prefix {
            "key" => Self::Key,
            "team" => Self::Team,
            "customer" => Self::Customer,
            _ => return None,
        };
        Some((kind, id))
    }

    /// A word for messages: "key", "team", "customer".
    pub fn noun(self) -> &'static str {
        self.prefix()
    }
}

/// A virtual key: what an application presents instead of a provider key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualKey {
    /// Stable id (`vk_…`); survives rotation.
    pub id: String,
    /// Human name.
    pub name: String,
    /// SHA-256 of the secret, lowercase hex. The secret itself is never stored.
    pub secret_sha256: String,
    /// The secret's first and last characters, for humans to recognise it.
    pub secret_hint: String,
    /// The team the key belongs to.
    pub team: Option<String>,
    /// The customer the key bills to.
    pub customer: Option<String>,
    /// Allowed models: exact names, aliases or `*` patterns; empty allows every model.
    pub models: Vec<String>,
    /// Allowed provider names; empty allows every provider.
    pub providers: Vec<String>,
    /// Budgets and rate limits.
    pub limits: Limits,
    /// When the key stops working, if ever.
    pub expires_at_ms: Option<u64>,
    /// A disabled key is refused (403) until enabled again.
    pub enabled: bool,
    /// When the key was revoked; a revoked key never works again.
    pub revoked_at_ms: Option<u64>,
    /// Free-form metadata.
    pub metadata: Metadata,
    /// Creation time.
    pub created_at_ms: u64,
    /// Last update time.
    pub updated_at_ms: u64,
    /// The node that mints this key's strict budgets (see [`super::budget`]).
    pub mint_node: String,
}

/// A key's secret after a rotation. It lives in its own catalog entry (`key-secret/<id>`), as
/// the revocation does (`key-revoked/<id>`): the catalog keeps the last write of each entry
/// whole, so if they were fields of the key's record, an update made on a node that had not
/// yet seen a rotation or a revocation would write the old secret or the live key back
/// (found by the Jepsen-style tests).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySecret {
    /// SHA-256 of the new secret, lowercase hex.
    pub secret_sha256: String,
    /// The new secret's hint.
    pub secret_hint: String,
    /// When it was rotated.
    pub rotated_at_ms: u64,
}

/// A key's revocation (`key-revoked/<id>`): once written, the key never works again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRevoked {
    /// When it was revoked.
    pub revoked_at_ms: u64,
}

/// Catalog id prefix of rotated secrets.
pub const KEY_SECRET_PREFIX: &str = "key-secret/";
/// Catalog id prefix of revocations.
pub const KEY_REVOKED_PREFIX: &str = "key-revoked/";

/// A catalog id that governance owns, parsed. The index reads every catalog change through
/// [`GovernedId::parse`], and the generic catalog API refuses every id it parses, so an id
/// that means something to governance can only be written through governance's own endpoints
/// (which check it): a revocation or a rotated secret cannot be deleted or overwritten around
/// them. A new governance namespace is added here, and both sides follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GovernedId<'a> {
    /// `key/<id>`, `team/<id>` or `customer/<id>`.
    Entity(EntityKind, &'a str),
    /// `key-secret/<id>`: a key's secret since its latest rotation.
    KeySecret(&'a str),
    /// `key-revoked/<id>`: a key's revocation.
    KeyRevoked(&'a str),
}

impl<'a> GovernedId<'a> {
    /// Every id prefix governance owns; [`GovernedId::parse`] accepts exactly the ids under them.
    pub const PREFIXES: [&'static str; 5] = [
        "key/",
        "team/",
        "customer/",
        KEY_SECRET_PREFIX,
        KEY_REVOKED_PREFIX,
    ];

    /// The governance meaning of `catalog_id`, or `None` for a generic document's id.
    pub fn parse(catalog_id: &'a str) -> Option<Self> {
        if let Some(id) = catalog_id.strip_prefix(KEY_SECRET_PREFIX) {
            return Some(Self::KeySecret(id));
        }
        if let Some(id) = catalog_id.strip_prefix(KEY_REVOKED_PREFIX) {
            return Some(Self::KeyRevoked(id));
        }
        EntityKind::parse_catalog_id(catalog_id).map(|(kind, id)| Self::Entity(kind, id))
    }
}

impl VirtualKey {
    /// An enabled key created at `now_ms`, with no name, team, customer, restriction, limit,
    /// expiry or metadata: what the admin API starts from before applying a request's fields.
    pub fn new(
        id: String,
        secret_sha256: String,
        secret_hint: String,
        mint_node: String,
        now_ms: u64,
    ) -> Self {
        Self {
            id,
            name: String::new(),
            secret_sha256,
            secret_hint,
            team: None,
            customer: None,
            models: Vec::new(),
            providers: Vec::new(),
            limits: Limits::default(),
            expires_at_ms: None,
            enabled: true,
            revoked_at_ms: None,
            metadata: Metadata::default(),
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            mint_node,
        }
    }

    /// The key in force: its record, with the secret of its latest rotation and its
    /// revocation, which live in entries of their own.
    /// [`Self::in_force`] without a copy when there is nothing to apply (the common case: a
    /// key never rotated nor revoked).
    pub fn in_force_shared(
        record: &Arc<Self>,
        secret: Option<&KeySecret>,
        revoked: Option<&KeyRevoked>,
    ) -> Arc<Self> {
        if secret.is_none() && revoked.is_none() {
            Arc::clone(record)
        } else {
            Arc::new(record.in_force(secret, revoked))
        }
    }

    pub fn in_force(&self, secret: Option<&KeySecret>, revoked: Option<&KeyRevoked>) -> VirtualKey {
        let mut key = self.clone();
        if let Some(s) = secret {
            key.secret_sha256.clone_from(&s.secret_sha256);
            key.secret_hint.clone_from(&s.secret_hint);
            key.updated_at_ms = key.updated_at_ms.max(s.rotated_at_ms);
        }
        if let Some(r) = revoked {
            key.revoked_at_ms = Some(
                key.revoked_at_ms
                    .map_or(r.revoked_at_ms, |at| at.min(r.revoked_at_ms)),
            );
            key.updated_at_ms = key.updated_at_ms.max(r.revoked_at_ms);
        }
        key
    }
}

/// A team or a customer: budgets and limits shared by many keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Stable id, chosen by the operator or generated.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Allowed models for every key of the account; empty allows every model.
    pub models: Vec<String>,
    /// Budgets and rate limits.
    pub limits: Limits,
    /// A disabled account refuses all its keys.
    pub enabled: bool,
    /// Free-form metadata.
    pub metadata: Metadata,
    /// Creation time.
    pub created_at_ms: u64,
    /// Last update time.
    pub updated_at_ms: u64,
    /// The node that mints this account's strict budgets.
    pub mint_node: String,
}

impl Account {
    /// An enabled account `id` (named after its id) created at `now_ms`, with no restriction,
    /// limit or metadata: what the admin API starts from before applying a request's fields.
    pub fn new(id: String, mint_node: String, now_ms: u64) -> Self {
        Self {
            name: id.clone(),
            id,
            models: Vec::new(),
            limits: Limits::default(),
            enabled: true,
            metadata: Metadata::default(),
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            mint_node,
        }
    }
}

/// Budgets and rate limits of a key, team or customer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Spending budgets, at most one per period.
    pub budgets: Vec<Budget>,
    /// Requests per minute.
    pub rpm: Option<u64>,
    /// Tokens (input plus output) per minute.
    pub tpm: Option<u64>,
    /// Requests in flight at once.
    pub max_concurrent: Option<u64>,
}

/// A spending budget.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// The amount per period, in micro-dollars.
    pub amount_micros: u64,
    /// The period.
    pub period: BudgetPeriod,
    /// How it is enforced.
    pub mode: BudgetMode,
}

/// How a budget is enforced across the cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BudgetMode {
    /// Escrowed rights: never overspent, even under partition; a side without rights refuses.
    #[default]
    Strict,
    /// Admits while the summed global spend plus the reservation is under the amount; stays
    /// available under partition, with a bounded overspend (docs/guarantees.md).
    Available,
}

impl BudgetMode {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "strict",
            Self::Available => "available",
        }
    }
}

/// A budget period: calendar-aligned in UTC, or a fixed duration repeating from an anchor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BudgetPeriod {
    /// Clock hours.
    Hourly,
    /// UTC days.
    Daily,
    /// ISO weeks (Monday 00:00 UTC).
    Weekly,
    /// UTC calendar months.
    Monthly,
    /// Never resets.
    Total,
    /// Back-to-back windows of `secs` seconds counted from `anchor_ms` (LiteLLM's
    /// `budget_duration`: a 30-day budget resets every 30 days from when it was set).
    Every {
        /// Window length.
        secs: u32,
        /// The start of the first window.
        anchor_ms: u64,
    },
}

/// The longest duration budget: ten years.
pub const MAX_DURATION_SECS: u32 = 10 * 366 * 86_400;

impl BudgetPeriod {
    /// Parses the API form: `hourly`, `daily`, `weekly`, `monthly`, `total`, or a duration
    /// such as `30d`, `12h`, `90m`, `3600s` (anchored at `now_ms`).
    pub fn parse(text: &str, now_ms: u64) -> Result<Self, String> {
        Ok(match text {
            "hourly" => Self::Hourly,
            "daily" => Self::Daily,
            "weekly" => Self::Weekly,
            "monthly" => Self::Monthly,
            "total" | "lifetime" => Self::Total,
            other => {
                let secs = parse_duration_secs(other).ok_or_else(|| {
                    format!(
                        "unknown period {other:?}: use hourly, daily, weekly, monthly, total, or a duration like 30d, 12h, 90m"
                    )
                })?;
                Self::Every {
                    secs,
                    anchor_ms: now_ms,
                }
            }
        })
    }

    /// The API form (the inverse of [`Self::parse`], anchor aside).
    pub fn label(&self) -> String {
        match self {
            Self::Hourly => "hourly".into(),
            Self::Daily => "daily".into(),
            Self::Weekly => "weekly".into(),
            Self::Monthly => "monthly".into(),
            Self::Total => "total".into(),
            Self::Every { secs, .. } => format_duration(*secs),
        }
    }

    /// The replicated period containing `now_ms`, and its `[start, end)` in epoch ms.
    pub fn current(&self, now_ms: u64) -> (Period, u64, u64) {
        match *self {
            Self::Every { secs, anchor_ms } => {
                let len = u64::from(secs.max(1)) * 1_000;
                let since = now_ms.saturating_sub(anchor_ms);
                let index = u32::try_from(since / len).unwrap_or(u32::MAX);
                let start = anchor_ms.saturating_add(u64::from(index) * len);
                (
                    Period::new(PeriodUnit::Every(secs), index),
                    start,
                    start.saturating_add(len),
                )
            }
            _ => {
                let period = Period::containing(self.unit(), now_ms);
                let (start, end) = period.bounds_ms();
                (period, start, end)
            }
        }
    }

    /// The period unit of the replicated counters and rights.
    pub fn unit(&self) -> PeriodUnit {
        match self {
            Self::Hourly => PeriodUnit::Hour,
            Self::Daily => PeriodUnit::Day,
            Self::Weekly => PeriodUnit::Week,
            Self::Monthly => PeriodUnit::Month,
            Self::Total => PeriodUnit::Lifetime,
            Self::Every { secs, .. } => PeriodUnit::Every(*secs),
        }
    }
}

fn parse_duration_secs(text: &str) -> Option<u32> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    let secs = n.checked_mul(per)?;
    (60..=u64::from(MAX_DURATION_SECS))
        .contains(&secs)
        .then(|| u32::try_from(secs).ok())
        .flatten()
}

fn format_duration(secs: u32) -> String {
    for (per, unit) in [(86_400, "d"), (3_600, "h"), (60, "m")] {
        if secs % per == 0 {
            return format!("{}{unit}", secs / per);
        }
    }
    format!("{secs}s")
}

/// Free-form JSON metadata. It is JSON in the admin API, and JSON text inside the replication
/// codec, which is not self-describing and so cannot carry a `serde_json::Value` itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata(pub serde_json::Map<String, serde_json::Value>);

impl Serialize for Metadata {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            self.0.serialize(s)
        } else {
            let text = serde_json::to_string(&self.0).map_err(serde::ser::Error::custom)?;
            s.serialize_str(&text)
        }
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            serde_json::Map::deserialize(d).map(Self)
        } else {
            let text = String::deserialize(d)?;
            serde_json::from_str(&text)
                .map(Self)
                .map_err(serde::de::Error::custom)
        }
    }
}

/// Which rate limiter of a key, team or customer; also how the share exchange names it on the
/// wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LimitName {
    /// Requests per minute.
    Rpm,
    /// Tokens per minute.
    Tpm,
    /// Requests in flight.
    Concurrency,
}

/// Usage periods every scope is counted in (besides its budgets' own periods), for the usage
/// API: hour, day, week, month and total.
pub const USAGE_UNITS: [PeriodUnit; 5] = [
    PeriodUnit::Hour,
    PeriodUnit::Day,
    PeriodUnit::Week,
    PeriodUnit::Month,
    PeriodUnit::Lifetime,
];

/// The counter and budget scope of an entity: `key/<id>`, `team/<id>`, `customer/<id>`.
pub fn scope(kind: EntityKind, id: &str) -> String {
    kind.catalog_id(id)
}

/// The rights scope of one budget of an entity: `<scope>#<period label>`.
pub fn budget_scope(kind: EntityKind, id: &str, period: &BudgetPeriod) -> String {
    format!("{}#{}", scope(kind, id), period.label())
}

/// Usage figures by period label, as the usage API reports them.
pub type UsageByPeriod = BTreeMap<String, starling_cluster::crdt::Usage>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_and_print() {
        for text in [
            "hourly", "daily", "weekly", "monthly", "total", "30d", "12h", "90m",
        ] {
            let p = BudgetPeriod::parse(text, 0).expect(text);
            assert_eq!(p.label(), text);
        }
        assert_eq!(
            BudgetPeriod::parse("3600s", 0).map(|p| p.label()),
            Ok("1h".into())
        );
        for bad in ["", "yearly", "10", "5s", "0d", "-1d", "1y", "99999999999d"] {
            assert!(BudgetPeriod::parse(bad, 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn duration_windows_count_from_the_anchor() {
        let p = BudgetPeriod::parse("1d", 1_000).expect("valid");
        let (period, start, end) = p.current(1_000);
        assert_eq!((period.index, start, end), (0, 1_000, 86_401_000));
        let (period, start, _) = p.current(86_401_000);
        assert_eq!((period.index, start), (1, 86_401_000));
        // A clock behind the anchor stays in the first window rather than underflowing.
        assert_eq!(p.current(0).0.index, 0);
    }

    #[test]
    fn calendar_periods_turn_at_utc_boundaries_and_follow_a_clock_that_jumps() {
        // 2026-01-31T23:59:59.999Z and one millisecond later.
        let before = 1_769_903_999_999;
        let after = before + 1;
        let (jan, jan_start, jan_end) = BudgetPeriod::Monthly.current(before);
        let (feb, feb_start, _) = BudgetPeriod::Monthly.current(after);
        assert_eq!(feb.index, jan.index + 1);
        assert_eq!((jan_end, feb_start), (after, after));
        assert!(jan_start < jan_end);
        // A clock that jumps back lands in the earlier period again: periods are a pure
        // function of the time, so a skewed node never starts a period twice; the budget of
        // each period is minted once (see the escrow).
        assert_eq!(BudgetPeriod::Monthly.current(before).0, jan);
        let (day, start, end) = BudgetPeriod::Daily.current(after);
        assert_eq!((end - start, start), (86_400_000, after));
        assert_eq!(BudgetPeriod::Daily.current(before).0.index + 1, day.index);
        // 2026-02-01 is a Sunday: the ISO week turns on Monday 2026-02-02.
        let monday = after + 86_400_000;
        assert_eq!(
            BudgetPeriod::Weekly.current(monday).0.index,
            BudgetPeriod::Weekly.current(after).0.index + 1
        );
        assert_eq!(BudgetPeriod::Total.current(after).0.index, 0);
    }

    #[test]
    fn metadata_is_json_in_the_api_and_text_in_the_codec() {
        let mut map = serde_json::Map::new();
        map.insert("team".into(), serde_json::json!({"cost_center": 42}));
        let m = Metadata(map);
        let json = serde_json::to_value(&m).expect("json");
        assert_eq!(json, serde_json::json!({"team": {"cost_center": 42}}));
        let bytes = starling_cluster::codec::encode(starling_cluster::codec::Kind::LogRecord, &m)
            .expect("encode");
        let back: Metadata = starling_cluster::codec::decode_kind(
            &bytes,
            starling_cluster::codec::Kind::LogRecord,
            usize::MAX,
        )
        .expect("decode");
        assert_eq!(back, m);
    }

    #[test]
    fn catalog_ids_round_trip() {
        for kind in [EntityKind::Key, EntityKind::Team, EntityKind::Customer] {
            let id = kind.catalog_id("abc");
            assert_eq!(EntityKind::parse_catalog_id(&id), Some((kind, "abc")));
        }
        assert_eq!(EntityKind::parse_catalog_id("other/x"), None);
    }

    /// The id every governance entry is stored under, by variant; exhaustive, so a new
    /// governance variant must say where it lives, and the test below then checks that
    /// [`GovernedId`] owns that place.
    fn stored_under(entry: &Entry) -> Option<String> {
        match entry {
            Entry::Key(key) => Some(EntityKind::Key.catalog_id(&key.id)),
            Entry::KeySecret(_) => Some(format!("{KEY_SECRET_PREFIX}vk_1")),
            Entry::KeyRevoked(_) => Some(format!("{KEY_REVOKED_PREFIX}vk_1")),
            Entry::Team(account) => Some(EntityKind::Team.catalog_id(&account.id)),
            Entry::Customer(account) => Some(EntityKind::Customer.catalog_id(&account.id)),
            Entry::Doc(_) => None,
        }
    }

    #[test]
    fn every_governance_entry_lives_under_a_governed_prefix() {
        let key = VirtualKey::new("vk_1".into(), "0".repeat(64), "sk…1".into(), "n1".into(), 0);
        let secret = KeySecret {
            secret_sha256: "0".repeat(64),
            secret_hint: "sk…1".into(),
            rotated_at_ms: 0,
        };
        let account = || Account::new("t1".into(), "n1".into(), 0);
        let entries = [
            Entry::Key(Arc::new(key)),
            Entry::KeySecret(secret),
            Entry::KeyRevoked(KeyRevoked { revoked_at_ms: 0 }),
            Entry::Team(account()),
            Entry::Customer(account()),
        ];
        for entry in &entries {
            let id = stored_under(entry).expect("a governance entry");
            assert!(GovernedId::parse(&id).is_some(), "{id} is not governed");
            assert!(
                GovernedId::PREFIXES.iter().any(|p| id.starts_with(p)),
                "{id} is under no listed prefix"
            );
        }
        for prefix in GovernedId::PREFIXES {
            assert!(
                GovernedId::parse(&format!("{prefix}x")).is_some(),
                "{prefix}"
            );
        }
        assert_eq!(stored_under(&Entry::Doc("{}".into())), None);
        for generic in ["other/x", "keys/x", "key-revoked", "team", "kEy/x"] {
            assert_eq!(GovernedId::parse(generic), None, "{generic}");
        }
    }
}
