//! Governance on an in-process 5-node cluster: a strict $1.00 budget hammered by 200
//! concurrent clients spread over every node is never overspent, as the mock's ledger (the
//! ground truth of what upstream billed) shows, also with the cluster cut in two halves and
//! with one node cut off during the load.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use starling::admin::AdminState;
use starling::cluster::Cluster;
use starling::config::Config;
use starling::proxy::Gateway;
use starling::server::RunningServer;
use starling_bench::mock::{MockConfig, MockServer};
use starling_cluster::runtime::{ClusterConfig, ClusterNode};
use starling_cluster::tls::{ClusterCredentials, ClusterSecret, generate_secret};
use starling_cluster::transport::{EndpointConfig, PartitionTable};
use starling_governance::model::{Budget, BudgetMode, BudgetPeriod, Entry, Limits, VirtualKey};
use starling_governance::secret;
use tokio::net::TcpListener;

/// One cluster at a time in this binary: five gossiping nodes per test already fill 2 cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const BUDGET_MICROS: u64 = 1_000_000;
const ADMIN_TOKEN: &str = "admin-token-for-tests";
const MODEL: &str = "claude-opus-4";

struct Node {
    cluster: Cluster,
    server: RunningServer,
    gateway: Arc<Gateway>,
    base: String,
}

struct GatewayCluster {
    nodes: Vec<Node>,
    mock: MockServer,
    partition: Arc<PartitionTable>,
    _dirs: Vec<tempfile::TempDir>,
}

/// The governance settings of the test nodes, unless a test asks otherwise.
const GOVERNANCE: &str = "[governance]\nstale_after_ms = 60000\nrights_wait_ms = 300\n";

impl GatewayCluster {
    async fn start(n: usize) -> Self {
        Self::start_with(n, GOVERNANCE).await
    }

    /// `n` nodes whose config ends with `governance` (TOML).
    async fn start_with(n: usize, governance: &str) -> Self {
        starling_providers::ensure_crypto_provider();
        let mock = MockServer::bind(MockConfig::default()).await.expect("mock");
        let secret = ClusterSecret::parse(&generate_secret().expect("secret")).expect("parse");
        let partition = Arc::new(PartitionTable::new());
        let mut dirs = Vec::new();
        let mut nodes: Vec<Node> = Vec::new();
        for i in 0..n {
            let dir = tempfile::tempdir().expect("tempdir");
            let key_path = dir.path().join("provider.key");
            std::fs::write(&key_path, "sk-upstream\n").expect("key file");
            let id = format!("n{i}");
            let credentials = ClusterCredentials::from_secret(&secret, &id).expect("creds");
            let mut config = ClusterConfig::new(
                id.as_str(),
                "127.0.0.1:0".parse().expect("addr"),
                dir.path().join("data"),
                credentials,
            );
            if let Some(first) = nodes.first() {
                config.seeds = vec![first.cluster.local_addr().to_string()];
            }
            config.gossip_interval = Duration::from_millis(50);
            config.sync_interval = Duration::from_millis(100);
            config.dead_node_grace = Duration::from_secs(30);
            config.endpoint = EndpointConfig {
                partition: Some(partition.clone()),
                ..EndpointConfig::default()
            };
            let cluster = Arc::new(ClusterNode::start(config).await.expect("cluster node"));
            let text = common::standard_config(
                &mock.addr().to_string(),
                &key_path.display().to_string(),
                "",
                governance,
            );
            let gateway = Arc::new(
                Gateway::from_config(Config::from_toml(&text).expect("config")).expect("gw"),
            );
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let admin = AdminState {
                token: Some(starling::config::secrets::Secret::new(ADMIN_TOKEN)),
                cluster: Some(cluster.clone()),
            };
            let server = RunningServer::start_with_admin(gateway.clone(), listener, None, admin)
                .expect("server");
            let base = format!("http://{}", server.addr);
            nodes.push(Node {
                cluster,
                server,
                gateway,
                base,
            });
            dirs.push(dir);
        }
        let c = Self {
            nodes,
            mock,
            partition,
            _dirs: dirs,
        };
        c.wait("every node sees every other", |c| {
            c.nodes
                .iter()
                .all(|n| n.cluster.live_peers_info().len() == c.nodes.len() - 1)
        })
        .await;
        // Governance counts members at its next rate-report tick; limiters created before that
        // would start at a share of a smaller cluster.
        c.wait("governance counts every node", |c| {
            c.nodes.iter().all(|n| {
                n.gateway
                    .admission
                    .governance()
                    .is_some_and(|g| g.index().live_nodes() == c.nodes.len())
            })
        })
        .await;
        c
    }

