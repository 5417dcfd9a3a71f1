//! `count_tokens` for models whose provider has no such endpoint: a local estimate.
//!
//! OpenAI-compatible servers cannot count Anthropic-format prompts, so the gateway estimates
//! with the usual four-characters-a-token rule over every text in the prompt. The estimate is
//! an approximation, not the provider's tokenizer.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::context::RequestCtx;
use starling_wire::api::ApiError;

/// Tokens Anthropic's format adds per message for role markers.
const PER_MESSAGE_OVERHEAD: u64 = 3;

/// Answers `count_tokens` with a local estimate.
pub(super) fn local(_ctx: &RequestCtx, body: &Value) -> Result<Response, ApiError> {
    let mut chars = 0u64;
    for field in ["system", "messages", "tools"] {
        if let Some(v) = body.get(field) {
            count_text(v, &mut chars);
        }
    }
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .map_or(0, |m| m.len() as u64);
    let tokens = chars.div_ceil(4) + messages * PER_MESSAGE_OVERHEAD;
    Ok(Json(json!({ "input_tokens": tokens })).into_response())
}

/// Adds the length of every string in `value` (keys of objects excluded).
fn count_text(value: &Value, chars: &mut u64) {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => *chars += s.chars().count() as u64,
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
}
