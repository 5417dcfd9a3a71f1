//! Anthropic provider stream → OpenAI client chunks.

use crate::translate::StreamTranslator;
use serde_json::{Value, json};

use super::fixtures::{ANTHROPIC_RESPONSE, ANTHROPIC_STREAM};
use super::{accumulate_openai, openai_chunks, run_anthropic_to_openai};
use crate::translate::openai_client_anthropic_provider::messages_response_to_chat;
use crate::translate::sse::SseEvent;
use crate::translate::{AnthropicToOpenAiStream, Usage};

fn translate(include_usage: bool) -> (Vec<Value>, Usage) {
    let (frames, t) = run_anthropic_to_openai([ANTHROPIC_STREAM.as_bytes()], include_usage);
    assert!(t.finished());
    (openai_chunks(&frames), t.usage())
}

#[test]
fn chunk_sequence_with_usage() {
    let (chunks, _) = translate(true);
    let created = chunks[0]["created"].clone();
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-msg_01Aq9w938a90dw8qQ6Vnwq5x", "object": "chat.completion.chunk",
               "created": created, "model": "gpt-4o",
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
               "usage": null})
    };
    let args =
        |i: u32, a: &str| json!({"tool_calls": [{"index": i, "function": {"arguments": a}}]});
    let tool_start = |i: u32, id: &str| {
        json!({"tool_calls": [{"index": i, "id": id, "type": "function",
                               "function": {"name": "get_weather", "arguments": ""}}]})
    };
    let expected = vec![
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(
            json!({"reasoning_content": "The user wants the weather"}),
            Value::Null,
        ),
        chunk(json!({"reasoning_content": " in two cities."}), Value::Null),
        chunk(
            json!({"content": "I'll check the weather in "}),
            Value::Null,
        ),
        chunk(
            json!({"content": "San Francisco and Tokyo — “both”.\n"}),
            Value::Null,
        ),
        chunk(tool_start(0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6"), Value::Null),
        chunk(args(0, "{\"location\": \"San Fra"), Value::Null),
        chunk(args(0, "ncisco, CA\", \"unit\": \"fah"), Value::Null),
        chunk(args(0, "renheit\"}"), Value::Null),
        chunk(tool_start(1, "toolu_01CqvQVzYqkRN6ZdXBhZWu9D"), Value::Null),
        chunk(
            args(
                1,
                "{\"location\": \"Tokyo, JP\", \"unit\": \"celsius\", \"days\": [1, 2]}",
            ),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
        json!({"id": "chatcmpl-msg_01Aq9w938a90dw8qQ6Vnwq5x", "object": "chat.completion.chunk",
               "created": created, "model": "gpt-4o", "choices": [],
               "usage": {"prompt_tokens": 2520, "completion_tokens": 89, "total_tokens": 2609,
                         "prompt_tokens_details": {"cached_tokens": 2048}}}),
        json!("[DONE]"),
    ];
    assert_eq!(chunks.len(), expected.len());
    for (i, (got, want)) in chunks.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "chunk {i}");
    }
}

#[test]
fn without_include_usage_no_chunk_has_usage() {
    let (chunks, usage) = translate(false);
    assert_eq!(chunks.len(), 13, "no usage chunk");
    for c in chunks.iter().filter(|c| c.is_object()) {
        assert!(c.get("usage").is_none(), "{c}");
        assert_eq!(c["choices"].as_array().map(Vec::len), Some(1));
    }
    assert_eq!(chunks.last(), Some(&json!("[DONE]")));
    // The gateway still learns the usage.
    assert_eq!(usage.output_tokens, 89);
}

#[test]
fn final_usage() {
    let (_, usage) = translate(true);
    assert_eq!(
        usage,
        Usage {
            input_tokens: 472,
            output_tokens: 89,
            cached_input_tokens: 2048,
            cache_write_tokens: 0
        }
    );
}

#[test]
fn concatenated_arguments_parse_to_original_input() {
    let (chunks, _) = translate(true);
    let acc = accumulate_openai(&chunks);
    let calls = acc["message"]["tool_calls"].as_array().expect("tool calls");
    let inputs: Vec<Value> = calls
        .iter()
        .map(|c| {
            serde_json::from_str(c["function"]["arguments"].as_str().expect("args")).expect("JSON")
        })
        .collect();
    assert_eq!(
        inputs,
        vec![
            json!({"location": "San Francisco, CA", "unit": "fahrenheit"}),
            json!({"location": "Tokyo, JP", "unit": "celsius", "days": [1, 2]}),
        ]
    );
}

