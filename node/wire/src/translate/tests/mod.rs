//! Cross-module tests: request translations with realistic payloads, and
//! stream translations fed provider streams, checked against the
//! non-streaming translations. Shared helpers live here: they parse the
//! translators' output back and accumulate it the way the official SDKs do.

use crate::translate::StreamTranslator;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::sse::{SseEvent, SseParser};
use super::{AnthropicToOpenAiStream, OpenAiToAnthropicStream};

mod anthropic_request;
/// Provider streams and their equivalent non-streaming responses.
pub mod fixtures;
mod generated;
mod openai_request;
mod proptests;
mod stream_anthropic_to_openai;
mod stream_openai_to_anthropic;

const MAX_EVENT: usize = 1 << 20;

/// Parses an SSE byte stream delivered in `chunks`.
pub fn parse_sse<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<SseEvent> {
    let mut p = SseParser::new(MAX_EVENT);
    let mut out = Vec::new();
    for c in chunks {
        p.push(c);
        while let Some(ev) = p.next_event().expect("valid SSE") {
            out.push(ev);
        }
    }
    out.extend(p.finish().expect("complete SSE"));
    out
}

/// Runs an Anthropic provider stream, delivered in `chunks`, through the
/// OpenAI-client translator. Returns the frames and the translator.
pub fn run_anthropic_to_openai<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
    include_usage: bool,
) -> (Vec<Bytes>, AnthropicToOpenAiStream) {
    let mut t = AnthropicToOpenAiStream::new("gpt-4o", include_usage);
    let mut p = SseParser::new(MAX_EVENT);
    let mut frames = Vec::new();
    for c in chunks {
        p.push(c);
        while let Some(ev) = p.next_event().expect("valid SSE") {
            t.on_event_into(&ev, &mut frames).expect("translate");
        }
    }
    assert_eq!(p.finish(), Ok(None));
    frames.extend(t.finish());
    (frames, t)
}

/// Runs an OpenAI provider stream, delivered in `chunks`, through the
/// Anthropic-client translator.
pub fn run_openai_to_anthropic<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<Bytes>, OpenAiToAnthropicStream) {
    let mut t = OpenAiToAnthropicStream::new("claude-alias");
    let mut p = SseParser::new(MAX_EVENT);
    let mut frames = Vec::new();
    for c in chunks {
        p.push(c);
        while let Some(ev) = p.next_event().expect("valid SSE") {
            t.on_event_into(&ev, &mut frames).expect("translate");
        }
    }
    assert_eq!(p.finish(), Ok(None));
    frames.extend(t.finish());
    (frames, t)
}

/// Decodes OpenAI frames: each must be exactly `data: <json>\n\n` or
/// `data: [DONE]\n\n` (the latter becomes the string `"[DONE]"`).
pub fn openai_chunks(frames: &[Bytes]) -> Vec<Value> {
    frames
        .iter()
        .map(|f| {
            let s = std::str::from_utf8(f).expect("utf-8 frame");
            let data = s
                .strip_prefix("data: ")
                .and_then(|s| s.strip_suffix("\n\n"))
                .expect("one data line per frame");
            assert!(!data.contains('\n'), "single-line data: {data}");
            if data == "[DONE]" {
                Value::String(data.into())
            } else {
                serde_json::from_str(data).expect("JSON chunk")
            }
        })
        .collect()
}

/// Decodes Anthropic frames, checking that the `event:` name equals the
/// data's `type` in every frame.
pub fn anthropic_events(frames: &[Bytes]) -> Vec<Value> {
    frames
        .iter()
        .map(|f| {
            let evs = parse_sse([f.as_ref()]);
            assert_eq!(evs.len(), 1, "one event per frame");
            let ev = evs.into_iter().next().expect("event");
            let v: Value = serde_json::from_str(&ev.data).expect("JSON event");
            assert_eq!(ev.event.as_deref(), v["type"].as_str(), "event name = type");
            v
        })
        .collect()
}

