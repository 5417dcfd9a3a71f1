//! Shared set-up for the gateway's integration tests: an in-process mock provider, a gateway
//! in front of it on an OS-assigned port, and small helpers to read SSE and metrics.

#![allow(dead_code)]

pub mod processes;

use std::sync::Arc;
use std::time::Duration;

use starling::admin::AdminState;
use starling::config::Config;
use starling::config::secrets::Secret;
use starling::proxy::Gateway;
use starling::server::RunningServer;
use starling_bench::{LedgerEntry, MockConfig, MockServer};
use tokio::net::TcpListener;

/// The client key every test config accepts.
pub const KEY: &str = "sk-starling-test";
/// The admin token of every harness gateway.
pub const ADMIN: &str = "admin-starling-test";

/// A mock provider plus a gateway in front of it.
pub struct Harness {
    pub mock: MockServer,
    pub server: Option<RunningServer>,
    pub base: String,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// The standard config: both dialects served by the mock, fast retries.
pub fn standard_config(mock: &str, key_file: &str, routing: &str, extra: &str) -> String {
    let mut routing = routing.to_owned();
    for default in [
        "retries = 2",
        "backoff_initial_ms = 1",
        "backoff_max_ms = 2000",
        "cooldown_ms = 60000",
    ] {
        let key = default.split(' ').next().unwrap_or_default();
        if !routing.lines().any(|l| l.trim_start().starts_with(key)) {
            routing.push('\n');
            routing.push_str(default);
        }
    }
    format!(
        r#"
[auth]
keys = ["{KEY}"]

[server]
max_body_bytes = 65536

[routing]
{routing}

[[providers]]
name = "mock-openai"
kind = "openai"
base_url = "http://{mock}/v1"
api_key_file = "{key_file}"
models = ["gpt-*", "text-embedding-*"]

[[providers]]
name = "mock-anthropic"
kind = "anthropic"
base_url = "http://{mock}"
api_key_file = "{key_file}"
models = ["claude-*"]

{extra}
"#
    )
}

impl Harness {
    /// The standard config plus `extra` TOML.
    pub async fn start(extra: &str) -> Self {
        Self::start_routing("", extra).await
    }

    /// The standard config with `routing` lines added to its `[routing]` table.
    pub async fn start_routing(routing: &str, extra: &str) -> Self {
        Self::start_with(MockConfig::default(), |mock, key| {
            standard_config(mock, key, routing, extra)
        })
        .await
    }

    /// A config built from the mock's address and a provider key file.
    pub async fn start_with(
        mock_config: MockConfig,
        config: impl FnOnce(&str, &str) -> String,
    ) -> Self {
        starling_providers::ensure_crypto_provider();
        let mock_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        let mock = MockServer::start(mock_listener, mock_config).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let key_path = dir.path().join("provider.key");
        std::fs::write(&key_path, "sk-upstream-secret\n").expect("write key");
        let text = config(&mock.addr().to_string(), &key_path.display().to_string());
        let config = Config::from_toml(&text).expect("test config is valid");
        let gateway = Arc::new(Gateway::from_config(config).expect("gateway builds"));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind gateway");
        let admin = AdminState {
            token: Some(Secret::new(ADMIN)),
            cluster: None,
        };
        let server = RunningServer::start_with_admin(gateway, listener, None, admin)
            .expect("gateway starts");
        let base = format!("http://{}", server.addr);
        Self {
            mock,
            server: Some(server),
            base,
            client: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// POSTs JSON with the test key.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(KEY)
            .json(body)
            .send()
            .await
            .expect("gateway answers")
    }

    /// GETs an admin API path with the admin token, as JSON.
    pub async fn admin_get(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("admin answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// The gateway's `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics text")
    }

    /// The mock's ledger.
    pub fn ledger(&self) -> Vec<LedgerEntry> {
        self.mock.ledger()
    }

    /// Waits until `check` holds on the ledger, or fails after a deadline.
    pub async fn wait_for_ledger(
        &self,
        what: &str,
        check: impl Fn(&[LedgerEntry]) -> bool,
    ) -> Vec<LedgerEntry> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let ledger = self.ledger();
            if check(&ledger) {
                return ledger;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {ledger:#?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// One SSE event: its `event:` name and `data:` payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
}

/// Splits a complete SSE body into events.
pub fn sse_events(body: &str) -> Vec<Event> {
    body.replace("\r\n", "\n")
        .split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
                }
            }
            Event {
                event,
                data: data.join("\n"),
            }
        })
        .collect()
}

/// The JSON payloads of an SSE body, skipping `[DONE]`.
pub fn sse_json(body: &str) -> Vec<serde_json::Value> {
    sse_events(body)
        .into_iter()
        .filter(|e| e.data != "[DONE]")
        .map(|e| serde_json::from_str(&e.data).expect("event data is JSON"))
        .collect()
}

/// The value of a metric line starting with `prefix` (name and labels), summed over matches.
pub fn metric_value(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| {
            let rest = &l[name.len()..];
            (rest.starts_with('{') || rest.starts_with(' '))
                && labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls `check` every 50 ms until it gives a value; panics naming `what` after 30 s. Tests
/// wait on conditions with a deadline, never on a fixed sleep.
pub async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// POSTs `body` to a node's admin API at `url` with the admin `token`, and returns the JSON
/// answer (e.g. a created key, whose `key` is its secret).
pub async fn admin_post(
    client: &reqwest::Client,
    url: String,
    token: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    client
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json")
}

/// Whether this process runs as root (the owner of /proc/self is the effective user).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