#[test]
fn stream_equals_non_stream_translation() {
    let (chunks, _) = translate(true);
    let acc = accumulate_openai(&chunks);
    let resp: Value = serde_json::from_str(ANTHROPIC_RESPONSE).expect("fixture");
    let full = messages_response_to_chat(&resp, "gpt-4o").expect("translate");
    let msg = &full["choices"][0]["message"];
    assert_eq!(acc["message"]["content"], msg["content"]);
    assert_eq!(
        acc["message"]["reasoning_content"],
        msg["reasoning_content"]
    );
    assert_eq!(acc["finish_reason"], full["choices"][0]["finish_reason"]);
    assert_eq!(acc["usage"], full["usage"]);
    // Arguments compare as JSON: the stream keeps Anthropic's spacing.
    let calls = |v: &Value| -> Vec<(Value, Value, Value)> {
        v["tool_calls"]
            .as_array()
            .expect("calls")
            .iter()
            .map(|c| {
                let args = serde_json::from_str(c["function"]["arguments"].as_str().expect("args"))
                    .expect("JSON");
                (c["id"].clone(), c["function"]["name"].clone(), args)
            })
            .collect()
    };
    assert_eq!(calls(&acc["message"]), calls(msg));
    assert_eq!(chunk_id(&chunks), full["id"]);
}

fn chunk_id(chunks: &[Value]) -> Value {
    chunks[0]["id"].clone()
}

#[test]
fn byte_at_a_time_gives_same_chunks() {
    let (whole, _) = run_anthropic_to_openai([ANTHROPIC_STREAM.as_bytes()], true);
    let (bytewise, _) = run_anthropic_to_openai(ANTHROPIC_STREAM.as_bytes().chunks(1), true);
    let strip = |frames: &[bytes::Bytes]| {
        let mut v = openai_chunks(frames);
        for c in v.iter_mut().filter(|c| c.is_object()) {
            c["created"] = Value::Null;
        }
        v
    };
    assert_eq!(strip(&whole), strip(&bytewise));
}

#[test]
fn crlf_stream_gives_same_chunks() {
    let crlf = ANTHROPIC_STREAM.replace('\n', "\r\n");
    let (lf, _) = run_anthropic_to_openai([ANTHROPIC_STREAM.as_bytes()], true);
    let (cr, _) = run_anthropic_to_openai(crlf.as_bytes().chunks(7), true);
    assert_eq!(openai_chunks(&lf).len(), openai_chunks(&cr).len());
    assert_eq!(
        accumulate_openai(&openai_chunks(&lf)),
        accumulate_openai(&openai_chunks(&cr))
    );
}

#[test]
fn stream_cut_after_message_delta_is_completed_by_finish() {
    let cut = ANTHROPIC_STREAM
        .split("event: message_stop")
        .next()
        .expect("prefix");
    let (frames, t) = run_anthropic_to_openai([cut.as_bytes()], true);
    let chunks = openai_chunks(&frames);
    assert_eq!(chunks.last(), Some(&json!("[DONE]")));
    assert_eq!(chunks[chunks.len() - 2]["usage"]["completion_tokens"], 89);
    assert!(t.finished());
}

#[test]
fn stream_cut_mid_content_is_left_to_the_caller() {
    let cut = ANTHROPIC_STREAM
        .split("event: content_block_stop")
        .next()
        .expect("prefix");
    let (frames, mut t) = run_anthropic_to_openai([cut.as_bytes()], true);
    assert!(!t.finished());
    assert!(openai_chunks(&frames).iter().all(|c| c != "[DONE]"));
    let err = t.error_frame(502, "upstream connection closed");
    assert_eq!(
        openai_chunks(&[err]),
        vec![
            json!({"error": {"message": "upstream connection closed", "type": "api_error",
                              "param": null, "code": null}})
        ]
    );
    assert!(t.finished());
}

#[test]
fn refusal_and_max_tokens_finish_reasons() {
    for (stop, finish) in [
        ("refusal", "content_filter"),
        ("max_tokens", "length"),
        ("end_turn", "stop"),
    ] {
        let mut t = AnthropicToOpenAiStream::new("m", false);
        let mut frames = Vec::new();
        for data in [
            r#"{"type":"message_start","message":{"id":"msg_x","usage":{"input_tokens":1,"output_tokens":0}}}"#.to_owned(),
            format!(r#"{{"type":"message_delta","delta":{{"stop_reason":"{stop}"}},"usage":{{"output_tokens":1}}}}"#),
            r#"{"type":"message_stop"}"#.to_owned(),
        ] {
            let ev = SseEvent { event: None, data, raw: bytes::Bytes::new() };
            frames.extend(t.on_event(&ev).expect("translate"));
        }
        let chunks = openai_chunks(&frames);
        assert_eq!(chunks[1]["choices"][0]["finish_reason"], finish, "{stop}");
    }
}
