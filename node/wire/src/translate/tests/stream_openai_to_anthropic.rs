//! OpenAI provider stream → Anthropic client events.

use crate::translate::StreamTranslator;
use bytes::Bytes;
use serde_json::{Value, json};

use super::fixtures::{OPENAI_RESPONSE, OPENAI_STREAM};
use super::{accumulate_anthropic, anthropic_events, run_openai_to_anthropic};
use crate::translate::anthropic_client_openai_provider::chat_response_to_messages;
use crate::translate::sse::SseEvent;
use crate::translate::{OpenAiToAnthropicStream, TranslateError, Usage};

fn translate() -> (Vec<Value>, Usage) {
    let (frames, t) = run_openai_to_anthropic([OPENAI_STREAM.as_bytes()]);
    assert!(t.finished());
    (anthropic_events(&frames), t.usage())
}

/// Runs bare chunk payloads (the `data` of each event) through a fresh
/// translator; `finish()` is called at the end.
fn run_data(data: &[&str]) -> Result<Vec<Value>, TranslateError> {
    let mut t = OpenAiToAnthropicStream::new("claude-alias");
    let mut frames: Vec<Bytes> = Vec::new();
    for d in data {
        let ev = SseEvent {
            event: None,
            data: (*d).to_owned(),
            raw: Bytes::new(),
        };
        t.on_event_into(&ev, &mut frames)?;
    }
    frames.extend(t.finish());
    Ok(anthropic_events(&frames))
}

fn chunk(delta: Value, finish: Value) -> String {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    .to_string()
}

#[test]
fn event_sequence() {
    let (events, _) = translate();
    let msg_id = events[0]["message"]["id"].as_str().expect("id").to_owned();
    assert!(msg_id.starts_with("msg_"));
    let delta = |index: u32, delta: Value| json!({"type": "content_block_delta", "index": index, "delta": delta});
    let args = |index: u32, a: &str| {
        delta(
            index,
            json!({"type": "input_json_delta", "partial_json": a}),
        )
    };
    let expected = vec![
        json!({"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": "claude-alias",
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0, "output_tokens": 0}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        delta(0, json!({"type": "text_delta", "text": "Let me check "})),
        delta(
            0,
            json!({"type": "text_delta", "text": "both cities — “now”.\n"}),
        ),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA", "name": "get_weather", "input": {}}}),
        args(1, "{\"lo"),
        args(1, "cation\": \"San"),
        args(1, " Francisco, CA\"}"),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block": {
            "type": "tool_use", "id": "call_ABQk4ggtB5dPh2bxKsYv9vB7", "name": "get_weather", "input": {}}}),
        args(2, "{\"location\": \"Tok"),
        args(2, "yo, JP\", \"unit\": \"célsius\", \"days\": [1, 2]}"),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "message_delta",
               "delta": {"stop_reason": "tool_use", "stop_sequence": null},
               "usage": {"input_tokens": 18, "cache_creation_input_tokens": 0,
                         "cache_read_input_tokens": 64, "output_tokens": 45}}),
        json!({"type": "message_stop"}),
    ];
    assert_eq!(events.len(), expected.len(), "{events:#?}");
    for (i, (got, want)) in events.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "event {i}");
    }
}

#[test]
fn final_usage() {
    let (_, usage) = translate();
    assert_eq!(
        usage,
        Usage {
            input_tokens: 18,
            output_tokens: 45,
            cached_input_tokens: 64,
            cache_write_tokens: 0
        }
    );
}

#[test]
fn stream_equals_non_stream_translation() {
    let (events, _) = translate();
    let acc = accumulate_anthropic(&events);
    let resp: Value = serde_json::from_str(OPENAI_RESPONSE).expect("fixture");
    let full = chat_response_to_messages(&resp, "claude-alias").expect("translate");
    for key in [
        "type",
        "role",
        "model",
        "content",
        "stop_reason",
        "stop_sequence",
        "usage",
    ] {
        assert_eq!(acc[key], full[key], "{key}");
    }
    // Concatenated fragments parse into the original arguments.
    assert_eq!(
        acc["content"][2]["input"],
        json!({"location": "Tokyo, JP", "unit": "célsius", "days": [1, 2]})
    );
}

