//! OpenAI chat completions against the in-process mock.

mod common;

use common::*;
use serde_json::{Value, json};
use starling_bench::mock::PriceTable;
use starling_bench::{MockConfig, Outcome};

#[tokio::test]
async fn non_stream_shape_usage_and_ledger() {
    let m = mock().await;
    let body = json!({"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello there world [mock:tokens 7]"},
    ]});
    let r = post(
        m.addr(),
        "/v1/chat/completions",
        &[OPENAI_AUTH, ("x-starling-request-id", "up-42")],
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );
    let rid = r.header("x-request-id").expect("x-request-id").to_owned();
    assert!(rid.starts_with("req_"));
    assert!(r.header("x-ratelimit-remaining-requests").is_some());
    let v = r.json();
    assert!(v["id"].as_str().is_some_and(|s| s.starts_with("chatcmpl-")));
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].is_u64());
    assert_eq!(v["model"], "gpt-4o-mini");
    assert!(v["system_fingerprint"].is_string());
    let c = &v["choices"][0];
    assert_eq!(c["index"], 0);
    assert_eq!(c["message"]["role"], "assistant");
    assert_eq!(c["message"]["refusal"], Value::Null);
    assert!(c["message"].get("tool_calls").is_none());
    assert_eq!(c["logprobs"], Value::Null);
    assert_eq!(c["finish_reason"], "stop");
    let text = c["message"]["content"].as_str().expect("content");
    assert!(
        text.starts_with("Mock reply to: Hello there world"),
        "{text}"
    );
    assert!(!text.contains("[mock:"), "directives are not echoed");
    let u = &v["usage"];
    assert_eq!(u["completion_tokens"], 7);
    let prompt = u["prompt_tokens"].as_u64().expect("prompt_tokens");
    // gpt-4o-mini bills with o200k_base: 2 messages × 3, their roles and texts, 3 priming.
    let o200k = |s: &str| tiktoken_rs::o200k_base_singleton().count_ordinary(s) as u64;
    let texts = [
        "system",
        "Be brief.",
        "user",
        "Hello there world [mock:tokens 7]",
    ];
    assert_eq!(prompt, 6 + texts.iter().map(|t| o200k(t)).sum::<u64>() + 3);
    assert_eq!(prompt, 24, "1 + 3 + 1 + 10 tokens of text");
    assert_eq!(u["total_tokens"].as_u64(), Some(prompt + 7));
    assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(u["completion_tokens_details"]["reasoning_tokens"], 0);

    let l = m.ledger();
    assert_eq!(l.len(), 1);
    let e = &l[0];
    assert_eq!(e.api, "openai.chat");
    assert_eq!(e.model, "gpt-4o-mini");
    assert_eq!(e.request_id, rid);
    assert_eq!(e.upstream_request_id_header.as_deref(), Some("up-42"));
    assert!(!e.stream);
    assert_eq!(
        (e.input_tokens, e.output_tokens, e.status, e.outcome),
        (prompt, 7, 200, Outcome::Ok)
    );
    assert_eq!(
        e.cost_micros,
        PriceTable::builtin().cost_micros("gpt-4o-mini", prompt, 0, 7)
    );
    assert!(e.cost_micros > 0);
    assert!(e.completed_at_ms >= e.started_at_ms);
    m.shutdown().await;
}

#[tokio::test]
async fn deterministic_replies() {
    let m = mock().await;
    let body = json!({"model": "gpt-4o", "messages": user("same prompt please")});
    let a = chat(m.addr(), &body).await.json();
    let b = chat(m.addr(), &body).await.json();
    assert_eq!(
        a["choices"][0]["message"]["content"],
        b["choices"][0]["message"]["content"]
    );
    assert_eq!(a["usage"], b["usage"]);
    assert_ne!(a["id"], b["id"]);
}

