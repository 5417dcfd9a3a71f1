//! The workloads: who sends what, through which node, with which keys.
//!
//! - **budget**: episodes of a few keys with small `total` budgets (strict, and one in
//!   available mode), spent down by many clients; a new episode starts every 15 s so that
//!   exhaustion happens again and again under different faults. With the clock nemesis, one
//!   strict key has a one-minute period, so clock jumps cross its period boundaries.
//! - **rate**: a key limited in requests per minute and one in tokens per minute, driven at
//!   several times their limits.
//! - **catalog**: keys created, updated, rotated and revoked on random nodes while clients use
//!   them (old secrets and revoked keys included).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::Clients;
use crate::history::Outcome;
use crate::keys::{AckedWrite, BudgetSpec, Invalidation, KeyBook, KeyInfo};

/// The workloads a run can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// Budgets spent to exhaustion.
    Budget,
    /// Rate limits under overload.
    Rate,
    /// Key changes under traffic.
    Catalog,
}

impl Workload {
    /// Parses a comma-separated list (`all` for every workload).
    pub fn parse_list(text: &str) -> Result<Vec<Workload>, String> {
        let mut out = Vec::new();
        for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let w: &[Workload] = match name {
                "all" => &[Workload::Budget, Workload::Rate, Workload::Catalog],
                "budget" => &[Workload::Budget],
                "rate" => &[Workload::Rate],
                "catalog" => &[Workload::Catalog],
                other => {
                    return Err(format!(
                        "unknown workload {other:?}: use all, budget, rate, catalog"
                    ));
                }
            };
            out.extend_from_slice(w);
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

/// How clients spread over the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Spread {
    /// Uniformly.
    Even,
    /// This share of requests to node 0, the rest uniformly.
    Hot(f64),
}

/// Workload settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkloadConfig {
    /// The budget of each budget-workload key, micro-dollars.
    pub budget_micros: u64,
    /// The RPM limit of the rate workload's key.
    pub rpm: u64,
    /// The TPM limit of the rate workload's key.
    pub tpm: u64,
    /// How many times the limits the rate clients send.
    pub overload: f64,
    /// Clients per budget episode.
    pub budget_clients: u32,
    /// How node choice is spread.
    pub spread: Spread,
    /// Whether a one-minute strict budget is exercised (with the clock nemesis).
    pub periodic_budget: bool,
}

/// `max_tokens` of every chat request.
pub const MAX_TOKENS: u64 = 32;
/// Seconds between budget episodes.
const EPISODE_S: u64 = 15;
/// How often a paced workload looks whether the run has stopped.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Shared by every workload task.
pub struct Ctx {
    /// Node clients and the history.
    pub clients: Arc<Clients>,
    /// The keys.
    pub keys: Arc<KeyBook>,
    /// Set when the workloads must stop.
    pub stop: Arc<AtomicBool>,
    /// Settings.
    pub config: WorkloadConfig,
    /// The seed, for per-task generators.
    pub seed: u64,
}

impl Ctx {
    fn nodes(&self) -> usize {
        self.clients.urls.len()
    }

