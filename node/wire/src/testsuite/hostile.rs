//! Generators of hostile JSON for the property tests: objects with the real field names of
//! both APIs (requests, responses, stream events, usage blocks, error bodies), whose values
//! are of the right type most of the time and of any type otherwise, with the numbers and
//! strings that break naive code (`u64::MAX` token counts, negatives, huge floats, numeric
//! strings, very long strings) and nesting up to the request depth limit.

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// The default `server.max_json_depth`: generated bodies stay within it, as the gateway
/// refuses deeper ones before any translator sees them.
pub const MAX_DEPTH: usize = 64;

/// Field names of both APIs, for keys of otherwise random objects.
pub const KEYS: &[&str] = &[
    "model",
    "messages",
    "role",
    "content",
    "type",
    "text",
    "system",
    "tools",
    "tool_choice",
    "tool_calls",
    "tool_call_id",
    "tool_use_id",
    "function",
    "name",
    "arguments",
    "input",
    "input_schema",
    "parameters",
    "description",
    "id",
    "index",
    "image_url",
    "url",
    "source",
    "media_type",
    "data",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "stop_sequences",
    "stream",
    "stream_options",
    "include_usage",
    "temperature",
    "top_p",
    "top_k",
    "n",
    "user",
    "metadata",
    "response_format",
    "json_schema",
    "schema",
    "thinking",
    "budget_tokens",
    "reasoning_effort",
    "reasoning_content",
    "parallel_tool_calls",
    "disable_parallel_tool_use",
    "usage",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "prompt_tokens_details",
    "cached_tokens",
    "cache_write_tokens",
    "prompt_cache_hit_tokens",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "choices",
    "message",
    "delta",
    "finish_reason",
    "stop_reason",
    "stop_sequence",
    "content_block",
    "partial_json",
    "error",
    "code",
    "param",
    "refusal",
    "is_error",
    "signature",
    "prompt",
    "suffix",
    "best_of",
    "encoding_format",
    "dimensions",
    "cache_control",
];

/// Enumerated string values of both APIs, so random objects reach the branches they select.
pub const WORDS: &[&str] = &[
    "user",
    "assistant",
    "system",
    "developer",
    "tool",
    "function",
    "text",
    "image",
    "image_url",
    "input_audio",
    "file",
    "document",
    "tool_use",
    "tool_result",
    "server_tool_use",
    "thinking",
    "redacted_thinking",
    "auto",
    "any",
    "none",
    "required",
    "base64",
    "url",
    "json_object",
    "json_schema",
    "enabled",
    "disabled",
    "message",
    "chat.completion",
    "chat.completion.chunk",
    "stop",
    "length",
    "tool_calls",
    "content_filter",
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "refusal",
    "pause_turn",
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
    "text_delta",
    "input_json_delta",
    "thinking_delta",
    "signature_delta",
    "invalid_request_error",
    "overloaded_error",
    "rate_limit_error",
    "image/png",
    "data:image/png;base64,iVBORw0KGgo=",
    "data:;base64,",
    "data:image/png,",
    "https://example.com/a.png",
    "{\"a\":1}",
    "{",
    "18446744073709551615",
    "18446744073709551616",
    "-1",
    "1e400",
    "NaN",
    "",
];

/// A number that breaks naive arithmetic, or an ordinary one.
pub fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => (0u64..10).prop_map(Value::from),
        2 => Just(Value::from(u64::MAX)),
        1 => Just(Value::from(u64::MAX - 1)),
        1 => Just(Value::from(i64::MAX)),
        1 => Just(Value::from(1u64 << 53)),
        1 => Just(Value::from(u64::from(u32::MAX) + 1)),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => Just(Value::from(i64::MIN)),
        1 => Just(Value::from(-1)),
        1 => prop_oneof![
            Just(1e308),
            Just(-1e308),
            Just(f64::MAX),
            Just(1.8446744073709552e19),
            Just(0.5),
            Just(-0.0),
            Just(f64::MIN_POSITIVE),
            any::<f64>(),
        ]
        .prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
    ]
    .boxed()
}

