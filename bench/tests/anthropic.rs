//! Anthropic Messages against the in-process mock.

mod common;

use common::*;
use serde_json::{Value, json};
use starling_bench::Outcome;
use starling_bench::mock::PriceTable;

fn msg(text: &str) -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": user(text)})
}

#[tokio::test]
async fn non_stream_shape_and_ledger() {
    let m = mock().await;
    let mut body = msg("Hello Claude friend [mock:tokens 6]");
    body["system"] = json!("You are terse.");
    let r = anthropic(m.addr(), "/v1/messages", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rid = r.header("request-id").expect("request-id").to_owned();
    assert!(rid.starts_with("req_"));
    let v = r.json();
    assert!(v["id"].as_str().is_some_and(|s| s.starts_with("msg_")));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-sonnet-4-5");
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    let content = v["content"].as_array().expect("content");
    assert_eq!(content.len(), 1);
    assert_eq!(content[0]["type"], "text");
    assert!(
        content[0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Mock reply to: Hello Claude friend"))
    );
    let u = &v["usage"];
    assert_eq!(u["output_tokens"], 6);
    assert_eq!(u["cache_creation_input_tokens"], 0);
    assert_eq!(u["cache_read_input_tokens"], 0);
    let input = u["input_tokens"].as_u64().expect("input_tokens");
    // system (3 + ceil(14/4)) + message (3 + ceil(35/4)) + 3 priming.
    assert_eq!(input, 3 + 4 + 3 + 9 + 3);

    let e = &m.ledger()[0];
    assert_eq!(e.api, "anthropic.messages");
    assert_eq!(e.request_id, rid);
    assert_eq!(
        (e.input_tokens, e.output_tokens, e.outcome),
        (input, 6, Outcome::Ok)
    );
    assert_eq!(
        e.cost_micros,
        PriceTable::builtin().cost_micros("claude-sonnet-4-5", input, 0, 6)
    );
}

#[tokio::test]
async fn stream_event_order_and_usage() {
    let m = mock().await;
    let body = msg("Stream it [mock:tokens 4]");
    let plain = anthropic(m.addr(), "/v1/messages", &body).await.json();
    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    let r = anthropic(m.addr(), "/v1/messages", &sbody).await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"))
    );
    let events = sse_events(&r.text());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let start = &events[0].1["message"];
    assert!(start["id"].as_str().is_some_and(|s| s.starts_with("msg_")));
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(
        start["usage"]["input_tokens"],
        plain["usage"]["input_tokens"]
    );
    assert_eq!(start["usage"]["output_tokens"], 1);
    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    let text: String = events[3..7]
        .iter()
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "text_delta");
            assert_eq!(d["index"], 0);
            d["delta"]["text"].as_str().expect("text").to_owned()
        })
        .collect();
    assert_eq!(Some(text.as_str()), plain["content"][0]["text"].as_str());
    let md = &events[8].1;
    assert_eq!(
        md["delta"],
        json!({"stop_reason": "end_turn", "stop_sequence": null})
    );
    assert_eq!(md["usage"]["output_tokens"], 4);
    let e = &m.ledger()[1];
    assert!(e.stream);
    assert_eq!((e.output_tokens, e.outcome), (4, Outcome::Ok));
}

