//! The `[governance]` section of the config file.

use serde::{Deserialize, Serialize};

/// When a governed request's usage is made durable (see `governance::usage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageDurability {
    /// On disk before the response completes: no acknowledged spend is lost in a crash. Adds
    /// one group-committed fsync to each governed response.
    Acknowledged,
    /// Flushed every `usage_flush_ms` without waiting: a crash may lose the last interval of
    /// billing figures (never the budget enforcement figure).
    Batched,
}

/// Which virtual keys a member of a cluster refuses once it has heard from no peer for
/// `governance.stale_after_ms` (see docs/guarantees.md, "Revocation").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailClosed {
    /// Keys in strict mode (the default): every key but those whose budgets (its own, its
    /// team's, its customer's) are all in `available` mode; a key without budgets is in strict
    /// mode. Keys in available mode stay served, so a revocation reaches an isolated node only
    /// when it reconnects.
    #[default]
    Strict,
    /// Every virtual key: nothing is admitted on state that may be out of date, so a revoked
    /// key is refused on an isolated node within `stale_after_ms`, at the price of serving no
    /// virtual key there.
    All,
}

/// How virtual keys, budgets and rate limits are enforced (see docs/governance.md).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GovernanceConfig {
    /// A member of a cluster that has not heard from any peer for this long (or since it
    /// started) refuses the keys `fail_closed` names, so that revocations and budgets it
    /// cannot see are not bypassed.
    pub stale_after_ms: u64,
    /// Which keys a node cut off from its peers refuses: `strict` (keys with a strict budget)
    /// or `all`.
    pub fail_closed: FailClosed,
    /// The `max_tokens` a request gets when it sets none and a budget applies: its reservation
    /// needs an output bound. Lower if the budget's remainder allows less.
    /// Also read as `default_max_tokens`, its earlier name.
    #[serde(alias = "default_max_tokens")]
    pub budget_default_max_tokens: u64,
    /// How far ahead, in spend time, a node keeps budget rights debited for its own use.
    pub refill_horizon_ms: u64,
    /// Smallest debit of budget rights, in micro-dollars (fewer, larger durable writes).
    pub min_chunk_micros: u64,
    /// A node hands its unused debited rights back after this long without traffic on them.
    pub idle_refund_ms: u64,
    /// How long before a period starts its budget is minted.
    pub mint_lead_ms: u64,
    /// How long a request waits at most for rights from peers on a cold start.
    pub rights_wait_ms: u64,
    /// How often nodes exchange rate-limit demand and shares.
    pub rate_report_interval_ms: u64,
    /// How often usage counters are flushed into the replica (`batched` durability), and the
    /// longest a flush waits in any mode.
    pub usage_flush_ms: u64,
    /// When a request's usage (the billing figure) must be on disk: `acknowledged` (before
    /// its response completes) or `batched` (within `usage_flush_ms`, lost in a crash).
    pub usage_durability: UsageDurability,
    /// Label budget metrics per key, team and customer (unbounded label cardinality).
    pub per_key_metrics: bool,
    /// **Breaks the strict-budget guarantee; for fault tests only.** Admits strict-budget
    /// requests without holding rights, so the Jepsen harness can show that its budget
    /// checker catches an overspend. Undocumented on purpose: a node with this set refuses to
    /// start unless its cluster secret is a test secret (`starling cluster keygen --test`),
    /// so it can never join a production cluster, and it logs an error at start.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unsafe_skip_rights_check: bool,
}

impl Default for GovernanceConfig {
    fn default() -> Self {
        Self {
            stale_after_ms: 10_000,
            fail_closed: FailClosed::Strict,
            budget_default_max_tokens: 4_096,
            refill_horizon_ms: 2_000,
            min_chunk_micros: 10_000,
            idle_refund_ms: 10_000,
            mint_lead_ms: 300_000,
            rights_wait_ms: 500,
            rate_report_interval_ms: 100,
            usage_flush_ms: 100,
            usage_durability: UsageDurability::Acknowledged,
            per_key_metrics: false,
            unsafe_skip_rights_check: false,
        }
    }
}