/// A token count as providers write it, well-formed or not.
pub fn count() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => number(),
        1 => prop_oneof![
            Just("18446744073709551615"),
            Just(" 7 "),
            Just("-5"),
            Just("1e30"),
            Just("x"),
        ]
        .prop_map(Value::from),
        1 => Just(Value::Null),
        1 => Just(Value::Bool(true)),
        1 => Just(serde_json::json!({"n": 1})),
        1 => Just(serde_json::json!([1, 2])),
    ]
    .boxed()
}

/// A token limit: a positive count most of the time.
pub fn limit() -> BoxedStrategy<Value> {
    prop_oneof![3 => (1u64..200_000).prop_map(Value::from), 1 => count()].boxed()
}

/// A string: an API word, short random text, or a very long one.
pub fn string() -> BoxedStrategy<String> {
    prop_oneof![
        4 => proptest::sample::select(WORDS).prop_map(str::to_owned),
        3 => "\\PC{0,24}",
        1 => "[\u{0}-\u{1f}\"\\\\\u{7f}-\u{10ffff}]{0,8}",
        1 => (1usize..=4).prop_map(|k| "é𝄞x ab".repeat(k * 6_000)),
    ]
    .boxed()
}

/// A scalar JSON value.
pub fn scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        3 => number(),
        4 => string().prop_map(Value::String),
    ]
    .boxed()
}

/// A key: a real field name most of the time.
fn key() -> BoxedStrategy<String> {
    prop_oneof![
        5 => proptest::sample::select(KEYS).prop_map(str::to_owned),
        1 => "\\PC{0,12}",
    ]
    .boxed()
}

/// Nesting of `depth` levels around `inner`, alternating arrays and `content` objects (the
/// field translators and estimators descend into).
fn nest(depth: usize, inner: Value) -> Value {
    (0..depth).fold(inner, |v, i| {
        if i % 2 == 0 {
            Value::Array(vec![v])
        } else {
            let mut m = Map::new();
            m.insert("content".into(), v);
            m.insert("type".into(), Value::from("text"));
            Value::Object(m)
        }
    })
}

/// Any JSON value of moderate size, keys mostly real field names, possibly nested deep.
pub fn any_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        8 => scalar(),
        1 => (1usize..MAX_DEPTH - 4, scalar()).prop_map(|(d, v)| nest(d, v)),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .boxed()
}

/// `real`, or now and then (one time in `junk`; never if 0) any value instead.
pub fn or_any(real: BoxedStrategy<Value>, junk: u32) -> BoxedStrategy<Value> {
    if junk == 0 {
        real
    } else {
        prop_oneof![junk.saturating_sub(1).max(1) => real, 1 => any_json()].boxed()
    }
}

/// A JSON string from [`string`].
pub fn str_value() -> BoxedStrategy<Value> {
    string().prop_map(Value::String).boxed()
}

/// A word from `words` as a JSON string.
pub fn word(words: &'static [&'static str]) -> BoxedStrategy<Value> {
    proptest::sample::select(words)
        .prop_map(Value::from)
        .boxed()
}

