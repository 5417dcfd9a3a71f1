//! Upper bounds on what a request will be billed, for reserving its cost at admission.
//!
//! A budget must never be overspent, so every number here is an upper bound of what the
//! provider bills, never a best guess:
//! - input: every piece of text the provider bills is counted with the model's real tokenizer
//!   where one is public (tiktoken's `o200k_base` / `cl100k_base` for OpenAI models), else by
//!   its UTF-8 length: every token of a byte-level BPE covers at least one byte, so the byte
//!   length bounds any such tokenizer (Anthropic's is not public). Formatting overheads,
//!   images and tool definitions are added as documented on the constants below;
//! - output: the request's own cap (`max_tokens`, ...) times the number of completions it
//!   asks for; [`clamp_max_tokens`] sets or lowers that cap in the upstream body when the
//!   budget allows less, so the bound also holds for requests that set none.
//!
//! Run the estimate on the body in the dialect it is sent upstream in: a translation
//! changes what is billed.
//!
//! Which models bill with which encoding is `starling_wire::tiktoken_models`, shared with the
//! mock provider; `bench/tests/estimate_bound.rs` checks these bounds against the mock
//! provider's ledger.

use std::fmt::{self, Write as _};

use serde_json::{Map, Value};
use tiktoken_rs::CoreBPE;

use starling_wire::tiktoken_models::{
    TiktokenEncoding, encoding_of, has_long_inline_whitespace, in_family, model_base,
};

/// Tokens charged per chat message for its role markers and separators: OpenAI documents 3
/// (4 for `gpt-3.5-turbo-0301`), the mock charges 3.
pub const PER_MESSAGE_TOKENS: u64 = 4;
/// Tokens charged once per chat request for priming the reply (OpenAI documents 3).
pub const REPLY_PRIMING_TOKENS: u64 = 3;
/// Extra tokens for a message's `name` (OpenAI documents 1).
pub const NAME_TOKENS: u64 = 1;
/// Tokens for the wrapping of each tool call or tool result in the conversation.
pub const PER_TOOL_CALL_TOKENS: u64 = 3;
/// Tokens for the header OpenAI puts around tool definitions, on top of their compact JSON
/// (which is itself longer than the TypeScript-like form OpenAI renders them in).
pub const OPENAI_TOOLS_OVERHEAD: u64 = 32;
/// Tokens for the tool-use system prompt Anthropic adds when a request has tools: its
/// documentation lists up to 530 (Claude 3 Opus; 346 for the Claude 4 family).
pub const ANTHROPIC_TOOLS_OVERHEAD: u64 = 600;
/// Input tokens charged per image, audio clip or file (a clip or file with inline data
/// counts that data's length instead when larger).
///
/// OpenAI's high-detail worst case is an image fitted into 2048×2048, then scaled to a
/// 768-pixel shortest side: at most 2×4 tiles of 512 pixels, so 85 + 8 × 170 = 1,445 tokens
/// for `gpt-4o` and `gpt-4.1` (70 + 8 × 140 for `gpt-5`, 75 + 8 × 150 for `o1`/`o3`);
/// patch-based models (`gpt-4.1-mini`/`-nano`, `o4-mini`) stop at 1,536 patches × a
/// multiplier of at most 2.46, so 3,779. Anthropic bills about width × height / 750, some
/// 1,600 tokens for the largest image it keeps (about 4,800 for its high-resolution models).
/// This generous constant covers all of them; `gpt-4o-mini` is the exception, see
/// [`GPT_4O_MINI_IMAGE_TOKENS`].
pub const MEDIA_TOKENS_UPPER_BOUND: u64 = 8_192;
/// `gpt-4o-mini` bills images at 2,833 + 5,667 tokens per tile (the same price in dollars as
/// `gpt-4o`, at a 33× lower price per token): 2,833 + 8 × 5,667 in the worst case.
pub const GPT_4O_MINI_IMAGE_TOKENS: u64 = 48_169;
/// OpenAI's `max_tokens` for `/v1/completions` when the request sets none.
pub const COMPLETIONS_DEFAULT_MAX_TOKENS: u64 = 16;
/// Bytes of text one estimate runs through a BPE; longer texts count by their byte length.
///
/// Tokenizing ordinary text costs about 20 ns a byte in a release build, adversarial text
/// (long words, repeated characters) up to half a microsecond: this bounds the work one
/// request can cause on the hot path to about 20 ms, half a second at worst, while leaving
/// ordinary requests (up to some 250k tokens of text) exact.
pub const TOKENIZE_BUDGET_BYTES: usize = 1 << 20;

/// Which API a request body is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointKind {
    /// OpenAI `POST /v1/chat/completions` (also Azure's and OpenAI-compatible servers').
    ChatCompletions,
    /// OpenAI legacy `POST /v1/completions`.
    Completions,
    /// OpenAI `POST /v1/embeddings`.
    Embeddings,
    /// Anthropic `POST /v1/messages`.
    Messages,
    /// Anthropic `POST /v1/messages/count_tokens` (free: no output, nothing billed).
    CountTokens,
}

