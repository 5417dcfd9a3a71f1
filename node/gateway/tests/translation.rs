//! Cross-dialect traffic through the gateway: OpenAI clients on Anthropic models and
//! Anthropic clients on OpenAI models, streaming and not, tools included.

mod common;

use common::{Harness, sse_events, sse_json};
use serde_json::{Value, json};

fn weather_tool_openai() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

fn weather_tool_anthropic() -> Value {
    json!([{"name": "get_weather", "description": "Weather by city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
}

#[tokio::test]
async fn openai_client_on_an_anthropic_model() {
    let h = Harness::start("").await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 100,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello [mock:tokens 9]"}]});
    let r = h.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status(), 200);
    let cost = r
        .headers()
        .get("x-starling-cost-usd")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "claude-sonnet-4-5");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    assert_eq!(v["usage"]["completion_tokens"], 9);
    let ledger = h.ledger();
    assert_eq!(ledger[0].api, "anthropic.messages");
    assert_eq!(
        cost,
        Some(format!(
            "{}.{:06}",
            ledger[0].cost_micros / 1_000_000,
            ledger[0].cost_micros % 1_000_000
        ))
    );
}

#[tokio::test]
async fn openai_client_streams_tool_calls_from_an_anthropic_model() {
    let h = Harness::start("").await;
    let body = json!({"model": "claude-sonnet-4-5", "stream": true, "stream_options": {"include_usage": true},
        "tools": weather_tool_openai(), "tool_choice": "auto",
        "messages": [{"role": "user", "content": r#"weather? [mock:call get_weather {"city":"Paris"}] [mock:call get_weather {"city":"Oslo"}]"#}]});
    let text = h
        .post("/v1/chat/completions", &body)
        .await
        .text()
        .await
        .expect("body");
    let chunks = sse_json(&text);
    assert_eq!(
        sse_events(&text).last().map(|e| e.data.as_str()),
        Some("[DONE]")
    );
    // Reassemble tool calls the way the SDK does: by index, concatenating argument fragments.
    let mut calls: Vec<(String, String)> = Vec::new();
    let mut finish = None;
    for c in &chunks {
        if let Some(f) = c["choices"][0]["finish_reason"].as_str() {
            finish = Some(f.to_owned());
        }
        for tc in c["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let i = tc["index"].as_u64().unwrap_or(0) as usize;
            if calls.len() <= i {
                calls.resize(i + 1, (String::new(), String::new()));
            }
            if let Some(name) = tc["function"]["name"].as_str() {
                calls[i].0 = name.to_owned();
            }
            if let Some(args) = tc["function"]["arguments"].as_str() {
                calls[i].1.push_str(args);
            }
        }
    }
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert_eq!(calls.len(), 2, "{text}");
    let cities: Vec<Value> = calls
        .iter()
        .map(|(name, args)| {
            assert_eq!(name, "get_weather");
            serde_json::from_str::<Value>(args).expect("arguments are JSON")["city"].clone()
        })
        .collect();
    assert_eq!(cities, vec![json!("Paris"), json!("Oslo")]);
    let usage = &chunks.last().expect("chunks")["usage"];
    assert!(
        usage["prompt_tokens"].as_u64().is_some_and(|n| n > 0),
        "{usage}"
    );
}

#[tokio::test]
async fn anthropic_client_on_an_openai_model_with_tool_round_trip() {
    let h = Harness::start("").await;
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 200, "system": "You are terse.",
    "tools": weather_tool_anthropic(),
    "messages": [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny, 21C"}]}
    ]});
    let r = h.post("/v1/messages", &body).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["type"], "message");
    assert_eq!(v["stop_reason"], "end_turn");
    let text = v["content"][0]["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("sunny"),
        "the tool result reached the model: {v}"
    );
    assert_eq!(h.ledger()[0].api, "openai.chat");
}

#[tokio::test]
async fn anthropic_client_streams_from_an_openai_model() {
    let h = Harness::start("").await;
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 200, "stream": true, "tools": weather_tool_anthropic(),
        "messages": [{"role": "user", "content": r#"[mock:call get_weather {"city":"Rome"}]"#}]});
    let text = h
        .post("/anthropic/v1/messages", &body)
        .await
        .text()
        .await
        .expect("body");
    let events = sse_events(&text);
    let names: Vec<&str> = events.iter().filter_map(|e| e.event.as_deref()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    let mut partial = String::new();
    let mut stop_reason = None;
    let mut output_tokens = None;
    for e in &events {
        let d: Value = serde_json::from_str(&e.data).expect("json");
        if d["type"] == "content_block_start" {
            assert_eq!(d["content_block"]["type"], "tool_use");
            assert_eq!(d["content_block"]["name"], "get_weather");
        }
        if d["delta"]["type"] == "input_json_delta" {
            partial.push_str(d["delta"]["partial_json"].as_str().unwrap_or_default());
        }
        if d["type"] == "message_delta" {
            stop_reason = d["delta"]["stop_reason"].as_str().map(str::to_owned);
            output_tokens = d["usage"]["output_tokens"].as_u64();
        }
    }
    assert_eq!(
        serde_json::from_str::<Value>(&partial).expect("input JSON"),
        json!({"city": "Rome"})
    );
    assert_eq!(stop_reason.as_deref(), Some("tool_use"));
    assert!(output_tokens.is_some_and(|n| n > 0));
}

#[tokio::test]
async fn untranslatable_requests_are_400_naming_the_field() {
    let h = Harness::start("").await;
    let body = json!({"model": "claude-haiku-4-5", "n": 3, "messages": [{"role": "user", "content": "x"}]});
    let r = h.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["param"], "n", "{v}");
    assert!(h.ledger().is_empty());
}
