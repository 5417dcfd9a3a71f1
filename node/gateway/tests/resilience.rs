//! Retries, fallbacks, cooldowns, timeouts and broken streams, against the mock's faults.

mod common;

use std::time::Duration;

use common::{Harness, metric_value, sse_events, sse_json};
use serde_json::{Value, json};
use starling_bench::{Fault, MockConfig, Outcome};

fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn retries_5xx_then_succeeds() {
    let h = Harness::start("").await;
    h.mock.inject(Fault::status(500).times(2));
    let r = h
        .post("/v1/chat/completions", &chat("gpt-4o-mini", "retry me"))
        .await;
    assert_eq!(r.status(), 200);
    let statuses: Vec<u16> = h.ledger().iter().map(|e| e.status).collect();
    assert_eq!(statuses, vec![500, 500, 200]);
}

#[tokio::test]
async fn gives_up_after_the_configured_retries_and_passes_the_error_through() {
    let h = Harness::start("").await;
    h.mock.inject(Fault::status(503).times(10));
    let r = h
        .post("/v1/chat/completions", &chat("gpt-4o-mini", "x"))
        .await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.expect("json");
    assert!(body["error"]["message"].is_string(), "{body}");
    // One attempt plus two retries.
    assert_eq!(h.ledger().len(), 3);
}

#[tokio::test]
async fn honours_retry_after_on_429_and_returns_it_when_exhausted() {
    let h = Harness::start("").await;
    h.mock.inject(Fault::status(429).retry_after(1).times(10));
    let started = tokio::time::Instant::now();
    let r = h
        .post("/v1/chat/completions", &chat("gpt-4o-mini", "x"))
        .await;
    assert_eq!(r.status(), 429);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    // Two waits of at least the 1 s the upstream asked for (counted, not timed to a bound).
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(h.ledger().len(), 3);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let h = Harness::start("").await;
    let r = h
        .post(
            "/v1/chat/completions",
            &chat("gpt-4o-mini", "[mock:error 400]"),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(h.ledger().len(), 1);
}

#[tokio::test]
async fn falls_back_to_the_next_model_after_retries() {
    let h = Harness::start(
        r#"
[[models]]
name = "primary"
fallbacks = ["claude-haiku-4-5"]
[[models.deployments]]
provider = "mock-openai"
model = "gpt-4o"
"#,
    )
    .await;
    h.mock
        .inject(Fault::status(500).times(0).for_model("gpt-4o"));
    let r = h
        .post("/v1/chat/completions", &chat("primary", "hello"))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("x-starling-model")
            .and_then(|v| v.to_str().ok()),
        Some("claude-haiku-4-5")
    );
    let body: Value = r.json().await.expect("json");
    assert_eq!(
        body["object"], "chat.completion",
        "translated back to OpenAI: {body}"
    );
    let models: Vec<String> = h.ledger().iter().map(|e| e.model.clone()).collect();
    assert_eq!(
        models,
        vec!["gpt-4o", "gpt-4o", "gpt-4o", "claude-haiku-4-5"]
    );
    let m = h.metrics().await;
    assert!(metric_value(&m, "starling_fallbacks_total", &[("from", "primary")]) >= 1.0);
}

#[tokio::test]
async fn failing_deployment_cools_down_and_traffic_moves_to_the_other() {
    let h = Harness::start(
        r#"
[[models]]
name = "balanced"
[[models.deployments]]
provider = "mock-openai"
model = "gpt-4o"
[[models.deployments]]
provider = "mock-openai"
model = "gpt-4o-mini"
"#,
    )
    .await;
    h.mock
        .inject(Fault::status(500).times(0).for_model("gpt-4o"));
    for _ in 0..10 {
        let r = h.post("/v1/chat/completions", &chat("balanced", "x")).await;
        assert_eq!(r.status(), 200);
    }
    // gpt-4o failed at most once; after that it was cooling and skipped.
    let failed = h.ledger().iter().filter(|e| e.model == "gpt-4o").count();
    assert!(failed <= 1, "{:#?}", h.ledger());
    let m = h.metrics().await;
    assert!(
        metric_value(
            &m,
            "starling_deployment_cooldowns_total",
            &[("model", "gpt-4o")]
        ) >= f64::from(u8::try_from(failed).unwrap_or(0))
    );
}