/// How text is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tokenizer {
    /// tiktoken `o200k_base`: `gpt-4o`, `gpt-4.1`, `gpt-4.5`, `gpt-5`, `o1`/`o3`/`o4`, `gpt-oss`.
    O200k,
    /// tiktoken `cl100k_base`: `gpt-4`, `gpt-3.5-turbo`, `text-embedding-3-*`, `ada-002`.
    Cl100k,
    /// UTF-8 byte length: an upper bound for any byte-level BPE (Anthropic, unknown models).
    Bytes,
}

impl Tokenizer {
    /// The shared BPE, built on first use (about 200 ms for o200k, 70 ms for cl100k) and
    /// kept for the process; `None` for [`Tokenizer::Bytes`].
    fn bpe(self) -> Option<&'static CoreBPE> {
        match self {
            Tokenizer::O200k => Some(tiktoken_rs::o200k_base_singleton()),
            Tokenizer::Cl100k => Some(tiktoken_rs::cl100k_base_singleton()),
            Tokenizer::Bytes => None,
        }
    }
}

/// Builds both BPEs now, so that the first request that needs one does not wait for it.
pub fn preload() {
    let _ = Tokenizer::O200k.bpe();
    let _ = Tokenizer::Cl100k.bpe();
}

/// Reasoning families, which reject `max_tokens` and take `max_completion_tokens`.
const REASONING_FAMILIES: [&str; 5] = ["o1", "o3", "o4", "gpt-5", "codex-mini"];

/// The tokenizer that bills `model`, by its name (case-insensitive, after an `openai/` or
/// `ft:` prefix); unknown models get [`Tokenizer::Bytes`].
pub fn tokenizer_for(model: &str) -> Tokenizer {
    match encoding_of(model) {
        Some(TiktokenEncoding::O200k) => Tokenizer::O200k,
        Some(TiktokenEncoding::Cl100k) => Tokenizer::Cl100k,
        None => Tokenizer::Bytes,
    }
}

/// The body's `model`, or "" (Azure names the deployment in the path instead).
fn body_model(body: &Map<String, Value>) -> &str {
    body.get("model").and_then(Value::as_str).unwrap_or("")
}

/// An upper bound on the input tokens the provider bills for `body`, counted with
/// `tokenizer` (choose it with [`tokenizer_for`] from the upstream model).
///
/// Fields of the wrong type are skipped, never fatal: the provider rejects such requests
/// without billing them. Unknown content blocks count every string they hold.
pub fn input_tokens_upper_bound(
    kind: EndpointKind,
    body: &Map<String, Value>,
    tokenizer: Tokenizer,
) -> u64 {
    let image = if in_family(model_base(body_model(body)), "gpt-4o-mini", true) {
        GPT_4O_MINI_IMAGE_TOKENS
    } else {
        MEDIA_TOKENS_UPPER_BOUND
    };
    let mut c = Counter::new(tokenizer, image);
    match kind {
        EndpointKind::ChatCompletions => chat_input(&mut c, body),
        EndpointKind::Completions => {
            if let Some(p) = body.get("prompt") {
                prompt_input(&mut c, p);
            }
            if let Some(Value::String(s)) = body.get("suffix") {
                c.text(s);
            }
        }
        EndpointKind::Embeddings => {
            if let Some(p) = body.get("input") {
                prompt_input(&mut c, p);
            }
        }
        EndpointKind::Messages | EndpointKind::CountTokens => messages_input(&mut c, body),
    }
    c.total
}

/// Adds up tokens, through the BPE while the per-request budget lasts.
struct Counter {
    bpe: Option<&'static CoreBPE>,
    /// Bytes that may still go through the BPE.
    budget: usize,
    /// Tokens charged per image.
    image: u64,
    total: u64,
    /// Reused for the JSON of tool definitions and arguments.
    json: String,
}

impl Counter {
    fn new(tokenizer: Tokenizer, image: u64) -> Self {
        Self {
            bpe: tokenizer.bpe(),
            budget: TOKENIZE_BUDGET_BYTES,
            image,
            total: 0,
            json: String::new(),
        }
    }

    fn add(&mut self, n: u64) {
        self.total = self.total.saturating_add(n);
    }

    fn text(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        let n = match self.bpe {
            Some(bpe) if s.len() <= self.budget && !has_long_inline_whitespace(s) => {
                self.budget -= s.len();
                bpe.count_ordinary(s) as u64
            }
            _ => s.len() as u64,
        };
        self.add(n);
    }

    /// Counts `v` as its compact JSON, the way it is charged for tool definitions.
    fn json(&mut self, v: &Value) {
        if self.bpe.is_none() {
            let mut len = ByteLen(0);
            // `ByteLen` never fails, and neither does formatting a `Value`.
            let _ = write!(len, "{v}");
            self.add(len.0);
            return;
        }
        let mut buf = std::mem::take(&mut self.json);
        buf.clear();
        let _ = write!(buf, "{v}");
        self.text(&buf);
        self.json = buf;
    }

    /// Counts every string inside `v` (not object keys): the bound for shapes it does not know.
    fn strings(&mut self, v: &Value) {
        let mut stack = vec![v];
        while let Some(v) = stack.pop() {
            match v {
                Value::String(s) => self.text(s),
                Value::Array(a) => stack.extend(a),
                Value::Object(o) => stack.extend(o.values()),
                _ => {}
            }
        }
    }

