//! OpenAI `chat.completion.chunk` stream → Anthropic Messages SSE stream.

use std::collections::HashSet;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::stop_reason;
use crate::translate::errors::{anthropic_type_for_openai_error, error_type_for_status};
use crate::translate::sse::{FrameEncoder, SseEvent};
use crate::translate::usage::{AnthropicUsageOut, OpenAiUsageWire, Usage};
use crate::translate::util::{Str, new_id, non_empty};
use crate::translate::{StreamTranslator, TranslateError};

/// Converts the chunks of an OpenAI (or OpenAI-compatible) streaming
/// response into Anthropic events (`event: X\ndata: {...}\n\n`) for an
/// Anthropic client.
///
/// The full Anthropic sequence is produced: `message_start` on the first
/// chunk (input tokens are not known yet and read 0; the real counts follow
/// in `message_delta`), then per content block `content_block_start`,
/// `content_block_delta`s and `content_block_stop`, and at the end
/// `message_delta` (`stop_reason`, `stop_sequence: null`, cumulative usage)
/// and `message_stop`.
///
/// - `delta.reasoning_content` (or `reasoning`) → a `thinking` block with
///   `thinking_delta`s; `delta.content` and `delta.refusal` → a `text` block;
/// - each tool call index → its own `tool_use` block (id, name, `input: {}`)
///   with `input_json_delta` fragments. Anthropic blocks cannot interleave,
///   so the open block is closed whenever output moves to another kind or
///   another tool call; several tool calls in one chunk come out as
///   consecutive blocks. A tool call that resumes after another block
///   started cannot be expressed and is an error.
/// - `finish_reason` closes the open block; the closing events wait for
///   `[DONE]` so that the usage chunk (`choices: []`), which comes after
///   the finish reason when `stream_options.include_usage` is set, makes it
///   into `message_delta`.
/// - an `{"error": {...}}` chunk → an `error` event, which ends the stream.
#[derive(Debug)]
pub struct OpenAiToAnthropicStream {
    id: String,
    model: String,
    usage: Usage,
    started: bool,
    finished: bool,
    open: Option<Open>,
    next_index: u32,
    /// Keys (OpenAI `index`) of the tool calls that got a block (a set, so
    /// that a stream of many calls stays linear).
    tool_keys: HashSet<u64>,
    /// The largest of `tool_keys`, to number calls that come without index.
    max_tool_key: Option<u64>,
    refusal: bool,
    finish_reason: Option<&'static str>,
    enc: FrameEncoder,
}

/// The content block being streamed.
#[derive(Debug)]
struct Open {
    index: u32,
    kind: OpenKind,
}

#[derive(Debug, PartialEq, Eq)]
enum OpenKind {
    Text,
    Thinking,
    Tool { key: u64, id: String },
}

impl OpenAiToAnthropicStream {
    /// A translator reporting `client_model`.
    pub fn new(client_model: &str) -> Self {
        Self {
            id: new_id("msg_"),
            model: client_model.to_owned(),
            usage: Usage::default(),
            started: false,
            finished: false,
            open: None,
            next_index: 0,
            tool_keys: HashSet::new(),
            max_tool_key: None,
            refusal: false,
            finish_reason: None,
            enc: FrameEncoder::new(),
        }
    }

    /// Like [`Self::on_event`], appending to a caller-owned vector so it can
    /// be reused across events.
    /// Call when the upstream stream ended without `[DONE]`: if a finish
    /// reason was seen, emits the closing events; otherwise returns nothing
    /// and the caller reports the truncation (for example with
    /// [`Self::error_frame`]).
    /// An Anthropic `error` event for a failure the gateway detects
    /// mid-stream (upstream cut, translation error). Ends the stream.
    /// Usage so far (from the usage chunk); complete once finished.
    /// Whether the stream is over (`message_stop` or `error` was produced).
    fn error_frame_typed(&mut self, kind: &str, message: &str) -> Bytes {
        self.finished = true;
        let ev = Out::Error {
            error: ErrorOut { kind, message },
        };
        self.enc.anthropic_event(ev.name(), &ev)
    }

    fn emit(&mut self, ev: &Out<'_>, out: &mut Vec<Bytes>) {
        out.push(self.enc.anthropic_event(ev.name(), ev));
    }

    fn start(&mut self, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        let ev = Out::MessageStart {
            message: MessageOut {
                id: &self.id,
                kind: "message",
                role: "assistant",
                model: &self.model,
                content: [],
                stop_reason: None,
                stop_sequence: None,
                usage: self.usage.anthropic_out(),
            },
        };
        out.push(self.enc.anthropic_event(ev.name(), &ev));
    }

