//! Talking to the nodes: chat requests through the gateway, and admin API writes, each
//! recorded in the history with its outcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::history::{History, Op, OpKind, Outcome, now_ms};
use crate::nodes::ADMIN_TOKEN;

/// The model every chat request asks for (priced by both the gateway and the mock).
pub const MODEL: &str = "gpt-4o";
/// How long a client waits for an answer before counting the operation indeterminate.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Gateway error codes that are definite refusals: the request never reached the provider.
const REFUSAL_CODES: &[&str] = &["cluster_unreachable"];

/// What every client shares: node addresses, the history and the operation counter.
#[derive(Debug)]
pub struct Clients {
    /// `http://IP:PORT` of every node, by host index.
    pub urls: Vec<String>,
    /// Where operations go.
    pub history: Arc<History>,
    next_op: AtomicU64,
}

/// The answer to an admin write.
#[derive(Debug)]
pub struct AdminAnswer {
    /// HTTP status.
    pub status: u16,
    /// The JSON body (Null if there was none).
    pub body: Value,
}

impl Clients {
    /// Clients of the nodes at `urls`.
    pub fn new(urls: Vec<String>, history: Arc<History>) -> Self {
        Self {
            urls,
            history,
            next_op: AtomicU64::new(1),
        }
    }

    /// A fresh HTTP client (each workload client has its own connections).
    pub fn http() -> reqwest::Client {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(REQUEST_TIMEOUT)
            .tcp_nodelay(true)
            .build()
            .unwrap_or_default()
    }

    fn next_id(&self) -> u64 {
        self.next_op.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends one chat completion with `secret` to `node` and records it.
    #[allow(clippy::too_many_arguments)]
    pub async fn chat(
        &self,
        http: &reqwest::Client,
        workload: &str,
        client: u32,
        node: usize,
        key: &str,
        secret: &str,
        secret_generation: u32,
        max_tokens: u64,
    ) -> Op {
        let id = self.next_id();
        let body = json!({
            "model": MODEL,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": format!("jepsen operation {id}")}],
            "user": Op::user_tag(id),
        });
        let invoke_ms = now_ms();
        let url = format!("{}/v1/chat/completions", self.urls[node]);
        let answer = http.post(url).bearer_auth(secret).json(&body).send().await;
        let (outcome, status, error) = classify(answer).await;
        let op = Op {
            id,
            workload: workload.to_owned(),
            client,
            node,
            key: key.to_owned(),
            kind: OpKind::Chat {
                secret_generation,
                max_tokens,
            },
            invoke_ms,
            complete_ms: now_ms(),
            outcome,
            status,
            error,
        };
        self.history.record(op.clone());
        op
    }

    /// Sends an admin write to `node` and records it. `key` is the key id, or empty for a
    /// create (filled in from the answer).
    #[allow(clippy::too_many_arguments)]
    pub async fn admin(
        &self,
        http: &reqwest::Client,
        workload: &str,
        node: usize,
        action: &str,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (Op, Option<AdminAnswer>) {
        let id = self.next_id();
        let invoke_ms = now_ms();
        let mut request = http
            .request(method, format!("{}{path}", self.urls[node]))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let mut answer = None;
        let (outcome, status, error) = match request.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.json::<Value>().await {
                    Ok(body) => {
                        let outcome = if (200..300).contains(&status) {
                            Outcome::Ok
                        } else if status >= 500 {
                            Outcome::Indeterminate
                        } else {
                            Outcome::Rejected
                        };
                        let error = body["error"]["code"].as_str().map(str::to_owned);
                        answer = Some(AdminAnswer { status, body });
                        (outcome, Some(status), error)
                    }
                    Err(e) => (Outcome::Indeterminate, Some(status), Some(e.to_string())),
                }
            }
            Err(e) if e.is_connect() => (Outcome::Failed, None, Some(e.to_string())),
            Err(e) => (Outcome::Indeterminate, None, Some(e.to_string())),
        };
        let key = match (&answer, key) {
            (Some(a), "") => a.body["id"].as_str().unwrap_or_default().to_owned(),
            _ => key.to_owned(),
        };
        let op = Op {
            id,
            workload: workload.to_owned(),
            client: 0,
            node,
            key,
            kind: OpKind::Admin {
                action: action.to_owned(),
            },
            invoke_ms,
            complete_ms: now_ms(),
            outcome,
            status,
            error,
        };
        self.history.record(op.clone());
        (op, answer)
    }

    /// Reads an admin endpoint (not recorded: reads change nothing). Failures are logged:
    /// the checkers report the missing figure.
    pub async fn admin_get(
        &self,
        http: &reqwest::Client,
        node: usize,
        path: &str,
    ) -> Option<Value> {
        let result = async {
            let resp = http
                .get(format!("{}{path}", self.urls[node]))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = resp.status();
            let body = resp.text().await.map_err(|e| e.to_string())?;
            if !status.is_success() {
                return Err(format!("{status}: {body}"));
            }
            serde_json::from_str(&body).map_err(|e| e.to_string())
        }
        .await;
        result
            .inspect_err(|e| tracing::debug!(node, path, "admin read failed: {e}"))
            .ok()
    }
}

/// Sorts a chat answer into the history's outcomes.
async fn classify(
    answer: Result<reqwest::Response, reqwest::Error>,
) -> (Outcome, Option<u16>, Option<String>) {
    let resp = match answer {
        Ok(resp) => resp,
        Err(e) if e.is_connect() => return (Outcome::Failed, None, Some(e.to_string())),
        Err(e) => return (Outcome::Indeterminate, None, Some(e.to_string())),
    };
    let status = resp.status().as_u16();
    let code = resp
        .headers()
        .get("x-starling-error-code")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // The body must arrive whole for a success to count as acknowledged.
    let body = resp.bytes().await;
    let outcome = match (status, &body) {
        (200..=299, Ok(_)) => Outcome::Ok,
        (200..=299, Err(_)) => Outcome::Indeterminate,
        (400..=499, _) => Outcome::Rejected,
        _ if code.as_deref().is_some_and(|c| REFUSAL_CODES.contains(&c)) => Outcome::Rejected,
        _ => Outcome::Indeterminate,
    };
    let error = code.or_else(|| body.err().map(|e| e.to_string()));
    (outcome, Some(status), error)
}