    /// An image, audio clip or file: the fixed bound, or the length of its inline data if
    /// larger (audio is billed by duration and a file by its pages and text: no fixed
    /// number bounds them, their encoded size does in practice).
    fn media(&mut self, inline_data: Option<&Value>) {
        let len = inline_data.and_then(Value::as_str).map_or(0, str::len) as u64;
        self.add(self.image.max(len));
    }

    fn str_field(&mut self, o: &Map<String, Value>, key: &str) {
        if let Some(Value::String(s)) = o.get(key) {
            self.text(s);
        }
    }
}

/// Counts the bytes written to it.
struct ByteLen(u64);

impl fmt::Write for ByteLen {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len() as u64;
        Ok(())
    }
}

fn chat_input(c: &mut Counter, body: &Map<String, Value>) {
    c.add(REPLY_PRIMING_TOKENS);
    if let Some(Value::Array(messages)) = body.get("messages") {
        for m in messages {
            c.add(PER_MESSAGE_TOKENS);
            if let Value::Object(m) = m {
                chat_message(c, m);
            }
        }
    }
    for key in ["tools", "functions"] {
        match body.get(key) {
            None | Some(Value::Null) => {}
            Some(tools) => {
                c.add(OPENAI_TOOLS_OVERHEAD);
                c.json(tools);
            }
        }
    }
    // A JSON schema for structured output is shown to the model, so it is billed.
    if let Some(rf @ Value::Object(o)) = body.get("response_format") {
        if o.contains_key("json_schema") {
            c.json(rf);
        }
    }
}

fn chat_message(c: &mut Counter, m: &Map<String, Value>) {
    for (key, v) in m {
        match (key.as_str(), v) {
            (_, Value::Null) => {}
            ("content", v) => chat_content(c, v),
            ("name", Value::String(s)) => {
                c.text(s);
                c.add(NAME_TOKENS);
            }
            ("tool_calls", Value::Array(calls)) => {
                for call in calls {
                    c.add(PER_TOOL_CALL_TOKENS);
                    match call {
                        Value::Object(o) => match o.get("function").or_else(|| o.get("custom")) {
                            Some(Value::Object(f)) => {
                                c.str_field(o, "id");
                                c.str_field(f, "name");
                                c.str_field(f, "arguments");
                                c.str_field(f, "input");
                            }
                            _ => c.strings(call),
                        },
                        other => c.strings(other),
                    }
                }
            }
            ("function_call", Value::Object(f)) => {
                c.add(PER_TOOL_CALL_TOKENS);
                c.str_field(f, "name");
                c.str_field(f, "arguments");
            }
            // `role`, `tool_call_id`, `refusal`, and anything the gateway does not know.
            (_, v) => c.strings(v),
        }
    }
}

fn chat_content(c: &mut Counter, content: &Value) {
    let parts = match content {
        Value::String(s) => return c.text(s),
        Value::Array(parts) => parts,
        _ => return,
    };
    for part in parts {
        let Value::Object(p) = part else {
            c.strings(part);
            continue;
        };
        match p.get("type").and_then(Value::as_str).unwrap_or("") {
            "text" | "input_text" | "output_text" => c.str_field(p, "text"),
            "refusal" => c.str_field(p, "refusal"),
            "image_url" | "input_image" | "image" => c.media(None),
            "input_audio" => c.media(p.get("input_audio").and_then(|a| a.get("data"))),
            "file" | "input_file" => {
                let file = p.get("file");
                c.media(file.and_then(|f| f.get("file_data")));
                if let Some(Value::Object(f)) = file {
                    c.str_field(f, "filename");
                }
            }
            _ => c.strings(part),
        }
    }
}