    fn pick_node(&self, rng: &mut StdRng) -> usize {
        match self.config.spread {
            Spread::Hot(share) if rng.random_bool(share.clamp(0.0, 1.0)) => 0,
            _ => rng.random_range(0..self.nodes()),
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Waits `pace` between two operations, or less once the run stops: the traffic ends
    /// promptly (the convergence figures count from its end).
    async fn pace(&self, pace: Duration) {
        let until = tokio::time::Instant::now() + pace;
        while !self.stopped() && tokio::time::Instant::now() < until {
            tokio::time::sleep_until(until.min(tokio::time::Instant::now() + STOP_POLL)).await;
        }
    }

    /// Creates a key on a random node, retrying other nodes until one acknowledges (or the
    /// run stops). Every attempt is in the history.
    pub async fn create_key(
        &self,
        http: &reqwest::Client,
        rng: &mut StdRng,
        workload: &str,
        label: &str,
        spec: KeySpec,
    ) -> Option<KeyInfo> {
        let mut body = json!({"name": format!("{workload}-{label}"), "models": ["gpt-*"]});
        if let Some(b) = &spec.budget {
            body["budgets"] = json!([{
                "amount_usd": b.amount_micros as f64 / 1e6,
                "period": b.period,
                "mode": b.mode,
            }]);
        }
        for (field, value) in [("rpm", spec.rpm), ("tpm", spec.tpm)] {
            if let Some(v) = value {
                body[field] = json!(v);
            }
        }
        while !self.stopped() {
            let node = rng.random_range(0..self.nodes());
            let (op, answer) = self
                .clients
                .admin(
                    http,
                    workload,
                    node,
                    "create",
                    "",
                    reqwest::Method::POST,
                    "/admin/v1/keys",
                    Some(body.clone()),
                )
                .await;
            if let (Outcome::Ok, Some(a)) = (op.outcome, answer)
                && let (Some(id), Some(secret)) = (a.body["id"].as_str(), a.body["key"].as_str())
            {
                let key = KeyInfo {
                    id: id.to_owned(),
                    workload: workload.to_owned(),
                    label: label.to_owned(),
                    secrets: vec![secret.to_owned()],
                    budget: spec.budget,
                    rpm: spec.rpm,
                    tpm: spec.tpm,
                    writer: node,
                    invalidations: Vec::new(),
                    writes: vec![AckedWrite {
                        action: "create".into(),
                        node,
                        ack_ms: op.complete_ms,
                        rpm: spec.rpm,
                    }],
                };
                self.keys.add(key.clone());
                return Some(key);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        None
    }
}

/// What a new key gets.
#[derive(Debug, Clone, Default)]
pub struct KeySpec {
    /// Its budget.
    pub budget: Option<BudgetSpec>,
    /// Its RPM limit.
    pub rpm: Option<u64>,
    /// Its TPM limit.
    pub tpm: Option<u64>,
}

fn strict(amount_micros: u64, period: &str) -> Option<BudgetSpec> {
    Some(BudgetSpec {
        amount_micros,
        mode: "strict".into(),
        period: period.into(),
    })
}

/// Starts the workloads' tasks.
pub fn spawn(ctx: &Arc<Ctx>, workloads: &[Workload]) -> tokio::task::JoinSet<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for w in workloads {
        match w {
            Workload::Budget => {
                tasks.spawn(budget(ctx.clone()));
                if ctx.config.periodic_budget {
                    tasks.spawn(periodic(ctx.clone()));
                }
            }
            Workload::Rate => {
                tasks.spawn(rate(ctx.clone()));
            }
            Workload::Catalog => {
                tasks.spawn(catalog(ctx.clone()));
            }
        }
    }
    tasks
}

/// Budget episodes: two strict keys and one available key each, spent by many clients.
async fn budget(ctx: Arc<Ctx>) {
    let http = Clients::http();
    let mut rng = StdRng::seed_from_u64(ctx.seed ^ 0xb0d6);
    let mut episode = 0;
    while !ctx.stopped() {
        episode += 1;
        let mut keys = Vec::new();
        for (label, mode) in [
            ("strict-a", "strict"),
            ("strict-b", "strict"),
            ("avail", "available"),
        ] {
            let spec = KeySpec {
                budget: Some(BudgetSpec {
                    amount_micros: ctx.config.budget_micros,
                    mode: mode.into(),
                    period: "total".into(),
                }),
                ..KeySpec::default()
            };
            let label = format!("e{episode}-{label}");
            if let Some(k) = ctx
                .create_key(&http, &mut rng, "budget", &label, spec)
                .await
            {
                keys.push(k);
            }
        }
        if keys.is_empty() {
            break;
        }
        let until = tokio::time::Instant::now() + Duration::from_secs(EPISODE_S);
        let mut clients = tokio::task::JoinSet::new();
        for c in 0..ctx.config.budget_clients {
            let key = keys[c as usize % keys.len()].clone();
            clients.spawn(spend(ctx.clone(), key, c, rng.random(), Some(until)));
        }
        while clients.join_next().await.is_some() {}
    }
}

/// One budget client: spends `key` through random nodes until `until` (or the run's end).
async fn spend(
    ctx: Arc<Ctx>,
    key: KeyInfo,
    client: u32,
    seed: u64,
    until: Option<tokio::time::Instant>,
) {
    let http = Clients::http();
    let mut rng = StdRng::seed_from_u64(seed);
    while !ctx.stopped() && until.is_none_or(|u| tokio::time::Instant::now() < u) {
        let node = ctx.pick_node(&mut rng);
        let op = ctx
            .clients
            .chat(
                &http,
                "budget",
                client,
                node,
                &key.id,
                &key.secrets[0],
                0,
                MAX_TOKENS,
            )
            .await;
        // Refused requests cost the gateway almost nothing: pace them so the machine's two
        // cores are not spent on refusals.
        if op.outcome != Outcome::Ok {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One strict key with a one-minute budget, spent by two clients through the whole run, so
/// that clock jumps cross its period boundaries.
async fn periodic(ctx: Arc<Ctx>) {
    let http = Clients::http();
    let mut rng = StdRng::seed_from_u64(ctx.seed ^ 0x9e71);
    let spec = KeySpec {
        budget: strict(ctx.config.budget_micros, "1m"),
        ..KeySpec::default()
    };
    let Some(key) = ctx
        .create_key(&http, &mut rng, "budget", "periodic", spec)
        .await
    else {
        return;
    };
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..2 {
        clients.spawn(spend(ctx.clone(), key.clone(), 100 + c, rng.random(), None));
    }
    while clients.join_next().await.is_some() {}
}

/// The rate keys, driven open-loop at `overload` times their limits by four clients each.
async fn rate(ctx: Arc<Ctx>) {
    let http = Clients::http();
    let mut rng = StdRng::seed_from_u64(ctx.seed ^ 0x7a7e);
    let rpm_key = ctx
        .create_key(
            &http,
            &mut rng,
            "rate",
            "rpm",
            KeySpec {
                rpm: Some(ctx.config.rpm),
                ..KeySpec::default()
            },
        )
        .await;
    let tpm_key = ctx
        .create_key(
            &http,
            &mut rng,
            "rate",
            "tpm",
            KeySpec {
                tpm: Some(ctx.config.tpm),
                ..KeySpec::default()
            },
        )
        .await;
    // A request is about 50 tokens (prompt and `max_tokens`) for the TPM limiter's estimate.
    let targets = [
        (rpm_key, ctx.config.rpm as f64),
        (tpm_key, ctx.config.tpm as f64 / 50.0),
    ];
    let mut clients = tokio::task::JoinSet::new();
    for (key, per_minute) in targets {
        let Some(key) = key else { continue };
        let per_client_per_s = per_minute * ctx.config.overload / 60.0 / 4.0;
        let interval = Duration::from_secs_f64(1.0 / per_client_per_s.max(0.1));
        for c in 0..4 {
            let (ctx, key, seed) = (ctx.clone(), key.clone(), rng.random());
            clients.spawn(async move {
                let http = Clients::http();
                let mut rng = StdRng::seed_from_u64(seed);
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                while !ctx.stopped() {
                    tick.tick().await;
                    let node = ctx.pick_node(&mut rng);
                    ctx.clients
                        .chat(
                            &http,
                            "rate",
                            200 + c,
                            node,
                            &key.id,
                            &key.secrets[0],
                            0,
                            MAX_TOKENS,
                        )
                        .await;
                }
            });
        }
    }
    while clients.join_next().await.is_some() {}
}

/// Catalog changes on random nodes every 1.5 s, and four clients using the keys with any of
/// their secrets.
async fn catalog(ctx: Arc<Ctx>) {
    let mut users = tokio::task::JoinSet::new();
    let mut rng = StdRng::seed_from_u64(ctx.seed ^ 0xca7a);
    for c in 0..4 {
        let (ctx, seed) = (ctx.clone(), rng.random());
        users.spawn(async move {
            let http = Clients::http();
            let mut rng = StdRng::seed_from_u64(seed);
            while !ctx.stopped() {
                let keys = ctx.keys.select(|k| k.workload == "catalog");
                if keys.is_empty() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                let key = &keys[rng.random_range(0..keys.len())];
                // Mostly the newest secret, sometimes an older one.
                let newest = key.secrets.len() - 1;
                let generation = if rng.random_bool(0.7) {
                    newest
                } else {
                    rng.random_range(0..=newest)
                };
                let node = ctx.pick_node(&mut rng);
                ctx.clients
                    .chat(
                        &http,
                        "catalog",
                        300 + c,
                        node,
                        &key.id,
                        &key.secrets[generation],
                        u32::try_from(generation).unwrap_or(u32::MAX),
                        MAX_TOKENS,
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        });
    }
    let http = Clients::http();
    let mut created = 0;
    while !ctx.stopped() {
        let live = ctx.keys.select(|k| k.workload == "catalog" && !k.revoked());
        let action = match rng.random_range(0..10) {
            _ if live.is_empty() => 0,
            0..=2 if live.len() < 6 => 0,
            0..=4 => 1,
            5..=7 => 2,
            _ => 3,
        };
        if action == 0 {
            created += 1;
            let spec = KeySpec {
                budget: strict(1_000_000, "total"),
                ..KeySpec::default()
            };
            ctx.create_key(&http, &mut rng, "catalog", &format!("k{created}"), spec)
                .await;
        } else {
            let key = &live[rng.random_range(0..live.len())];
            let node = rng.random_range(0..ctx.nodes());
            change_key(&ctx, &http, node, key, action, &mut rng).await;
        }
        ctx.pace(Duration::from_millis(1_500)).await;
    }
    while users.join_next().await.is_some() {}
}

/// Updates (1), rotates (2) or revokes (3) a key on `node`, recording what was acknowledged.
async fn change_key(
    ctx: &Ctx,
    http: &reqwest::Client,
    node: usize,
    key: &KeyInfo,
    action: u32,
    rng: &mut StdRng,
) {
    let (name, method, path, body) = match action {
        1 => {
            let rpm = rng.random_range(600..6_000);
            (
                "update",
                reqwest::Method::PATCH,
                format!("/admin/v1/keys/{}", key.id),
                Some(json!({"rpm": rpm})),
            )
        }
        2 => (
            "rotate",
            reqwest::Method::POST,
            format!("/admin/v1/keys/{}/rotate", key.id),
            None,
        ),
        _ => (
            "revoke",
            reqwest::Method::POST,
            format!("/admin/v1/keys/{}/revoke", key.id),
            None,
        ),
    };
    let rpm = body.as_ref().and_then(|b| b["rpm"].as_u64());
    let (op, answer) = ctx
        .clients
        .admin(http, "catalog", node, name, &key.id, method, &path, body)
        .await;
    if op.outcome != Outcome::Ok {
        return;
    }
    let secret = answer
        .as_ref()
        .and_then(|a| a.body["key"].as_str())
        .map(str::to_owned);
    let ack_ms = op.complete_ms;
    ctx.keys.update(&key.id, |k| {
        k.writes.push(AckedWrite {
            action: name.into(),
            node,
            ack_ms,
            rpm,
        });
        match name {
            "rotate" => {
                if let Some(secret) = secret {
                    k.secrets.push(secret);
                    k.invalidations.push(Invalidation {
                        below_generation: u32::try_from(k.secrets.len() - 1).unwrap_or(u32::MAX),
                        ack_ms,
                        node,
                    });
                }
            }
            "revoke" => k.invalidations.push(Invalidation {
                below_generation: u32::MAX,
                ack_ms,
                node,
            }),
            _ => {}
        }
    });
}

/// The liveness probe's key: a large strict budget, no limits.
pub async fn probe_key(ctx: &Ctx) -> Option<KeyInfo> {
    let http = Clients::http();
    let mut rng = StdRng::seed_from_u64(ctx.seed ^ 0x9806e);
    let spec = KeySpec {
        budget: strict(1_000_000_000, "total"),
        ..KeySpec::default()
    };
    ctx.create_key(&http, &mut rng, "probe", "liveness", spec)
        .await
}

/// Reads `value` as micro-dollars from a USD figure.
pub fn usd_to_micros(value: &Value) -> Option<u64> {
    let usd = value.as_f64()?;
    (usd >= 0.0).then(|| (usd * 1e6).round() as u64)
}
