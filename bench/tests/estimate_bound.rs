//! The gateway's admission estimate against the mock's ledger, the ground truth of billing.
//!
//! For random chat, messages, count_tokens, completions and embeddings requests (text in many
//! scripts, emoji, repeated characters, long words, long whitespace, tools, tool calls and
//! results, images, several messages and choices, thinking), the estimate must bound what the
//! mock bills: `input_tokens_upper_bound ≥` billed input, and the output cap times the number
//! of choices `≥` billed output. Requests without an output cap are clamped first, as the
//! gateway does. The bounds are checked here, where the mock is.

mod common;

use common::*;
use serde_json::{Map, Value, json};
use starling_bench::mock::tokens::{Encoding, encoding_for};
use starling_governance::estimate::{self, EndpointKind, Tokenizer};

/// Deterministic pseudo-random numbers (SplitMix64), so a failure replays from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// In `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn pick_str(&mut self, items: &[&'static str]) -> &'static str {
        items[self.below(items.len() as u64) as usize]
    }
}

const WORDS: [&str; 12] = [
    "the",
    "weather",
    "Paris",
    "token",
    "ünïcödé",
    "naïve",
    "don't",
    "HTTP/2",
    "—",
    "42",
    "x",
    "résumé",
];
const CJK: [&str; 6] = [
    "漢字",
    "かな",
    "カタカナ",
    "한국어",
    "中文文本",
    "日本語の文",
];
const EMOJI: [&str; 6] = ["😀", "👨‍👩‍👧‍👦", "🇫🇷", "🤖🤖", "👍🏽", "❤️"];
const REPEATED: [&str; 8] = [" ", "\n", "a", "=", "😀", "漢", "\t ", "ab"];

/// A random text of about `len` characters.
fn text(rng: &mut Rng, len: usize) -> String {
    let mut s = String::new();
    while s.chars().count() < len {
        match rng.below(9) {
            0..=2 => {
                s.push_str(rng.pick_str(&WORDS));
                s.push(' ');
            }
            3 => s.push_str(rng.pick_str(&CJK)),
            4 => s.push_str(rng.pick_str(&EMOJI)),
            5 => {
                let r = rng.pick(&REPEATED);
                s.push_str(&r.repeat(rng.range(2, 300) as usize));
            }
            6 => {
                // A long word.
                for _ in 0..rng.range(20, 200) {
                    s.push(char::from(b'a' + rng.below(26) as u8));
                }
            }
            7 => s.push_str(&rng.next().to_string()),
            _ => {
                // Any Unicode scalar value, often from the busy low planes.
                for _ in 0..rng.range(1, 20) {
                    let max = if rng.chance(70) { 0x3000 } else { 0x10_ffff };
                    if let Some(c) = char::from_u32(rng.below(max) as u32) {
                        s.push(c);
                    }
                }
            }
        }
    }
    // Directives are added on purpose only.
    s.replace("[mock:", "[m0ck:")
}

/// A random text of `lo..=hi` characters or so.
fn text_between(rng: &mut Rng, lo: u64, hi: u64) -> String {
    let len = rng.range(lo, hi) as usize;
    text(rng, len)
}

/// Mostly short texts, sometimes long ones, rarely one with a stretch of whitespace long
/// enough to skip the BPE.
fn some_text(rng: &mut Rng) -> String {
    match rng.below(100) {
        0..=69 => text_between(rng, 0, 80),
        70..=96 => text_between(rng, 80, 3000),
        _ => format!(
            "{}{}{}",
            text(rng, 20),
            " ".repeat(rng.range(16_000, 20_000) as usize),
            text(rng, 20)
        ),
    }
}

fn nonempty_text(rng: &mut Rng) -> String {
    let mut s = some_text(rng);
    if s.is_empty() {
        s.push('x');
    }
    s
}

const TOOL_NAMES: [&str; 3] = ["get_weather", "lookup", "send_mail"];

/// Directives that make the mock answer at length, think, or call a tool.
fn directives(rng: &mut Rng, tools: bool) -> String {
    let mut d = format!(" [mock:tokens {}]", rng.range(0, 400));
    if rng.chance(30) {
        d.push_str(" [mock:thinking]");
    }
    if tools && rng.chance(60) {
        for _ in 0..rng.range(1, 3) {
            let args = json!({"q": text_between(rng, 0, 200)});
            d.push_str(&format!(" [mock:call {} {args}]", rng.pick(&TOOL_NAMES)));
        }
    }
    d
}

