//! Admission of one request under a virtual key: status, models and providers, then for the
//! key, its team and its customer in that order: concurrency, requests per minute, tokens per
//! minute and budgets. The first limit hit refuses the request and names itself; whatever was
//! taken before it is given back.
//!
//! Everything here is local: in-memory checks against the replica's mirror, the node's
//! buckets and its pools of debited rights. Only a pool that runs dry waits, for a durable
//! debit of local rights or, on a cold start, for a bounded transfer from a peer.

use crate::config::UsageDurability;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use serde_json::{Map, Value};
use starling_cluster::crdt::Period;

use super::Governance;
use super::budget::{BudgetState, Reserve};
use super::estimate::{self, EndpointKind, Tokenizer};
use super::index::{BudgetRef, Governed, KeyEntry};
use super::model::{BudgetMode, BudgetPeriod, EntityKind, VirtualKey};
use super::permit::{GovPermit, Held};
use super::ratelimit::SharedLimit;
use crate::pricing::micros_to_usd_string;
use starling_wire::api::{ApiError, Endpoint, ErrorKind};
use starling_wire::model_pattern::glob_match;

/// Header naming the `max_tokens` the gateway set because the budget allows no more.
pub const CLAMPED_HEADER: &str = "x-starling-max-tokens-clamped";
/// Header with the tightest budget's remainder, in USD.
pub const BUDGET_REMAINING_HEADER: &str = "x-starling-budget-remaining-usd";

/// Prices a reservation is made at: the most expensive candidate deployment's, nano-dollars
/// per token.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReservePrice {
    /// Per input token (the dearest of input, cached input and cache write).
    pub input_nanos: u64,
    /// Per output token.
    pub output_nanos: u64,
}

/// What admission needs to know about the request.
pub struct AdmitRequest<'a> {
    /// The endpoint called.
    pub endpoint: Endpoint,
    /// The model as the client named it.
    pub requested_model: &'a str,
    /// The resolved public model.
    pub route_name: &'a str,
    /// Providers of the route's deployments.
    pub route_providers: &'a [&'a str],
    /// Reservation prices.
    pub price: ReservePrice,
    /// The tokenizer of the upstream models.
    pub tokenizer: Tokenizer,
    /// The request body; `max_tokens` may be clamped in it.
    pub body: &'a mut Map<String, Value>,
}

/// An admitted request.
pub struct Admitted {
    /// What it holds until it settles.
    pub permit: GovPermit,
    /// Whether the body was changed (clamped), so the raw bytes must not be forwarded.
    pub body_changed: bool,
    /// Providers the key allows (empty: all).
    pub allowed_providers: Vec<String>,
}

fn forbidden(code: &'static str, message: String) -> ApiError {
    ApiError::new(ErrorKind::Permission, message).with_code(code)
}

/// Refuses a key that is revoked, disabled or expired at `now_ms` (403, naming which): checked
/// when a key authenticates, on every route, and again at admission.
pub fn key_in_force(key: &VirtualKey, now_ms: u64) -> Result<(), ApiError> {
    if key.revoked_at_ms.is_some() {
        return Err(forbidden(
            "key_revoked",
            format!("API key {} was revoked", key.id),
        ));
    }
    if !key.enabled {
        return Err(forbidden(
            "key_disabled",
            format!("API key {} is disabled", key.id),
        ));
    }
    if key.expires_at_ms.is_some_and(|at| at <= now_ms) {
        return Err(forbidden(
            "key_expired",
            format!("API key {} has expired", key.id),
        ));
    }
    Ok(())
}

impl Governance {
    /// Admits a request under `key`, or refuses it naming the first limit hit.
    pub async fn admit(
        self: &Arc<Self>,
        key: &Arc<KeyEntry>,
        req: AdmitRequest<'_>,
    ) -> Result<Admitted, ApiError> {
        let started = std::time::Instant::now();
        let now = super::now_ms();
        let result = self.admit_inner(key, req, now).await;
        let reason = match &result {
            Ok(_) => "admitted",
            Err(e) => e.code().unwrap_or("rejected"),
        };
        super::metrics::admission(reason, started.elapsed());
        result
    }

