//! Anthropic Messages SSE stream → OpenAI `chat.completion.chunk` stream.

use bytes::Bytes;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Value, json};

use super::finish_reason;
use crate::translate::errors::{error_type_for_status, openai_type_for_anthropic_error};
use crate::translate::sse::{FrameEncoder, SseEvent, openai_done_frame};
use crate::translate::usage::{AnthropicUsageWire, OpenAiUsageOut, Usage};
use crate::translate::util::{Str, new_id, non_empty, unix_now};
use crate::translate::{StreamTranslator, TranslateError};

/// Converts the events of an Anthropic streaming response into OpenAI chunk
/// frames (`data: {...}\n\n`) for an OpenAI client.
///
/// - `message_start` → the first chunk, `delta: {role: "assistant", content: ""}`;
/// - `text_delta` → `delta.content`; `thinking_delta` →
///   `delta.reasoning_content`;
/// - a `tool_use` block start → `delta.tool_calls[{index, id, type, function:
///   {name, arguments: ""}}]`, then each `input_json_delta` → an `arguments`
///   fragment with the same `index` (tool calls are numbered 0, 1, … among
///   tool blocks only, as OpenAI does);
/// - `message_delta` → a chunk with an empty delta and the `finish_reason`;
/// - `message_stop` → with `include_usage`, the usage chunk (`choices: []`),
///   then `data: [DONE]`;
/// - `error` → `data: {"error": {...}}`, after which the stream is over;
/// - `ping`, `content_block_stop`, signatures, citations and unknown event
///   types produce nothing.
///
/// All chunks share one `chatcmpl-…` id, `created` and `model`. With
/// `include_usage` every chunk carries `"usage": null` except the usage
/// chunk, as OpenAI does. Usage is tracked either way for the gateway.
#[derive(Debug)]
pub struct AnthropicToOpenAiStream {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    usage: Usage,
    /// What each content block started so far is, by Anthropic index
    /// (indexes are dense and in order: they are positions in `content`).
    blocks: Vec<Block>,
    next_tool: u32,
    started: bool,
    finish_sent: bool,
    finished: bool,
    enc: FrameEncoder,
}

#[derive(Clone, Copy, Debug)]
enum Block {
    Text,
    Thinking,
    /// A client tool call, with its OpenAI `tool_calls[].index`.
    Tool(u32),
    /// Server tools, redacted thinking…: nothing an OpenAI client can use.
    Other,
}

impl AnthropicToOpenAiStream {
    /// A translator reporting `client_model`; `include_usage` mirrors the
    /// client's `stream_options.include_usage`.
    pub fn new(client_model: &str, include_usage: bool) -> Self {
        Self {
            id: new_id("chatcmpl-"),
            model: client_model.to_owned(),
            created: unix_now(),
            include_usage,
            usage: Usage::default(),
            blocks: Vec::new(),
            next_tool: 0,
            started: false,
            finish_sent: false,
            finished: false,
            enc: FrameEncoder::new(),
        }
    }

    /// Like [`Self::on_event`], appending to a caller-owned vector so it can
    /// be reused across events.
    /// Call when the upstream stream ended without `message_stop`: if the
    /// finish reason was already sent, completes the stream (usage chunk and
    /// `[DONE]`); otherwise returns nothing and the caller reports the
    /// truncation (for example with [`Self::error_frame`]).
    /// An OpenAI error frame (`data: {"error": {...}}`) for a failure the
    /// gateway detects mid-stream (upstream cut, translation error). Ends the
    /// stream: later events are ignored.
    /// Usage so far; complete once the stream is finished.
    /// Whether the stream is over (`[DONE]` or an error frame was produced).
    fn error_frame_typed(&mut self, kind: &str, message: &str, code: Option<&str>) -> Bytes {
        self.finished = true;
        let body =
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
        self.enc.openai_data(&body)
    }

    /// Emits the role chunk once, before any other chunk.
    fn start(&mut self, out: &mut Vec<Bytes>) {
        if !self.started {
            self.started = true;
            let delta = Delta {
                role: Some("assistant"),
                content: Some(""),
                ..Delta::default()
            };
            out.push(self.chunk(delta, None));
        }
    }