fn tools() -> Value {
    json!([
        {"name": "get_weather", "description": "Weather", "input_schema": {
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        {"name": "get_time", "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}}},
    ])
}

#[tokio::test]
async fn tool_use_non_stream_and_stream() {
    let m = mock().await;
    let mut body = msg(
        "Weather? [mock:call get_weather {\"city\": \"Paris\", \"days\": [1, 2]}] [mock:call get_time {\"tz\": \"UTC\"}]",
    );
    body["tools"] = tools();
    let v = anthropic(m.addr(), "/v1/messages", &body).await.json();
    assert_eq!(v["stop_reason"], "tool_use");
    let blocks = v["content"].as_array().expect("content");
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0]["type"], "tool_use");
    assert!(
        blocks[0]["id"]
            .as_str()
            .is_some_and(|s| s.starts_with("toolu_"))
    );
    assert_eq!(blocks[0]["name"], "get_weather");
    assert_eq!(blocks[0]["input"], json!({"city": "Paris", "days": [1, 2]}));
    assert_eq!(blocks[1]["input"], json!({"tz": "UTC"}));

    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    let events = sse_events(&anthropic(m.addr(), "/v1/messages", &sbody).await.text());
    let mut json_parts: Vec<String> = Vec::new();
    let mut deltas_per_block = Vec::new();
    for (name, d) in &events {
        match name.as_str() {
            "content_block_start" => {
                let b = &d["content_block"];
                assert_eq!(b["type"], "tool_use");
                assert_eq!(b["input"], json!({}));
                assert!(b["id"].as_str().is_some_and(|s| s.starts_with("toolu_")));
                json_parts.push(String::new());
                deltas_per_block.push(0);
            }
            "content_block_delta" => {
                assert_eq!(d["delta"]["type"], "input_json_delta");
                let i = d["index"].as_u64().expect("index") as usize;
                json_parts[i].push_str(d["delta"]["partial_json"].as_str().expect("partial_json"));
                deltas_per_block[i] += 1;
            }
            "message_delta" => assert_eq!(d["delta"]["stop_reason"], "tool_use"),
            _ => {}
        }
    }
    assert_eq!(json_parts.len(), 2);
    assert!(
        deltas_per_block.iter().all(|n| *n >= 3),
        "{deltas_per_block:?}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&json_parts[0]).ok(),
        Some(json!({"city": "Paris", "days": [1, 2]}))
    );

    // disable_parallel_tool_use keeps one call; tool_choice "tool" forces one without directive.
    body["tool_choice"] = json!({"type": "auto", "disable_parallel_tool_use": true});
    let v = anthropic(m.addr(), "/v1/messages", &body).await.json();
    assert_eq!(v["content"].as_array().map(Vec::len), Some(1));
    let mut forced = msg("hi");
    forced["tools"] = tools();
    forced["tool_choice"] = json!({"type": "tool", "name": "get_time"});
    let v = anthropic(m.addr(), "/v1/messages", &forced).await.json();
    assert_eq!(v["content"][0]["name"], "get_time");
    assert_eq!(v["content"][0]["input"], json!({"tz": "mock"}));
}

#[tokio::test]
async fn tool_result_round() {
    let m = mock().await;
    let body = json!({"model": "claude-haiku-4-5", "max_tokens": 200, "tools": tools(), "messages": [
        {"role": "user", "content": "Weather? [mock:call get_weather {\"city\": \"Oslo\"}]"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "minus 3 and snow"}]},
    ]});
    let v = anthropic(m.addr(), "/v1/messages", &body).await.json();
    assert_eq!(v["stop_reason"], "end_turn");
    assert!(
        v["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Tool said: minus 3 and snow"))
    );
}

#[tokio::test]
async fn thinking_blocks() {
    let m = mock().await;
    let body = msg("Ponder this [mock:thinking] [mock:tokens 3]");
    let v = anthropic(m.addr(), "/v1/messages", &body).await.json();
    let blocks = v["content"].as_array().expect("content");
    assert_eq!(blocks[0]["type"], "thinking");
    assert!(
        blocks[0]["thinking"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    let sig = blocks[0]["signature"]
        .as_str()
        .expect("signature")
        .to_owned();
    assert!(!sig.is_empty());
    assert_eq!(blocks[1]["type"], "text");
    let thinking_tokens = v["usage"]["output_tokens"].as_u64().expect("output") - 3;
    assert!(thinking_tokens > 0);

    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    let events = sse_events(&anthropic(m.addr(), "/v1/messages", &sbody).await.text());
    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "thinking", "thinking": "", "signature": ""})
    );
    assert_eq!(events[2].0, "ping");
    let mut thinking = String::new();
    let mut signature = None;
    let mut block_types = Vec::new();
    for (name, d) in &events {
        if name == "content_block_start" {
            block_types.push(d["content_block"]["type"].as_str().unwrap_or("").to_owned());
        }
        if name == "content_block_delta" {
            match d["delta"]["type"].as_str() {
                Some("thinking_delta") => {
                    thinking.push_str(d["delta"]["thinking"].as_str().unwrap_or(""))
                }
                Some("signature_delta") => {
                    signature = d["delta"]["signature"].as_str().map(str::to_owned)
                }
                _ => {}
            }
        }
    }
    assert_eq!(block_types, ["thinking", "text"]);
    assert_eq!(Some(thinking.as_str()), blocks[0]["thinking"].as_str());
    assert_eq!(signature, Some(sig));
    // The request's own `thinking` parameter also produces a thinking block.
    let mut req = msg("plain");
    req["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    let v = anthropic(m.addr(), "/v1/messages", &req).await.json();
    assert_eq!(v["content"][0]["type"], "thinking");
}

