//! The governance admin API and CLI on a one-node cluster: keys, teams and customers CRUD,
//! validation errors that name their field, the token guard, usage from the replicated
//! counters, and the `starling keys|teams|usage` commands against a live server.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};
use starling::admin::AdminState;
use starling::cluster::Cluster;
use starling::config::Config;
use starling::config::secrets::Secret;
use starling::proxy::Gateway;
use starling::server::RunningServer;
use starling_cluster::crdt::{CounterKey, Period, PeriodUnit, Usage};
use starling_cluster::runtime::{ClusterConfig, ClusterNode};
use starling_cluster::state::Delta;
use starling_cluster::tls::{ClusterCredentials, ClusterSecret, generate_secret};
use starling_governance::model::{self, BudgetPeriod, EntityKind, Entry};
use starling_governance::secret;
use tokio::net::TcpListener;

const TOKEN: &str = "admin-secret-for-tests";
const BIN: &str = env!("CARGO_BIN_EXE_starling");

/// A gateway with the admin API on a one-node cluster in a temp dir.
struct Node {
    _server: RunningServer,
    base: String,
    cluster: Cluster,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn start() -> Self {
        starling_providers::ensure_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let gateway = Arc::new(
            Gateway::from_config(Config::embedded_default().expect("default")).expect("gateway"),
        );
        let secret = ClusterSecret::parse(&generate_secret().expect("secret")).expect("parse");
        let credentials = ClusterCredentials::from_secret(&secret, "solo").expect("credentials");
        let config = ClusterConfig::new(
            "solo",
            "127.0.0.1:0".parse().expect("addr"),
            dir.path().to_owned(),
            credentials,
        );
        let cluster: Cluster = Arc::new(ClusterNode::start(config).await.expect("cluster"));
        let admin = AdminState {
            token: Some(Secret::new(TOKEN)),
            cluster: Some(cluster.clone()),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let server =
            RunningServer::start_with_admin(gateway, listener, None, admin).expect("starts");
        let base = format!("http://{}", server.addr);
        Self {
            _server: server,
            base,
            cluster,
            client: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// Calls `/admin/v1{path}` with the token and a raw body.
    async fn raw(&self, method: Method, path: &str, body: Option<String>) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}/admin/v1{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body);
        }
        let r = req.send().await.expect("answer");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, body)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.raw(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.raw(Method::POST, path, Some(body.to_string())).await
    }