#[test]
fn byte_at_a_time_and_crlf_give_same_events() {
    let strip_id = |mut v: Vec<Value>| {
        v[0]["message"]["id"] = Value::Null;
        v
    };
    let (whole, _) = run_openai_to_anthropic([OPENAI_STREAM.as_bytes()]);
    let (bytewise, _) = run_openai_to_anthropic(OPENAI_STREAM.as_bytes().chunks(1));
    let crlf = OPENAI_STREAM.replace('\n', "\r\n");
    let (cr, _) = run_openai_to_anthropic(crlf.as_bytes().chunks(5));
    let whole = strip_id(anthropic_events(&whole));
    assert_eq!(whole, strip_id(anthropic_events(&bytewise)));
    assert_eq!(whole, strip_id(anthropic_events(&cr)));
}

#[test]
fn several_complete_tool_calls_in_one_chunk_and_content_with_tools() {
    let events = run_data(&[
        &chunk(json!({"role": "assistant", "content": "Checking.", "tool_calls": [
            {"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}},
            {"index": 1, "id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}}
        ]}), json!("tool_calls")),
        "[DONE]",
    ])
    .expect("translate");
    let msg = accumulate_anthropic(&events);
    assert_eq!(
        msg["content"],
        json!([
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_a", "name": "f", "input": {"x": 1}},
            {"type": "tool_use", "id": "call_b", "name": "g", "input": {}}
        ])
    );
    assert_eq!(msg["stop_reason"], "tool_use");
}

#[test]
fn reasoning_content_becomes_thinking_block() {
    let events = run_data(&[
        &chunk(
            json!({"role": "assistant", "reasoning_content": "Hmm, "}),
            Value::Null,
        ),
        &chunk(json!({"reasoning": "let me think."}), Value::Null),
        &chunk(json!({"content": "42"}), Value::Null),
        &chunk(json!({}), json!("stop")),
        "[DONE]",
    ])
    .expect("translate");
    let msg = accumulate_anthropic(&events);
    assert_eq!(
        msg["content"],
        json!([{"type": "thinking", "thinking": "Hmm, let me think.", "signature": ""},
               {"type": "text", "text": "42"}])
    );
    assert_eq!(msg["stop_reason"], "end_turn");
}

#[test]
fn stream_without_done_is_closed_by_finish_only_after_finish_reason() {
    let events = run_data(&[&chunk(json!({"content": "hi"}), json!("length"))]).expect("translate");
    let msg = accumulate_anthropic(&events);
    assert_eq!(msg["stop_reason"], "max_tokens");
    assert_eq!(msg["usage"]["output_tokens"], 0, "no usage chunk was sent");

    let mut t = OpenAiToAnthropicStream::new("m");
    let ev = SseEvent {
        event: None,
        data: chunk(json!({"content": "hi"}), Value::Null),
        raw: Bytes::new(),
    };
    let _ = t.on_event(&ev).expect("translate");
    assert!(
        t.finish().is_empty(),
        "no finish reason: the caller decides"
    );
    assert!(!t.finished());
    let frame = t.error_frame(502, "upstream closed the connection");
    assert_eq!(
        &frame[..],
        b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"upstream closed the connection\"}}\n\n"
    );
    assert!(t.finished());
}

#[test]
fn error_chunk_mid_stream_becomes_error_event() {
    let events = run_data(&[
        &chunk(json!({"role": "assistant", "content": "par"}), Value::Null),
        r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}"#,
        &chunk(json!({"content": "ignored"}), Value::Null),
    ])
    .expect("translate");
    assert_eq!(events.len(), 4, "{events:#?}");
    assert_eq!(
        events[3],
        json!({"type": "error", "error": {"type": "api_error",
               "message": "The server had an error while processing your request."}})
    );
}

#[test]
fn interleaved_tool_call_resumption_is_an_error() {
    let tc = |index: u32, id: Option<&str>, args: &str| {
        let mut call = json!({"index": index, "function": {"arguments": args}});
        if let Some(id) = id {
            call["id"] = id.into();
            call["function"]["name"] = "f".into();
        }
        chunk(json!({"tool_calls": [call]}), Value::Null)
    };
    let err = run_data(&[
        &tc(0, Some("a"), "{"),
        &tc(1, Some("b"), "{"),
        &tc(0, None, "}"),
    ])
    .expect_err("cannot interleave");
    assert_eq!(err.path(), "choices[0].delta.tool_calls[0].index");
    assert_eq!(err.status(), 502);
}

#[test]
fn tool_calls_without_index_are_told_apart_by_id() {
    let call = |id: Option<&str>, name: Option<&str>, args: &str| {
        let mut c = json!({"function": {"arguments": args}});
        if let Some(id) = id {
            c["id"] = id.into();
        }
        if let Some(n) = name {
            c["function"]["name"] = n.into();
        }
        chunk(json!({"tool_calls": [c]}), Value::Null)
    };
    let events = run_data(&[
        &call(Some("a"), Some("f"), "{\"x\":"),
        &call(None, None, "1}"),
        &call(Some("b"), Some("g"), "{}"),
        &chunk(json!({}), json!("tool_calls")),
        "[DONE]",
    ])
    .expect("translate");
    let msg = accumulate_anthropic(&events);
    assert_eq!(
        msg["content"],
        json!([{"type": "tool_use", "id": "a", "name": "f", "input": {"x": 1}},
               {"type": "tool_use", "id": "b", "name": "g", "input": {}}])
    );
}

#[test]
fn stop_with_tool_calls_and_refusal_heuristics() {
    let events = run_data(&[
        &chunk(json!({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}]}), Value::Null),
        &chunk(json!({}), json!("stop")),
        "[DONE]",
    ])
    .expect("translate");
    assert_eq!(accumulate_anthropic(&events)["stop_reason"], "tool_use");

    let events = run_data(&[
        &chunk(
            json!({"role": "assistant", "refusal": "I can't "}),
            Value::Null,
        ),
        &chunk(json!({"refusal": "help with that."}), json!("stop")),
        "[DONE]",
    ])
    .expect("translate");
    let msg = accumulate_anthropic(&events);
    assert_eq!(msg["stop_reason"], "refusal");
    assert_eq!(
        msg["content"],
        json!([{"type": "text", "text": "I can't help with that."}])
    );
}

#[test]
fn empty_stream_and_usage_only_chunks() {
    // [DONE] alone still yields a well-formed (empty) message.
    let events = run_data(&["[DONE]"]).expect("translate");
    let msg = accumulate_anthropic(&events);
    assert_eq!(msg["content"], json!([]));
    assert_eq!(msg["stop_reason"], "end_turn");

    // Usage in the finish chunk itself (some compatible servers) counts too.
    let events = run_data(&[
        &chunk(json!({"content": "ok"}), Value::Null),
        &json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 9, "completion_tokens": 2}})
        .to_string(),
        "[DONE]",
    ])
    .expect("translate");
    let msg = accumulate_anthropic(&events);
    assert_eq!(msg["usage"]["input_tokens"], 9);
    assert_eq!(msg["usage"]["output_tokens"], 2);
}

#[test]
fn malformed_chunks_are_upstream_errors() {
    for data in ["{not json", r#"{"choices":[{"delta":{"content":5}}]}"#] {
        let err = run_data(&[data]).expect_err(data);
        assert_eq!(err.status(), 502, "{data}");
    }
}