/// An object with each of `fields` present or absent, its value from its strategy or (one
/// time in `junk`) any value, plus now and then a random extra field. A name starting with
/// `!` is always present; with `?`, rarely.
pub fn object(
    junk: u32,
    fields: Vec<(&'static str, BoxedStrategy<Value>)>,
) -> BoxedStrategy<Value> {
    let parts: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
        .into_iter()
        .map(|(k, s)| {
            let (name, presence) = match k.as_bytes().first() {
                Some(b'!') => (&k[1..], 1.0),
                Some(b'?') => (&k[1..], 0.02),
                _ => (k, 0.6),
            };
            let value = or_any(s, junk);
            if presence >= 1.0 {
                value.prop_map(move |v| Some((name.to_owned(), v))).boxed()
            } else {
                proptest::option::weighted(presence, value)
                    .prop_map(move |v| v.map(|v| (name.to_owned(), v)))
                    .boxed()
            }
        })
        .collect();
    let extra = if junk == 0 { 0.001 } else { 0.2 };
    (
        parts,
        proptest::option::weighted(extra, (key(), any_json())),
    )
        .prop_map(|(parts, extra)| {
            let mut m: Map<String, Value> = parts.into_iter().flatten().collect();
            if let Some((k, v)) = extra {
                m.insert(k, v);
            }
            Value::Object(m)
        })
        .boxed()
}

/// An array of 0 to `max` values of `item` (or, one time in `junk`, any value).
pub fn array(junk: u32, item: BoxedStrategy<Value>, max: usize) -> BoxedStrategy<Value> {
    prop::collection::vec(or_any(item, junk), 0..=max)
        .prop_map(Value::Array)
        .boxed()
}

/// Like [`array`], with at least one element.
pub fn array1(junk: u32, item: BoxedStrategy<Value>, max: usize) -> BoxedStrategy<Value> {
    prop::collection::vec(or_any(item, junk), 1..=max)
        .prop_map(Value::Array)
        .boxed()
}

/// Each of `build`'s shapes at three levels of junk: none (well-formed but for the values),
/// a little, and a lot.
pub fn mixed(build: fn(u32) -> BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![2 => build(0), 2 => build(60), 1 => build(6)].boxed()
}

/// An OpenAI or Anthropic usage block, with hostile counts.
pub fn usage() -> BoxedStrategy<Value> {
    usage_with(20)
}

fn usage_with(j: u32) -> BoxedStrategy<Value> {
    object(
        j,
        vec![
            ("prompt_tokens", count()),
            ("completion_tokens", count()),
            ("total_tokens", count()),
            (
                "prompt_tokens_details",
                object(
                    j,
                    vec![("cached_tokens", count()), ("cache_write_tokens", count())],
                ),
            ),
            ("prompt_cache_hit_tokens", count()),
            ("input_tokens", count()),
            ("output_tokens", count()),
            ("cache_read_input_tokens", count()),
            ("cache_creation_input_tokens", count()),
        ],
    )
}

fn bool_value() -> BoxedStrategy<Value> {
    any::<bool>().prop_map(Value::Bool).boxed()
}

/// A small index most of the time, any count otherwise.
fn index() -> BoxedStrategy<Value> {
    prop_oneof![6 => (0u64..4).prop_map(Value::from), 1 => count()].boxed()
}

const OPENAI_PARTS: &[&str] = &["text", "image_url", "input_audio", "file", "refusal"];
const ANTHROPIC_BLOCKS: &[&str] = &[
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "server_tool_use",
];

fn schema(j: u32) -> BoxedStrategy<Value> {
    object(
        j,
        vec![
            ("type", word(&["object", "string"])),
            ("properties", any_json()),
            ("required", array(j, str_value(), 3)),
        ],
    )
}

fn arguments() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => prop::collection::vec((key(), any_json()), 0..4).prop_map(|kv| {
            Value::String(Value::Object(kv.into_iter().collect()).to_string())
        }),
        1 => any_json().prop_map(|v| Value::String(v.to_string())),
        1 => str_value(),
    ]
    .boxed()
}

fn openai_tool_call(j: u32) -> BoxedStrategy<Value> {
    object(
        j,
        vec![
            ("!id", str_value()),
            ("!type", word(&["function"])),
            ("index", index()),
            (
                "!function",
                object(j, vec![("!name", str_value()), ("!arguments", arguments())]),
            ),
        ],
    )
}

/// A URL or data URL, well-formed or not.
fn url_value() -> BoxedStrategy<Value> {
    prop_oneof![
        2 => "[A-Za-z0-9+/]{0,40}={0,2}".prop_map(|d| Value::from(format!("data:image/png;base64,{d}"))),
        1 => "[a-z/+.;=-]{0,20}".prop_map(|m| Value::from(format!("data:{m},"))),
        1 => Just(Value::from("https://example.com/a.png")),
        1 => str_value(),
    ]
    .boxed()
}

