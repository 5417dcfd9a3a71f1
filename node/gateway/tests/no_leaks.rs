//! After a mix of good, bad and broken requests, nothing stays in flight. Alone in its test
//! binary, so the process-wide metrics see only its own requests.

mod common;

use std::time::Duration;

use common::{Harness, metric_value};
use serde_json::json;
use starling_bench::MockConfig;

#[tokio::test]
async fn every_request_path_releases_its_in_flight_slot() {
    let config = MockConfig {
        inter_token_ms: 20,
        ..MockConfig::default()
    };
    let h = Harness::start_with(config, |mock, key| {
        common::standard_config(mock, key, "", "")
    })
    .await;
    let chat = |text: &str, stream: bool| json!({"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": text}]});
    let anthropic = |text: &str, stream: bool| {
        json!({"model": "claude-haiku-4-5", "max_tokens": 64, "stream": stream,
               "messages": [{"role": "user", "content": text}]})
    };
    let cases = [
        ("/v1/chat/completions", chat("ok", false)),
        ("/v1/chat/completions", chat("ok [mock:tokens 5]", true)),
        ("/v1/chat/completions", chat("[mock:error 400]", false)),
        (
            "/v1/chat/completions",
            chat("[mock:tokens 30] [mock:drop-after 2]", true),
        ),
        ("/v1/messages", anthropic("ok", true)),
        (
            "/v1/messages",
            anthropic("[mock:tokens 30] [mock:drop-after 2]", true),
        ),
        (
            "/v1/chat/completions",
            anthropic("cross [mock:tokens 5]", true),
        ),
        ("/v1/messages", chat("wrong shape", false)),
    ];
    for (path, body) in &cases {
        let _ = h.post(path, body).await.bytes().await;
    }
    // A client that walks away mid-stream.
    let mut r = h
        .post("/v1/chat/completions", &chat("[mock:tokens 500]", true))
        .await;
    let _ = r.chunk().await;
    drop(r);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = h.metrics().await;
        let in_flight = metric_value(&m, "starling_requests_in_flight", &[]);
        if in_flight == 0.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still in flight: {in_flight}\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
