//! Model listing: `GET /v1/models` and `GET /v1/models/{id}`, in OpenAI's format, or in
//! Anthropic's when the request carries `anthropic-version` (both APIs use the same path).

use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::errors::{ApiError, Flavor};
use super::http::{Resp, header, json as json_resp, to_json};
use super::ids::{anthropic_id, openai_id};

/// Models the mock advertises, with their owner.
const MODELS: [(&str, &str); 16] = [
    ("gpt-5", "system"),
    ("gpt-5-mini", "system"),
    ("gpt-4.1", "system"),
    ("gpt-4.1-mini", "system"),
    ("gpt-4o", "system"),
    ("gpt-4o-mini", "system"),
    ("gpt-3.5-turbo-instruct", "system"),
    ("o3-mini", "system"),
    ("text-embedding-3-small", "system"),
    ("text-embedding-3-large", "system"),
    ("text-embedding-ada-002", "openai-internal"),
    ("claude-opus-4-5", "anthropic"),
    ("claude-sonnet-4-5", "anthropic"),
    ("claude-haiku-4-5", "anthropic"),
    ("claude-sonnet-4", "anthropic"),
    ("claude-3-5-haiku", "anthropic"),
];

/// Fixed creation time so listings are stable.
const CREATED: u64 = 1_715_367_049;

fn flavor(headers: &HeaderMap) -> Flavor {
    if header(headers, "anthropic-version").is_some() {
        Flavor::Anthropic
    } else {
        Flavor::OpenAi
    }
}

fn auth(headers: &HeaderMap, flavor: Flavor) -> Result<(), ApiError> {
    let bearer = header(headers, "authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let key = match flavor {
        Flavor::Anthropic => header(headers, "x-api-key")
            .filter(|k| !k.is_empty())
            .or(bearer),
        _ => bearer,
    };
    let ok = key.is_some_and(|k| !k.contains("invalid"));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(401, "Missing or invalid API key.").code("invalid_api_key"))
    }
}

fn openai_model(id: &str, owner: &str) -> Value {
    json!({"id": id, "object": "model", "created": CREATED, "owned_by": owner})
}

fn anthropic_model(id: &str) -> Value {
    json!({"type": "model", "id": id, "display_name": id, "created_at": "2025-09-29T00:00:00Z"})
}

fn request_id(flavor: Flavor) -> String {
    match flavor {
        Flavor::Anthropic => anthropic_id("req_"),
        _ => openai_id("req_"),
    }
}

/// `GET /v1/models`.
pub(crate) fn list(headers: &HeaderMap) -> Resp {
    let flavor = flavor(headers);
    let rid = request_id(flavor);
    if let Err(e) = auth(headers, flavor) {
        return e.render(flavor, &rid);
    }
    let body = match flavor {
        Flavor::Anthropic => {
            let data: Vec<Value> = MODELS
                .iter()
                .filter(|(id, _)| id.starts_with("claude"))
                .map(|(id, _)| anthropic_model(id))
                .collect();
            let first = data
                .first()
                .and_then(|m| m.get("id"))
                .cloned()
                .unwrap_or(Value::Null);
            let last = data
                .last()
                .and_then(|m| m.get("id"))
                .cloned()
                .unwrap_or(Value::Null);
            json!({"data": data, "has_more": false, "first_id": first, "last_id": last})
        }
        _ => json!({
            "object": "list",
            "data": MODELS.iter().map(|(id, owner)| openai_model(id, owner)).collect::<Vec<_>>(),
        }),
    };
    json_resp(StatusCode::OK, flavor.headers(&rid), to_json(&body))
}

/// `GET /v1/models/{id}`: known ids and their dated snapshots.
pub(crate) fn get(headers: &HeaderMap, id: &str) -> Resp {
    let flavor = flavor(headers);
    let rid = request_id(flavor);
    if let Err(e) = auth(headers, flavor) {
        return e.render(flavor, &rid);
    }
    match MODELS
        .iter()
        .find(|(m, _)| id == *m || id.starts_with(&format!("{m}-")))
    {
        Some((_, owner)) => {
            let body = match flavor {
                Flavor::Anthropic => anthropic_model(id),
                _ => openai_model(id, owner),
            };
            json_resp(StatusCode::OK, flavor.headers(&rid), to_json(&body))
        }
        None => ApiError::new(
            404,
            format!("The model '{id}' does not exist or you do not have access to it."),
        )
        .code("model_not_found")
        .render(flavor, &rid),
    }
}