    async fn admit_inner(
        self: &Arc<Self>,
        entry: &Arc<KeyEntry>,
        req: AdmitRequest<'_>,
        now: u64,
    ) -> Result<Admitted, ApiError> {
        let key = &entry.key;
        key_in_force(key, now)?;
        let accounts = self.accounts_of(key)?;
        let governed: Vec<&Governed> = std::iter::once(&entry.governed)
            .chain(accounts.iter().map(|a| a.as_ref()))
            .collect();
        check_scope(key, &governed, &req)?;
        // Every budget that applies, with its current period, worked out once per request.
        let budgets: Vec<InForce<'_>> = governed
            .iter()
            .flat_map(|g| {
                g.budgets.iter().map(move |b| InForce {
                    owner: g,
                    budget: b,
                    period: b.budget.period.current(now).0,
                })
            })
            .collect();
        self.check_node_may_admit(is_strict(&budgets))?;
        let mut headers = HeaderMap::new();
        let (cost, body_changed) = self
            .plan_cost(&governed, &budgets, req, &mut headers)
            .await?;
        let mut permit = GovPermit::new(
            self.usage.clone(),
            now,
            self.config.usage_durability == UsageDurability::Acknowledged,
        );
        self.take_limits(&governed, &budgets, cost, now, &mut permit, &mut headers)
            .await?;
        if !budgets.is_empty() {
            let remaining = budgets.iter().map(InForce::remaining).min().unwrap_or(0);
            if let Ok(v) = HeaderValue::from_str(&micros_to_usd_string(remaining)) {
                headers.insert(BUDGET_REMAINING_HEADER, v);
            }
        }
        permit.set_usage_scopes(
            governed.iter().map(|g| g.scope.clone()),
            budgets
                .iter()
                .filter(|b| matches!(b.budget.budget.period, BudgetPeriod::Every { .. }))
                .map(|b| (b.owner.scope.clone(), b.period)),
        );
        permit.confirm(headers);
        Ok(Admitted {
            permit,
            body_changed,
            allowed_providers: key.providers.clone(),
        })
    }

    /// The key's team and customer, in that order: each must exist and be enabled.
    fn accounts_of(&self, key: &VirtualKey) -> Result<Vec<Arc<Governed>>, ApiError> {
        let mut accounts = Vec::with_capacity(2);
        for (kind, id) in [
            (EntityKind::Team, key.team.as_deref()),
            (EntityKind::Customer, key.customer.as_deref()),
        ] {
            let Some(id) = id else { continue };
            let Some(account) = self.index.account(kind, id) else {
                return Err(forbidden(
                    "account_missing",
                    format!(
                        "the {} {id} of API key {} does not exist",
                        kind.noun(),
                        key.id
                    ),
                ));
            };
            if !account.enabled {
                return Err(forbidden(
                    if kind == EntityKind::Team {
                        "team_disabled"
                    } else {
                        "customer_disabled"
                    },
                    format!("the {} {id} of API key {} is disabled", kind.noun(), key.id),
                ));
            }
            accounts.push(account);
        }
        Ok(accounts)
    }

    /// Refuses what this node cannot govern now: anything once its data dir failed (it could
    /// record neither usage nor debits, so it would spend what the cluster never learns of),
    /// and, while cut off from its cluster, the keys `fail_closed` names.
    fn check_node_may_admit(&self, strict: bool) -> Result<(), ApiError> {
        if self.cluster.store_failed() {
            return Err(ApiError::new(
                ErrorKind::Unavailable,
                "this gateway node's data dir failed (full or failing disk) and cannot record usage; use another node",
            )
            .with_code("store_failed")
            .with_retry_after(1));
        }
        if self.fails_closed(strict) {
            let refused = if strict {
                "keys in strict mode"
            } else {
                "virtual keys"
            };
            return Err(ApiError::new(
                ErrorKind::Unavailable,
                format!(
                    "this gateway node has no recent word from its cluster and refuses {refused} until it hears from a peer"
                ),
            )
            .with_code("cluster_unreachable")
            .with_retry_after(1));
        }
        Ok(())
    }