    async fn wait(&self, what: &str, check: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !check(self) {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Creates a key with a strict budget on node 0 and waits until every node knows it and
    /// the budget's rights are minted.
    async fn key_with_budget(&self, micros: u64, mode: BudgetMode) -> String {
        let limits = Limits {
            budgets: vec![Budget {
                amount_micros: micros,
                period: BudgetPeriod::Total,
                mode,
            }],
            ..Limits::default()
        };
        let secret_text = self.put_key("vk_test", limits, None).await;
        if mode == BudgetMode::Strict {
            self.wait("the budget is minted everywhere", |c| {
                c.nodes.iter().all(|n| {
                    n.cluster.read(|r| {
                        r.rights()
                            .keys()
                            .any(|k| k.scope.starts_with("key/vk_test#"))
                    })
                })
            })
            .await;
        }
        secret_text
    }

    /// Writes a key straight into node 0's catalog and waits until every node knows it.
    async fn put_key(&self, id: &str, limits: Limits, expires_at_ms: Option<u64>) -> String {
        let secret_text = secret::generate();
        let key = VirtualKey {
            name: "load".into(),
            limits,
            expires_at_ms,
            ..VirtualKey::new(
                id.into(),
                secret::to_hex(&secret::hash(&secret_text)),
                secret::hint(&secret_text),
                "n0".into(),
                0,
            )
        };
        self.nodes[0]
            .cluster
            .catalog_put(&format!("key/{id}"), Entry::Key(key.into()))
            .await
            .expect("put key");
        self.wait("the key reaches every node", |c| {
            c.nodes.iter().all(|n| {
                n.gateway
                    .admission
                    .governance()
                    .is_some_and(|g| g.lookup(&secret_text).is_some())
            })
        })
        .await;
        secret_text
    }

    fn gossip_addrs(&self, which: &[usize]) -> Vec<std::net::SocketAddr> {
        which
            .iter()
            .map(|&i| self.nodes[i].cluster.local_addr())
            .collect()
    }

    fn ledger_cost(&self) -> u64 {
        self.mock.ledger().iter().map(|e| e.cost_micros).sum()
    }
}

/// Outcome counts of a load run.
#[derive(Default, Debug)]
struct Counts {
    ok: AtomicU64,
    budget: AtomicU64,
    other: AtomicU64,
}

/// `clients` concurrent clients, client `i` on node `i % n`, each sending until it has seen
/// `give_up` budget refusals in a row or sent `max_each` requests.
async fn hammer(c: &GatewayCluster, key: &str, clients: usize, max_each: usize) -> Counts {
    let counts = Arc::new(Counts::default());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..clients {
        let url = format!("{}/v1/messages", c.nodes[i % c.nodes.len()].base);
        let http = http.clone();
        let key = key.to_owned();
        let counts = counts.clone();
        tasks.spawn(async move {
            let mut refusals = 0;
            for _ in 0..max_each {
                let body = json!({
                    "model": MODEL,
                    "max_tokens": 200,
                    "messages": [{"role": "user", "content": "Write a short poem about budgets."}],
                });
                let Ok(r) = http
                    .post(&url)
                    .header("x-api-key", &key)
                    .json(&body)
                    .send()
                    .await
                else {
                    counts.other.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let status = r.status().as_u16();
                let code = r
                    .headers()
                    .get("x-starling-error-code")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let text = r.text().await.unwrap_or_default();
                if status == 200 {
                    counts.ok.fetch_add(1, Ordering::Relaxed);
                    refusals = 0;
                } else if status == 429 && code == "budget_exceeded" {
                    counts.budget.fetch_add(1, Ordering::Relaxed);
                    refusals += 1;
                    if refusals >= 3 {
                        return;
                    }
                } else {
                    if counts.other.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("unexpected answer {status}: {text}");
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Arc::try_unwrap(counts).unwrap_or_default()
}

/// Upstream calls after which the partition is applied: mid-load, with pools and rights
/// already spread over the nodes.
const CUT_AFTER_CALLS: usize = 150;

async fn run_budget_scenario(partition: impl Fn(&GatewayCluster)) -> (u64, Counts) {
    let _serial = SERIAL.lock().await;
    let c = GatewayCluster::start(5).await;
    let key = c.key_with_budget(BUDGET_MICROS, BudgetMode::Strict).await;
    let finished = std::sync::atomic::AtomicBool::new(false);
    let load = async {
        let counts = hammer(&c, &key, 200, 40).await;
        finished.store(true, Ordering::Relaxed);
        counts
    };
    let cut = async {
        while !finished.load(Ordering::Relaxed) {
            if c.mock.ledger().len() >= CUT_AFTER_CALLS {
                partition(&c);
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    };
    let (counts, cut) = tokio::join!(load, cut);
    assert!(cut, "the load ended before the partition could be applied");
    c.partition.heal();
    let spent = c.ledger_cost();
    eprintln!(
        "ledger ${:.6} of $1.00 ({:.1} %), {counts:?}",
        spent as f64 / 1e6,
        spent as f64 / BUDGET_MICROS as f64 * 100.0
    );
    for n in c.nodes {
        n.server.shutdown(Duration::from_millis(200)).await;
    }
    (spent, counts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_budget_is_never_overspent_by_five_nodes() {
    let (spent, counts) = run_budget_scenario(|_| {}).await;
    assert!(spent <= BUDGET_MICROS, "overspent: {spent} µ$");
    assert!(
        counts.budget.load(Ordering::Relaxed) > 0,
        "the budget ran out"
    );
    // Rights move to where the demand is: most of the budget is used before refusals.
    assert!(
        spent * 10 >= BUDGET_MICROS * 8,
        "only {spent} µ$ of the budget was used"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_budget_holds_with_the_cluster_cut_in_halves() {
    let (spent, counts) = run_budget_scenario(|c| {
        c.partition
            .split(&c.gossip_addrs(&[0, 1]), &c.gossip_addrs(&[2, 3, 4]));
    })
    .await;
    assert!(spent <= BUDGET_MICROS, "overspent: {spent} µ$");
    assert!(counts.ok.load(Ordering::Relaxed) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_budget_holds_with_one_node_cut_off() {
    let (spent, counts) = run_budget_scenario(|c| {
        c.partition.isolate(
            c.nodes[0].cluster.local_addr(),
            &c.gossip_addrs(&[1, 2, 3, 4]),
        );
    })
    .await;
    assert!(spent <= BUDGET_MICROS, "overspent: {spent} µ$");
    assert!(counts.ok.load(Ordering::Relaxed) > 0);
}

impl GatewayCluster {
    /// Creates a key through node `node`'s admin API; returns (id, secret).
    async fn create_key(&self, node: usize, body: serde_json::Value) -> (String, String) {
        let r = reqwest::Client::new()
            .post(format!("{}/admin/v1/keys", self.nodes[node].base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("admin answers");
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        let created: serde_json::Value = r.json().await.expect("json");
        let id = created["id"].as_str().expect("id").to_owned();
        let secret = created["key"].as_str().expect("secret").to_owned();
        self.wait("the key reaches every node", |c| {
            c.nodes.iter().all(|n| {
                n.gateway
                    .admission
                    .governance()
                    .is_some_and(|g| g.lookup(&secret).is_some())
            })
        })
        .await;
        (id, secret)
    }

    async fn admin_post(&self, node: usize, path: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}{path}", self.nodes[node].base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("admin answers")
    }
}

async fn message(node: &str, key: &str, model: &str, max_tokens: u64) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{node}/v1/messages"))
        .header("x-api-key", key)
        .json(&json!({
            "model": model,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": "Hello there"}],
        }))
        .send()
        .await
        .expect("gateway answers")
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_keys_are_authenticated_limited_and_revoked() {
    let _serial = SERIAL.lock().await;
    let c = GatewayCluster::start(1).await;
    let base = c.nodes[0].base.clone();
    let (id, key) = c
        .create_key(0, json!({"name": "app", "models": ["claude-*"], "rpm": 3}))
        .await;

    let r = message(&base, &key, "claude-haiku-4-5", 16).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ratelimit-limit-requests"), "3");
    assert!(!header(&r, "x-ratelimit-remaining-requests").is_empty());
    assert!(!header(&r, "x-ratelimit-reset-requests").is_empty());

    let unknown = format!("{}{}", secret::SECRET_PREFIX, "0".repeat(48));
    let r = message(&base, &unknown, "claude-haiku-4-5", 16).await;
    assert_eq!(r.status(), 401);

    let r = message(&base, &key, "gpt-4o-mini", 16).await;
    assert_eq!(r.status(), 403);
    assert_eq!(header(&r, "x-starling-error-code"), "model_not_allowed");

    let expired = c.put_key("vk_expired", Limits::default(), Some(1)).await;
    let r = message(&base, &expired, "claude-haiku-4-5", 16).await;
    assert_eq!(r.status(), 403);
    assert_eq!(header(&r, "x-starling-error-code"), "key_expired");

    // The limit is 3 a minute: at most two more get through, then a 429 with retry-after.
    let mut limited = None;
    for _ in 0..5 {
        let r = message(&base, &key, "claude-haiku-4-5", 16).await;
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("the rate limit refused a request");
    assert_eq!(header(&r, "x-starling-error-code"), "rate_limit_exceeded");
    assert_eq!(header(&r, "x-ratelimit-limit-requests"), "3");
    assert_eq!(header(&r, "x-ratelimit-remaining-requests"), "0");
    assert!(
        header(&r, "retry-after")
            .parse::<u64>()
            .is_ok_and(|s| s >= 1)
    );
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["type"], "error", "Anthropic's error shape: {body}");

    let r = c
        .admin_post(0, &format!("/admin/v1/keys/{id}/revoke"))
        .await;
    assert!(r.status().is_success());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = message(&base, &key, "claude-haiku-4-5", 16).await;
        if r.status() == 403 {
            assert_eq!(header(&r, "x-starling-error-code"), "key_revoked");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "revocation not seen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A revoked key opens no route: the model lists refuse it too, in each API's shape.
    let models = |path: &str| {
        reqwest::Client::new()
            .get(format!("{base}{path}"))
            .bearer_auth(&key)
            .send()
    };
    let r = models("/v1/models").await.expect("answer");
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "key_revoked", "{body}");
    let r = models("/anthropic/v1/models").await.expect("answer");
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        (&body["type"], &body["error"]["type"]),
        (&json!("error"), &json!("permission_error")),
        "{body}"
    );
    for n in c.nodes {
        n.server.shutdown(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_clamps_max_tokens_then_refuses_when_spent() {
    let _serial = SERIAL.lock().await;
    let c = GatewayCluster::start(1).await;
    let base = c.nodes[0].base.clone();
    let (_, key) = c
        .create_key(
            0,
            json!({"name": "tight", "budgets": [{"amount_usd": 0.05, "period": "daily"}]}),
        )
        .await;
    c.wait("the budget is minted", |c| {
        c.nodes[0].cluster.read(|r| r.rights().keys().count() > 0)
    })
    .await;
    // $0.05 at claude-opus-4's $75/M output tokens affords well under 100k tokens.
    let r = message(&base, &key, MODEL, 100_000).await;
    assert_eq!(r.status(), 200);
    let clamped: u64 = header(&r, "x-starling-max-tokens-clamped")
        .parse()
        .expect("the clamp is announced");
    assert!(clamped < 100_000);
    assert!(!header(&r, "x-starling-budget-remaining-usd").is_empty());
    let mut refused = false;
    for _ in 0..200 {
        let r = message(&base, &key, MODEL, 200).await;
        if r.status() == 429 {
            assert_eq!(header(&r, "x-starling-error-code"), "budget_exceeded");
            refused = true;
            break;
        }
        assert_eq!(r.status(), 200);
    }
    assert!(refused, "the budget ran out");
    let spent = c.ledger_cost();
    assert!(spent <= 50_000, "overspent: {spent} µ$");
    for n in c.nodes {
        n.server.shutdown(Duration::from_millis(200)).await;
    }
}

impl GatewayCluster {
    async fn admin(
        &self,
        node: usize,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}{path}", self.nodes[node].base))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.expect("admin answers");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.expect("json")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_limit_hit_in_the_cascade_is_named() {
    let _serial = SERIAL.lock().await;
    let c = GatewayCluster::start(1).await;
    let base = c.nodes[0].base.clone();
    c.admin(
        0,
        reqwest::Method::POST,
        "/admin/v1/teams",
        Some(json!({"id": "t1", "name": "T", "rpm": 1})),
    )
    .await;
    c.admin(
        0,
        reqwest::Method::POST,
        "/admin/v1/customers",
        Some(json!({"id": "c1", "name": "C"})),
    )
    .await;
    let (_, key) = c
        .create_key(
            0,
            json!({"name": "k", "team": "t1", "customer": "c1", "rpm": 100}),
        )
        .await;
    let r = message(&base, &key, "claude-haiku-4-5", 16).await;
    assert_eq!(r.status(), 200);
    // The key allows 100 a minute; its team allows 1, so the team's limit answers.
    let mut refusal = None;
    for _ in 0..3 {
        let r = message(&base, &key, "claude-haiku-4-5", 16).await;
        if r.status() == 429 {
            refusal = Some(r.text().await.expect("text"));
            break;
        }
    }
    let text = refusal.expect("refused");
    assert!(text.contains("team t1"), "{text}");
    // A disabled customer refuses every key that bills to it.
    c.admin(
        0,
        reqwest::Method::PATCH,
        "/admin/v1/customers/c1",
        Some(json!({"enabled": false})),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = message(&base, &key, "claude-haiku-4-5", 16).await;
        if r.status() == 403 {
            assert_eq!(header(&r, "x-starling-error-code"), "customer_disabled");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still admitted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for n in c.nodes {
        n.server.shutdown(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_stream_is_billed_for_what_was_generated() {
    let _serial = SERIAL.lock().await;
    let c = GatewayCluster::start(1).await;
    let base = c.nodes[0].base.clone();
    let (id, key) = c
        .create_key(
            0,
            json!({"name": "s", "budgets": [{"amount_usd": 5, "period": "daily"}], "tpm": 1000000}),
        )
        .await;
    let mut r = reqwest::Client::new()
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", &key)
        .json(&json!({
            "model": MODEL,
            "max_tokens": 400,
            "stream": true,
            "messages": [{"role": "user", "content": "[mock:tokens 300] [mock:slow-first-byte 0] tell me a long story"}],
        }))
        .send()
        .await
        .expect("stream starts");
    assert_eq!(r.status(), 200, "{:?}", r.headers());
    let first = r.chunk().await.expect("a chunk");
    assert!(first.is_some());
    drop(r);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let billed = loop {
        let ledger = c.mock.ledger();
        if let Some(entry) = ledger.first()
            && entry.cost_micros > 0
        {
            break entry.cost_micros;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no ledger entry: {ledger:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The billing figure is what reached the gateway: some of it, never more than the ledger.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let usage = c
            .admin(
                0,
                reqwest::Method::GET,
                &format!("/admin/v1/usage?scope=key:{id}"),
                None,
            )
            .await;
        let day = &usage["periods"]["daily"];
        if day["requests"] == 1 {
            let spent = (day["spend_usd"].as_f64().expect("spend") * 1e6).round() as u64;
            assert!(
                spent > 0 && spent <= billed,
                "recorded {spent} µ$, ledger {billed} µ$"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no usage recorded: {usage}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The enforcement figure keeps the whole reservation: the upstream may have generated
    // more than the gateway saw. A tiny next request shows the budget charged at least the
    // ledger's cost.
    let r = message(&base, &key, MODEL, 1).await;
    assert_eq!(r.status(), 200);
    let remaining: f64 = header(&r, "x-starling-budget-remaining-usd")
        .parse()
        .expect("remaining header");
    assert!(
        remaining * 1e6 <= 5_000_000.0 - billed as f64,
        "remaining ${remaining} although upstream billed {billed} µ$"
    );
    for n in c.nodes {
        n.server.shutdown(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_node_fails_closed_for_strict_keys_and_recovers() {
    let _serial = SERIAL.lock().await;
    let c = GatewayCluster::start_with(2, "[governance]\nstale_after_ms = 1000\n").await;
    let (_, key) = c.create_key(0, json!({"name": "strict"})).await;
    let (_, lenient) = c
        .create_key(0, json!({"name": "lenient", "budgets": [{"amount_usd": 5, "period": "daily", "mode": "available"}]}))
        .await;
    let isolated = c.nodes[1].base.clone();
    assert_eq!(
        message(&isolated, &key, "claude-haiku-4-5", 16)
            .await
            .status(),
        200
    );
    c.partition
        .isolate(c.nodes[1].cluster.local_addr(), &c.gossip_addrs(&[0]));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = message(&isolated, &key, "claude-haiku-4-5", 16).await;
        if r.status() == 503 {
            assert_eq!(header(&r, "x-starling-error-code"), "cluster_unreachable");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never failed closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Keys whose budgets are all `available` stay up on the isolated side.
    assert_eq!(
        message(&isolated, &lenient, "claude-haiku-4-5", 16)
            .await
            .status(),
        200
    );
    let metrics = reqwest::get(format!("{isolated}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("starling_governance_fail_closed 1"),
        "{metrics}"
    );
    c.partition.heal();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while message(&isolated, &key, "claude-haiku-4-5", 16)
        .await
        .status()
        != 200
    {
        assert!(tokio::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for n in c.nodes {
        n.server.shutdown(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn available_budgets_overspend_within_the_documented_bound() {
    let _serial = SERIAL.lock().await;
    let c = GatewayCluster::start(5).await;
    let key = c
        .key_with_budget(BUDGET_MICROS, BudgetMode::Available)
        .await;
    let counts = hammer(&c, &key, 200, 40).await;
    let spent = c.ledger_cost();
    let overspend = spent.saturating_sub(BUDGET_MICROS);
    eprintln!(
        "available mode: ledger ${:.6} of $1.00, overspend ${:.6} ({:.1} %), {counts:?}",
        spent as f64 / 1e6,
        overspend as f64 / 1e6,
        overspend as f64 / BUDGET_MICROS as f64 * 100.0
    );
    assert!(
        counts.budget.load(Ordering::Relaxed) > 0,
        "the budget ran out"
    );
    // The worst case, with every node blind to the others for the whole period, is
    // (N − 1) × the amount; connected nodes stay far below it.
    assert!(overspend <= 4 * BUDGET_MICROS, "overspend {overspend} µ$");
    for n in c.nodes {
        n.server.shutdown(Duration::from_millis(200)).await;
    }
}

/// Admission cost, measured (not asserted): `cargo test --release -p starling --test
/// governance_cluster measure_admission -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run on demand in release mode"]
async fn measure_admission_latency() {
    use starling_governance::estimate::Tokenizer;
    use starling_governance::{AdmitRequest, ReservePrice};
    use starling_wire::api::Endpoint;
    let _serial = SERIAL.lock().await;
    let c = GatewayCluster::start(1).await;
    let (_, key) = c
        .create_key(
            0,
            json!({"name": "bench", "rpm": 1_000_000_000u64, "tpm": 1_000_000_000_000u64,
                   "max_concurrent": 1000,
                   "budgets": [{"amount_usd": 1_000_000, "period": "monthly"}]}),
        )
        .await;
    let (_, limits_only) = c
        .create_key(
            0,
            json!({"name": "limits", "rpm": 1_000_000_000u64, "tpm": 1_000_000_000_000u64,
                   "max_concurrent": 1000}),
        )
        .await;
    let gov = c.nodes[0]
        .gateway
        .admission
        .governance()
        .expect("governance")
        .clone();
    let template = json!({
        "model": "gpt-4o-mini",
        "max_tokens": 256,
        "messages": [{"role": "system", "content": "You are a helpful assistant."},
                     {"role": "user", "content": "Summarise the plot of Hamlet in three sentences, please."}],
    });
    let serde_json::Value::Object(template) = template else {
        unreachable!()
    };
    for (label, secret, tokenizer) in [
        ("limits only, bytes bound", &limits_only, Tokenizer::Bytes),
        (
            "limits and strict budget, bytes bound",
            &key,
            Tokenizer::Bytes,
        ),
        (
            "limits and strict budget, tiktoken o200k",
            &key,
            Tokenizer::O200k,
        ),
    ] {
        let entry = gov.lookup(secret).expect("key");
        let mut samples = Vec::with_capacity(20_000);
        for i in 0..22_000 {
            let mut body = template.clone();
            let started = std::time::Instant::now();
            let admitted = gov
                .admit(
                    &entry,
                    AdmitRequest {
                        endpoint: Endpoint::ChatCompletions,
                        requested_model: "gpt-4o-mini",
                        route_name: "gpt-4o-mini",
                        route_providers: &["mock-openai"],
                        price: ReservePrice {
                            input_nanos: 150,
                            output_nanos: 600,
                        },
                        tokenizer,
                        body: &mut body,
                    },
                )
                .await
                .expect("admitted");
            let took = started.elapsed();
            admitted.permit.settle(300, 100);
            if i >= 2_000 {
                samples.push(took.as_nanos() as u64);
            }
        }
        samples.sort_unstable();
        let q = |p: f64| {
            samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)] as f64 / 1_000.0
        };
        eprintln!(
            "admission ({label}), {} samples: p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs",
            samples.len(),
            q(0.50),
            q(0.99),
            q(0.999)
        );
    }
    let metrics = reqwest::get(format!("{}/metrics", c.nodes[0].base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("starling_budget_refill_waits_total"))
    {
        eprintln!("{line}");
    }
    for n in c.nodes {
        n.server.shutdown(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_shares_follow_demand_across_nodes() {
    use starling_governance::model::LimitName;
    let _serial = SERIAL.lock().await;
    let c = GatewayCluster::start(3).await;
    let (id, key) = c.create_key(0, json!({"name": "hot", "rpm": 600})).await;
    let scope = format!("key/{id}");
    let share = |node: usize| {
        let gov = c.nodes[node]
            .gateway
            .admission
            .governance()
            .expect("gov")
            .clone();
        gov.index()
            .limiter(&scope, LimitName::Rpm)
            .map(|l| l.status(starling_governance::now_ms()).share)
            .unwrap_or(0.0)
    };
    // Without demand, every node holds an even split (a node that briefly counted fewer
    // members, under load, gives its excess back at the next report).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let shares: Vec<f64> = (0..3).map(share).collect();
        if shares.iter().all(|s| (s - 200.0).abs() < 1.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no even split: {shares:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // All the demand on node 0: its share grows past the even split, the others' shrink, and
    // the shares never sum above the limit.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let base = c.nodes[0].base.clone();
    loop {
        let _ = message(&base, &key, "claude-haiku-4-5", 8).await;
        let shares: Vec<f64> = (0..3).map(share).collect();
        assert!(shares.iter().sum::<f64>() <= 600.0 + 1e-6, "{shares:?}");
        if shares[0] > 400.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "shares never moved: {shares:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for n in c.nodes {
        n.server.shutdown(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reclaim_refuses_a_live_node_and_this_node() {
    let _serial = SERIAL.lock().await;
    let c = GatewayCluster::start(2).await;
    for (target, what) in [("n1", "live"), ("n0", "this node")] {
        let r = reqwest::Client::new()
            .post(format!("{}/admin/v1/budget/reclaim", c.nodes[0].base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"node": target}))
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status(), 409, "{target}");
        let body: serde_json::Value = r.json().await.expect("json");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(what), "{target}: {message}");
    }
    for n in c.nodes {
        n.server.shutdown(Duration::from_millis(200)).await;
    }
}

/// Found by the Jepsen-style tests: a key updated on a node that had not yet seen its
/// rotation or revocation wrote the old secret (or the live key) back, because the catalog
/// keeps the last write of an entry whole. Rotations and revocations now live in entries of
/// their own, so a concurrent update can change neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_on_a_stale_node_undoes_no_rotation_or_revocation() {
    let _serial = SERIAL.lock().await;
    let c = GatewayCluster::start(2).await;
    let (rotated_id, old_secret) = c.create_key(0, json!({"name": "rotated"})).await;
    let (revoked_id, revoked_secret) = c.create_key(0, json!({"name": "revoked"})).await;
    c.partition
        .isolate(c.nodes[1].cluster.local_addr(), &c.gossip_addrs(&[0]));
    let rotation = c
        .admin(
            0,
            reqwest::Method::POST,
            &format!("/admin/v1/keys/{rotated_id}/rotate"),
            None,
        )
        .await;
    let new_secret = rotation["key"].as_str().expect("new secret").to_owned();
    c.admin(
        0,
        reqwest::Method::POST,
        &format!("/admin/v1/keys/{revoked_id}/revoke"),
        None,
    )
    .await;
    // Node 1 has seen neither; its updates come later, so they win any last-writer race.
    for id in [&rotated_id, &revoked_id] {
        c.admin(
            1,
            reqwest::Method::PATCH,
            &format!("/admin/v1/keys/{id}"),
            Some(json!({"rpm": 1000})),
        )
        .await;
    }
    c.partition.heal();
    let governance = |n: &Node| {
        n.gateway
            .admission
            .governance()
            .cloned()
            .expect("governance")
    };
    c.wait("the rotation and the updates reach every node", |c| {
        c.nodes.iter().all(|n| {
            let g = governance(n);
            g.lookup(&new_secret)
                .is_some_and(|k| k.key.limits.rpm == Some(1000))
                && g.lookup(&revoked_secret)
                    .is_some_and(|k| k.key.limits.rpm == Some(1000))
        })
    })
    .await;
    for (i, n) in c.nodes.iter().enumerate() {
        let g = governance(n);
        assert!(
            g.lookup(&old_secret).is_none(),
            "node {i}: the old secret came back"
        );
        let revoked = g
            .lookup(&revoked_secret)
            .expect("the revoked key's record stays");
        assert!(
            revoked.key.revoked_at_ms.is_some(),
            "node {i}: the revoked key came back to life"
        );
        assert_eq!(
            message(&n.base, &revoked_secret, "claude-haiku-4-5", 16)
                .await
                .status(),
            403,
            "node {i}"
        );
        let shown = c
            .admin(
                i,
                reqwest::Method::GET,
                &format!("/admin/v1/keys/{rotated_id}"),
                None,
            )
            .await;
        assert_eq!(shown["key_hint"], rotation["key_hint"], "node {i}");
    }
    for n in c.nodes {
        n.server.shutdown(Duration::from_millis(200)).await;
    }
}