fn typed(
    j: u32,
    kind: &'static str,
    mut fields: Vec<(&'static str, BoxedStrategy<Value>)>,
) -> BoxedStrategy<Value> {
    fields.insert(0, ("!type", Just(Value::from(kind)).boxed()));
    object(j, fields)
}

fn openai_content_part(j: u32) -> BoxedStrategy<Value> {
    prop_oneof![
        4 => typed(j, "text", vec![("!text", str_value()), ("?cache_control", any_json())]),
        2 => typed(j, "image_url", vec![(
            "!image_url",
            object(j, vec![("!url", url_value()), ("detail", word(&["auto", "low", "high"]))]),
        )]),
        1 => typed(j, "input_audio", vec![(
            "!input_audio",
            object(j, vec![("!data", str_value()), ("!format", word(&["wav", "mp3"]))]),
        )]),
        1 => typed(j, "file", vec![(
            "!file",
            object(j, vec![("file_data", url_value()), ("filename", str_value()), ("file_id", str_value())]),
        )]),
        1 => typed(j, "refusal", vec![("!refusal", str_value())]),
        1 => object(j, vec![("!type", word(OPENAI_PARTS)), ("text", str_value())]),
    ]
    .boxed()
}

fn openai_message(j: u32) -> BoxedStrategy<Value> {
    let text_parts = || typed(j, "text", vec![("!text", str_value())]);
    let content = |parts: BoxedStrategy<Value>| {
        prop_oneof![2 => str_value(), 2 => array(j, parts, 4)].boxed()
    };
    prop_oneof![
        4 => object(j, vec![
            ("!role", word(&["user"])),
            ("!content", content(openai_content_part(j))),
            ("name", str_value()),
        ]),
        3 => object(j, vec![
            ("!role", word(&["assistant"])),
            (
                "content",
                prop_oneof![
                    content(prop_oneof![text_parts(), typed(j, "refusal", vec![("!refusal", str_value())])].boxed()),
                    Just(Value::Null).boxed(),
                ]
                .boxed(),
            ),
            ("tool_calls", array(j, openai_tool_call(j), 3)),
            ("refusal", str_value()),
            ("reasoning_content", str_value()),
        ]),
        1 => object(j, vec![
            ("!role", word(&["system", "developer"])),
            ("!content", content(text_parts())),
        ]),
        2 => object(j, vec![
            ("!role", word(&["tool"])),
            ("!tool_call_id", str_value()),
            ("!content", content(text_parts())),
        ]),
        1 => object(j, vec![
            ("!role", word(&["user", "assistant", "system", "developer", "tool", "function"])),
            ("content", content(openai_content_part(j))),
            ("tool_calls", array(j, openai_tool_call(j), 3)),
            ("tool_call_id", str_value()),
        ]),
    ]
    .boxed()
}

fn openai_tool(j: u32) -> BoxedStrategy<Value> {
    object(
        j,
        vec![
            ("!type", word(&["function"])),
            (
                "!function",
                object(
                    j,
                    vec![
                        ("!name", str_value()),
                        ("description", str_value()),
                        ("parameters", schema(j)),
                        ("strict", bool_value()),
                    ],
                ),
            ),
        ],
    )
}

/// An OpenAI chat completions request.
pub fn chat_request() -> BoxedStrategy<Value> {
    mixed(chat_request_with)
}

fn chat_request_with(j: u32) -> BoxedStrategy<Value> {
    object(
        j,
        vec![
            ("!model", str_value()),
            ("!messages", array1(j, openai_message(j), 6)),
            ("max_tokens", limit()),
            ("max_completion_tokens", limit()),
            ("?n", count()),
            ("temperature", number()),
            ("top_p", number()),
            (
                "stop",
                prop_oneof![str_value(), array(j, str_value(), 5)].boxed(),
            ),
            ("stream", bool_value()),
            (
                "stream_options",
                object(j, vec![("include_usage", bool_value())]),
            ),
            ("tools", array(j, openai_tool(j), 3)),
            (
                "tool_choice",
                prop_oneof![
                    word(&["auto", "none", "required"]),
                    object(
                        j,
                        vec![
                            ("!type", word(&["function"])),
                            ("!function", object(j, vec![("!name", str_value())])),
                        ],
                    ),
                ]
                .boxed(),
            ),
            ("parallel_tool_calls", bool_value()),
            (
                "response_format",
                object(
                    j,
                    vec![
                        ("!type", word(&["text", "json_object", "json_schema"])),
                        (
                            "json_schema",
                            object(j, vec![("!name", str_value()), ("schema", schema(j))]),
                        ),
                    ],
                ),
            ),
            (
                "reasoning_effort",
                word(&["low", "medium", "high", "minimal"]),
            ),
            ("user", str_value()),
            ("metadata", any_json()),
            ("?functions", any_json()),
        ],
    )
}

fn anthropic_source(j: u32) -> BoxedStrategy<Value> {
    object(
        j,
        vec![
            ("!type", word(&["base64", "url", "text", "content"])),
            (
                "media_type",
                word(&["image/png", "application/pdf", "text/plain"]),
            ),
            ("data", str_value()),
            ("url", str_value()),
        ],
    )
}

fn anthropic_text_block(j: u32) -> BoxedStrategy<Value> {
    typed(
        j,
        "text",
        vec![("!text", str_value()), ("?cache_control", any_json())],
    )
}

fn anthropic_block(j: u32) -> BoxedStrategy<Value> {
    prop_oneof![
        4 => anthropic_text_block(j),
        1 => typed(j, "image", vec![("!source", anthropic_source(j))]),
        1 => typed(j, "document", vec![("!source", anthropic_source(j)), ("title", str_value())]),
        2 => typed(j, "tool_use", vec![
            ("!id", str_value()),
            ("!name", str_value()),
            ("!input", any_json()),
        ]),
        2 => typed(j, "tool_result", vec![
            ("!tool_use_id", str_value()),
            (
                "content",
                prop_oneof![str_value(), array(j, anthropic_text_block(j), 3), any_json()].boxed(),
            ),
            ("is_error", bool_value()),
        ]),
        1 => typed(j, "thinking", vec![("!thinking", str_value()), ("signature", str_value())]),
        1 => typed(j, "redacted_thinking", vec![("!data", str_value())]),
        1 => object(j, vec![("!type", word(ANTHROPIC_BLOCKS)), ("text", str_value()), ("input", any_json())]),
    ]
    .boxed()
}

fn anthropic_message(j: u32) -> BoxedStrategy<Value> {
    let user_block = prop_oneof![
        4 => anthropic_text_block(j),
        1 => typed(j, "image", vec![("!source", anthropic_source(j))]),
        1 => typed(j, "document", vec![("!source", anthropic_source(j)), ("title", str_value())]),
        2 => typed(j, "tool_result", vec![
            ("!tool_use_id", str_value()),
            (
                "content",
                prop_oneof![str_value(), array(j, anthropic_text_block(j), 3), any_json()].boxed(),
            ),
            ("is_error", bool_value()),
        ]),
    ]
    .boxed();
    let assistant_block = prop_oneof![
        4 => anthropic_text_block(j),
        2 => typed(j, "tool_use", vec![
            ("!id", str_value()),
            ("!name", str_value()),
            ("!input", any_json()),
        ]),
        1 => typed(j, "thinking", vec![("!thinking", str_value()), ("signature", str_value())]),
        1 => typed(j, "redacted_thinking", vec![("!data", str_value())]),
    ]
    .boxed();
    prop_oneof![
        3 => object(j, vec![
            ("!role", word(&["user"])),
            ("!content", prop_oneof![str_value(), array(j, user_block, 4)].boxed()),
        ]),
        3 => object(j, vec![
            ("!role", word(&["assistant"])),
            ("!content", prop_oneof![str_value(), array(j, assistant_block, 4)].boxed()),
        ]),
        1 => object(j, vec![
            ("!role", word(&["user", "assistant", "system"])),
            ("!content", prop_oneof![str_value(), array(j, anthropic_block(j), 4)].boxed()),
        ]),
    ]
    .boxed()
}

/// An Anthropic messages request.
pub fn messages_request() -> BoxedStrategy<Value> {
    mixed(messages_request_with)
}

fn messages_request_with(j: u32) -> BoxedStrategy<Value> {
    object(
        j,
        vec![
            ("!model", str_value()),
            ("!messages", array1(j, anthropic_message(j), 6)),
            (
                "system",
                prop_oneof![str_value(), array(j, anthropic_text_block(j), 3)].boxed(),
            ),
            ("!max_tokens", limit()),
            ("temperature", number()),
            ("top_p", number()),
            ("top_k", count()),
            ("stop_sequences", array(j, str_value(), 4)),
            ("stream", bool_value()),
            (
                "tools",
                array(
                    j,
                    object(
                        j,
                        vec![
                            ("!name", str_value()),
                            ("description", str_value()),
                            ("!input_schema", schema(j)),
                            ("?type", str_value()),
                        ],
                    ),
                    3,
                ),
            ),
            (
                "tool_choice",
                object(
                    j,
                    vec![
                        ("!type", word(&["auto", "any", "tool", "none"])),
                        ("name", str_value()),
                        ("disable_parallel_tool_use", bool_value()),
                    ],
                ),
            ),
            (
                "thinking",
                object(
                    j,
                    vec![
                        ("!type", word(&["enabled", "disabled"])),
                        ("budget_tokens", count()),
                    ],
                ),
            ),
            ("metadata", object(j, vec![("user_id", str_value())])),
        ],
    )
}

/// An OpenAI legacy completions or embeddings request.
pub fn completions_or_embeddings_request() -> BoxedStrategy<Value> {
    mixed(|j| {
        let prompt = || {
            prop_oneof![
                str_value(),
                array(j, str_value(), 4),
                array(j, number(), 4),
                array(j, array(j, number(), 4), 3),
            ]
            .boxed()
        };
        object(
            j,
            vec![
                ("!model", str_value()),
                ("prompt", prompt()),
                ("input", prompt()),
                ("suffix", str_value()),
                ("max_tokens", limit()),
                ("n", count()),
                ("best_of", count()),
                ("dimensions", count()),
                ("encoding_format", word(&["float", "base64"])),
            ],
        )
    })
}

fn error_object(j: u32) -> BoxedStrategy<Value> {
    object(
        j,
        vec![
            ("!message", str_value()),
            ("type", str_value()),
            ("code", prop_oneof![str_value(), number()].boxed()),
            ("param", str_value()),
        ],
    )
}

/// An OpenAI chat completions response (non-streaming).
pub fn chat_response() -> BoxedStrategy<Value> {
    mixed(|j| {
        object(
            j,
            vec![
                ("!id", str_value()),
                ("object", word(&["chat.completion"])),
                ("created", number()),
                ("model", str_value()),
                (
                    "!choices",
                    array(
                        j,
                        object(
                            j,
                            vec![
                                ("index", index()),
                                (
                                    "!message",
                                    object(
                                        j,
                                        vec![
                                            ("role", word(&["assistant"])),
                                            ("content", str_value()),
                                            ("refusal", str_value()),
                                            ("reasoning_content", str_value()),
                                            ("tool_calls", array(j, openai_tool_call(j), 3)),
                                        ],
                                    ),
                                ),
                                (
                                    "finish_reason",
                                    word(&["stop", "length", "tool_calls", "content_filter", "x"]),
                                ),
                            ],
                        ),
                        2,
                    ),
                ),
                ("usage", usage_with(j)),
                ("?error", error_object(j)),
            ],
        )
    })
}

/// An Anthropic messages response (non-streaming).
pub fn messages_response() -> BoxedStrategy<Value> {
    mixed(|j| {
        object(
            j,
            vec![
                ("!id", str_value()),
                ("!type", word(&["message"])),
                ("role", word(&["assistant"])),
                ("model", str_value()),
                ("!content", array(j, anthropic_block(j), 5)),
                (
                    "stop_reason",
                    word(&[
                        "end_turn",
                        "max_tokens",
                        "stop_sequence",
                        "tool_use",
                        "refusal",
                        "pause_turn",
                    ]),
                ),
                ("stop_sequence", str_value()),
                ("usage", usage_with(j)),
                ("?error", error_object(j)),
            ],
        )
    })
}

/// An error body of either API.
pub fn error_body() -> BoxedStrategy<Value> {
    mixed(|j| {
        object(
            j,
            vec![
                ("type", word(&["error"])),
                ("error", error_object(j)),
                ("message", str_value()),
            ],
        )
    })
}

const ANTHROPIC_EVENTS: &[&str] = &[
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
];

/// The data of an Anthropic stream event.
pub fn anthropic_event() -> BoxedStrategy<Value> {
    mixed(|j| {
        object(
            j,
            vec![
                ("!type", word(ANTHROPIC_EVENTS)),
                ("index", index()),
                (
                    "message",
                    object(
                        j,
                        vec![
                            ("id", str_value()),
                            ("model", str_value()),
                            ("role", word(&["assistant"])),
                            ("content", array(j, anthropic_block(j), 1)),
                            ("usage", usage_with(j)),
                        ],
                    ),
                ),
                ("content_block", anthropic_block(j)),
                (
                    "delta",
                    object(
                        j,
                        vec![
                            (
                                "type",
                                word(&[
                                    "text_delta",
                                    "input_json_delta",
                                    "thinking_delta",
                                    "signature_delta",
                                    "citations_delta",
                                ]),
                            ),
                            ("text", str_value()),
                            ("partial_json", str_value()),
                            ("thinking", str_value()),
                            ("signature", str_value()),
                            ("stop_reason", word(&["end_turn", "tool_use", "max_tokens"])),
                            ("stop_sequence", str_value()),
                        ],
                    ),
                ),
                ("usage", usage_with(j)),
                ("?error", error_object(j)),
            ],
        )
    })
}

/// The data of an OpenAI stream chunk.
pub fn openai_chunk() -> BoxedStrategy<Value> {
    mixed(|j| {
        let tool_call = object(
            j,
            vec![
                ("index", index()),
                ("id", str_value()),
                ("type", word(&["function"])),
                (
                    "function",
                    object(j, vec![("name", str_value()), ("arguments", str_value())]),
                ),
            ],
        );
        object(
            j,
            vec![
                ("id", str_value()),
                ("object", word(&["chat.completion.chunk"])),
                ("model", str_value()),
                (
                    "!choices",
                    array(
                        j,
                        object(
                            j,
                            vec![
                                ("index", index()),
                                (
                                    "delta",
                                    object(
                                        j,
                                        vec![
                                            ("role", word(&["assistant"])),
                                            ("content", str_value()),
                                            ("reasoning_content", str_value()),
                                            ("refusal", str_value()),
                                            ("tool_calls", array(j, tool_call, 2)),
                                        ],
                                    ),
                                ),
                                (
                                    "finish_reason",
                                    word(&["stop", "length", "tool_calls", "content_filter"]),
                                ),
                            ],
                        ),
                        2,
                    ),
                ),
                ("usage", usage_with(j)),
                ("?error", error_object(j)),
            ],
        )
    })
}

/// Which content block a generated stream carries.
#[derive(Clone, Copy, Debug)]
enum BlockKind {
    Text,
    Thinking,
    Tool,
}

fn block_kind() -> impl Strategy<Value = BlockKind> {
    prop_oneof![
        Just(BlockKind::Text),
        Just(BlockKind::Thinking),
        Just(BlockKind::Tool)
    ]
}

/// Replaces some events of a well-formed stream with generated ones and maybe cuts it
/// short, so the translators see both the grammar and every way to break it.
fn mutate(
    events: impl Strategy<Value = Vec<Value>> + 'static,
    replacement: BoxedStrategy<Value>,
) -> BoxedStrategy<Vec<Value>> {
    (
        events,
        prop::collection::vec((any::<prop::sample::Index>(), replacement), 0..3),
        proptest::option::weighted(0.2, any::<prop::sample::Index>()),
    )
        .prop_map(|(mut evs, swaps, cut)| {
            if !evs.is_empty() {
                for (i, v) in swaps {
                    let at = i.index(evs.len());
                    evs[at] = v;
                }
            }
            if let Some(cut) = cut {
                evs.truncate(cut.index(evs.len() + 1));
            }
            evs
        })
        .boxed()
}

/// An Anthropic stream's event payloads: `message_start`, blocks with their deltas,
/// `message_delta`, `message_stop`, with generated values (hostile usage counts, long
/// strings...) and now and then an event replaced or the stream cut.
pub fn anthropic_stream() -> BoxedStrategy<Vec<Value>> {
    let delta = |kind: BlockKind, text: String| match kind {
        BlockKind::Text => serde_json::json!({"type": "text_delta", "text": text}),
        BlockKind::Thinking => serde_json::json!({"type": "thinking_delta", "thinking": text}),
        BlockKind::Tool => serde_json::json!({"type": "input_json_delta", "partial_json": text}),
    };
    let block = (
        block_kind(),
        string(),
        string(),
        prop::collection::vec(string(), 0..4),
    );
    let events = (
        string(),
        usage(),
        prop::collection::vec(block, 0..4),
        word(&[
            "end_turn",
            "tool_use",
            "max_tokens",
            "stop_sequence",
            "refusal",
        ]),
        usage(),
    )
        .prop_map(move |(model, start_usage, blocks, stop, end_usage)| {
            let mut evs = vec![serde_json::json!({"type": "message_start", "message": {
                "id": "msg_1", "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": null, "usage": start_usage}})];
            for (i, (kind, id, name, texts)) in blocks.into_iter().enumerate() {
                let content_block = match kind {
                    BlockKind::Text => serde_json::json!({"type": "text", "text": ""}),
                    BlockKind::Thinking => serde_json::json!({"type": "thinking", "thinking": ""}),
                    BlockKind::Tool => {
                        serde_json::json!({"type": "tool_use", "id": id, "name": name, "input": {}})
                    }
                };
                evs.push(
                    serde_json::json!({"type": "content_block_start", "index": i,
                    "content_block": content_block}),
                );
                for text in texts {
                    evs.push(
                        serde_json::json!({"type": "content_block_delta", "index": i,
                        "delta": delta(kind, text)}),
                    );
                }
                evs.push(serde_json::json!({"type": "content_block_stop", "index": i}));
            }
            evs.push(serde_json::json!({"type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": end_usage}));
            evs.push(serde_json::json!({"type": "message_stop"}));
            evs
        });
    mutate(events, anthropic_event())
}

/// An OpenAI stream's chunk payloads: the role chunk, content, reasoning and tool-call
/// deltas, the finish chunk, the usage chunk and `[DONE]` (as the string), with generated
/// values and now and then a chunk replaced or the stream cut.
pub fn openai_stream() -> BoxedStrategy<Vec<Value>> {
    let chunk = |delta: Value, finish: Value| {
        serde_json::json!({"id": "c1", "object": "chat.completion.chunk", "created": 1,
            "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let piece = (block_kind(), index(), string(), string(), string());
    let events = (
        prop::collection::vec(piece, 0..8),
        word(&["stop", "length", "tool_calls", "content_filter"]),
        usage(),
    )
        .prop_map(move |(pieces, finish, usage)| {
            let mut evs = vec![chunk(
                serde_json::json!({"role": "assistant", "content": ""}),
                Value::Null,
            )];
            for (kind, index, id, name, text) in pieces {
                let delta = match kind {
                    BlockKind::Text => serde_json::json!({"content": text}),
                    BlockKind::Thinking => serde_json::json!({"reasoning_content": text}),
                    BlockKind::Tool => serde_json::json!({"tool_calls": [{"index": index,
                        "id": id, "type": "function",
                        "function": {"name": name, "arguments": text}}]}),
                };
                evs.push(chunk(delta, Value::Null));
            }
            evs.push(chunk(serde_json::json!({}), finish));
            evs.push(
                serde_json::json!({"id": "c1", "object": "chat.completion.chunk",
                "choices": [], "usage": usage}),
            );
            evs.push(Value::from("[DONE]"));
            evs
        });
    mutate(events, openai_chunk())
}

/// A request body of any endpoint (chat, messages, completions, embeddings) or any JSON.
pub fn any_request() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => chat_request(),
        3 => messages_request(),
        1 => completions_or_embeddings_request(),
        1 => any_json(),
    ]
    .boxed()
}
