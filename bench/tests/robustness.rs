//! Untrusted bodies: every malformed request gets a 4xx in the right format, never a panic,
//! a 5xx or a dropped connection.

mod common;

use bytes::Bytes;
use common::*;
use http::Method;
use serde_json::{Value, json};

/// An endpoint: path, auth headers, a valid body, and the fields to corrupt.
type Endpoint = (
    &'static str,
    &'static [(&'static str, &'static str)],
    Value,
    &'static [&'static str],
);

fn oddities() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(-1),
        json!(1.5),
        json!(1e300),
        json!("s"),
        json!(""),
        json!([]),
        json!({}),
        json!([1]),
        json!([{}]),
        json!([null]),
        json!([{"role": "user"}]),
        json!([{"role": "user", "content": [{"type": "image_url"}]}]),
        json!([{"role": "assistant", "content": [{"type": "tool_use"}]}]),
        json!({"type": "json_schema", "json_schema": {"schema": {"$ref": "#"}}}),
        json!(
            "[mock:call x {\"a\": [1, {\"b\": \"]\"}]}] [mock:tokens 99999999999] [mock:error 999]"
        ),
    ]
}

#[tokio::test]
async fn malformed_requests_get_client_errors() {
    let m = mock().await;
    let a = m.addr();
    let endpoints: [Endpoint; 5] = [
        (
            "/v1/chat/completions",
            &[OPENAI_AUTH],
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
            &[
                "model",
                "messages",
                "n",
                "max_tokens",
                "max_completion_tokens",
                "stop",
                "stream",
                "stream_options",
                "tools",
                "tool_choice",
                "parallel_tool_calls",
                "response_format",
                "logprobs",
                "top_logprobs",
            ],
        ),
        (
            "/v1/completions",
            &[OPENAI_AUTH],
            json!({"model": "gpt-3.5-turbo-instruct", "prompt": "hi"}),
            &[
                "model",
                "prompt",
                "max_tokens",
                "n",
                "stop",
                "stream",
                "stream_options",
                "echo",
                "logprobs",
            ],
        ),
        (
            "/v1/embeddings",
            &[OPENAI_AUTH],
            json!({"model": "text-embedding-3-small", "input": "hi"}),
            &["model", "input", "encoding_format", "dimensions"],
        ),
        (
            "/v1/messages",
            &ANTHROPIC_HEADERS,
            json!({"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
            &[
                "model",
                "max_tokens",
                "messages",
                "system",
                "tools",
                "tool_choice",
                "stop_sequences",
                "stream",
                "thinking",
            ],
        ),
        (
            "/v1/messages/count_tokens",
            &ANTHROPIC_HEADERS,
            json!({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]}),
            &["model", "messages", "system", "tools"],
        ),
    ];
    let mut requests = 0;
    for (path, headers, base, fields) in &endpoints {
        for field in *fields {
            for odd in oddities() {
                let mut body = base.clone();
                body[*field] = odd.clone();
                let r = post(a, path, headers, &body).await;
                requests += 1;
                assert!(
                    (200..500).contains(&r.status) && !r.aborted,
                    "{path} {field}={odd}: status {} {}",
                    r.status,
                    r.text()
                );
                if r.status >= 400 {
                    let v = r.json();
                    let message = if path.starts_with("/v1/messages") {
                        assert_eq!(v["type"], "error");
                        &v["error"]["message"]
                    } else {
                        &v["error"]["message"]
                    };
                    assert!(message.is_string(), "{path} {field}: {v}");
                }
            }
        }
        for raw in [
            &b""[..],
            b"null",
            b"[]",
            b"{",
            b"\xff\xfe",
            &[b'['; 10_000][..],
        ] {
            let mut h = headers.to_vec();
            h.push(("content-type", "application/json"));
            let r = send(a, Method::POST, path, &h, Some(Bytes::copy_from_slice(raw))).await;
            assert_eq!(
                r.status,
                400,
                "{path} raw {:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(20)])
            );
        }
    }
    assert!(requests > 300);
    assert_eq!(get(a, "/_mock/health", &[]).await.status, 200);
    // Every API call is in the ledger, none is still open.
    assert_eq!(m.in_flight(), 0);
    assert_eq!(m.ledger_summary().calls as usize, requests + 5 * 6);
}