/// `prompt` (completions) or `input` (embeddings): a string, strings, token ids (one token
/// each), or arrays of token ids.
fn prompt_input(c: &mut Counter, v: &Value) {
    match v {
        Value::String(s) => c.text(s),
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::String(s) => c.text(s),
                    Value::Number(_) => c.add(1),
                    Value::Array(ids) => c.add(ids.len() as u64),
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

fn messages_input(c: &mut Counter, body: &Map<String, Value>) {
    c.add(REPLY_PRIMING_TOKENS);
    match body.get("system") {
        None | Some(Value::Null) => {}
        Some(system) => {
            c.add(PER_MESSAGE_TOKENS);
            anthropic_content(c, system);
        }
    }
    if let Some(Value::Array(messages)) = body.get("messages") {
        for m in messages {
            c.add(PER_MESSAGE_TOKENS);
            let Value::Object(m) = m else { continue };
            for (key, v) in m {
                match key.as_str() {
                    "content" => anthropic_content(c, v),
                    _ => c.strings(v),
                }
            }
        }
    }
    match body.get("tools") {
        None | Some(Value::Null) => {}
        Some(tools) => {
            c.add(ANTHROPIC_TOOLS_OVERHEAD);
            c.json(tools);
        }
    }
}

/// A string, or an array of content blocks.
fn anthropic_content(c: &mut Counter, content: &Value) {
    let blocks = match content {
        Value::String(s) => return c.text(s),
        Value::Array(blocks) => blocks,
        _ => return,
    };
    for block in blocks {
        let Value::Object(b) = block else {
            c.strings(block);
            continue;
        };
        let ty = b.get("type").and_then(Value::as_str).unwrap_or("");
        if ty != "text" {
            // Any stray `text` beside another block type: whatever reads it may bill it.
            c.str_field(b, "text");
        }
        match ty {
            "text" => c.str_field(b, "text"),
            "image" => c.media(None),
            "document" => {
                let source = b.get("source");
                match source.and_then(|s| s.get("type")).and_then(Value::as_str) {
                    Some("text") => {
                        c.media(None);
                        if let Some(data) = source.and_then(|s| s.get("data")) {
                            c.strings(data);
                        }
                    }
                    Some("content") => {
                        c.media(None);
                        if let Some(inner) = source.and_then(|s| s.get("content")) {
                            anthropic_content(c, inner);
                        }
                    }
                    _ => c.media(source.and_then(|s| s.get("data"))),
                }
                c.str_field(b, "title");
                c.str_field(b, "context");
            }
            "tool_use" | "server_tool_use" => {
                c.add(PER_TOOL_CALL_TOKENS);
                c.str_field(b, "name");
                if let Some(input) = b.get("input") {
                    c.json(input);
                }
            }
            "tool_result" => {
                c.add(PER_TOOL_CALL_TOKENS);
                if let Some(inner) = b.get("content") {
                    anthropic_content(c, inner);
                }
            }
            "thinking" => c.str_field(b, "thinking"),
            "redacted_thinking" => c.str_field(b, "data"),
            _ => c.strings(block),
        }
    }
}

/// The most output a request may be billed for: `requested` tokens (`None`: the request sets
/// no limit, so [`clamp_max_tokens`] must set one) for each of `choices` completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputCap {
    /// Output tokens per completion, reasoning included.
    pub requested: Option<u64>,
    /// Completions billed: 0 for endpoints without output.
    pub choices: u64,
}

impl OutputCap {
    /// `per_choice` tokens for every completion, saturating.
    pub fn total(self, per_choice: u64) -> u64 {
        per_choice.saturating_mul(self.choices)
    }
}

/// The output bound of `body` as it stands (before any clamp).
///
/// - chat: `max_completion_tokens`, else `max_tokens` (the larger if both are set, since
///   servers differ in which one they honour), for each of `n` choices;
/// - completions: `max_tokens` for each prompt times `best_of` (billed for all `best_of`
///   candidates, at least `n`). Unset counts as no limit although OpenAI's default is 16:
///   other servers have other defaults, so [`clamp_max_tokens`] writes one out;
/// - messages: `max_tokens` (thinking included);
/// - embeddings, count_tokens: no output.
///
/// Numbers written as floats or strings are read conservatively (rounded up), since some
/// servers accept them.
pub fn output_tokens_cap(kind: EndpointKind, body: &Map<String, Value>) -> OutputCap {
    let count = |key: &str| body.get(key).and_then(parse_count);
    match kind {
        EndpointKind::ChatCompletions => OutputCap {
            requested: match (count("max_completion_tokens"), count("max_tokens")) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            },
            choices: count("n").unwrap_or(1).max(1),
        },
        EndpointKind::Completions => {
            let prompts = match body.get("prompt") {
                Some(Value::Array(items)) if !items.iter().all(Value::is_number) => {
                    items.len().max(1) as u64
                }
                _ => 1,
            };
            let per_prompt = count("n")
                .unwrap_or(1)
                .max(count("best_of").unwrap_or(1))
                .max(1);
            OutputCap {
                requested: count("max_tokens"),
                choices: prompts.saturating_mul(per_prompt),
            }
        }
        EndpointKind::Messages => OutputCap {
            requested: count("max_tokens"),
            choices: 1,
        },
        EndpointKind::Embeddings | EndpointKind::CountTokens => OutputCap {
            requested: Some(0),
            choices: 0,
        },
    }
}

/// A non-negative count: an integer, a float (rounded up) or a string holding either.
fn parse_count(v: &Value) -> Option<u64> {
    fn from_f64(f: f64) -> Option<u64> {
        // `as` saturates at u64::MAX for huge values.
        (f.is_finite() && f >= 0.0).then(|| f.ceil() as u64)
    }
    match v {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().and_then(from_f64)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<u64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().and_then(from_f64))
        }
        _ => None,
    }
}