fn schema(rng: &mut Rng) -> Value {
    json!({"type": "object", "description": text_between(rng, 0, 100),
           "properties": {"q": {"type": "string", "description": text(rng, 30)}}})
}

const IMAGE: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

fn chat_body(rng: &mut Rng, model: &str) -> Value {
    let tools = rng.chance(40);
    let mut messages = Vec::new();
    if rng.chance(50) {
        let role = if rng.chance(50) {
            "system"
        } else {
            "developer"
        };
        messages.push(json!({"role": role, "content": some_text(rng)}));
    }
    for turn in 0..rng.range(1, 4) {
        if turn > 0 {
            let mut a = json!({"role": "assistant", "content": some_text(rng)});
            if tools && rng.chance(50) {
                let id = format!("call_{turn}");
                a["tool_calls"] = json!([{"id": id, "type": "function", "function": {
                    "name": rng.pick(&TOOL_NAMES), "arguments": json!({"q": some_text(rng)}).to_string()}}]);
                messages.push(a);
                messages
                    .push(json!({"role": "tool", "tool_call_id": id, "content": some_text(rng)}));
            } else {
                messages.push(a);
            }
        }
        let mut u = json!({"role": "user"});
        if rng.chance(50) {
            u["content"] = json!(some_text(rng));
        } else {
            let mut parts = Vec::new();
            for _ in 0..rng.range(1, 4) {
                if rng.chance(25) {
                    parts.push(
                        json!({"type": "image_url", "image_url": {"url": IMAGE, "detail": "high"}}),
                    );
                } else {
                    parts.push(json!({"type": "text", "text": some_text(rng)}));
                }
            }
            parts.push(json!({"type": "text", "text": "."}));
            u["content"] = Value::Array(parts);
        }
        if rng.chance(20) {
            u["name"] = json!(format!("user_{}", rng.below(100)));
        }
        messages.push(u);
    }
    // The directives go into the last user message, where the mock reads them.
    let d = directives(rng, tools);
    if let Some(last) = messages.last_mut() {
        match &mut last["content"] {
            Value::String(s) => s.push_str(&d),
            Value::Array(parts) => parts.push(json!({"type": "text", "text": d})),
            _ => {}
        }
    }
    let mut body = json!({"model": model, "messages": messages});
    if tools {
        let defs: Vec<Value> = TOOL_NAMES
            .iter()
            .map(|n| json!({"type": "function", "function": {"name": n, "description": some_text(rng), "parameters": schema(rng)}}))
            .collect();
        body["tools"] = Value::Array(defs);
        if rng.chance(30) {
            body["tool_choice"] = json!("required");
        }
    }
    if rng.chance(40) {
        body["n"] = json!(rng.range(1, 4));
    }
    match rng.below(3) {
        0 => body["max_tokens"] = json!(rng.range(1, 300)),
        1 => body["max_completion_tokens"] = json!(rng.range(1, 300)),
        _ => {}
    }
    if rng.chance(30) {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

fn anthropic_text_blocks(rng: &mut Rng) -> Value {
    let mut blocks = Vec::new();
    for _ in 0..rng.range(1, 3) {
        if rng.chance(25) {
            blocks.push(json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": &IMAGE[22..]}}));
        } else {
            blocks.push(json!({"type": "text", "text": some_text(rng)}));
        }
    }
    Value::Array(blocks)
}

fn messages_body(rng: &mut Rng, model: &str) -> Value {
    let tools = rng.chance(40);
    let mut messages = Vec::new();
    for turn in 0..rng.range(1, 4) {
        if turn > 0 {
            let mut blocks = vec![];
            if rng.chance(20) {
                blocks.push(
                    json!({"type": "thinking", "thinking": some_text(rng), "signature": "c2ln"}),
                );
            }
            blocks.push(json!({"type": "text", "text": nonempty_text(rng)}));
            let call = tools && rng.chance(50);
            let id = format!("toolu_{turn}");
            if call {
                blocks.push(
                    json!({"type": "tool_use", "id": id, "name": rng.pick(&TOOL_NAMES),
                                   "input": {"q": some_text(rng), "n": rng.below(1000)}}),
                );
            }
            messages.push(json!({"role": "assistant", "content": blocks}));
            if call {
                let content = if rng.chance(50) {
                    json!(some_text(rng))
                } else {
                    anthropic_text_blocks(rng)
                };
                messages.push(json!({"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": id, "content": content},
                    {"type": "text", "text": nonempty_text(rng)},
                ]}));
                continue;
            }
        }
        let content = if rng.chance(50) {
            json!(nonempty_text(rng))
        } else {
            anthropic_text_blocks(rng)
        };
        messages.push(json!({"role": "user", "content": content}));
    }
    let d = directives(rng, tools);
    if let Some(last) = messages.last_mut() {
        match &mut last["content"] {
            Value::String(s) => s.push_str(&d),
            Value::Array(blocks) => blocks.push(json!({"type": "text", "text": d})),
            _ => {}
        }
    }
    let mut body = json!({"model": model, "messages": messages});
    match rng.below(3) {
        0 => body["system"] = json!(some_text(rng)),
        1 => body["system"] = json!([{"type": "text", "text": some_text(rng)}]),
        _ => {}
    }
    if tools {
        let defs: Vec<Value> = TOOL_NAMES
            .iter()
            .map(|n| json!({"name": n, "description": some_text(rng), "input_schema": schema(rng)}))
            .collect();
        body["tools"] = Value::Array(defs);
    }
    if rng.chance(20) {
        body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    }
    if rng.chance(80) {
        body["max_tokens"] = json!(rng.range(1, 300));
    }
    if rng.chance(30) {
        body["stream"] = json!(true);
    }
    body
}

fn token_ids(rng: &mut Rng) -> Value {
    Value::Array(
        (0..rng.range(1, 50))
            .map(|_| json!(rng.below(100_000)))
            .collect(),
    )
}

/// A `prompt` or `input`: a string, strings, token ids or arrays of them (never empty).
fn prompt_shape(rng: &mut Rng, directives: &str) -> Value {
    match rng.below(4) {
        0 => json!(format!("{}{directives}", nonempty_text(rng))),
        1 => {
            let mut items: Vec<Value> = (0..rng.range(1, 4))
                .map(|_| json!(nonempty_text(rng)))
                .collect();
            items.push(json!(format!("end{directives}")));
            Value::Array(items)
        }
        2 => token_ids(rng),
        _ => Value::Array((0..rng.range(1, 4)).map(|_| token_ids(rng)).collect()),
    }
}

fn completions_body(rng: &mut Rng, model: &str) -> Value {
    let d = format!(" [mock:tokens {}]", rng.range(0, 100));
    let mut body = json!({"model": model, "prompt": prompt_shape(rng, &d)});
    if rng.chance(60) {
        body["max_tokens"] = json!(rng.range(0, 120));
    }
    if rng.chance(40) {
        let n = rng.range(1, 3);
        body["n"] = json!(n);
        if rng.chance(50) {
            body["best_of"] = json!(n + rng.below(2));
        }
    }
    if rng.chance(20) {
        body["suffix"] = json!(some_text(rng));
    }
    if rng.chance(30) {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

fn embeddings_body(rng: &mut Rng, model: &str) -> Value {
    json!({"model": model, "input": prompt_shape(rng, "")})
}

const CHAT_MODELS: [&str; 10] = [
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-5",
    "o3-mini",
    "gpt-4",
    "gpt-3.5-turbo",
    "claude-sonnet-4-5",
    "claude-3-5-haiku",
    "mystery-model",
];
const COMPLETION_MODELS: [&str; 4] = [
    "gpt-3.5-turbo-instruct",
    "davinci-002",
    "gpt-4o",
    "mystery-model",
];
const EMBEDDING_MODELS: [&str; 4] = [
    "text-embedding-3-small",
    "text-embedding-ada-002",
    "text-embedding-3-large",
    "mystery-embedder",
];

/// What one case checked.
#[derive(Default)]
struct Tally {
    cases: u64,
    billed_input: u64,
    estimated_input: u64,
    billed_output: u64,
    output_bound: u64,
}

#[tokio::test]
async fn estimate_bounds_what_the_mock_bills() {
    const CASES: u64 = 400;
    let m = mock().await;
    let mut tally = Tally::default();
    for seed in 0..CASES {
        let mut rng = Rng(seed);
        let (kind, path, model) = match rng.below(5) {
            0 | 1 => (
                EndpointKind::ChatCompletions,
                "/v1/chat/completions",
                *rng.pick(&CHAT_MODELS),
            ),
            2 => (
                EndpointKind::Messages,
                "/v1/messages",
                *rng.pick(&CHAT_MODELS),
            ),
            3 => (
                EndpointKind::Completions,
                "/v1/completions",
                *rng.pick(&COMPLETION_MODELS),
            ),
            _ => (
                EndpointKind::Embeddings,
                "/v1/embeddings",
                *rng.pick(&EMBEDDING_MODELS),
            ),
        };
        let body = match kind {
            EndpointKind::ChatCompletions => chat_body(&mut rng, model),
            EndpointKind::Messages => messages_body(&mut rng, model),
            EndpointKind::Completions => completions_body(&mut rng, model),
            _ => embeddings_body(&mut rng, model),
        };
        let Value::Object(mut map) = body else {
            unreachable!("bodies are objects")
        };
        // Like the gateway: a request without an output cap gets one.
        if output_cap(kind, &map).requested.is_none() {
            let max = rng.range(1, 200);
            let written = estimate::clamp_max_tokens(kind, &mut map, max);
            assert!(written.is_some_and(|w| w <= max), "{written:?}");
        }
        let tokenizer = estimate::tokenizer_for(model);
        let estimated = estimate::input_tokens_upper_bound(kind, &map, tokenizer);
        let cap = output_cap(kind, &map);
        let body = Value::Object(map.clone());
        let ctx = format!("seed {seed}: {kind:?} {model} {tokenizer:?}");

        m.clear_ledger();
        let r = if kind == EndpointKind::Messages {
            anthropic(m.addr(), path, &body).await
        } else {
            openai(m.addr(), path, &body).await
        };
        assert_eq!(r.status, 200, "{ctx}: {}", r.text());
        let ledger = m.ledger();
        let entry = ledger.first().expect("a ledger entry");
        assert!(
            estimated >= entry.input_tokens,
            "{ctx}: input estimate {estimated} < billed {}",
            entry.input_tokens
        );
        let requested = cap.requested.expect("capped");
        assert!(
            cap.total(requested) >= entry.output_tokens,
            "{ctx}: output cap {requested} × {} < billed {}",
            cap.choices,
            entry.output_tokens
        );
        tally.cases += 1;
        tally.billed_input += entry.input_tokens;
        tally.estimated_input += estimated;
        tally.billed_output += entry.output_tokens;
        tally.output_bound += cap.total(requested);

        // count_tokens counts the same prompt; it bills nothing but reports the number.
        if kind == EndpointKind::Messages {
            map.remove("max_tokens");
            let counted =
                estimate::input_tokens_upper_bound(EndpointKind::CountTokens, &map, tokenizer);
            let r = anthropic(m.addr(), "/v1/messages/count_tokens", &Value::Object(map)).await;
            assert_eq!(r.status, 200, "{ctx}: {}", r.text());
            let reported = r.json()["input_tokens"].as_u64().expect("input_tokens");
            assert_eq!(reported, entry.input_tokens, "{ctx}");
            assert!(counted >= reported, "{ctx}: {counted} < {reported}");
        }
    }
    println!(
        "{} cases: input estimated {} for {} billed, output bound {} for {} billed",
        tally.cases,
        tally.estimated_input,
        tally.billed_input,
        tally.output_bound,
        tally.billed_output
    );
}

fn output_cap(kind: EndpointKind, body: &Map<String, Value>) -> estimate::OutputCap {
    estimate::output_tokens_cap(kind, body)
}

/// The gateway and the mock pick the same tokenizer for a model, or the gateway bounds the
/// mock's pick by bytes.
#[test]
fn estimator_and_mock_agree_on_tokenizers() {
    let models = [
        "gpt-4o",
        "gpt-4o-mini",
        "GPT-4O",
        "chatgpt-4o-latest",
        "gpt-4.1-nano",
        "gpt-4.5-preview",
        "gpt-5",
        "gpt-5.1",
        "gpt-5-mini",
        "o1",
        "o1-mini",
        "o3",
        "o4-mini",
        "gpt-oss-20b",
        "codex-mini-latest",
        "openai/gpt-4o",
        "ft:gpt-4o-mini:org::x",
        "gpt-4",
        "gpt-4-turbo",
        "gpt-3.5-turbo",
        "gpt-3.5-turbo-instruct",
        "gpt-35-turbo",
        "text-embedding-3-small",
        "text-embedding-ada-002",
        "davinci-002",
        "babbage-002",
        "claude-sonnet-4-5",
        "gpt-4.7",
        "o10",
        "",
        "mystery",
    ];
    for m in models {
        let expected = match encoding_for(m) {
            Encoding::O200k => Tokenizer::O200k,
            Encoding::Cl100k => Tokenizer::Cl100k,
            Encoding::CharsOver4 => Tokenizer::Bytes,
        };
        assert_eq!(estimate::tokenizer_for(m), expected, "{m}");
    }
}