#[tokio::test]
async fn stream_frames_match_the_real_api() {
    let m = mock().await;
    let body = json!({"model": "gpt-4o-mini", "messages": user("Stream me [mock:tokens 5]")});
    let plain = chat(m.addr(), &body).await.json();
    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    let r = chat(m.addr(), &sbody).await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"))
    );
    assert!(!r.aborted);
    let frames = sse_data(&r.text());
    assert_eq!(frames.last(), Some(&Value::Null), "ends with [DONE]");
    let chunks = &frames[..frames.len() - 1];
    assert_eq!(
        chunks.len(),
        1 + 5 + 1,
        "role chunk, 5 content chunks, finish chunk"
    );
    let id = &chunks[0]["id"];
    for c in chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(&c["id"], id, "one id per stream");
        assert_eq!(c["model"], "gpt-4o-mini");
        assert!(
            c.get("usage").is_none(),
            "no usage key without include_usage"
        );
        assert_eq!(c["choices"].as_array().map(Vec::len), Some(1));
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": "", "refusal": null})
    );
    let text: String = chunks[1..6]
        .iter()
        .map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .expect("content delta")
        })
        .collect();
    assert_eq!(
        Some(text.as_str()),
        plain["choices"][0]["message"]["content"].as_str()
    );
    assert!(
        chunks[..6]
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null())
    );
    let last = &chunks[6]["choices"][0];
    assert_eq!(last["delta"], json!({}));
    assert_eq!(last["finish_reason"], "stop");

    let l = m.ledger();
    assert_eq!(l.len(), 2);
    assert!(l[1].stream);
    assert_eq!(l[1].outcome, Outcome::Ok);
    assert_eq!(l[1].output_tokens, 5);
    assert_eq!(l[1].input_tokens, l[0].input_tokens);
}

#[tokio::test]
async fn include_usage_adds_null_usage_and_a_final_usage_chunk() {
    let m = mock().await;
    let body = json!({"model": "gpt-4o-mini", "messages": user("Count [mock:tokens 4]")});
    let plain = chat(m.addr(), &body).await.json();
    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    sbody["stream_options"] = json!({"include_usage": true});
    let frames = sse_data(&chat(m.addr(), &sbody).await.text());
    assert_eq!(frames.last(), Some(&Value::Null));
    let chunks = &frames[..frames.len() - 1];
    let (usage_chunk, rest) = chunks.split_last().expect("chunks");
    for c in rest {
        assert!(
            c.get("usage").is_some_and(Value::is_null),
            "usage: null on every chunk: {c}"
        );
        assert_eq!(c["choices"].as_array().map(Vec::len), Some(1));
    }
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"], plain["usage"]);
    // include_usage without stream is rejected, as by the real API.
    let mut bad = body.clone();
    bad["stream_options"] = json!({"include_usage": true});
    let r = chat(m.addr(), &bad).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "stream_options");
}

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {
            "type": "object", "properties": {"tz": {"type": "string"}}}}},
    ])
}