/// Lowers the request's output cap to `max` per completion, or sets it when the request has
/// none, so that [`output_tokens_cap`] with `max` is a true bound. Never raises a value the
/// client set. Returns the value written, or `None` when the body was already within `max`.
///
/// The field is the one the client used: for chat, every one of `max_completion_tokens` and
/// `max_tokens` that is set (servers differ in which one they honour); when neither is,
/// `max_completion_tokens` for OpenAI's reasoning models (which reject `max_tokens`) and
/// `max_tokens` for every other model, since OpenAI-compatible servers broadly accept it
/// (Azure bodies name no model, so they get `max_tokens`). Completions and messages use
/// `max_tokens`; completions without one get OpenAI's default 16 (or `max` if lower) written
/// out, so a server with another default cannot exceed the bound. Embeddings and
/// count_tokens have no output and are left alone.
///
/// A value that is not a count (an object, a negative number...) is overwritten: the bound
/// cannot rely on how a server would read it. Anthropic's `thinking.budget_tokens` is left
/// alone; if it is not below the new `max_tokens`, Anthropic rejects the request (unbilled).
pub fn clamp_max_tokens(
    kind: EndpointKind,
    body: &mut Map<String, Value>,
    max: u64,
) -> Option<u64> {
    match kind {
        EndpointKind::Embeddings | EndpointKind::CountTokens => None,
        EndpointKind::Messages => clamp_field(body, "max_tokens", max, max),
        EndpointKind::Completions => clamp_field(
            body,
            "max_tokens",
            max,
            max.min(COMPLETIONS_DEFAULT_MAX_TOKENS),
        ),
        EndpointKind::ChatCompletions => {
            let set = |k: &str| body.get(k).is_some_and(|v| !v.is_null());
            let (completion, legacy) = (set("max_completion_tokens"), set("max_tokens"));
            if !completion && !legacy {
                let base = model_base(body_model(body));
                let key = if REASONING_FAMILIES.iter().any(|f| in_family(base, f, true)) {
                    "max_completion_tokens"
                } else {
                    "max_tokens"
                };
                body.insert(key.to_owned(), Value::from(max));
                return Some(max);
            }
            let a = completion
                .then(|| clamp_field(body, "max_completion_tokens", max, max))
                .flatten();
            let b = legacy
                .then(|| clamp_field(body, "max_tokens", max, max))
                .flatten();
            a.or(b)
        }
    }
}

