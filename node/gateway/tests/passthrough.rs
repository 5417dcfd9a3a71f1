//! Same-dialect traffic: bodies and streams pass through, usage is read, cost is charged.

mod common;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::post;
use common::{Harness, KEY, metric_value, sse_events, sse_json};
use futures::StreamExt;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn openai_chat_non_streaming_reports_usage_and_cost() {
    let h = Harness::start("").await;
    let r = h
        .post(
            "/v1/chat/completions",
            &chat("gpt-4o-mini", "hello world [mock:tokens 20]"),
        )
        .await;
    assert_eq!(r.status(), 200);
    let cost: f64 = r
        .headers()
        .get("x-starling-cost-usd")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("cost header");
    assert_eq!(
        r.headers()
            .get("x-starling-provider")
            .and_then(|v| v.to_str().ok()),
        Some("mock-openai")
    );
    assert!(r.headers().contains_key("x-request-id"));
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["usage"]["completion_tokens"], 20);
    let ledger = h.ledger();
    assert_eq!(ledger.len(), 1);
    // The gateway's cost equals the mock's ground truth for the same usage.
    assert!(
        (cost - ledger[0].cost_micros as f64 / 1e6).abs() < 1e-9,
        "{cost} vs {ledger:?}"
    );
    assert!(ledger[0].upstream_request_id_header.is_some());
}

#[tokio::test]
async fn openai_stream_passes_every_event_and_hides_usage_it_added() {
    let h = Harness::start("").await;
    let mut body = chat("gpt-4o-mini", "stream please [mock:tokens 12]");
    body["stream"] = json!(true);
    let r = h.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/event-stream")
    );
    let text = r.text().await.expect("body");
    let events = sse_events(&text);
    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));
    let chunks = sse_json(&text);
    assert!(
        chunks
            .iter()
            .all(|c| c["choices"].as_array().is_some_and(|a| !a.is_empty())),
        "usage chunk leaked: {text}"
    );
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(!content.is_empty());
    // The gateway asked for usage upstream, so it could still charge for the stream.
    let ledger = h
        .wait_for_ledger("stream settled", |l| {
            l.len() == 1 && l[0].completed_at_ms > 0
        })
        .await;
    assert_eq!(ledger[0].output_tokens, 12);
    let m = h.metrics().await;
    assert!(
        metric_value(
            &m,
            "starling_tokens_total",
            &[("model", "gpt-4o-mini"), ("kind", "output")]
        ) >= 12.0
    );
}

#[tokio::test]
async fn openai_stream_keeps_usage_chunk_when_client_asked() {
    let h = Harness::start("").await;
    let mut body = chat("gpt-4o-mini", "hi [mock:tokens 5]");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let text = h
        .post("/v1/chat/completions", &body)
        .await
        .text()
        .await
        .expect("body");
    let chunks = sse_json(&text);
    let last = chunks.last().expect("chunks");
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 5);
}

#[tokio::test]
async fn anthropic_messages_pass_through_streaming_and_not() {
    let h = Harness::start("").await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 50,
                      "messages": [{"role": "user", "content": "hi [mock:tokens 7]"}]});
    let r = h
        .client
        .post(format!("{}/anthropic/v1/messages", h.base))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    let msg: Value = r.json().await.expect("json");
    assert_eq!(msg["type"], "message");
    assert_eq!(msg["usage"]["output_tokens"], 7);

    let mut streaming = body.clone();
    streaming["stream"] = json!(true);
    let text = h
        .client
        .post(format!("{}/v1/messages", h.base))
        .header("x-api-key", KEY)
        .json(&streaming)
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("body");
    let names: Vec<String> = sse_events(&text)
        .into_iter()
        .filter_map(|e| e.event)
        .collect();
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    assert!(names.iter().any(|n| n == "message_delta"));
    assert!(names.iter().any(|n| n == "ping"));
}