    fn block_start(&mut self, e: &Event<'_>, out: &mut Vec<Bytes>) -> Result<(), TranslateError> {
        let (Some(index), Some(b)) = (e.index, &e.content_block) else {
            return Err(TranslateError::upstream("content_block", "is missing"));
        };
        if usize::try_from(index).ok() != Some(self.blocks.len()) {
            return Err(TranslateError::upstream(
                "index",
                format!("content block {index} started out of order"),
            ));
        }
        self.start(out);
        let block = match &*b.kind {
            "text" => Block::Text,
            "thinking" => Block::Thinking,
            "tool_use" => {
                let k = self.next_tool;
                self.next_tool = k.saturating_add(1);
                Block::Tool(k)
            }
            _ => Block::Other,
        };
        self.blocks.push(block);
        let delta = match block {
            Block::Text => non_empty(&b.text).map(|t| (Some(t), None)),
            Block::Thinking => non_empty(&b.thinking).map(|t| (None, Some(t))),
            Block::Tool(k) => {
                let generated;
                let id = match b.id.as_deref() {
                    Some(id) => id,
                    None => {
                        generated = new_id("toolu_");
                        &generated
                    }
                };
                let call = ToolCall {
                    index: k,
                    id: Some(id),
                    kind: Some("function"),
                    function: Function {
                        name: Some(b.name.as_deref().unwrap_or_default()),
                        arguments: "",
                    },
                };
                let delta = Delta {
                    tool_calls: Some([call]),
                    ..Delta::default()
                };
                out.push(self.chunk(delta, None));
                None
            }
            Block::Other => None,
        };
        if let Some((content, reasoning)) = delta {
            let delta = Delta {
                content,
                reasoning_content: reasoning,
                ..Delta::default()
            };
            out.push(self.chunk(delta, None));
        }
        Ok(())
    }

    fn block_delta(&mut self, e: &Event<'_>, out: &mut Vec<Bytes>) -> Result<(), TranslateError> {
        let (Some(index), Some(d)) = (e.index, &e.delta) else {
            return Err(TranslateError::upstream("delta", "is missing"));
        };
        // Blocks arrive in order, so the one being streamed is the last.
        let Some(&block) = usize::try_from(index).ok().and_then(|i| self.blocks.get(i)) else {
            return Err(TranslateError::upstream(
                "index",
                format!("no content block {index} was started"),
            ));
        };
        let delta = match (block, d.kind.as_deref()) {
            (Block::Text, Some("text_delta")) => non_empty(&d.text).map(|t| Delta {
                content: Some(t),
                ..Delta::default()
            }),
            (Block::Thinking, Some("thinking_delta")) => non_empty(&d.thinking).map(|t| Delta {
                reasoning_content: Some(t),
                ..Delta::default()
            }),
            (Block::Tool(k), Some("input_json_delta")) => {
                non_empty(&d.partial_json).map(|args| Delta {
                    tool_calls: Some([ToolCall {
                        index: k,
                        id: None,
                        kind: None,
                        function: Function {
                            name: None,
                            arguments: args,
                        },
                    }]),
                    ..Delta::default()
                })
            }
            _ => None, // signature_delta, citations_delta, server tool input
        };
        if let Some(delta) = delta {
            out.push(self.chunk(delta, None));
        }
        Ok(())
    }

    /// The end of the stream: finish chunk if missing, usage, `[DONE]`.
    fn close(&mut self, out: &mut Vec<Bytes>) {
        if !self.finish_sent {
            self.finish_sent = true;
            out.push(self.chunk(Delta::default(), Some("stop")));
        }
        if self.include_usage {
            let chunk = Chunk {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
                choices: &[],
                usage: UsageSlot::Value(self.usage.openai_out()),
            };
            out.push(self.enc.openai_data(&chunk));
        }
        out.push(openai_done_frame());
        self.finished = true;
    }

    fn chunk(&mut self, delta: Delta<'_>, finish_reason: Option<&str>) -> Bytes {
        let choices = [Choice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason,
        }];
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: &choices,
            usage: if self.include_usage {
                UsageSlot::Null
            } else {
                UsageSlot::Absent
            },
        };
        self.enc.openai_data(&chunk)
    }
}

