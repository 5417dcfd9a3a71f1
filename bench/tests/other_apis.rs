//! Embeddings, Azure OpenAI, models and legacy completions.

mod common;

use base64::Engine;
use common::*;
use serde_json::{Value, json};
use starling_bench::Outcome;

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("float array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn decode_b64(v: &Value) -> Vec<f32> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("base64 string"))
        .expect("valid base64");
    assert_eq!(bytes.len() % 4, 0);
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[tokio::test]
async fn embeddings_float_base64_roundtrip_and_determinism() {
    let m = mock().await;
    let a = m.addr();
    let body = json!({"model": "text-embedding-3-small", "input": ["hello world", "other text"]});
    let r = openai(a, "/v1/embeddings", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "text-embedding-3-small");
    let data = v["data"].as_array().expect("data");
    assert_eq!(data.len(), 2);
    assert_eq!(
        (data[0]["object"].as_str(), data[1]["index"].as_u64()),
        (Some("embedding"), Some(1))
    );
    let e0 = floats(&data[0]["embedding"]);
    assert_eq!(e0.len(), 1536);
    let norm: f32 = e0.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "unit vector, got {norm}");
    assert_ne!(e0, floats(&data[1]["embedding"]));
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 2 + 2, "total_tokens": 4}),
        "cl100k_base: \"hello\" \" world\", \"other\" \" text\""
    );

    let mut b64 = body.clone();
    b64["encoding_format"] = json!("base64");
    let v2 = openai(a, "/v1/embeddings", &b64).await.json();
    let decoded = decode_b64(&v2["data"][0]["embedding"]);
    assert_eq!(
        decoded, e0,
        "base64 is the little-endian f32 bytes of the same vector"
    );

    let single = openai(
        a,
        "/v1/embeddings",
        &json!({"model": "text-embedding-3-small", "input": "hello world"}),
    )
    .await
    .json();
    assert_eq!(
        floats(&single["data"][0]["embedding"]),
        e0,
        "deterministic per input"
    );
    let dims = openai(
        a,
        "/v1/embeddings",
        &json!({"model": "text-embedding-3-large", "input": [[1, 2, 3]], "dimensions": 256}),
    )
    .await
    .json();
    assert_eq!(floats(&dims["data"][0]["embedding"]).len(), 256);
    assert_eq!(dims["usage"]["prompt_tokens"], 3);
    let large = openai(
        a,
        "/v1/embeddings",
        &json!({"model": "text-embedding-3-large", "input": "x"}),
    )
    .await
    .json();
    assert_eq!(floats(&large["data"][0]["embedding"]).len(), 3072);

    let bad = openai(
        a,
        "/v1/embeddings",
        &json!({"model": "text-embedding-3-small", "input": ""}),
    )
    .await;
    assert_eq!(bad.status, 400);
    let bad = openai(
        a,
        "/v1/embeddings",
        &json!({"model": "text-embedding-3-small", "input": "x", "encoding_format": "hex"}),
    )
    .await;
    assert_eq!(bad.json()["error"]["param"], "encoding_format");

    let e = &m.ledger()[0];
    assert_eq!(
        (e.api.as_str(), e.input_tokens, e.output_tokens),
        ("openai.embeddings", 4, 0)
    );
    assert_eq!(e.cost_micros, 1, "ceil(4 × 0.02)");
}

#[tokio::test]
async fn azure_routes() {
    let m = mock().await;
    let a = m.addr();
    let path = "/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21";
    let body = json!({"messages": user("Hi Azure [mock:tokens 3]")});
    let r = post(a, path, &[("api-key", "azkey")], &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["model"], "my-gpt4o");
    assert_eq!(v["object"], "chat.completion");
    assert!(v["prompt_filter_results"].is_array());
    assert!(v["choices"][0]["content_filter_results"].is_object());
    assert_eq!(v["usage"]["completion_tokens"], 3);

    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    sbody["stream_options"] = json!({"include_usage": true});
    let frames = sse_data(&post(a, path, &[("api-key", "azkey")], &sbody).await.text());
    assert_eq!(
        frames[0]["choices"],
        json!([]),
        "Azure opens with the prompt filter chunk"
    );
    assert!(frames[0]["prompt_filter_results"].is_array());
    assert_eq!(frames.last(), Some(&Value::Null));
    assert_eq!(frames[frames.len() - 2]["usage"]["completion_tokens"], 3);

    let r = post(
        a,
        "/openai/deployments/my-gpt4o/chat/completions",
        &[("api-key", "azkey")],
        &body,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "MissingApiVersionParameter");
    let r = post(a, path, &[], &body).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "401");
    let r = post(
        a,
        path,
        &[("api-key", "azkey")],
        &json!({"messages": user("[mock:error 429 retry-after=3]")}),
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("3"));

    let emb = post(
        a,
        "/openai/deployments/emb/embeddings?api-version=2024-10-21",
        &[("api-key", "k")],
        &json!({"input": "x"}),
    )
    .await;
    assert_eq!(emb.status, 200);
    let cmp = post(
        a,
        "/openai/deployments/inst/completions?api-version=2024-10-21",
        &[("authorization", "Bearer t")],
        &json!({"prompt": "x"}),
    )
    .await;
    assert_eq!(cmp.status, 200);

    let l = m.ledger();
    let apis: Vec<(&str, &str, Outcome)> = l
        .iter()
        .map(|e| (e.api.as_str(), e.model.as_str(), e.outcome))
        .collect();
    assert_eq!(
        apis,
        [
            ("azure.chat", "my-gpt4o", Outcome::Ok),
            ("azure.chat", "my-gpt4o", Outcome::Ok),
            ("azure.chat", "my-gpt4o", Outcome::Error),
            ("azure.chat", "my-gpt4o", Outcome::Error),
            ("azure.chat", "my-gpt4o", Outcome::Error),
            ("azure.embeddings", "emb", Outcome::Ok),
            ("azure.completions", "inst", Outcome::Ok),
        ]
    );
}

