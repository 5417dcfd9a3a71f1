//! Graceful shutdown of a real `starling` process: SIGTERM in the middle of a slow stream
//! stops new requests at once (readiness fails while the process still runs), lets the stream
//! finish with every event and `[DONE]`, writes the request log, leaves the cluster and exits 0.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use starling_bench::mock::{MockConfig, MockServer};

const BIN: &str = env!("CARGO_BIN_EXE_starling");
const TOKENS: u64 = 20;
const CLIENT_KEY: &str = "sk-shutdown-test-client";

/// Kills the process if the test fails before it exits.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_ready(node: &mut Node, ready: &Path, log: &Path) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(ready)
            && let Ok(v) = serde_json::from_str::<Value>(&text)
        {
            return format!("http://{}", v["http"].as_str().expect("http"));
        }
        if let Ok(Some(status)) = node.0.try_wait() {
            panic!(
                "starling exited early ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(std::time::Instant::now() < deadline, "never became ready");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_a_stream_then_exits_cleanly() {
    starling_providers::ensure_crypto_provider();
    let mock = MockServer::start(
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock"),
        MockConfig {
            inter_token_ms: 100,
            ..MockConfig::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("upstream.key");
    std::fs::write(&key, "sk-upstream").expect("key");
    let requests = dir.path().join("requests.jsonl");
    let config = dir.path().join("starling.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
shutdown_grace_secs = 20

[auth]
keys = ["{CLIENT_KEY}"]

[[providers]]
name = "mock"
kind = "openai"
base_url = "http://{}/v1"
api_key_file = "{}"
models = ["gpt-*"]

[request_log]
file = "{}"
"#,
            mock.addr(),
            key.display(),
            requests.display()
        ),
    )
    .expect("config");
    let ready = dir.path().join("ready.json");
    let log = dir.path().join("node.log");
    let secret = starling_cluster::tls::generate_secret().expect("secret");
    let mut node = Node(
        Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .args(["--listen", "127.0.0.1:0", "--node-id", "solo"])
            .args(["--gossip-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--ready-file")
            .arg(&ready)
            .env("STARLING_CLUSTER_SECRET", secret)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawns"),
    );
    let base = wait_ready(&mut node, &ready, &log);
    let client = reqwest::Client::new();

    let response = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .json(&json!({
            "model": "gpt-4o-mini", "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": format!("[mock:tokens {TOKENS}] go")}],
        }))
        .send()
        .await
        .expect("stream starts");
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut received = body
        .next()
        .await
        .expect("a first chunk")
        .expect("readable")
        .to_vec();

    // SIGTERM mid-stream: the mock paces the rest at 100 ms a token.
    let pid = libc::pid_t::try_from(node.0.id()).expect("pid");
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "signal sent");

    // New requests stop at once, while the process is still draining the stream.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let probe = reqwest::Client::new()
            .get(format!("{base}/readyz"))
            .timeout(Duration::from_secs(1))
            .send()
            .await;
        if probe.map_or(true, |r| r.status() == 503) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still ready after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        node.0.try_wait().expect("status").is_none(),
        "refusing new requests while the stream is still in flight"
    );

    // The stream finishes whole.
    while let Some(chunk) = body.next().await {
        received.extend_from_slice(&chunk.expect("the stream is not cut"));
    }
    let text = String::from_utf8(received).expect("UTF-8");
    let data: Vec<&str> = text
        .split("\n\n")
        .filter_map(|event| event.trim().strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    let usage = data
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|v| v["usage"].is_object())
        .expect("the usage chunk");
    assert_eq!(usage["usage"]["completion_tokens"], TOKENS, "{text}");

    // Then the process exits 0, having left the cluster and written its request log.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = node.0.try_wait().expect("status") {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "never exited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "exit status {status}: {log_text}");
    assert!(log_text.contains("left the cluster"), "{log_text}");
    let records = std::fs::read_to_string(&requests).expect("request log");
    let record: Value =
        serde_json::from_str(records.lines().last().expect("a record")).expect("JSON");
    assert_eq!(record["status"], 200, "{records}");
    assert_eq!(record["output_tokens"], TOKENS, "{records}");
    assert!(
        record.get("error").is_none(),
        "completed, not cut: {records}"
    );
}