#[tokio::test]
async fn connection_refused_is_retried_then_502() {
    let h = Harness::start_with(MockConfig::default(), |_, key| {
        format!("[routing]\nretries = 1\nbackoff_initial_ms = 1\n[[providers]]\nname = \"dead\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\napi_key_file = \"{key}\"\nmodels = [\"gpt-*\"]\n")
    })
    .await;
    let r = h.post("/v1/chat/completions", &chat("gpt-4o", "x")).await;
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("dead")),
        "{body}"
    );
}

#[tokio::test]
async fn first_byte_timeout_is_504() {
    let h = Harness::start_with(MockConfig::default(), |mock, key| {
        format!("[routing]\nretries = 0\n[[providers]]\nname = \"slow\"\nkind = \"openai\"\nbase_url = \"http://{mock}/v1\"\napi_key_file = \"{key}\"\nmodels = [\"gpt-*\"]\n[providers.timeouts]\nfirst_byte_ms = 200\ntotal_ms = 1000\n")
    })
    .await;
    h.mock.inject(Fault::hang());
    let r = h.post("/v1/chat/completions", &chat("gpt-4o", "x")).await;
    assert_eq!(r.status(), 504);
}

#[tokio::test]
async fn upstream_dying_mid_stream_ends_with_an_error_event_and_the_node_keeps_serving() {
    let h = Harness::start("").await;
    let mut body = chat(
        "gpt-4o-mini",
        "long answer [mock:tokens 50] [mock:drop-after 3]",
    );
    body["stream"] = json!(true);
    let r = h.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("body");
    let chunks = sse_json(&text);
    let last = chunks.last().expect("some chunks");
    assert!(
        last.get("error").is_some(),
        "expected a final error event: {text}"
    );
    assert!(chunks.len() >= 2, "content before the error: {text}");

    // Anthropic dialect: an `error` event.
    let anthropic = json!({"model": "claude-haiku-4-5", "max_tokens": 100, "stream": true,
                           "messages": [{"role": "user", "content": "[mock:tokens 50] [mock:drop-after 2]"}]});
    let text = h
        .post("/v1/messages", &anthropic)
        .await
        .text()
        .await
        .expect("body");
    assert_eq!(
        sse_events(&text)
            .last()
            .and_then(|e| e.event.clone())
            .as_deref(),
        Some("error")
    );

    // Still serving.
    let r = h
        .post("/v1/chat/completions", &chat("gpt-4o-mini", "after"))
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_stream() {
    let config = MockConfig {
        inter_token_ms: 50,
        ..MockConfig::default()
    };
    let h = Harness::start_with(config, |mock, key| {
        common::standard_config(mock, key, "", "")
    })
    .await;
    let mut body = chat("gpt-4o-mini", "[mock:tokens 1000]");
    body["stream"] = json!(true);
    let mut r = h.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status(), 200);
    let first = r.chunk().await.expect("read").expect("a first chunk");
    assert!(!first.is_empty());
    drop(r);
    let ledger = h
        .wait_for_ledger("the upstream to see the client go", |l| {
            l.len() == 1 && l[0].outcome == Outcome::ClientGone
        })
        .await;
    assert!(ledger[0].output_tokens < 1000);
    let m = h.metrics().await;
    assert!(metric_value(&m, "starling_client_disconnects_total", &[]) >= 1.0);
}

#[tokio::test]
async fn client_disconnect_cancels_a_non_streaming_upstream_call() {
    let h = Harness::start("").await;
    h.mock.inject(Fault::hang());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let r = client
        .post(format!("{}/v1/chat/completions", h.base))
        .bearer_auth(common::KEY)
        .json(&chat("gpt-4o-mini", "x"))
        .send()
        .await;
    assert!(r.is_err(), "the client gave up");
    h.wait_for_ledger("the upstream to see the gateway go", |l| {
        l.len() == 1 && l[0].outcome == Outcome::ClientGone
    })
    .await;
}
