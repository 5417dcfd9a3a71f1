//! Bad input gets the right status in the called API's shape, and never hurts the node.

mod common;

use common::{Harness, KEY};
use serde_json::Value;

async fn raw(
    h: &Harness,
    path: &str,
    key: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut req = h
        .client
        .post(format!("{}{path}", h.base))
        .header("content-type", "application/json")
        .body(body);
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let r = req.send().await.expect("answer");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn is_openai_error(v: &Value) -> bool {
    v["error"]["message"].is_string() && v["error"]["type"].is_string()
}

fn is_anthropic_error(v: &Value) -> bool {
    v["type"] == "error" && v["error"]["type"].is_string() && v["error"]["message"].is_string()
}

#[tokio::test]
async fn bad_requests_get_the_right_status_and_shape() {
    let h = Harness::start("").await;
    let ok_chat = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}"#;
    let cases: Vec<(&str, Option<&str>, String, u16, &str)> = vec![
        ("/v1/chat/completions", None, ok_chat.to_owned(), 401, ""),
        ("/v1/chat/completions", Some("sk-wrong"), ok_chat.to_owned(), 401, ""),
        ("/v1/chat/completions", Some(KEY), "{\"model\": \"gpt-4o\", \"messages\": [".to_owned(), 400, ""),
        ("/v1/chat/completions", Some(KEY), "not json".to_owned(), 400, ""),
        ("/v1/chat/completions", Some(KEY), r#"{"model":"gpt-4o","messages":"hi"}"#.to_owned(), 400, "messages"),
        ("/v1/chat/completions", Some(KEY), r#"{"model":"gpt-4o","stream":"yes","messages":[{"role":"user"}]}"#.to_owned(), 400, "stream"),
        ("/v1/chat/completions", Some(KEY), r#"{"model":"llama-9","messages":[{"role":"user","content":"x"}]}"#.to_owned(), 404, "model"),
        ("/v1/chat/completions", Some(KEY), format!("{{\"model\":\"gpt-4o\",\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}", "a".repeat(70_000)), 413, ""),
        ("/v1/chat/completions", Some(KEY), format!("{{\"model\":\"gpt-4o\",\"x\":{}1{}}}", "[".repeat(200), "]".repeat(200)), 400, ""),
        ("/v1/messages", None, r#"{"model":"claude-haiku-4-5","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#.to_owned(), 401, ""),
        ("/v1/messages", Some(KEY), r#"{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"x"}]}"#.to_owned(), 400, "max_tokens"),
        ("/v1/messages", Some(KEY), r#"{"model":"nope","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#.to_owned(), 404, ""),
        ("/v1/messages", Some(KEY), "{\"model\":".to_owned(), 400, ""),
        ("/v1/embeddings", Some(KEY), r#"{"model":"claude-haiku-4-5","input":"x"}"#.to_owned(), 400, "model"),
    ];
    for (path, key, body, status, field) in cases {
        let (got, v) = raw(&h, path, key, body.clone()).await;
        assert_eq!(got, status, "{path} {}: {v}", &body[..body.len().min(80)]);
        if path.contains("messages") {
            assert!(is_anthropic_error(&v), "{path}: {v}");
        } else {
            assert!(is_openai_error(&v), "{path}: {v}");
        }
        if !field.is_empty() {
            let message = v["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains(field),
                "{path}: {message} should name {field}"
            );
        }
    }
    // Nothing reached the upstream, and the node still serves.
    assert!(h.ledger().is_empty(), "{:#?}", h.ledger());
    let (status, _) = raw(&h, "/v1/chat/completions", Some(KEY), ok_chat).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn upstream_errors_pass_through_with_status_and_message_in_either_dialect() {
    let h = Harness::start_routing("retries = 0", "").await;
    let (status, v) = raw(
        &h,
        "/v1/chat/completions",
        Some(KEY),
        r#"{"model":"gpt-4o","messages":[{"role":"user","content":"[mock:error 422]"}]}"#,
    )
    .await;
    assert_eq!(status, 422);
    assert!(is_openai_error(&v), "{v}");
    // An Anthropic upstream error, seen by an OpenAI client: same status, OpenAI shape.
    let (status, v) = raw(
        &h,
        "/v1/chat/completions",
        Some(KEY),
        r#"{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"[mock:error 429]"}]}"#,
    )
    .await;
    assert_eq!(status, 429);
    assert!(is_openai_error(&v), "{v}");
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods() {
    let h = Harness::start("").await;
    let r = h
        .client
        .get(format!("{}/v1/nothing", h.base))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 404);
    let r = h
        .client
        .get(format!("{}/v1/chat/completions", h.base))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 405);
    let r = h
        .client
        .get(format!("{}/healthz", h.base))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    let r = h
        .client
        .get(format!("{}/readyz", h.base))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
}