#[tokio::test]
async fn stop_sequences_and_max_tokens() {
    let m = mock().await;
    let mut body = msg("alpha beta gamma");
    body["stop_sequences"] = json!(["beta"]);
    let v = anthropic(m.addr(), "/v1/messages", &body).await.json();
    assert_eq!(v["stop_reason"], "stop_sequence");
    assert_eq!(v["stop_sequence"], "beta");
    assert_eq!(v["content"][0]["text"], "Mock reply to: alpha ");
    let mut body = msg("long [mock:tokens 40]");
    body["max_tokens"] = json!(5);
    let v = anthropic(m.addr(), "/v1/messages", &body).await.json();
    assert_eq!(v["stop_reason"], "max_tokens");
    assert_eq!(v["usage"]["output_tokens"], 5);
    body["stream"] = json!(true);
    let events = sse_events(&anthropic(m.addr(), "/v1/messages", &body).await.text());
    let md = events
        .iter()
        .find(|(n, _)| n == "message_delta")
        .expect("message_delta");
    assert_eq!(md.1["delta"]["stop_reason"], "max_tokens");
}

#[tokio::test]
async fn count_tokens_matches_messages_usage() {
    let m = mock().await;
    let mut body = msg("Count me in [mock:tokens 2]");
    body["system"] = json!([{"type": "text", "text": "System prompt here."}]);
    body["tools"] = tools();
    let used =
        anthropic(m.addr(), "/v1/messages", &body).await.json()["usage"]["input_tokens"].clone();
    let mut ct = body.clone();
    ct.as_object_mut().map(|o| o.remove("max_tokens"));
    let r = anthropic(m.addr(), "/v1/messages/count_tokens", &ct).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"input_tokens": used}));
    let e = &m.ledger()[1];
    assert_eq!(e.api, "anthropic.count_tokens");
    assert_eq!(
        (e.input_tokens, e.cost_micros, e.outcome),
        (0, 0, Outcome::Ok),
        "count_tokens is free"
    );
}

#[tokio::test]
async fn header_and_body_errors() {
    let m = mock().await;
    let a = m.addr();
    let body = msg("x");
    let r = post(
        a,
        "/v1/messages",
        &[("anthropic-version", "2023-06-01")],
        &body,
    )
    .await;
    assert_eq!(r.status, 401);
    let v = r.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error");
    assert!(
        v["request_id"]
            .as_str()
            .is_some_and(|s| s.starts_with("req_"))
    );
    let r = post(a, "/v1/messages", &[("x-api-key", "k")], &body).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    // The 2.x Python SDK sends the key as a bearer token.
    let bearer = [
        ("authorization", "Bearer sk-ant"),
        ("anthropic-version", "2023-06-01"),
    ];
    assert_eq!(post(a, "/v1/messages", &bearer, &body).await.status, 200);
    let invalid = [
        ("x-api-key", "sk-ant-invalid"),
        ("anthropic-version", "2023-06-01"),
    ];
    let r = post(a, "/v1/messages", &invalid, &body).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["type"], "authentication_error");

    let r = send(
        a,
        http::Method::POST,
        "/v1/messages",
        &ANTHROPIC_HEADERS,
        Some(bytes::Bytes::from_static(b"{not json")),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");

    let mut no_max = body.clone();
    no_max.as_object_mut().map(|o| o.remove("max_tokens"));
    let r = anthropic(a, "/v1/messages", &no_max).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["message"], "max_tokens: Field required");

    let mut wrong = body.clone();
    wrong["messages"][0]["content"] = json!(42);
    let r = anthropic(a, "/v1/messages", &wrong).await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("messages.0.content"))
    );

    for (directive, status, kind) in [
        ("[mock:error 429 retry-after=7]", 429, "rate_limit_error"),
        ("[mock:error 529]", 529, "overloaded_error"),
        ("[mock:error 500]", 500, "api_error"),
    ] {
        let r = anthropic(a, "/v1/messages", &msg(directive)).await;
        assert_eq!(r.status, status);
        assert_eq!(r.json()["error"]["type"], kind);
        if status == 429 {
            assert_eq!(r.header("retry-after"), Some("7"));
        }
    }
    let l: Vec<_> = m.ledger().into_iter().filter(|e| e.status != 200).collect();
    assert_eq!(l.len(), 9);
    assert!(
        l.iter()
            .all(|e| e.outcome == Outcome::Error && e.input_tokens == 0 && e.cost_micros == 0)
    );
    assert_eq!(l[8].status, 500);
    assert_eq!(
        l[0].model, "claude-sonnet-4-5",
        "the model is recorded even for auth errors"
    );
}