#[tokio::test]
async fn completions_embeddings_models_and_count_tokens() {
    let h = Harness::start("").await;
    let r = h
        .post(
            "/v1/completions",
            &json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.expect("json")["object"],
        "text_completion"
    );

    let r = h
        .post(
            "/openai/v1/embeddings",
            &json!({"model": "text-embedding-3-small", "input": ["a", "b"]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let e: Value = r.json().await.expect("json");
    assert_eq!(e["data"].as_array().map(Vec::len), Some(2));

    let r = h
        .client
        .get(format!("{}/v1/models", h.base))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json")["object"], "list");

    // count_tokens goes upstream for Anthropic models, and is estimated for OpenAI models.
    for model in ["claude-sonnet-4-5", "gpt-4o"] {
        let r = h
            .post("/v1/messages/count_tokens", &json!({"model": model, "messages": [{"role": "user", "content": "count these words please"}]}))
            .await;
        assert_eq!(r.status(), 200, "{model}");
        let n = r.json::<Value>().await.expect("json")["input_tokens"].as_u64();
        assert!(n.is_some_and(|n| n > 0), "{model}: {n:?}");
    }
}

/// An upstream that records the body it received and answers from a canned stream of tiny
/// chunks, so SSE events arrive split across reads.
async fn capture_upstream(chunks: Vec<&'static str>) -> (String, Arc<Mutex<Vec<Bytes>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen_in = seen.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |body: Bytes| {
            let seen = seen_in.clone();
            let chunks = chunks.clone();
            async move {
                seen.lock().expect("lock").push(body);
                let bytes: Vec<Result<Bytes, std::io::Error>> = chunks
                    .concat()
                    .into_bytes()
                    .chunks(3)
                    .map(|c| Ok(Bytes::copy_from_slice(c)))
                    .collect();
                let stream = futures::stream::iter(bytes).then(|c| async move {
                    tokio::task::yield_now().await;
                    c
                });
                axum::response::Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from_stream(stream))
                    .expect("response")
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr.to_string(), seen)
}

#[tokio::test]
async fn unknown_fields_pass_untouched_and_split_sse_is_reassembled() {
    let frames = vec![
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hé\"},\"finish_reason\":null}]}\r\n\r\n",
        ": keep-alive comment\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"llo ✓\"},\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n",
        "data: [DONE]\n\n",
    ];
    let (addr, seen) = capture_upstream(frames).await;
    let h = Harness::start_with(Default::default(), |_, key| {
        format!(
            "[[providers]]\nname = \"capture\"\nkind = \"openai_compatible\"\nbase_url = \"http://{addr}/v1\"\napi_key_file = \"{key}\"\nmodels = [\"my-*\"]\n"
        )
    })
    .await;
    let raw = r#"{"model":"my-model","stream":true,"stream_options":{"include_usage":true},"x_vendor_field":{"keep":[1,2,3]},"messages":[{"role":"user","content":"hi"}]}"#;
    let r = h
        .client
        .post(format!("{}/v1/chat/completions", h.base))
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("body");
    let content: String = sse_json(&text)
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(content, "Héllo ✓");
    assert_eq!(
        sse_events(&text).last().map(|e| e.data.as_str()),
        Some("[DONE]")
    );
    let bodies = seen.lock().expect("lock").clone();
    assert_eq!(bodies.len(), 1);
    assert_eq!(
        bodies[0],
        Bytes::from_static(raw.as_bytes()),
        "body must be forwarded byte for byte"
    );
}

#[tokio::test]
async fn azure_deployments_use_their_url_scheme_and_api_key_header() {
    let h = Harness::start_with(Default::default(), |mock, key| {
        format!(
            r#"
[[providers]]
name = "azure-eu"
kind = "azure"
base_url = "http://{mock}"
api_version = "2024-10-21"
api_key_file = "{key}"

[[models]]
name = "gpt-4o"
[[models.deployments]]
provider = "azure-eu"
model = "my-gpt4o-deployment"
"#
        )
    })
    .await;
    let r = h
        .post("/v1/chat/completions", &chat("gpt-4o", "hello azure"))
        .await;
    assert_eq!(r.status(), 200);
    let mut streaming = chat("gpt-4o", "stream azure [mock:tokens 4]");
    streaming["stream"] = json!(true);
    let text = h
        .post("/v1/chat/completions", &streaming)
        .await
        .text()
        .await
        .expect("body");
    assert_eq!(
        sse_events(&text).last().map(|e| e.data.as_str()),
        Some("[DONE]")
    );
    let ledger = h.wait_for_ledger("both calls", |l| l.len() == 2).await;
    assert!(
        ledger
            .iter()
            .all(|e| e.api == "azure.chat" && e.model == "my-gpt4o-deployment"),
        "{ledger:#?}"
    );
    assert_eq!(ledger[1].output_tokens, 4);
}