/// Accumulates OpenAI chunks the way the SDK's stream helper does:
/// `{message: {content, reasoning_content, tool_calls}, finish_reason, usage}`.
pub fn accumulate_openai(chunks: &[Value]) -> Value {
    let mut content: Option<String> = None;
    let mut reasoning = String::new();
    let mut calls: Vec<(String, String, String)> = Vec::new();
    let mut finish = Value::Null;
    let mut usage = Value::Null;
    for c in chunks.iter().filter(|c| c.is_object()) {
        if !c["usage"].is_null() {
            usage = c["usage"].clone();
        }
        for choice in c["choices"].as_array().into_iter().flatten() {
            let d = &choice["delta"];
            if let Some(t) = d["content"].as_str() {
                content.get_or_insert_with(String::new).push_str(t);
            }
            if let Some(t) = d["reasoning_content"].as_str() {
                reasoning.push_str(t);
            }
            for tc in d["tool_calls"].as_array().into_iter().flatten() {
                let i = tc["index"].as_u64().expect("tool index") as usize;
                assert!(i <= calls.len(), "tool indexes are dense");
                if i == calls.len() {
                    calls.push(Default::default());
                }
                let call = &mut calls[i];
                if let Some(id) = tc["id"].as_str() {
                    call.0 = id.into();
                }
                if let Some(n) = tc["function"]["name"].as_str() {
                    call.1 = n.into();
                }
                if let Some(a) = tc["function"]["arguments"].as_str() {
                    call.2.push_str(a);
                }
            }
            if !choice["finish_reason"].is_null() {
                finish = choice["finish_reason"].clone();
            }
        }
    }
    let mut message = Map::new();
    message.insert("content".into(), content.map_or(Value::Null, Value::String));
    if !reasoning.is_empty() {
        message.insert("reasoning_content".into(), reasoning.into());
    }
    if !calls.is_empty() {
        let calls = calls
            .into_iter()
            .map(|(id, name, args)| {
                json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})
            })
            .collect();
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    json!({"message": message, "finish_reason": finish, "usage": usage})
}

/// Accumulates Anthropic events the way the SDK's `MessageStream` does, and
/// checks the event grammar on the way: `message_start` first, blocks
/// started in index order, deltas only to the open block, every block
/// stopped, `message_delta` then `message_stop` last.
pub fn accumulate_anthropic(events: &[Value]) -> Value {
    let mut it = events.iter();
    let first = it.next().expect("events");
    assert_eq!(first["type"], "message_start");
    let mut msg = first["message"].clone();
    assert_eq!(msg["content"], json!([]));
    let mut content: Vec<Value> = Vec::new();
    let mut json_buf: Vec<String> = Vec::new();
    let mut open: Option<usize> = None;
    let mut saw_delta = false;
    let mut stopped = false;
    for ev in it {
        assert!(!stopped, "nothing after message_stop");
        let index = ev["index"].as_u64().map(|i| i as usize);
        match ev["type"].as_str().expect("type") {
            "content_block_start" => {
                assert_eq!(open, None, "previous block closed before the next starts");
                assert_eq!(index, Some(content.len()), "blocks start in order");
                content.push(ev["content_block"].clone());
                json_buf.push(String::new());
                open = index;
            }
            "content_block_delta" => {
                assert_eq!(index, open, "delta to the open block");
                let i = index.expect("index");
                let d = &ev["delta"];
                let block = &mut content[i];
                match d["type"].as_str().expect("delta type") {
                    "text_delta" => {
                        let t = format!(
                            "{}{}",
                            block["text"].as_str().expect("text"),
                            d["text"].as_str().expect("text")
                        );
                        block["text"] = t.into();
                    }
                    "thinking_delta" => {
                        let t = format!(
                            "{}{}",
                            block["thinking"].as_str().expect("thinking"),
                            d["thinking"].as_str().expect("thinking")
                        );
                        block["thinking"] = t.into();
                    }
                    "input_json_delta" => {
                        json_buf[i].push_str(d["partial_json"].as_str().expect("partial_json"))
                    }
                    other => panic!("unexpected delta {other}"),
                }
            }
            "content_block_stop" => {
                assert_eq!(index, open, "stop the open block");
                let i = index.expect("index");
                if content[i]["type"] == "tool_use" && !json_buf[i].is_empty() {
                    content[i]["input"] =
                        serde_json::from_str(&json_buf[i]).expect("tool input JSON");
                }
                open = None;
            }
            "message_delta" => {
                assert_eq!(open, None, "blocks closed before message_delta");
                msg["stop_reason"] = ev["delta"]["stop_reason"].clone();
                msg["stop_sequence"] = ev["delta"]["stop_sequence"].clone();
                for (k, v) in ev["usage"].as_object().expect("usage") {
                    msg["usage"][k] = v.clone();
                }
                saw_delta = true;
            }
            "message_stop" => {
                assert!(saw_delta, "message_delta before message_stop");
                stopped = true;
            }
            other => panic!("unexpected event {other}"),
        }
    }
    assert!(stopped, "stream ends with message_stop");
    msg["content"] = Value::Array(content);
    msg
}