    /// The request's token estimate and reservation. With budgets on an endpoint that
    /// generates, its output is capped at what the tightest budget can pay for (the body is
    /// clamped and the clamp announced in `headers`), after a refill of any strict pool too
    /// short for the request as asked. Returns the cost and whether the body changed.
    async fn plan_cost(
        &self,
        governed: &[&Governed],
        budgets: &[InForce<'_>],
        req: AdmitRequest<'_>,
        headers: &mut HeaderMap,
    ) -> Result<(RequestCost, bool), ApiError> {
        let has_tpm = governed.iter().any(|g| g.limiters.tpm.is_some());
        // Token bounds are only worth counting when something is charged by them.
        if budgets.is_empty() && !has_tpm {
            return Ok((RequestCost::default(), false));
        }
        let kind = endpoint_kind(req.endpoint);
        let input_tokens = estimate::input_tokens_upper_bound(kind, req.body, req.tokenizer);
        let mut output = estimate::output_tokens_cap(kind, req.body);
        let mut body_changed = false;
        if !budgets.is_empty() && req.endpoint.has_output() {
            let ask = OutputAsk {
                requested: output.requested,
                default_max_tokens: self.config.budget_default_max_tokens,
                choices: output.choices.max(1),
                input_tokens,
                price: req.price,
            };
            // A strict budget whose pool and known rights cannot cover the request gets a
            // refill first (a cold start: the first request here, or a budget just minted),
            // so that the clamp below works from what can really be had.
            let full_cost = ask.full_cost();
            for b in budgets {
                if b.budget.budget.mode == BudgetMode::Strict && self.room(b) < full_cost {
                    super::metrics::slow_path();
                    self.refill(&b.budget.state, b.period, full_cost).await;
                }
            }
            let room = budgets
                .iter()
                .map(|b| self.room(b))
                .min()
                .unwrap_or(u64::MAX);
            let Some(plan) = ask.plan(room) else {
                return Err(budget_error(budgets));
            };
            let mut max = plan.max_tokens;
            if plan.clamp {
                // The clamp may write less than asked (e.g. OpenAI's default of 16 for
                // completions that set nothing): reserve and announce what was written.
                if let Some(written) = estimate::clamp_max_tokens(kind, req.body, max) {
                    max = written;
                    body_changed = true;
                    headers.insert(CLAMPED_HEADER, HeaderValue::from(written));
                }
            }
            output.requested = Some(max);
        }
        let out_tokens = output
            .requested
            .unwrap_or(0)
            .saturating_mul(output.choices.max(1));
        Ok((
            RequestCost::of(input_tokens, out_tokens, req.price),
            body_changed,
        ))
    }

    /// For the key, its team and its customer in turn: a concurrency slot, a request and the
    /// token estimate from the rate limits, and the reservation from each budget, all held
    /// by `permit` (which gives them back if a later one refuses).
    async fn take_limits(
        &self,
        governed: &[&Governed],
        budgets: &[InForce<'_>],
        cost: RequestCost,
        now: u64,
        permit: &mut GovPermit,
        headers: &mut HeaderMap,
    ) -> Result<(), ApiError> {
        for &g in governed {
            if let Some(limiter) = &g.limiters.concurrency {
                acquire(limiter, 1, now, g, None)?;
                permit.hold(Held::Slot(limiter.clone()));
            }
            if let Some(limiter) = &g.limiters.rpm {
                let ok = acquire(limiter, 1, now, g, Some(RateHeaders::REQUESTS))?;
                permit.hold(Held::Request(limiter.clone()));
                if g.kind == EntityKind::Key {
                    RateHeaders::REQUESTS.set(headers, limiter.limit(), ok.remaining, ok.reset_ms);
                }
            }
            if let Some(limiter) = &g.limiters.tpm {
                let ok = acquire(limiter, cost.tokens, now, g, Some(RateHeaders::TOKENS))?;
                permit.hold(Held::Tokens(limiter.clone(), cost.tokens));
                if g.kind == EntityKind::Key {
                    RateHeaders::TOKENS.set(headers, limiter.limit(), ok.remaining, ok.reset_ms);
                }
            }
            for b in budgets.iter().filter(|b| std::ptr::eq(b.owner, g)) {
                let (state, budget) = (&b.budget.state, &b.budget.budget);
                if self.skips_rights(budget.mode) {
                    continue;
                }
                self.reserve(
                    state,
                    budget.mode,
                    budget.amount_micros,
                    b.period,
                    cost.reservation,
                    now,
                )
                .await
                .map_err(|()| budget_error(budgets))?;
                permit.hold(Held::Budget {
                    state: state.clone(),
                    mode: budget.mode,
                    period: b.period,
                    reserved: cost.reservation,
                });
            }
        }
        Ok(())
    }

    /// Whether a budget in `mode` is bypassed by the fault-test switch
    /// `governance.unsafe_skip_rights_check`.
    fn skips_rights(&self, mode: BudgetMode) -> bool {
        mode == BudgetMode::Strict && self.config.unsafe_skip_rights_check
    }

    /// What a budget leaves for this request (unbounded when the fault-test switch bypasses it).
    fn room(&self, b: &InForce<'_>) -> u64 {
        if self.skips_rights(b.budget.budget.mode) {
            return u64::MAX;
        }
        b.room()
    }

    /// Reserves from a budget, refilling the pool (durable debit, or a transfer from a peer on
    /// a cold start) when it is short. `Err` when the budget cannot cover it.
    async fn reserve(
        &self,
        state: &Arc<BudgetState>,
        mode: BudgetMode,
        amount: u64,
        period: Period,
        reservation: u64,
        now: u64,
    ) -> Result<(), ()> {
        // Concurrent requests may take a refill before this one does: retry a few times while
        // refills succeed.
        for _ in 0..REFILL_TRIES {
            match state.reserve(mode, amount, period, reservation, now) {
                Reserve::Done => return Ok(()),
                Reserve::Exhausted => return Err(()),
                Reserve::NeedRights { .. } => {
                    super::metrics::slow_path();
                    if !self.refill(state, period, reservation).await {
                        return Err(());
                    }
                }
            }
        }
        match state.reserve(mode, amount, period, reservation, now) {
            Reserve::Done => Ok(()),
            _ => Err(()),
        }
    }
}

/// One budget that applies to a request, with its owner and its current period.
struct InForce<'a> {
    owner: &'a Governed,
    budget: &'a BudgetRef,
    period: Period,
}

impl InForce<'_> {
    fn room(&self) -> u64 {
        let b = &self.budget.budget;
        self.budget.state.room(b.mode, b.amount_micros, self.period)
    }