#[tokio::test]
async fn models_endpoints() {
    let m = mock().await;
    let a = m.addr();
    let v = get(a, "/v1/models", &[OPENAI_AUTH]).await.json();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|x| x["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"gpt-4o-mini")
            && ids.contains(&"text-embedding-3-small")
            && ids.contains(&"claude-sonnet-4-5")
    );
    assert_eq!(v["data"][0]["object"], "model");
    let one = get(a, "/v1/models/gpt-4o-mini-2024-07-18", &[OPENAI_AUTH]).await;
    assert_eq!(
        (one.status, one.json()["id"].as_str()),
        (200, Some("gpt-4o-mini-2024-07-18"))
    );
    let missing = get(a, "/v1/models/nope", &[OPENAI_AUTH]).await;
    assert_eq!(
        (missing.status, missing.json()["error"]["code"].as_str()),
        (404, Some("model_not_found"))
    );
    assert_eq!(get(a, "/v1/models", &[]).await.status, 401);
    let ant = get(a, "/v1/models", &ANTHROPIC_HEADERS).await.json();
    assert_eq!(ant["has_more"], false);
    assert_eq!(ant["data"][0]["type"], "model");
    assert!(
        ant["data"]
            .as_array()
            .expect("data")
            .iter()
            .all(|m| m["id"].as_str().is_some_and(|s| s.starts_with("claude")))
    );
    assert!(m.ledger().is_empty(), "listing models is not a billed call");
}

#[tokio::test]
async fn legacy_completions() {
    let m = mock().await;
    let a = m.addr();
    let body =
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Say this is a test", "max_tokens": 5});
    let v = openai(a, "/v1/completions", &body).await.json();
    assert!(v["id"].as_str().is_some_and(|s| s.starts_with("cmpl-")));
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], "Mock reply to: Say this");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10})
    );

    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    sbody["stream_options"] = json!({"include_usage": true});
    let frames = sse_data(&openai(a, "/v1/completions", &sbody).await.text());
    assert_eq!(frames.last(), Some(&Value::Null));
    let text: String = frames
        .iter()
        .filter_map(|f| f["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(text, "Mock reply to: Say this");
    assert_eq!(
        frames[frames.len() - 3]["choices"][0]["finish_reason"],
        "length"
    );
    assert_eq!(frames[frames.len() - 2]["usage"]["completion_tokens"], 5);

    let multi = openai(
        a,
        "/v1/completions",
        &json!({"model": "gpt-3.5-turbo-instruct", "prompt": ["a", "b"], "n": 2, "echo": true}),
    )
    .await
    .json();
    assert_eq!(multi["choices"].as_array().map(Vec::len), Some(4));
    assert!(
        multi["choices"][2]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("bMock reply to: b"))
    );
    assert_eq!(m.ledger()[0].api, "openai.completions");
    assert_eq!(
        openai(a, "/v1/completions", &json!({"model": "x"}))
            .await
            .json()["error"]["param"],
        "prompt"
    );
}

#[tokio::test]
async fn unknown_routes_and_huge_bodies() {
    let m = mock_with(starling_bench::MockConfig {
        max_body_bytes: 1024,
        ..Default::default()
    })
    .await;
    let r = get(m.addr(), "/v2/anything", &[OPENAI_AUTH]).await;
    assert_eq!(r.status, 404);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .is_some_and(|s| s.contains("/v2/anything"))
    );
    let big = json!({"model": "gpt-4o", "messages": user(&"x".repeat(4096))});
    let r = chat(m.addr(), &big).await;
    assert_eq!(r.status, 413);
    assert!(r.json()["error"].is_object());
}