    fn delta(&mut self, d: &Delta<'_>, out: &mut Vec<Bytes>) -> Result<(), TranslateError> {
        if let Some(thinking) = non_empty(&d.reasoning_content).or_else(|| non_empty(&d.reasoning))
        {
            let index = self.switch_to(OpenKind::Thinking, out);
            self.emit(
                &Out::ContentBlockDelta {
                    index,
                    delta: DeltaOut::ThinkingDelta { thinking },
                },
                out,
            );
        }
        for (text, refusal) in [
            (non_empty(&d.content), false),
            (non_empty(&d.refusal), true),
        ] {
            if let Some(text) = text {
                self.refusal |= refusal;
                let index = self.switch_to(OpenKind::Text, out);
                self.emit(
                    &Out::ContentBlockDelta {
                        index,
                        delta: DeltaOut::TextDelta { text },
                    },
                    out,
                );
            }
        }
        for (j, call) in d.tool_calls.iter().flatten().enumerate() {
            self.tool_delta(call, j, out)?;
        }
        Ok(())
    }

    /// Makes a text or thinking block the open one; returns its index.
    fn switch_to(&mut self, kind: OpenKind, out: &mut Vec<Bytes>) -> u32 {
        if let Some(open) = self.open.as_ref().filter(|o| o.kind == kind) {
            return open.index;
        }
        let block = match kind {
            OpenKind::Thinking => BlockOut::Thinking {
                thinking: "",
                signature: "",
            },
            _ => BlockOut::Text { text: "" },
        };
        self.open_block(kind, &block, out)
    }

    fn open_block(&mut self, kind: OpenKind, block: &BlockOut<'_>, out: &mut Vec<Bytes>) -> u32 {
        self.close_block(out);
        let index = self.next_index;
        self.next_index = self.next_index.saturating_add(1);
        self.emit(
            &Out::ContentBlockStart {
                index,
                content_block: block,
            },
            out,
        );
        self.open = Some(Open { index, kind });
        index
    }

    fn close_block(&mut self, out: &mut Vec<Bytes>) {
        if let Some(open) = self.open.take() {
            self.emit(&Out::ContentBlockStop { index: open.index }, out);
        }
    }

    fn tool_delta(
        &mut self,
        call: &ToolCallDelta<'_>,
        j: usize,
        out: &mut Vec<Bytes>,
    ) -> Result<(), TranslateError> {
        let current = match &self.open {
            Some(Open {
                index,
                kind: OpenKind::Tool { key, id },
            }) => Some((*index, *key, id.as_str())),
            _ => None,
        };
        let fresh = || self.max_tool_key.map_or(0, |k| k.saturating_add(1));
        let key = match (call.index, current, call.id.as_deref()) {
            (Some(k), _, _) => k,
            // No index (some compatible servers): a new id means a new call.
            (None, Some((_, key, open_id)), new_id) if new_id.is_none_or(|n| n == open_id) => key,
            (None, _, _) => fresh(),
        };
        let index = match current {
            Some((index, open_key, _)) if open_key == key => index,
            _ => {
                if !self.tool_keys.insert(key) {
                    return Err(TranslateError::upstream(
                        format!("choices[0].delta.tool_calls[{j}].index"),
                        "a tool call resumed after another content block started; Anthropic blocks cannot interleave",
                    ));
                }
                self.max_tool_key = self.max_tool_key.max(Some(key));
                let id = match call.id.as_deref() {
                    Some(id) if !id.is_empty() => id.to_owned(),
                    _ => new_id("toolu_"),
                };
                let name = call
                    .function
                    .as_ref()
                    .and_then(|f| f.name.as_deref())
                    .unwrap_or_default();
                self.close_block(out);
                let index = self.next_index;
                self.next_index = self.next_index.saturating_add(1);
                let block = BlockOut::ToolUse {
                    id: &id,
                    name,
                    input: Empty {},
                };
                self.emit(
                    &Out::ContentBlockStart {
                        index,
                        content_block: &block,
                    },
                    out,
                );
                self.open = Some(Open {
                    index,
                    kind: OpenKind::Tool { key, id },
                });
                index
            }
        };
        if let Some(partial_json) = call.function.as_ref().and_then(|f| non_empty(&f.arguments)) {
            self.emit(
                &Out::ContentBlockDelta {
                    index,
                    delta: DeltaOut::InputJsonDelta { partial_json },
                },
                out,
            );
        }
        Ok(())
    }

    /// `[DONE]`: the closing events.
    fn close(&mut self, out: &mut Vec<Bytes>) {
        self.start(out);
        self.close_block(out);
        let stop = stop_reason(self.finish_reason, !self.tool_keys.is_empty(), self.refusal);
        let ev = Out::MessageDelta {
            delta: StopOut {
                stop_reason: stop,
                stop_sequence: None,
            },
            usage: self.usage.anthropic_out(),
        };
        self.emit(&ev, out);
        self.emit(&Out::MessageStop, out);
        self.finished = true;
    }
}