/// Writes `max` over a larger or unreadable `key`, or `if_absent` when `key` is unset.
fn clamp_field(body: &mut Map<String, Value>, key: &str, max: u64, if_absent: u64) -> Option<u64> {
    let value = match body.get(key) {
        None | Some(Value::Null) => if_absent,
        Some(v) => match parse_count(v) {
            Some(n) if n <= max => return None,
            _ => max,
        },
    };
    body.insert(key.to_owned(), Value::from(value));
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use starling_wire::tiktoken_models::MAX_INLINE_WHITESPACE;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(o) => o,
            other => panic!("not an object: {other}"),
        }
    }

    fn bound(kind: EndpointKind, v: Value, t: Tokenizer) -> u64 {
        input_tokens_upper_bound(kind, &obj(v), t)
    }

    fn o200k(s: &str) -> u64 {
        tiktoken_rs::o200k_base_singleton().count_ordinary(s) as u64
    }

    fn cl100k(s: &str) -> u64 {
        tiktoken_rs::cl100k_base_singleton().count_ordinary(s) as u64
    }

    use EndpointKind::{ChatCompletions, Completions, CountTokens, Embeddings, Messages};
    use Tokenizer::{Bytes, Cl100k, O200k};

    #[test]
    fn tokenizer_by_model_family() {
        for m in [
            "gpt-4o",
            "gpt-4o-mini",
            "GPT-4o-2024-08-06",
            "chatgpt-4o-latest",
            "gpt-4.1",
            "gpt-4.1-nano",
            "gpt-4.5-preview",
            "gpt-5",
            "gpt-5.1",
            "gpt-5-mini",
            "o1",
            "o1-preview",
            "o3-mini",
            "o4-mini-2025-04-16",
            "gpt-oss-120b",
            "openai/gpt-4o",
            "ft:gpt-4o-mini:org::abc",
        ] {
            assert_eq!(tokenizer_for(m), O200k, "{m}");
        }
        for m in [
            "gpt-4",
            "gpt-4-turbo",
            "gpt-4-0613",
            "gpt-3.5-turbo",
            "gpt-3.5-turbo-instruct",
            "gpt-35-turbo",
            "text-embedding-3-small",
            "text-embedding-3-large",
            "text-embedding-ada-002",
            "ft:gpt-3.5-turbo:org::x",
        ] {
            assert_eq!(tokenizer_for(m), Cl100k, "{m}");
        }
        for m in [
            "",
            "claude-sonnet-4-5",
            "o",
            "o10",
            "olmo-7b",
            "gpt-4.7",
            "gpt-40",
            "text-davinci-003",
            "llama-3-70b",
            "é",
        ] {
            assert_eq!(tokenizer_for(m), Bytes, "{m}");
        }
    }

    #[test]
    fn chat_strings_roles_names_and_overheads() {
        let body = json!({"model": "gpt-4o", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "name": "ann", "content": "hello world"},
        ]});
        let expected_bytes = 3 + 2 * 4 + (6 + 9) + (4 + 3 + 1 + 11);
        assert_eq!(bound(ChatCompletions, body.clone(), Bytes), expected_bytes);
        let expected_bpe = 3
            + 2 * 4
            + o200k("system")
            + o200k("Be brief.")
            + o200k("user")
            + o200k("ann")
            + 1
            + o200k("hello world");
        assert_eq!(bound(ChatCompletions, body, O200k), expected_bpe);
    }

    #[test]
    fn chat_parts_images_tools_and_results() {
        let body = json!({"model": "gpt-4.1", "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "high"}},
                {"type": "input_audio", "input_audio": {"data": "x".repeat(10_000), "format": "wav"}},
                {"type": "file", "file": {"file_id": "f1"}},
                {"type": "refusal", "refusal": "no"},
                {"type": "mystery", "payload": {"note": "abc"}},
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get", "arguments": "{\"q\":1}"}},
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ]});
        let media = MEDIA_TOKENS_UPPER_BOUND;
        let expected = 3
            + 3 * 4
            + 4 + 4 + media + 10_000 + media + 2 + (7 + 3) // user (role, look, media, refusal, mystery's strings)
            + 9 + 3 + 3 + 7 + 2 // assistant (role, call, name, args, id)
            + 4 + 2 + 5; // tool (role, id, content)
        assert_eq!(bound(ChatCompletions, body, Bytes), expected);

        let with_tools = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "get", "parameters": {"type": "object"}}}],
            "functions": [{"name": "old"}]});
        let tools_json =
            r#"[{"type":"function","function":{"name":"get","parameters":{"type":"object"}}}]"#;
        let expected = 3
            + 4
            + o200k("user")
            + o200k("hi")
            + 2 * OPENAI_TOOLS_OVERHEAD
            + o200k(tools_json)
            + o200k(r#"[{"name":"old"}]"#);
        assert_eq!(bound(ChatCompletions, with_tools, O200k), expected);
    }

    #[test]
    fn gpt_4o_mini_images_are_dearer() {
        let msg = json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}]);
        let mini = bound(
            ChatCompletions,
            json!({"model": "gpt-4o-mini", "messages": msg}),
            O200k,
        );
        let big = bound(
            ChatCompletions,
            json!({"model": "gpt-4o", "messages": msg}),
            O200k,
        );
        assert_eq!(
            mini - big,
            GPT_4O_MINI_IMAGE_TOKENS - MEDIA_TOKENS_UPPER_BOUND
        );
    }

    #[test]
    fn response_format_schema_is_charged() {
        let base = json!({"messages": [{"role": "user", "content": "x"}]});
        let mut with = base.clone();
        with["response_format"] =
            json!({"type": "json_schema", "json_schema": {"name": "a", "schema": {}}});
        let schema_len = with["response_format"].to_string().len() as u64;
        assert_eq!(
            bound(ChatCompletions, with, Bytes),
            bound(ChatCompletions, base, Bytes) + schema_len
        );
    }

    #[test]
    fn anthropic_system_blocks_tools_and_results() {
        let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 10,
            "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Really."}],
            "messages": [
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "tool_use", "id": "t", "name": "w", "input": {"city": "Paris"}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": [
                        {"type": "text", "text": "rainy"},
                        {"type": "image", "source": {"type": "base64", "data": "AAAA"}},
                    ]},
                    {"type": "document", "source": {"type": "text", "data": "doc text"}, "title": "T"},
                    {"type": "document", "source": {"type": "base64", "data": "P".repeat(9_000)}},
                    {"type": "search_result", "source": "s", "content": [{"type": "text", "text": "found"}]},
                ]},
            ],
            "tools": [{"name": "w", "input_schema": {"type": "object"}}]});
        let media = MEDIA_TOKENS_UPPER_BOUND;
        let tools_len = r#"[{"name":"w","input_schema":{"type":"object"}}]"#.len() as u64;
        let expected = 3
            + 4 + 9 + 7 // system
            + 4 + 4 + 8 // user
            + 4 + 9 + 3 + 3 + 1 + 16 // assistant: role, thinking, tool_use overhead, name, input
            + 4 + 4 // user role
            + 3 + 5 + media // tool_result
            + media + 8 + 1 // text document
            + 9_000 // base64 document: its data is larger than the constant
            + 13 + 1 + 4 + 5 // unknown block: every string
            + ANTHROPIC_TOOLS_OVERHEAD
            + tools_len;
        assert_eq!(bound(Messages, body.clone(), Bytes), expected);
        assert_eq!(bound(CountTokens, body, Bytes), expected);
    }

    #[test]
    fn completions_and_embeddings_shapes() {
        for kind in [Completions, Embeddings] {
            let key = if kind == Completions {
                "prompt"
            } else {
                "input"
            };
            let b = |v: Value| {
                let mut body = Map::new();
                body.insert(key.to_owned(), v);
                input_tokens_upper_bound(kind, &body, Cl100k)
            };
            assert_eq!(b(json!("Say this is a test")), cl100k("Say this is a test"));
            assert_eq!(
                b(json!(["a b", "漢字😀"])),
                cl100k("a b") + cl100k("漢字😀")
            );
            assert_eq!(b(json!([1, 2, 3])), 3);
            assert_eq!(b(json!([[1, 2], [3], []])), 3);
            assert_eq!(b(json!([])), 0);
            for bad in [json!(5), json!({"a": "b"}), json!(null), json!([{}, true])] {
                assert_eq!(b(bad), 0);
            }
        }
        let with_suffix = json!({"prompt": "ab", "suffix": "cd"});
        assert_eq!(bound(Completions, with_suffix, Bytes), 4);
    }

    #[test]
    fn malformed_shapes_are_skipped() {
        let cases = [
            json!({}),
            json!({"messages": "x"}),
            json!({"messages": [1, null, "s", [], {"content": 5}, {"content": [1, null, [{}]]}]}),
            json!({"messages": [{"role": 3, "name": {}, "tool_calls": "x"}]}),
            json!({"messages": [{"tool_calls": [1, {"function": 2}, {"function": {"name": 1}}]}]}),
            json!({"messages": [{"content": [{"type": 1}, {"type": "text", "text": 2}]}]}),
            json!({"system": 4, "messages": [{"content": [{"type": "tool_result", "content": 7}]}]}),
            json!({"system": [1, {"type": "image"}], "messages": [{"content": {"a": 1}}]}),
            json!({"messages": [{"content": [{"type": "document", "source": 3}]}]}),
            json!({"tools": null, "functions": 3, "response_format": "json", "prompt": {}, "input": [null]}),
        ];
        for body in cases {
            for kind in [
                ChatCompletions,
                Completions,
                Embeddings,
                Messages,
                CountTokens,
            ] {
                for t in [O200k, Cl100k, Bytes] {
                    let _ = bound(kind, body.clone(), t);
                }
                let _ = output_tokens_cap(kind, &obj(body.clone()));
                let _ = clamp_max_tokens(kind, &mut obj(body.clone()), 5);
            }
        }
        // Every message costs its overhead even when it is not an object.
        assert_eq!(
            bound(ChatCompletions, json!({"messages": [1, "x"]}), Bytes),
            3 + 2 * 4
        );
    }

    #[test]
    fn pathological_texts_never_panic_and_stay_bounds() {
        // A long stretch of spaces makes tiktoken's pre-tokenizer panic: counted as bytes.
        let spaces = " ".repeat(400_000);
        let n = bound(Embeddings, json!({"input": spaces}), O200k);
        assert_eq!(n, 400_000);
        // Just under the limit it goes through the BPE (and does not panic).
        let edge = format!("{}1", "\u{a0}".repeat(MAX_INLINE_WHITESPACE));
        assert!(!has_long_inline_whitespace(&edge));
        let n = bound(Embeddings, json!({ "input": edge.clone() }), Cl100k);
        assert!(n > 0 && n <= edge.len() as u64, "{n}");
        // Line breaks reset the stretch.
        let lines = format!("{}\n", " ".repeat(MAX_INLINE_WHITESPACE)).repeat(4);
        assert!(!has_long_inline_whitespace(&lines));
        let n = bound(Embeddings, json!({ "input": lines.clone() }), O200k);
        assert_eq!(n, o200k(&lines));
    }

    #[test]
    fn budget_falls_back_to_bytes() {
        let word = "token ".repeat(100_000); // 600 kB
        let body = json!({"input": [word.clone(), word.clone()]});
        let n = bound(Embeddings, body, O200k);
        // The first one fits the budget, the second counts as bytes.
        assert_eq!(n, o200k(&word) + word.len() as u64);
    }

    #[test]
    fn bpe_counts_never_exceed_bytes() {
        for s in [
            "",
            "a",
            "hello world",
            "😀😀😀",
            "漢字かな",
            "  \n\t x",
            "ééé",
        ] {
            assert!(o200k(s) <= s.len() as u64 && cl100k(s) <= s.len() as u64);
        }
    }

    #[test]
    fn output_caps() {
        let cap = |k, v: Value| output_tokens_cap(k, &obj(v));
        let oc = |requested, choices| OutputCap { requested, choices };
        assert_eq!(cap(ChatCompletions, json!({})), oc(None, 1));
        assert_eq!(
            cap(ChatCompletions, json!({"max_tokens": 50, "n": 3})),
            oc(Some(50), 3)
        );
        assert_eq!(
            cap(ChatCompletions, json!({"max_completion_tokens": 20})),
            oc(Some(20), 1)
        );
        assert_eq!(
            cap(
                ChatCompletions,
                json!({"max_completion_tokens": 20, "max_tokens": 70})
            ),
            oc(Some(70), 1)
        );
        assert_eq!(
            cap(
                ChatCompletions,
                json!({"max_tokens": "12", "n": 2.5, "max_completion_tokens": null})
            ),
            oc(Some(12), 3)
        );
        assert_eq!(
            cap(ChatCompletions, json!({"max_tokens": -1, "n": 0})),
            oc(None, 1)
        );
        assert_eq!(cap(Completions, json!({"prompt": "x"})), oc(None, 1));
        assert_eq!(
            cap(
                Completions,
                json!({"prompt": ["a", "b"], "max_tokens": 5, "n": 2, "best_of": 3})
            ),
            oc(Some(5), 6)
        );
        assert_eq!(
            cap(Completions, json!({"prompt": [1, 2, 3], "n": 4})),
            oc(None, 4)
        );
        assert_eq!(
            cap(Completions, json!({"prompt": [[1], [2]], "max_tokens": 0})),
            oc(Some(0), 2)
        );
        assert_eq!(
            cap(Messages, json!({"max_tokens": 1024})),
            oc(Some(1024), 1)
        );
        assert_eq!(cap(Messages, json!({})), oc(None, 1));
        assert_eq!(cap(Embeddings, json!({"max_tokens": 5})), oc(Some(0), 0));
        assert_eq!(cap(CountTokens, json!({})), oc(Some(0), 0));
        assert_eq!(oc(Some(5), 3).total(7), 21);
        assert_eq!(oc(None, u64::MAX).total(2), u64::MAX);
        assert_eq!(parse_count(&json!(1e300)), Some(u64::MAX));
        assert_eq!(parse_count(&json!(" 7 ")), Some(7));
        assert_eq!(parse_count(&json!("7.2")), Some(8));
        assert_eq!(parse_count(&json!("NaN")), None);
        assert_eq!(parse_count(&json!(true)), None);
    }

    #[test]
    fn clamp_sets_or_lowers_never_raises() {
        let clamp = |k, v: Value, max| {
            let mut b = obj(v);
            let r = clamp_max_tokens(k, &mut b, max);
            (r, Value::Object(b))
        };
        // Chat without a cap: `max_tokens`, or `max_completion_tokens` for reasoning models.
        assert_eq!(
            clamp(ChatCompletions, json!({"model": "gpt-4o"}), 100),
            (Some(100), json!({"model": "gpt-4o", "max_tokens": 100}))
        );
        assert_eq!(
            clamp(ChatCompletions, json!({"model": "o3-mini"}), 100),
            (
                Some(100),
                json!({"model": "o3-mini", "max_completion_tokens": 100})
            )
        );
        assert_eq!(
            clamp(ChatCompletions, json!({"max_tokens": null}), 9),
            (Some(9), json!({"max_tokens": 9}))
        );
        // Lower values are kept; larger ones lowered, in whichever fields are set.
        assert_eq!(
            clamp(ChatCompletions, json!({"max_tokens": 50}), 100),
            (None, json!({"max_tokens": 50}))
        );
        assert_eq!(
            clamp(ChatCompletions, json!({"max_completion_tokens": 500}), 100),
            (Some(100), json!({"max_completion_tokens": 100}))
        );
        assert_eq!(
            clamp(
                ChatCompletions,
                json!({"max_completion_tokens": 50, "max_tokens": 500}),
                100
            ),
            (
                Some(100),
                json!({"max_completion_tokens": 50, "max_tokens": 100})
            )
        );
        assert_eq!(
            clamp(ChatCompletions, json!({"max_tokens": "500"}), 100),
            (Some(100), json!({"max_tokens": 100}))
        );
        assert_eq!(
            clamp(ChatCompletions, json!({"max_tokens": {"x": 1}}), 100),
            (Some(100), json!({"max_tokens": 100}))
        );
        assert_eq!(
            clamp(ChatCompletions, json!({"max_tokens": 99.5}), 100),
            (None, json!({"max_tokens": 99.5}))
        );
        // Completions pin OpenAI's default unless the budget allows less.
        assert_eq!(
            clamp(Completions, json!({}), 100),
            (Some(16), json!({"max_tokens": 16}))
        );
        assert_eq!(
            clamp(Completions, json!({}), 5),
            (Some(5), json!({"max_tokens": 5}))
        );
        assert_eq!(
            clamp(Completions, json!({"max_tokens": 0}), 5),
            (None, json!({"max_tokens": 0}))
        );
        assert_eq!(
            clamp(Messages, json!({"max_tokens": 4096}), 1000),
            (Some(1000), json!({"max_tokens": 1000}))
        );
        assert_eq!(
            clamp(Messages, json!({}), 1000),
            (Some(1000), json!({"max_tokens": 1000}))
        );
        assert_eq!(
            clamp(Messages, json!({"max_tokens": 1000}), 1000),
            (None, json!({"max_tokens": 1000}))
        );
        for k in [Embeddings, CountTokens] {
            assert_eq!(
                clamp(k, json!({"input": "x"}), 1),
                (None, json!({"input": "x"}))
            );
        }
        // After a clamp the cap is within bounds.
        for (k, v) in [
            (ChatCompletions, json!({"max_tokens": 900, "n": 2})),
            (ChatCompletions, json!({"model": "gpt-5"})),
            (Completions, json!({"prompt": ["a", "b"], "best_of": 2})),
            (Messages, json!({})),
        ] {
            let mut b = obj(v);
            clamp_max_tokens(k, &mut b, 10);
            let cap = output_tokens_cap(k, &b);
            assert!(cap.requested.is_some_and(|r| r <= 10), "{b:?}");
        }
    }

    /// A typical 1 KB chat request: prints the per-call cost (run with `--nocapture`).
    #[test]
    fn per_call_cost() {
        preload();
        let para = "The quick brown fox jumps over the lazy dog, then checks the weather in Paris \
                    and writes a short summary of what it found for the team. ";
        let body = obj(json!({"model": "gpt-4o", "max_tokens": 256, "messages": [
            {"role": "system", "content": "You are a helpful assistant. Answer briefly and cite sources."},
            {"role": "user", "content": para.repeat(3)},
            {"role": "assistant", "content": "Sure, here is what I found about the weather today."},
            {"role": "user", "content": para.repeat(3)},
        ]}));
        let size = Value::Object(body.clone()).to_string().len();
        let runs = 200u32;
        for t in [O200k, Cl100k, Bytes] {
            let start = std::time::Instant::now();
            let mut sum = 0;
            for _ in 0..runs {
                sum += input_tokens_upper_bound(ChatCompletions, &body, t);
            }
            let per_call = start.elapsed() / runs;
            println!(
                "estimate: {t:?} on a {size}-byte chat body: {per_call:?}/call ({} tokens)",
                sum / u64::from(runs)
            );
        }
    }
}