impl StreamTranslator for AnthropicToOpenAiStream {
    fn on_event_into(&mut self, ev: &SseEvent, out: &mut Vec<Bytes>) -> Result<(), TranslateError> {
        if self.finished || ev.data.is_empty() {
            return Ok(());
        }
        let e: Event<'_> = serde_json::from_str(&ev.data).map_err(|err| {
            let name = ev.event.as_deref().unwrap_or("stream");
            TranslateError::upstream("$", format!("invalid `{name}` event: {err}"))
        })?;
        match &*e.kind {
            "message_start" => {
                if let Some(m) = &e.message {
                    if let (false, Some(id)) = (self.started, &m.id) {
                        self.id = format!("chatcmpl-{}", &**id);
                    }
                    if let Some(u) = &m.usage {
                        self.usage.apply_anthropic_wire(u);
                    }
                }
                self.start(out);
            }
            "content_block_start" => self.block_start(&e, out)?,
            "content_block_delta" => self.block_delta(&e, out)?,
            "message_delta" => {
                if let Some(u) = &e.usage {
                    self.usage.apply_anthropic_wire(u);
                }
                let reason = e.delta.as_ref().and_then(|d| d.stop_reason.as_deref());
                self.start(out);
                if !self.finish_sent {
                    self.finish_sent = true;
                    let frame = self.chunk(Delta::default(), Some(finish_reason(reason)));
                    out.push(frame);
                }
            }
            "message_stop" => {
                self.start(out);
                self.close(out);
            }
            "error" => {
                let err = e.error.as_ref();
                let field = |k: &str| err.and_then(|e| e.get(k)).and_then(Value::as_str);
                let kind = field("type").unwrap_or("api_error");
                let message = field("message").unwrap_or("upstream stream error");
                out.push(self.error_frame_typed(
                    openai_type_for_anthropic_error(kind),
                    message,
                    Some(kind),
                ));
            }
            // ping, content_block_stop, and event types added after this
            // was written (Anthropic's versioning policy says to ignore them).
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        if !self.finished && self.finish_sent {
            self.close(&mut out);
        }
        out
    }

    fn error_frame(&mut self, status: u16, message: &str) -> Bytes {
        self.error_frame_typed(error_type_for_status(status), message, None)
    }

    fn usage(&self) -> Usage {
        self.usage
    }

    fn finished(&self) -> bool {
        self.finished
    }
}

/// An Anthropic stream event as received; one flat struct for every event
/// type (serde's tagged enums would copy the borrowed strings).
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    message: Option<MessageStart<'a>>,
    #[serde(default, borrow)]
    content_block: Option<BlockStart<'a>>,
    #[serde(default, borrow)]
    delta: Option<EventDelta<'a>>,
    #[serde(default)]
    usage: Option<AnthropicUsageWire>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct MessageStart<'a> {
    #[serde(default, borrow)]
    id: Option<Str<'a>>,
    #[serde(default)]
    usage: Option<AnthropicUsageWire>,
}

#[derive(Deserialize)]
struct BlockStart<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(default, borrow)]
    id: Option<Str<'a>>,
    #[serde(default, borrow)]
    name: Option<Str<'a>>,
    #[serde(default, borrow)]
    text: Option<Str<'a>>,
    #[serde(default, borrow)]
    thinking: Option<Str<'a>>,
}

/// `content_block_delta.delta` and `message_delta.delta` in one.
#[derive(Deserialize)]
struct EventDelta<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Str<'a>>,
    #[serde(default, borrow)]
    text: Option<Str<'a>>,
    #[serde(default, borrow)]
    partial_json: Option<Str<'a>>,
    #[serde(default, borrow)]
    thinking: Option<Str<'a>>,
    #[serde(default, borrow)]
    stop_reason: Option<Str<'a>>,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [Choice<'a>],
    #[serde(skip_serializing_if = "UsageSlot::is_absent")]
    usage: UsageSlot,
}

/// The chunk's `usage`: absent without `include_usage`, else `null` on
/// every chunk but the last.
enum UsageSlot {
    Absent,
    Null,
    Value(OpenAiUsageOut),
}

impl UsageSlot {
    fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }
}

impl Serialize for UsageSlot {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Value(u) => u.serialize(s),
            Self::Absent | Self::Null => s.serialize_none(),
        }
    }
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCall<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCall<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: Function<'a>,
}