#[tokio::test]
async fn parallel_tool_calls_non_stream_and_stream() {
    let m = mock().await;
    let prompt = "Weather and time? [mock:call get_weather {\"city\": \"Paris\"}] [mock:call get_time {\"tz\": \"Europe/Paris\"}]";
    let body = json!({"model": "gpt-4o", "messages": user(prompt), "tools": weather_tools(), "tool_choice": "auto"});
    let v = chat(m.addr(), &body).await.json();
    let c = &v["choices"][0];
    assert_eq!(c["finish_reason"], "tool_calls");
    assert_eq!(c["message"]["content"], Value::Null);
    let calls = c["message"]["tool_calls"].as_array().expect("tool_calls");
    assert_eq!(calls.len(), 2);
    for call in calls {
        assert!(call["id"].as_str().is_some_and(|s| s.starts_with("call_")));
        assert_eq!(call["type"], "function");
    }
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(calls[0]["function"]["arguments"].as_str().expect("args"))
            .expect("JSON args");
    assert_eq!(args, json!({"city": "Paris"}));
    assert_eq!(calls[1]["function"]["name"], "get_time");

    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    let frames = sse_data(&chat(m.addr(), &sbody).await.text());
    let mut names = vec![String::new(); 2];
    let mut arguments = vec![String::new(); 2];
    let mut fragments = [0; 2];
    let mut finish = None;
    for f in frames.iter().filter(|f| !f.is_null()) {
        let ch = &f["choices"][0];
        if let Some(tcs) = ch["delta"]["tool_calls"].as_array() {
            for tc in tcs {
                let i = tc["index"].as_u64().expect("index") as usize;
                if let Some(id) = tc.get("id") {
                    assert!(id.as_str().is_some_and(|s| s.starts_with("call_")));
                    assert_eq!(tc["type"], "function");
                    assert_eq!(tc["function"]["arguments"], "");
                    names[i] = tc["function"]["name"].as_str().expect("name").to_owned();
                } else {
                    fragments[i] += 1;
                    arguments[i].push_str(tc["function"]["arguments"].as_str().expect("fragment"));
                }
            }
        }
        if let Some(fr) = ch["finish_reason"].as_str() {
            finish = Some(fr.to_owned());
        }
    }
    assert_eq!(names, ["get_weather", "get_time"]);
    assert!(
        fragments.iter().all(|n| *n >= 2),
        "arguments arrive in several pieces: {fragments:?}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&arguments[0]).ok(),
        Some(json!({"city": "Paris"}))
    );
    assert_eq!(
        serde_json::from_str::<Value>(&arguments[1]).ok(),
        Some(json!({"tz": "Europe/Paris"}))
    );
    assert_eq!(finish.as_deref(), Some("tool_calls"));

    // parallel_tool_calls: false keeps only the first call; tool_choice none answers in text.
    let mut single = body.clone();
    single["parallel_tool_calls"] = json!(false);
    let v = chat(m.addr(), &single).await.json();
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let mut none = body.clone();
    none["tool_choice"] = json!("none");
    let v = chat(m.addr(), &none).await.json();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    // A forced tool without directive gets schema-shaped arguments.
    let forced = json!({"model": "gpt-4o", "messages": user("hi"), "tools": weather_tools(),
                        "tool_choice": {"type": "function", "function": {"name": "get_weather"}}});
    let v = chat(m.addr(), &forced).await.json();
    let call = &v["choices"][0]["message"]["tool_calls"][0]["function"];
    assert_eq!(call["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["arguments"].as_str().unwrap_or("")).ok(),
        Some(json!({"city": "mock"}))
    );
}

#[tokio::test]
async fn tool_result_round_quotes_the_result() {
    let m = mock().await;
    let body = json!({"model": "gpt-4o", "tools": weather_tools(), "messages": [
        {"role": "user", "content": "Weather? [mock:call get_weather {\"city\": \"Paris\"}]"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "22C and sunny"},
    ]});
    let v = chat(m.addr(), &body).await.json();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let text = v["choices"][0]["message"]["content"]
        .as_str()
        .expect("text");
    assert!(text.starts_with("Tool said: 22C and sunny"), "{text}");
}

#[tokio::test]
async fn n_stop_max_tokens_logprobs_and_json_mode() {
    let m = mock().await;
    let a = m.addr();
    let v = chat(
        a,
        &json!({"model": "gpt-4o-mini", "n": 2, "messages": user("two please [mock:tokens 6]")}),
    )
    .await
    .json();
    let choices = v["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 2);
    assert_eq!(
        (choices[0]["index"].as_u64(), choices[1]["index"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(v["usage"]["completion_tokens"], 12);

    let v = chat(
        a,
        &json!({"model": "gpt-4o-mini", "stop": ["please"], "messages": user("two please")}),
    )
    .await
    .json();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["choices"][0]["message"]["content"], "Mock reply to: two ");

    let v = chat(a, &json!({"model": "gpt-4o-mini", "max_completion_tokens": 3, "messages": user("long [mock:tokens 50]")})).await.json();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 3);
    let v = chat(
        a,
        &json!({"model": "gpt-4o-mini", "max_tokens": 2, "messages": user("long")}),
    )
    .await
    .json();
    assert_eq!(v["choices"][0]["finish_reason"], "length");

    let v = chat(a, &json!({"model": "gpt-4o-mini", "logprobs": true, "top_logprobs": 2, "messages": user("lp [mock:tokens 3]")})).await.json();
    let lp = v["choices"][0]["logprobs"]["content"]
        .as_array()
        .expect("logprobs.content");
    assert_eq!(lp.len(), 3);
    assert_eq!(lp[0]["token"], "Mock");
    assert!(lp[0]["logprob"].as_f64().is_some_and(|x| x <= 0.0));
    assert_eq!(lp[0]["bytes"], json!(b"Mock".to_vec()));
    assert_eq!(lp[0]["top_logprobs"].as_array().map(Vec::len), Some(2));

    let v = chat(a, &json!({"model": "gpt-4o-mini", "response_format": {"type": "json_object"}, "messages": user("json!")})).await.json();
    let content = v["choices"][0]["message"]["content"]
        .as_str()
        .expect("content");
    let parsed: Value = serde_json::from_str(content).expect("valid JSON object");
    assert!(parsed.is_object());
    let schema = json!({"type": "json_schema", "json_schema": {"name": "x", "strict": true, "schema": {
        "type": "object", "properties": {"answer": {"type": "integer"}, "why": {"type": "string"}},
        "required": ["answer", "why"], "additionalProperties": false}}});
    let v = chat(
        a,
        &json!({"model": "gpt-4o-mini", "response_format": schema, "messages": user("json!")}),
    )
    .await
    .json();
    let parsed: Value =
        serde_json::from_str(v["choices"][0]["message"]["content"].as_str().unwrap_or(""))
            .expect("JSON");
    assert!(parsed["answer"].is_i64() && parsed["why"].is_string());
}

#[tokio::test]
async fn thinking_and_cached_directives_show_in_usage() {
    let m = mock().await;
    let v = chat(m.addr(), &json!({"model": "o3-mini", "messages": user("hmm [mock:thinking] [mock:cached 5] [mock:tokens 4]")})).await.json();
    let u = &v["usage"];
    let reasoning = u["completion_tokens_details"]["reasoning_tokens"]
        .as_u64()
        .expect("reasoning");
    assert!(reasoning > 0);
    assert_eq!(u["completion_tokens"].as_u64(), Some(4 + reasoning));
    assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 5);
    let e = &m.ledger()[0];
    assert_eq!(e.cached_input_tokens, 5);
    assert_eq!(
        e.cost_micros,
        PriceTable::builtin().cost_micros("o3-mini", e.input_tokens, 5, 4 + reasoning)
    );
}

#[tokio::test]
async fn pacing_config_still_produces_the_same_stream() {
    // Delays are configured but never asserted on: only that the content is unchanged.
    let cfg = MockConfig {
        latency_ms: 1,
        ttft_ms: 1,
        inter_token_ms: 1,
        ..MockConfig::default()
    };
    let m = mock_with(cfg).await;
    let body =
        json!({"model": "gpt-4o-mini", "stream": true, "messages": user("paced [mock:tokens 3]")});
    let frames = sse_data(&chat(m.addr(), &body).await.text());
    assert_eq!(frames.len(), 1 + 3 + 1 + 1);
    let v = chat(
        m.addr(),
        &json!({"model": "gpt-4o-mini", "messages": user("paced [mock:tokens 3]")}),
    )
    .await
    .json();
    assert_eq!(v["usage"]["completion_tokens"], 3);
}
