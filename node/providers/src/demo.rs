//! The demo provider: answers OpenAI-format requests from inside the gateway, so a fresh node
//! works end to end with no provider account. Replies echo the prompt; usage counts are
//! estimates (four characters a token).

use bytes::Bytes;
use futures::stream;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use super::UpstreamResponse;
use starling_wire::api::Endpoint;

/// Words of the demo's reply, streamed one per chunk.
const REPLY_PREFIX: &str = "Hello from Starling's demo provider. You said:";

/// Answers `body` as an OpenAI-compatible server would.
pub fn respond(endpoint: Endpoint, model: &str, body: &[u8]) -> UpstreamResponse {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let created = unix_now();
    let prompt = prompt_text(endpoint, &request);
    let input_tokens = estimate_tokens(&prompt);
    match endpoint {
        Endpoint::Embeddings => json_response(embeddings(model, &request, input_tokens)),
        _ => {
            let reply = format!("{REPLY_PREFIX} {}", truncate_words(&prompt, 32));
            let max_tokens = request
                .get("max_completion_tokens")
                .or_else(|| request.get("max_tokens"))
                .and_then(Value::as_u64);
            let (reply, finish) = cap_words(&reply, max_tokens);
            let output_tokens = estimate_tokens(&reply);
            let usage = json!({
                "prompt_tokens": input_tokens,
                "completion_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            });
            let chat = endpoint != Endpoint::Completions;
            if request.get("stream").and_then(Value::as_bool) == Some(true) {
                let include_usage = request
                    .pointer("/stream_options/include_usage")
                    .and_then(Value::as_bool)
                    == Some(true);
                let frames = stream_frames(
                    chat,
                    model,
                    created,
                    &reply,
                    finish,
                    include_usage.then_some(usage),
                );
                sse_response(frames)
            } else if chat {
                json_response(json!({
                    "id": "chatcmpl-demo",
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [{
                        "index": 0,
                        "message": {"role": "assistant", "content": reply, "refusal": null},
                        "logprobs": null,
                        "finish_reason": finish,
                    }],
                    "usage": usage,
                }))
            } else {
                json_response(json!({
                    "id": "cmpl-demo",
                    "object": "text_completion",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "text": reply, "logprobs": null, "finish_reason": finish}],
                    "usage": usage,
                }))
            }
        }
    }
}

fn stream_frames(
    chat: bool,
    model: &str,
    created: u64,
    reply: &str,
    finish: &str,
    usage: Option<Value>,
) -> Vec<Bytes> {
    let usage_field = if usage.is_some() {
        Some(Value::Null)
    } else {
        None
    };
    let chunk = |choice: Value| {
        let mut c = if chat {
            json!({"id": "chatcmpl-demo", "object": "chat.completion.chunk", "created": created,
                   "model": model, "choices": [choice]})
        } else {
            json!({"id": "cmpl-demo", "object": "text_completion", "created": created,
                   "model": model, "choices": [choice]})
        };
        if let (Some(u), Some(obj)) = (&usage_field, c.as_object_mut()) {
            obj.insert("usage".to_owned(), u.clone());
        }
        data_frame(&c)
    };
    let mut frames = Vec::new();
    if chat {
        frames.push(chunk(
            json!({"index": 0, "delta": {"role": "assistant", "content": ""},
                                 "logprobs": null, "finish_reason": null}),
        ));
    }
    for (i, word) in reply.split(' ').enumerate() {
        let piece = if i == 0 {
            word.to_owned()
        } else {
            format!(" {word}")
        };
        frames.push(if chat {
            chunk(json!({"index": 0, "delta": {"content": piece}, "logprobs": null, "finish_reason": null}))
        } else {
            chunk(json!({"index": 0, "text": piece, "logprobs": null, "finish_reason": null}))
        });
    }
    frames.push(if chat {
        chunk(json!({"index": 0, "delta": {}, "logprobs": null, "finish_reason": finish}))
    } else {
        chunk(json!({"index": 0, "text": "", "logprobs": null, "finish_reason": finish}))
    });
    if let Some(usage) = usage {
        let object = if chat {
            "chat.completion.chunk"
        } else {
            "text_completion"
        };
        frames.push(data_frame(
            &json!({"id": "chatcmpl-demo", "object": object, "created": created,
                                       "model": model, "choices": [], "usage": usage}),
        ));
    }
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    frames
}

fn embeddings(model: &str, request: &Value, input_tokens: u64) -> Value {
    let inputs: Vec<String> = match request.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items.iter().map(|v| v.to_string()).collect(),
        _ => Vec::new(),
    };
    let dims = request
        .get("dimensions")
        .and_then(Value::as_u64)
        .unwrap_or(8)
        .clamp(1, 4096) as usize;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| json!({"object": "embedding", "index": i, "embedding": demo_vector(text, dims)}))
        .collect();
    json!({"object": "list", "data": data, "model": model,
           "usage": {"prompt_tokens": input_tokens, "total_tokens": input_tokens}})
}

/// A deterministic unit vector from the text, so equal inputs embed equally.
fn demo_vector(text: &str, dims: usize) -> Vec<f32> {
    let mut state: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        state = (state ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let raw: Vec<f32> = (0..dims)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    let norm = raw
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    raw.into_iter().map(|x| x / norm).collect()
}

fn prompt_text(endpoint: Endpoint, request: &Value) -> String {
    match endpoint {
        Endpoint::Completions => match request.get("prompt") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        },
        Endpoint::Embeddings => request
            .get("input")
            .map(|v| v.to_string())
            .unwrap_or_default(),
        _ => request
            .get("messages")
            .and_then(Value::as_array)
            .and_then(|m| {
                m.iter()
                    .rev()
                    .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            })
            .and_then(|m| m.get("content"))
            .map(|c| match c {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => String::new(),
            })
            .unwrap_or_default(),
    }
}

/// Four characters a token, at least one: the usual rule of thumb for English.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

fn truncate_words(text: &str, words: usize) -> String {
    text.split_whitespace()
        .take(words)
        .collect::<Vec<_>>()
        .join(" ")
}

fn cap_words(reply: &str, max_tokens: Option<u64>) -> (String, &'static str) {
    match max_tokens {
        Some(max) if estimate_tokens(reply) > max => {
            let chars = (max.max(1) * 4) as usize;
            (reply.chars().take(chars).collect(), "length")
        }
        _ => (reply.to_owned(), "stop"),
    }
}

fn data_frame(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

fn json_response(value: Value) -> UpstreamResponse {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = Bytes::from(value.to_string());
    UpstreamResponse {
        status: StatusCode::OK,
        headers,
        body: Box::pin(stream::iter([Ok(body)])),
    }
}

fn sse_response(frames: Vec<Bytes>) -> UpstreamResponse {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    UpstreamResponse {
        status: StatusCode::OK,
        headers,
        body: Box::pin(stream::iter(frames.into_iter().map(Ok))),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