#[derive(Serialize)]
struct Function<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, data: &str) -> SseEvent {
        SseEvent {
            event: Some(name.to_owned()),
            data: data.to_owned(),
            raw: Bytes::new(),
        }
    }

    fn frames_json(frames: &[Bytes]) -> Vec<Value> {
        frames
            .iter()
            .map(|f| {
                let s = std::str::from_utf8(f).expect("utf8");
                let data = s
                    .strip_prefix("data: ")
                    .and_then(|s| s.strip_suffix("\n\n"))
                    .expect("frame");
                if data == "[DONE]" {
                    Value::String("[DONE]".into())
                } else {
                    serde_json::from_str(data).expect("json")
                }
            })
            .collect()
    }

    const START: &str = r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1}}}"#;

    #[test]
    fn minimal_text_stream_without_usage() {
        let mut s = AnthropicToOpenAiStream::new("gpt-4o", false);
        let mut frames = Vec::new();
        for (name, data) in [
            ("message_start", START),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            ("ping", r#"{"type": "ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel\"lo"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"output_tokens":5}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ] {
            frames.extend(s.on_event(&event(name, data)).expect("translate"));
        }
        let v = frames_json(&frames);
        assert_eq!(v.len(), 4, "{v:?}");
        let created = v[0]["created"].clone();
        let chunk = |delta: Value, finish: Value| {
            serde_json::json!({"id": "chatcmpl-msg_1", "object": "chat.completion.chunk",
                "created": created, "model": "gpt-4o",
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
        };
        assert_eq!(
            v[0],
            chunk(json!({"role": "assistant", "content": ""}), Value::Null)
        );
        assert_eq!(v[1], chunk(json!({"content": "Hel\"lo"}), Value::Null));
        assert_eq!(v[2], chunk(json!({}), json!("length")));
        assert_eq!(v[3], "[DONE]");
        assert!(s.finished());
        assert_eq!(s.usage().output_tokens, 5);
        assert_eq!(s.usage().input_tokens, 10);
        // Anything after the end is ignored.
        assert!(
            s.on_event(&event("ping", r#"{"type":"ping"}"#))
                .expect("ok")
                .is_empty()
        );
    }

    #[test]
    fn error_event_becomes_openai_error_frame() {
        let mut s = AnthropicToOpenAiStream::new("m", true);
        let _ = s.on_event(&event("message_start", START)).expect("start");
        let frames = s
            .on_event(&event(
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ))
            .expect("translate");
        assert_eq!(
            frames_json(&frames),
            vec![
                json!({"error": {"message": "Overloaded", "type": "overloaded_error",
                                   "param": null, "code": "overloaded_error"}})
            ]
        );
        assert!(s.finished());
    }

    #[test]
    fn malformed_events_are_upstream_errors() {
        let mut s = AnthropicToOpenAiStream::new("m", true);
        for data in [
            "not json",
            r#"{"no_type":1}"#,
            r#"{"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":"x"}}"#,
            r#"{"type":"content_block_start","index":0}"#,
        ] {
            let err = s.on_event(&event("x", data)).expect_err(data);
            assert_eq!(err.status(), 502);
        }
    }

    #[test]
    fn finish_completes_only_after_finish_reason() {
        let mut s = AnthropicToOpenAiStream::new("m", true);
        let _ = s.on_event(&event("message_start", START)).expect("start");
        assert!(
            s.finish().is_empty(),
            "no finish reason yet: caller decides"
        );
        let _ = s
            .on_event(&event("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}"#))
            .expect("delta");
        let v = frames_json(&s.finish());
        assert_eq!(v.len(), 2);
        assert_eq!(v[0]["choices"], json!([]));
        assert_eq!(v[0]["usage"]["completion_tokens"], 3);
        assert_eq!(v[1], "[DONE]");
        assert!(s.finished());
    }

    #[test]
    fn unknown_events_and_blocks_are_ignored() {
        let mut s = AnthropicToOpenAiStream::new("m", false);
        let _ = s.on_event(&event("message_start", START)).expect("start");
        for data in [
            r#"{"type":"some_future_event","x":1}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"q\":1}"}}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"redacted_thinking","data":"x"}}"#,
        ] {
            assert!(
                s.on_event(&event("x", data)).expect(data).is_empty(),
                "{data}"
            );
        }
    }
}