    fn remaining(&self) -> u64 {
        let b = &self.budget.budget;
        self.budget
            .state
            .remaining(b.mode, b.amount_micros, self.period)
    }
}

/// Refuses a model or provider the key, its team or its customer may not use (403).
fn check_scope(
    key: &VirtualKey,
    governed: &[&Governed],
    req: &AdmitRequest<'_>,
) -> Result<(), ApiError> {
    for governed in governed {
        if !model_allowed(&governed.models, req.requested_model, req.route_name) {
            return Err(forbidden(
                "model_not_allowed",
                format!(
                    "{} {} may not use model `{}`",
                    governed.kind.noun(),
                    governed.id,
                    req.requested_model
                ),
            )
            .with_param("model"));
        }
    }
    if !key.providers.is_empty()
        && !req
            .route_providers
            .iter()
            .any(|p| key.providers.iter().any(|a| a == p))
    {
        return Err(forbidden(
            "provider_not_allowed",
            format!(
                "API key {} may not use the providers serving model `{}`",
                key.id, req.requested_model
            ),
        )
        .with_param("model"));
    }
    Ok(())
}

/// What a request charges its limits: tokens (rate limits) and micro-dollars (budgets).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RequestCost {
    /// Input bound plus output cap times choices.
    tokens: u64,
    /// The most it can cost at the reservation prices, rounding slack included.
    reservation: u64,
}

impl RequestCost {
    fn of(input_tokens: u64, out_tokens: u64, price: ReservePrice) -> Self {
        Self {
            tokens: input_tokens.saturating_add(out_tokens),
            reservation: cost_ceil(input_tokens, price.input_nanos)
                + cost_ceil(out_tokens, price.output_nanos)
                + RESERVE_SLACK,
        }
    }
}

/// The output a request under a budget asks for, as its body and the config say.
#[derive(Debug, Clone, Copy)]
struct OutputAsk {
    /// The body's own output cap per choice, if it sets one.
    requested: Option<u64>,
    /// The cap it gets when it sets none (`governance.budget_default_max_tokens`).
    default_max_tokens: u64,
    /// Completions asked for (at least 1).
    choices: u64,
    /// The input's upper bound.
    input_tokens: u64,
    /// The reservation prices.
    price: ReservePrice,
}

/// The output cap a budget allows a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OutputPlan {
    /// Per choice.
    max_tokens: u64,
    /// Whether the body must be clamped to it: it asked for more, or set nothing.
    clamp: bool,
}

impl OutputAsk {
    fn wanted(&self) -> u64 {
        self.requested.unwrap_or(self.default_max_tokens)
    }