impl StreamTranslator for OpenAiToAnthropicStream {
    fn on_event_into(&mut self, ev: &SseEvent, out: &mut Vec<Bytes>) -> Result<(), TranslateError> {
        let data = ev.data.trim();
        if self.finished || data.is_empty() {
            return Ok(());
        }
        if data.starts_with("[DONE]") {
            self.close(out);
            return Ok(());
        }
        let chunk: Chunk<'_> = serde_json::from_str(data)
            .map_err(|err| TranslateError::upstream("$", format!("invalid chunk: {err}")))?;
        if let Some(err) = chunk.error.as_ref().filter(|e| !e.is_null()) {
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("upstream stream error");
            out.push(self.error_frame_typed(anthropic_type_for_openai_error(err), message));
            return Ok(());
        }
        if let Some(u) = &chunk.usage {
            self.usage = u.to_usage();
        }
        // The gateway never asks for n > 1; other choices are ignored.
        for choice in chunk
            .choices
            .iter()
            .flatten()
            .filter(|c| c.index.unwrap_or(0) == 0)
        {
            self.start(out);
            if let Some(d) = &choice.delta {
                self.delta(d, out)?;
            }
            if let Some(reason) = &choice.finish_reason {
                self.finish_reason = Some(known_finish_reason(reason));
                self.close_block(out);
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        if !self.finished && self.finish_reason.is_some() {
            self.close(&mut out);
        }
        out
    }

    fn error_frame(&mut self, status: u16, message: &str) -> Bytes {
        self.error_frame_typed(error_type_for_status(status), message)
    }

    fn usage(&self) -> Usage {
        self.usage
    }

    fn finished(&self) -> bool {
        self.finished
    }
}

/// Interns the finish reasons [`stop_reason`] distinguishes.
fn known_finish_reason(reason: &str) -> &'static str {
    match reason {
        "length" => "length",
        "tool_calls" => "tool_calls",
        "function_call" => "function_call",
        "content_filter" => "content_filter",
        _ => "stop",
    }
}

/// An OpenAI chunk as received.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    usage: Option<OpenAiUsageWire>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Str<'a>>,
    #[serde(default, borrow)]
    reasoning_content: Option<Str<'a>>,
    #[serde(default, borrow)]
    reasoning: Option<Str<'a>>,
    #[serde(default, borrow)]
    refusal: Option<Str<'a>>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<ToolCallDelta<'a>>>,
}

#[derive(Deserialize)]
struct ToolCallDelta<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    id: Option<Str<'a>>,
    #[serde(default, borrow)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(default, borrow)]
    name: Option<Str<'a>>,
    #[serde(default, borrow)]
    arguments: Option<Str<'a>>,
}

/// An Anthropic stream event as sent; `type` is the event name.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Out<'a> {
    MessageStart {
        message: MessageOut<'a>,
    },
    ContentBlockStart {
        index: u32,
        content_block: &'a BlockOut<'a>,
    },
    ContentBlockDelta {
        index: u32,
        delta: DeltaOut<'a>,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: StopOut<'a>,
        usage: AnthropicUsageOut,
    },
    MessageStop,
    Error {
        error: ErrorOut<'a>,
    },
}

impl Out<'_> {
    fn name(&self) -> &'static str {
        match self {
            Self::MessageStart { .. } => "message_start",
            Self::ContentBlockStart { .. } => "content_block_start",
            Self::ContentBlockDelta { .. } => "content_block_delta",
            Self::ContentBlockStop { .. } => "content_block_stop",
            Self::MessageDelta { .. } => "message_delta",
            Self::MessageStop => "message_stop",
            Self::Error { .. } => "error",
        }
    }
}

#[derive(Serialize)]
struct MessageOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: Option<&'a str>,
    stop_sequence: Option<&'a str>,
    usage: AnthropicUsageOut,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockOut<'a> {
    Text {
        text: &'a str,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Empty,
    },
}

/// Serializes as `{}`.
#[derive(Serialize)]
struct Empty {}

// The variant names are the wire names (`text_delta`, …).
#[allow(clippy::enum_variant_names)]
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum DeltaOut<'a> {
    TextDelta { text: &'a str },
    ThinkingDelta { thinking: &'a str },
    InputJsonDelta { partial_json: &'a str },
}

#[derive(Serialize)]
struct StopOut<'a> {
    stop_reason: &'a str,
    stop_sequence: Option<&'a str>,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}