    async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.raw(Method::PATCH, path, Some(body.to_string())).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.raw(Method::DELETE, path, None).await
    }

    /// The stored key `id`, straight from the replica.
    /// The key as stored and in force: its record, rotated secret and revocation.
    fn stored_key(&self, id: &str) -> model::VirtualKey {
        let view = |id: &str| self.cluster.catalog_get(id);
        let secret = match view(&format!("key-secret/{id}")) {
            Some(Entry::KeySecret(s)) => Some(s),
            _ => None,
        };
        let revoked = match view(&format!("key-revoked/{id}")) {
            Some(Entry::KeyRevoked(r)) => Some(r),
            _ => None,
        };
        match view(&format!("key/{id}")) {
            Some(Entry::Key(k)) => k.in_force(secret.as_ref(), revoked.as_ref()),
            other => panic!("key/{id} is {other:?}"),
        }
    }

    /// Adds `usage` to `scope`'s counter of `period`, as settlement would.
    async fn add_usage(&self, scope: &str, period: Period, usage: Usage) {
        let key = CounterKey::new(scope, period);
        self.cluster
            .mutate(|r| match r.add_usage(&key, usage) {
                Ok(delta) => (delta, Ok(())),
                Err(e) => (Delta::default(), Err(e)),
            })
            .await
            .expect("persisted")
            .expect("period not dropped");
    }
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or("")
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|k| k["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn a_key_from_create_to_revoke() {
    let node = Node::start().await;
    let (status, team) = node
        .post("/teams", json!({"id": "t1", "name": "Team one"}))
        .await;
    assert_eq!(status, 201, "{team}");

    let (status, created) = node
        .post(
            "/keys",
            json!({
                "name": "ci",
                "team": "t1",
                "models": ["gpt-4o-mini", "claude-*"],
                "budgets": [
                    {"amount_usd": 100, "period": "monthly"},
                    {"amount_usd": 5.5, "period": "daily", "mode": "available"}
                ],
                "rpm": 600,
                "tpm": 100000,
                "max_concurrent": 10,
                "expires_in": "30d",
                "metadata": {"owner": "ci"}
            }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let first_secret = created["key"].as_str().expect("secret").to_owned();
    assert!(id.starts_with("vk_") && id.len() == 23, "{id}");
    assert!(first_secret.starts_with(secret::SECRET_PREFIX));
    assert_eq!(created["team"], "t1");
    assert_eq!(created["models"], json!(["gpt-4o-mini", "claude-*"]));
    assert_eq!(
        created["budgets"],
        json!([
            {"amount_usd": 100.0, "period": "monthly", "mode": "strict"},
            {"amount_usd": 5.5, "period": "daily", "mode": "available"}
        ])
    );
    assert_eq!(created["rpm"], 600);
    assert_eq!(created["enabled"], true);
    assert_eq!(created["revoked"], false);
    assert_eq!(created["mint_node"], "solo");
    assert!(
        created["expires_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(created["key_hint"], secret::hint(&first_secret));
    let stored = node.stored_key(&id);
    assert_eq!(
        stored.secret_sha256,
        secret::to_hex(&secret::hash(&first_secret))
    );
    assert_eq!(stored.limits.budgets[1].amount_micros, 5_500_000);
    assert!(!created.to_string().contains(&stored.secret_sha256));

    // Read: the secret is never shown again, nor its hash, here or in the generic catalog.
    let (status, shown) = node.get(&format!("/keys/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(shown.get("key"), None);
    assert_eq!(shown["name"], "ci");
    let (status, raw) = node.get("/catalog?prefix=key/").await;
    assert_eq!(status, 200);
    assert_eq!(raw["data"][0]["id"], format!("key/{id}"));
    assert!(!raw.to_string().contains(&stored.secret_sha256), "{raw}");
    assert_eq!(node.get("/keys/vk_missing").await.0, 404);

    // List: five keys over three pages of two.
    let mut all = vec![id.clone()];
    for i in 0..4 {
        let (status, k) = node.post("/keys", json!({"name": format!("k{i}")})).await;
        assert_eq!(status, 201);
        all.push(k["id"].as_str().expect("id").to_owned());
    }
    all.sort();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(a) => format!("/keys?limit=2&after={a}"),
            None => "/keys?limit=2".to_owned(),
        };
        let (status, page) = node.get(&path).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(ids(&page));
        pages += 1;
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!((pages, &seen), (3, &all));
    let (_, by_team) = node.get("/keys?team=t1").await;
    assert_eq!(ids(&by_team), vec![id.clone()]);
    let (_, none) = node.get("/keys?customer=nobody").await;
    assert_eq!(ids(&none), Vec::<String>::new());
    let (status, bad) = node.get("/keys?tema=t1").await;
    assert_eq!(status, 400);
    assert!(message(&bad).contains("tema"), "{bad}");

    // Update: absent fields stay, null clears, updated_at moves.
    let (status, updated) = node
        .patch(
            &format!("/keys/{id}"),
            json!({"name": "ci-2", "rpm": null, "team": null, "metadata": {"owner": "ops"}}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["name"], "ci-2");
    assert_eq!(updated["rpm"], Value::Null);
    assert_eq!(updated["team"], Value::Null);
    assert_eq!(updated["tpm"], 100000);
    assert_eq!(updated["metadata"], json!({"owner": "ops"}));
    assert_eq!(updated["budgets"], created["budgets"]);
    assert!(node.stored_key(&id).updated_at_ms >= stored.updated_at_ms);
    let (status, e) = node
        .patch(&format!("/keys/{id}"), json!({"team": "ghost"}))
        .await;
    assert_eq!(status, 400);
    assert!(message(&e).starts_with("team: "), "{e}");
    assert_eq!(
        node.patch("/keys/vk_missing", json!({"rpm": 1})).await.0,
        404
    );

    // Rotate: a new secret, once; the old hash is gone.
    let (status, rotated) = node.post(&format!("/keys/{id}/rotate"), json!({})).await;
    assert_eq!(status, 200, "{rotated}");
    let second_secret = rotated["key"].as_str().expect("secret").to_owned();
    assert_ne!(second_secret, first_secret);
    let stored = node.stored_key(&id);
    assert_eq!(
        stored.secret_sha256,
        secret::to_hex(&secret::hash(&second_secret))
    );
    assert_ne!(
        stored.secret_sha256,
        secret::to_hex(&secret::hash(&first_secret))
    );
    assert_eq!(node.get(&format!("/keys/{id}")).await.1.get("key"), None);

    // Revoke: idempotent, final, and the record stays.
    let (status, revoked) = node.post(&format!("/keys/{id}/revoke"), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(revoked["revoked"], true);
    let at = revoked["revoked_at"].clone();
    assert!(at.is_string());
    let (status, again) = node.post(&format!("/keys/{id}/revoke"), json!({})).await;
    assert_eq!((status, &again["revoked_at"]), (200, &at));
    let (status, e) = node.patch(&format!("/keys/{id}"), json!({"rpm": 5})).await;
    assert_eq!(status, 409, "{e}");
    assert!(message(&e).contains("revoked"));
    assert_eq!(
        node.post(&format!("/keys/{id}/rotate"), json!({})).await.0,
        409
    );

    // DELETE revokes too, and keeps the record.
    let other = &all.iter().find(|k| **k != id).expect("another key");
    let (status, deleted) = node.delete(&format!("/keys/{other}")).await;
    assert_eq!((status, &deleted["revoked"]), (200, &json!(true)));
    let (status, still) = node.get(&format!("/keys/{other}")).await;
    assert_eq!((status, &still["revoked"]), (200, &json!(true)));
    assert_eq!(node.delete("/keys/vk_missing").await.0, 404);
}

/// The generic catalog API refuses every id governance owns, for every prefix governance uses:
/// a DELETE or PUT there would undo a revocation or a rotation around their endpoints.
#[tokio::test]
async fn governance_ids_cannot_be_written_through_the_generic_catalog() {
    let node = Node::start().await;
    let (status, created) = node.post("/keys", json!({"name": "doomed"})).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(
        node.post(&format!("/keys/{id}/rotate"), json!({})).await.0,
        200
    );
    assert_eq!(
        node.post(&format!("/keys/{id}/revoke"), json!({})).await.0,
        200
    );
    assert!(node.stored_key(&id).revoked_at_ms.is_some());

    for prefix in model::GovernedId::PREFIXES {
        let path = format!("/catalog/{}{id}", prefix.replace('/', "%2F"));
        let (status, e) = node.delete(&path).await;
        assert_eq!(status, 400, "DELETE {path}: {e}");
        assert!(message(&e).contains("belong to governance"), "{e}");
        let (status, e) = node
            .raw(
                Method::PUT,
                &path,
                Some(r#"{"revoked_at_ms": null}"#.into()),
            )
            .await;
        assert_eq!(status, 400, "PUT {path}: {e}");
    }
    let stored = node.stored_key(&id);
    assert!(stored.revoked_at_ms.is_some(), "the revocation was undone");
    assert!(
        node.cluster
            .catalog_get(&format!("key-secret/{id}"))
            .is_some()
    );

    // The state dump shows every row, but no key's secret hash.
    let (status, dump) = node.get("/state/dump").await;
    assert_eq!(status, 200);
    let text = dump.to_string();
    assert!(
        text.contains(&format!("key-revoked/{id}")),
        "the rows are there"
    );
    assert!(
        !text.contains("secret_sha256"),
        "the dump shows secret hashes: {text}"
    );

    // Generic documents beside them are still the generic API's.
    let (status, doc) = node
        .raw(
            Method::PUT,
            "/catalog/notes%2Fkey-revoked",
            Some("{}".into()),
        )
        .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(node.delete("/catalog/notes%2Fkey-revoked").await.0, 200);
}

#[tokio::test]
async fn teams_and_customers() {
    let node = Node::start().await;
    let (status, t) = node
        .post(
            "/teams",
            json!({"id": "eng", "models": ["gpt-*"], "budgets": [{"amount_usd": 50, "period": "weekly"}], "tpm": 1000}),
        )
        .await;
    assert_eq!(status, 201, "{t}");
    assert_eq!(t["name"], "eng", "the name defaults to the id");
    assert_eq!(t["models"], json!(["gpt-*"]));
    let (status, e) = node.post("/teams", json!({"id": "eng"})).await;
    assert_eq!(status, 409);
    assert!(message(&e).contains("eng"), "{e}");
    let (status, generated) = node.post("/teams", json!({"name": "Ops"})).await;
    assert_eq!(status, 201);
    let ops = generated["id"].as_str().expect("id").to_owned();
    assert!(ops.starts_with("team_") && ops.len() == 25, "{ops}");
    let (_, list) = node.get("/teams").await;
    let mut expected = vec!["eng".to_owned(), ops.clone()];
    expected.sort();
    assert_eq!(ids(&list), expected);
    let (_, page) = node.get("/teams?limit=1").await;
    assert_eq!(page["next"], expected[0].as_str());

    let (status, u) = node
        .patch(
            "/teams/eng",
            json!({"tpm": null, "enabled": false, "name": "Engineering"}),
        )
        .await;
    assert_eq!(status, 200, "{u}");
    assert_eq!((&u["tpm"], &u["enabled"]), (&Value::Null, &json!(false)));
    assert_eq!(u["budgets"], t["budgets"]);
    let (status, e) = node.patch("/teams/eng", json!({"id": "other"})).await;
    assert_eq!(status, 400);
    assert!(message(&e).starts_with("id: "), "{e}");

    let (status, c) = node
        .post("/customers", json!({"id": "acme", "rpm": 100}))
        .await;
    assert_eq!(status, 201, "{c}");
    assert_eq!(c.get("models"), None, "customers have no model list");
    let (status, generated) = node.post("/customers", json!({})).await;
    assert_eq!(status, 201);
    assert!(
        generated["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("cus_"))
    );
    assert_eq!(node.get("/customers/acme").await.1["rpm"], 100);
    assert_eq!(node.get("/customers/eng").await.0, 404);

    // A team or customer with live keys cannot go; once its keys are revoked, it can.
    let (status, key) = node
        .post(
            "/keys",
            json!({"name": "k", "team": "eng", "customer": "acme"}),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let key_id = key["id"].as_str().expect("id");
    for path in ["/teams/eng", "/customers/acme"] {
        let (status, e) = node.delete(path).await;
        assert_eq!(status, 409, "{path}: {e}");
        assert!(message(&e).contains("1 key"), "{e}");
    }
    node.post(&format!("/keys/{key_id}/revoke"), json!({}))
        .await;
    for path in ["/teams/eng", "/customers/acme"] {
        let (status, d) = node.delete(path).await;
        assert_eq!((status, &d["deleted"]), (200, &json!(true)), "{path}");
        assert_eq!(node.get(path).await.0, 404);
        assert_eq!(node.delete(path).await.0, 404);
    }
    // A deleted id may be chosen again.
    assert_eq!(node.post("/teams", json!({"id": "eng"})).await.0, 201);
}

#[tokio::test]
async fn validation_errors_name_their_field() {
    let node = Node::start().await;
    node.post("/teams", json!({"id": "t1"})).await;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/keys", json!({}), "name: "),
        ("/keys", json!({"name": "x", "team": "nope"}), "team: "),
        (
            "/keys",
            json!({"name": "x", "customer": "t1"}),
            "customer: ",
        ),
        (
            "/keys",
            json!({"name": "x", "budgets": [{"amount_usd": 1, "period": "fortnightly"}]}),
            "budgets[0].period: ",
        ),
        (
            "/keys",
            json!({"name": "x", "budgets": [{"amount_usd": -2, "period": "daily"}]}),
            "budgets[0].amount_usd: ",
        ),
        (
            "/keys",
            json!({"name": "x", "budgets": [{"amount_usd": 0, "period": "daily"}]}),
            "budgets[0].amount_usd: ",
        ),
        (
            "/keys",
            json!({"name": "x", "budgets": [
                {"amount_usd": 1, "period": "daily"},
                {"amount_usd": 2, "period": "daily", "mode": "available"}
            ]}),
            "budgets[1].period: ",
        ),
        (
            "/keys",
            json!({"name": "x", "budgets": [{"amount_usd": 1, "period": "daily", "mode": "lax"}]}),
            "budgets[0].mode: ",
        ),
        (
            "/keys",
            json!({"name": "x", "budgets": [{"amount": 1, "period": "daily"}]}),
            "budgets[0].amount: unknown field `amount`",
        ),
        (
            "/keys",
            json!({"name": "x", "colour": "red"}),
            "colour: unknown field `colour`",
        ),
        (
            "/keys",
            json!({"name": "x", "rpm": "10"}),
            "rpm: invalid type",
        ),
        (
            "/keys",
            json!({"name": "x", "rpm": -1}),
            "rpm: invalid value",
        ),
        ("/keys", json!({"name": "x", "tpm": 0}), "tpm: "),
        (
            "/keys",
            json!({"name": "x", "models": "gpt-4o"}),
            "models: invalid type",
        ),
        (
            "/keys",
            json!({"name": "x", "metadata": [1]}),
            "metadata: invalid type",
        ),
        (
            "/keys",
            json!({"name": "x", "enabled": "yes"}),
            "enabled: invalid type",
        ),
        (
            "/keys",
            json!({"name": "x", "expires_at": "soon"}),
            "expires_at: ",
        ),
        (
            "/keys",
            json!({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at: ",
        ),
        (
            "/keys",
            json!({"name": "x", "expires_in": "forever"}),
            "expires_in: ",
        ),
        (
            "/keys",
            json!({"name": "x", "expires_in": "1d", "expires_at": 4102444800000u64}),
            "expires_in: ",
        ),
        ("/teams", json!({"id": "bad id"}), "id: "),
        ("/teams", json!({"id": "a/b"}), "id: "),
        ("/teams", json!({"id": "x".repeat(65)}), "id: "),
        ("/customers", json!({"models": ["gpt-*"]}), "models: "),
    ];
    for (path, body, expected) in cases {
        let (status, e) = node.post(path, body.clone()).await;
        assert_eq!(status, 400, "{path} {body}: {e}");
        assert_eq!(e["error"]["type"], "invalid_request_error");
        assert!(
            message(&e).starts_with(expected),
            "{path} {body}: {:?} should start with {expected:?}",
            message(&e)
        );
    }
    for (body, expected) in [
        ("{not json", "the body: "),
        ("[]", "the body: "),
        ("", "the body is empty"),
        ("{\"name\": \"x\"} {}", "the body: trailing"),
    ] {
        let (status, e) = node.raw(Method::POST, "/keys", Some(body.to_owned())).await;
        assert_eq!(status, 400, "{body}");
        assert!(message(&e).starts_with(expected), "{body}: {e}");
    }
    let big = json!({"name": "x", "metadata": {"blob": "x".repeat(100_000)}});
    let (status, e) = node.post("/keys", big).await;
    assert_eq!(status, 413, "{e}");
    // Nothing invalid was written.
    assert_eq!(ids(&node.get("/keys").await.1), Vec::<String>::new());
}

#[tokio::test]
async fn unauthenticated_calls_are_refused() {
    let node = Node::start().await;
    let c = reqwest::Client::new();
    for (method, path) in [
        (Method::GET, "/keys"),
        (Method::POST, "/keys"),
        (Method::GET, "/keys/vk_x"),
        (Method::PATCH, "/keys/vk_x"),
        (Method::DELETE, "/keys/vk_x"),
        (Method::POST, "/keys/vk_x/rotate"),
        (Method::POST, "/keys/vk_x/revoke"),
        (Method::GET, "/teams"),
        (Method::POST, "/customers"),
        (Method::DELETE, "/teams/t"),
        (Method::GET, "/usage?scope=key:vk_x"),
    ] {
        for token in [None, Some("wrong")] {
            let mut req = c
                .request(method.clone(), format!("{}/admin/v1{path}", node.base))
                .body(json!({"name": "x"}).to_string());
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.expect("answer");
            assert_eq!(r.status(), 401, "{method} {path} {token:?}");
            let body: Value = r.json().await.expect("json");
            assert_eq!(body["error"]["type"], "authentication_error");
        }
    }
    assert_eq!(ids(&node.get("/keys").await.1), Vec::<String>::new());
}

#[tokio::test]
async fn usage_reports_the_replicated_counters() {
    let node = Node::start().await;
    node.post(
        "/teams",
        json!({"id": "t1", "budgets": [{"amount_usd": 20, "period": "daily"}]}),
    )
    .await;
    let (_, key) = node
        .post(
            "/keys",
            json!({"name": "k", "team": "t1", "budgets": [
                {"amount_usd": 10, "period": "monthly"},
                {"amount_usd": 1, "period": "1d", "mode": "available"}
            ]}),
        )
        .await;
    let id = key["id"].as_str().expect("id").to_owned();
    let stored = node.stored_key(&id);
    let scope = model::scope(EntityKind::Key, &id);
    let spent = Usage {
        spend_micros: 1_250_000,
        tokens: 300,
        requests: 2,
    };
    // Written into the current and the next period of every unit, so that a period boundary
    // passing between this write and the read below changes nothing.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    for unit in model::USAGE_UNITS {
        let period = Period::containing(unit, now);
        node.add_usage(&scope, period, spent).await;
        if unit != PeriodUnit::Lifetime {
            node.add_usage(&scope, period.next(), spent).await;
        }
    }
    let every: &BudgetPeriod = &stored.limits.budgets[1].period;
    let (period, _, _) = every.current(now);
    node.add_usage(&scope, period, spent).await;
    node.add_usage(&scope, period.next(), spent).await;

    let (status, report) = node.get(&format!("/usage?scope=key:{id}")).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["scope"], format!("key:{id}"));
    let periods = report["periods"].as_object().expect("periods");
    let labels: Vec<&str> = periods.keys().map(String::as_str).collect();
    assert_eq!(
        labels,
        ["hourly", "daily", "weekly", "monthly", "total", "1d"]
    );
    for (label, p) in periods {
        assert_eq!(
            (&p["spend_usd"], &p["tokens"], &p["requests"]),
            (&json!(1.25), &json!(300), &json!(2)),
            "{label}"
        );
    }
    assert_eq!(periods["total"]["start"], Value::Null);
    assert!(
        periods["daily"]["start"]
            .as_str()
            .is_some_and(|s| s.ends_with("T00:00:00Z"))
    );
    assert_eq!(
        report["budgets"],
        json!([
            {"period": "monthly", "mode": "strict", "amount_usd": 10.0, "spent_usd": 1.25, "remaining_usd": 8.75},
            {"period": "1d", "mode": "available", "amount_usd": 1.0, "spent_usd": 1.25, "remaining_usd": 0.0}
        ])
    );

    let (status, only) = node
        .get(&format!("/usage?scope=key:{id}&period=monthly"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(only["periods"].as_object().map(|p| p.len()), Some(1));
    assert_eq!(only["budgets"].as_array().map(Vec::len), Some(1));

    // The team has its own scope: nothing was charged to it.
    let (status, team) = node.get("/usage?scope=team:t1").await;
    assert_eq!(status, 200);
    assert_eq!(team["periods"]["daily"]["requests"], 0);
    assert_eq!(team["budgets"][0]["remaining_usd"], 20.0);

    for (path, status, expected) in [
        (
            format!("/usage?scope=key:{id}&period=yearly"),
            400,
            "period: ",
        ),
        ("/usage?scope=org:x".to_owned(), 400, "scope: "),
        ("/usage".to_owned(), 400, "the query string: "),
        (
            "/usage?scope=customer:nobody".to_owned(),
            404,
            "no customer",
        ),
    ] {
        let (s, e) = node.get(&path).await;
        assert_eq!(s, status, "{path}: {e}");
        assert!(message(&e).starts_with(expected), "{path}: {e}");
    }
}

/// Runs the CLI against `node`, with the token from the environment.
async fn cli(node: &Node, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(BIN)
        .args(args)
        .env("STARLING_NODE", &node.base)
        .env("STARLING_ADMIN_TOKEN", TOKEN)
        .output()
        .await
        .expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_drives_the_api() {
    let node = Node::start().await;
    let (ok, out, err) = cli(
        &node,
        &[
            "teams",
            "create",
            "--id",
            "cli-team",
            "--budget",
            "50:monthly",
        ],
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("cli-team"), "{out}");

    let (ok, out, err) = cli(
        &node,
        &[
            "keys",
            "create",
            "--name",
            "ci",
            "--team",
            "cli-team",
            "--model",
            "gpt-4o-mini",
            "--model",
            "claude-*",
            "--budget",
            "100:monthly",
            "--budget",
            "5:daily:available",
            "--rpm",
            "600",
            "--tpm",
            "100000",
            "--max-concurrent",
            "10",
            "--expires-in",
            "30d",
            "--metadata",
            r#"{"owner":"ci"}"#,
        ],
    )
    .await;
    assert!(ok, "{out}{err}");
    let secret_line = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(secret::SECRET_PREFIX))
        .unwrap_or_else(|| panic!("no secret in {out}"));
    assert_eq!(secret_line.len(), secret::SECRET_PREFIX.len() + 48);
    assert!(
        err.contains("not be shown again") || err.contains("cannot be shown again"),
        "{err}"
    );
    assert!(out.contains("$5/daily (available)"), "{out}");

    // --json gives the API's answer, flags may follow the subcommand, and --node overrides.
    let (ok, out, err) = cli(
        &node,
        &[
            "keys", "create", "--name", "second", "--json", "--node", &node.base,
        ],
    )
    .await;
    assert!(ok, "{err}");
    let second: Value = serde_json::from_str(&out).expect("json");
    assert!(
        second["key"]
            .as_str()
            .is_some_and(|k| k.starts_with("sk-strl-"))
    );
    let second_id = second["id"].as_str().expect("id").to_owned();

    let (ok, out, err) = cli(&node, &["keys", "list", "--json"]).await;
    assert!(ok, "{err}");
    let list: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(list["data"].as_array().map(Vec::len), Some(2));
    let (ok, out, _) = cli(&node, &["keys", "list", "--team", "cli-team"]).await;
    assert!(ok);
    assert_eq!(out.lines().count(), 2, "a header and one key: {out}");
    assert!(
        out.lines().next().is_some_and(|h| h.starts_with("ID")),
        "{out}"
    );

    let (ok, out, err) = cli(
        &node,
        &[
            "keys",
            "update",
            &second_id,
            "--rpm",
            "7",
            "--clear",
            "metadata",
            "--disable",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("rpm") && l.ends_with(" 7")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("enabled") && l.ends_with("false")),
        "{out}"
    );

    let (ok, out, err) = cli(&node, &["keys", "rotate", &second_id]).await;
    assert!(ok, "{err}");
    assert!(out.contains(secret::SECRET_PREFIX), "{out}");

    node.add_usage(
        &model::scope(EntityKind::Key, &second_id),
        Period::containing(PeriodUnit::Lifetime, 0),
        Usage {
            spend_micros: 2_500_000,
            tokens: 10,
            requests: 1,
        },
    )
    .await;
    let (ok, out, err) = cli(&node, &["usage", "--key", &second_id]).await;
    assert!(ok, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("total") && l.contains("2.5")),
        "{out}"
    );
    let (ok, out, err) = cli(
        &node,
        &[
            "usage", "--team", "cli-team", "--period", "monthly", "--json",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report["budgets"][0]["amount_usd"], 50.0);

    // API errors: the message, a non-zero exit.
    let (ok, out, err) = cli(&node, &["keys", "create", "--name", "x", "--team", "nope"]).await;
    assert!(!ok, "{out}");
    assert!(err.starts_with("error: team: no team \"nope\""), "{err}");
    let (ok, _, err) = cli(&node, &["teams", "delete", "cli-team"]).await;
    assert!(!ok);
    assert!(err.contains("still has 1 key"), "{err}");
    let (ok, _, err) = cli(&node, &["keys", "revoke", &second_id]).await;
    assert!(ok, "{err}");
    let (ok, _, err) = cli(&node, &["keys", "rotate", &second_id]).await;
    assert!(!ok);
    assert!(
        err.starts_with("error: ") && err.contains("revoked"),
        "{err}"
    );
    let (ok, _, err) = cli(
        &node,
        &["keys", "show", "vk_nope", "--admin-token", "wrong"],
    )
    .await;
    assert!(!ok);
    assert_eq!(err.trim(), "error: missing or wrong admin token");
}