    /// The reservation of the request as asked.
    fn full_cost(&self) -> u64 {
        cost_ceil(self.input_tokens, self.price.input_nanos)
            + cost_ceil(
                self.wanted().saturating_mul(self.choices),
                self.price.output_nanos,
            )
            + RESERVE_SLACK
    }

    /// The output cap that fits in `room` micro-dollars, or `None` when not one token does.
    fn plan(&self, room: u64) -> Option<OutputPlan> {
        let input_cost = cost_ceil(self.input_tokens, self.price.input_nanos);
        let affordable = room
            .saturating_sub(input_cost + RESERVE_SLACK)
            .saturating_mul(1_000)
            .checked_div(self.price.output_nanos)
            .map_or(u64::MAX, |tokens| tokens / self.choices);
        let max_tokens = self.wanted().min(affordable);
        (max_tokens > 0).then(|| OutputPlan {
            max_tokens,
            clamp: self.requested.is_none_or(|r| r > max_tokens),
        })
    }
}

/// A 429 `budget_exceeded` naming the budget with the least left.
fn budget_error(budgets: &[InForce<'_>]) -> ApiError {
    let message = match budgets.iter().min_by_key(|b| b.remaining()) {
        Some(b) => format!(
            "Budget exceeded: the {} budget of {} {} (${}, {}) is spent",
            b.budget.budget.period.label(),
            b.owner.kind.noun(),
            b.owner.id,
            micros_to_usd_string(b.budget.budget.amount_micros),
            b.budget.budget.mode.as_str(),
        ),
        None => "Budget exceeded".to_owned(),
    };
    ApiError::new(ErrorKind::RateLimit, message).with_code("budget_exceeded")
}

fn endpoint_kind(endpoint: Endpoint) -> EndpointKind {
    match endpoint {
        Endpoint::ChatCompletions => EndpointKind::ChatCompletions,
        Endpoint::Completions => EndpointKind::Completions,
        Endpoint::Embeddings => EndpointKind::Embeddings,
        Endpoint::Messages => EndpointKind::Messages,
        Endpoint::CountTokens => EndpointKind::CountTokens,
    }
}

/// How many refills one reservation waits for at most.
const REFILL_TRIES: usize = 4;

/// Micro-dollars of rounding slack per reservation: the real cost rounds each of its four
/// token classes up on its own.
const RESERVE_SLACK: u64 = 4;

/// `tokens × nanos / 1000`, rounded up.
fn cost_ceil(tokens: u64, nanos: u64) -> u64 {
    tokens.saturating_mul(nanos).div_ceil(1_000)
}

fn model_allowed(patterns: &[String], requested: &str, resolved: &str) -> bool {
    patterns.is_empty()
        || patterns
            .iter()
            .any(|p| glob_match(p, requested) || glob_match(p, resolved))
}

/// A key is in strict mode unless every budget that applies to it is `available`.
fn is_strict(budgets: &[InForce<'_>]) -> bool {
    budgets.is_empty()
        || budgets
            .iter()
            .any(|b| b.budget.budget.mode == BudgetMode::Strict)
}

/// Takes from a limiter, or refuses with a 429 naming the entity and the limit, with
/// `retry-after` and, for rates, the `x-ratelimit-*` headers.
fn acquire(
    limiter: &SharedLimit,
    amount: u64,
    now: u64,
    g: &Governed,
    headers: Option<RateHeaders>,
) -> Result<super::ratelimit::Admitted, ApiError> {
    limiter.try_acquire(amount, now).map_err(|rejected| {
        let secs = rejected.retry_after_ms.div_ceil(1_000).max(1);
        let what = match headers {
            Some(h) => h.what,
            None => "concurrent requests",
        };
        let mut error = ApiError::new(
            ErrorKind::RateLimit,
            format!(
                "Rate limit reached for {} {}: {} {what}. Retry in {secs}s.",
                g.kind.noun(),
                g.id,
                rejected.limit
            ),
        )
        .with_code("rate_limit_exceeded")
        .with_retry_after(secs);
        if let Some(h) = headers {
            let mut map = HeaderMap::new();
            h.set(&mut map, rejected.limit, 0, rejected.retry_after_ms);
            error = error.with_headers(map);
        }
        error
    })
}

/// The `x-ratelimit-*` headers of one kind of rate, as OpenAI sends them.
#[derive(Clone, Copy)]
struct RateHeaders {
    what: &'static str,
    limit: &'static str,
    remaining: &'static str,
    reset: &'static str,
}

impl RateHeaders {
    const REQUESTS: Self = Self {
        what: "requests per minute",
        limit: "x-ratelimit-limit-requests",
        remaining: "x-ratelimit-remaining-requests",
        reset: "x-ratelimit-reset-requests",
    };
    const TOKENS: Self = Self {
        what: "tokens per minute",
        limit: "x-ratelimit-limit-tokens",
        remaining: "x-ratelimit-remaining-tokens",
        reset: "x-ratelimit-reset-tokens",
    };

    fn set(self, headers: &mut HeaderMap, limit: u64, remaining: u64, reset_ms: u64) {
        headers.insert(self.limit, HeaderValue::from(limit));
        headers.insert(self.remaining, HeaderValue::from(remaining));
        if let Ok(v) = HeaderValue::from_str(&format_reset(reset_ms)) {
            headers.insert(self.reset, v);
        }
    }
}

/// OpenAI's reset format: `1s`, `6m0s`, `250ms`.
fn format_reset(ms: u64) -> String {
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let secs = ms.div_ceil(1_000);
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{}s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_format_follows_openai() {
        assert_eq!(format_reset(250), "250ms");
        assert_eq!(format_reset(1_000), "1s");
        assert_eq!(format_reset(59_001), "1m0s");
        assert_eq!(format_reset(360_000), "6m0s");
    }

    #[test]
    fn models_match_by_name_alias_or_pattern() {
        assert!(model_allowed(&[], "x", "y"));
        let allowed = vec!["gpt-4o*".to_owned(), "fast".to_owned()];
        assert!(model_allowed(&allowed, "gpt-4o-mini", "gpt-4o-mini"));
        assert!(model_allowed(&allowed, "fast", "claude-haiku"));
        assert!(!model_allowed(&allowed, "claude-haiku", "claude-haiku"));
    }

    fn ask(requested: Option<u64>, choices: u64) -> OutputAsk {
        OutputAsk {
            requested,
            default_max_tokens: 4_096,
            choices,
            input_tokens: 1_000,
            // $2.50 and $10 per million tokens.
            price: ReservePrice {
                input_nanos: 2_500,
                output_nanos: 10_000,
            },
        }
    }

    #[test]
    fn a_request_that_fits_is_not_clamped() {
        // Input $0.0025 + 4 µ$ slack; 100 tokens out cost $0.001.
        let plan = ask(Some(100), 1).plan(1_000_000);
        assert_eq!(
            plan,
            Some(OutputPlan {
                max_tokens: 100,
                clamp: false
            })
        );
        assert_eq!(ask(Some(100), 1).full_cost(), 2_500 + 1_000 + RESERVE_SLACK);
    }

    #[test]
    fn the_output_is_cut_to_what_the_room_pays_for_per_choice() {
        // 3 504 µ$ of room: 2 504 for input and slack, 1 000 for output = 100 tokens, 50 each.
        let plan = ask(Some(500), 2).plan(3_504);
        assert_eq!(
            plan,
            Some(OutputPlan {
                max_tokens: 50,
                clamp: true
            })
        );
        // Not even the input: refused.
        assert_eq!(ask(Some(500), 1).plan(2_000), None);
    }

    #[test]
    fn a_request_without_a_cap_gets_the_default_and_is_clamped_to_it() {
        let plan = ask(None, 1).plan(u64::MAX);
        assert_eq!(
            plan,
            Some(OutputPlan {
                max_tokens: 4_096,
                clamp: true
            })
        );
        // Free output: any cap is affordable.
        let mut free = ask(Some(7), 1);
        free.price.output_nanos = 0;
        assert_eq!(free.plan(2_504).map(|p| p.max_tokens), Some(7));
    }

    #[test]
    fn the_cost_counts_tokens_and_rounds_each_class_up() {
        let cost = RequestCost::of(
            3,
            5,
            ReservePrice {
                input_nanos: 333,
                output_nanos: 1,
            },
        );
        assert_eq!(cost.tokens, 8);
        assert_eq!(cost.reservation, 1 + 1 + RESERVE_SLACK);
    }

    #[test]
    fn costs_round_up() {
        assert_eq!(cost_ceil(3, 333), 1);
        assert_eq!(cost_ceil(0, 333), 0);
        assert_eq!(cost_ceil(1_000, 2_500), 2_500);
    }
}
