//! Type checks of the request fields the gateway relies on, per endpoint.
//!
//! The gateway forwards bodies, so it does not re-implement each provider's full schema. It
//! checks the fields it reads or rewrites, and the common ones whose wrong type would otherwise
//! come back from the provider as a less helpful error. Every failure names the field.

use serde_json::{Map, Value};

use super::{ApiError, Endpoint};

/// What the gateway needs to know about a request before routing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMeta {
    /// The model name the client asked for.
    pub model: String,
    /// Whether the client asked for an SSE stream.
    pub stream: bool,
    /// Whether an OpenAI client asked for the usage chunk at the end of a stream.
    pub include_usage: bool,
    /// The client's output-token cap, if any.
    pub max_tokens: Option<u64>,
}

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bool,
    Int,
    Num,
    Arr,
    Obj,
    StrOrArr,
    StrOrObj,
}

impl Ty {
    fn accepts(self, v: &Value) -> bool {
        match self {
            Ty::Str => v.is_string(),
            Ty::Bool => v.is_boolean(),
            Ty::Int => v.is_u64() || v.is_i64(),
            Ty::Num => v.is_number(),
            Ty::Arr => v.is_array(),
            Ty::Obj => v.is_object(),
            Ty::StrOrArr => v.is_string() || v.is_array(),
            Ty::StrOrObj => v.is_string() || v.is_object(),
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Ty::Str => "a string",
            Ty::Bool => "a boolean",
            Ty::Int => "an integer",
            Ty::Num => "a number",
            Ty::Arr => "an array",
            Ty::Obj => "an object",
            Ty::StrOrArr => "a string or an array",
            Ty::StrOrObj => "a string or an object",
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(path: &str, ty: Ty, v: &Value) -> ApiError {
    ApiError::invalid_field(
        path,
        format!("expected {}, got {}", ty.expected(), type_name(v)),
    )
}

/// Checks optional fields; `null` counts as absent, as the providers treat it.
fn optional(obj: &Map<String, Value>, fields: &[(&str, Ty)]) -> Result<(), ApiError> {
    for (name, ty) in fields {
        if let Some(v) = obj.get(*name)
            && !v.is_null()
            && !ty.accepts(v)
        {
            return Err(wrong_type(name, *ty, v));
        }
    }
    Ok(())
}

fn required<'a>(obj: &'a Map<String, Value>, name: &str, ty: Ty) -> Result<&'a Value, ApiError> {
    match obj.get(name) {
        None | Some(Value::Null) => Err(ApiError::invalid_field(name, "this field is required")),
        Some(v) if ty.accepts(v) => Ok(v),
        Some(v) => Err(wrong_type(name, ty, v)),
    }
}

fn non_negative_int(obj: &Map<String, Value>, name: &str) -> Result<Option<u64>, ApiError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| ApiError::invalid_field(name, "expected a non-negative integer")),
    }
}

fn messages(obj: &Map<String, Value>, allow_empty: bool) -> Result<(), ApiError> {
    let list = required(obj, "messages", Ty::Arr)?;
    let items = list.as_array().map(Vec::as_slice).unwrap_or_default();
    if items.is_empty() && !allow_empty {
        return Err(ApiError::invalid_field(
            "messages",
            "must contain at least one message",
        ));
    }
    for (i, message) in items.iter().enumerate() {
        let Some(m) = message.as_object() else {
            return Err(wrong_type(&format!("messages[{i}]"), Ty::Obj, message));
        };
        match m.get("role") {
            Some(Value::String(_)) => {}
            Some(v) => return Err(wrong_type(&format!("messages[{i}].role"), Ty::Str, v)),
            None => {
                return Err(ApiError::invalid_field(
                    format!("messages[{i}].role"),
                    "this field is required",
                ));
            }
        }
        if let Some(content) = m.get("content")
            && !content.is_null()
            && !Ty::StrOrArr.accepts(content)
        {
            return Err(wrong_type(
                &format!("messages[{i}].content"),
                Ty::StrOrArr,
                content,
            ));
        }
    }
    Ok(())
}

fn array_of_objects(obj: &Map<String, Value>, name: &str) -> Result<(), ApiError> {
    if let Some(Value::Array(items)) = obj.get(name) {
        for (i, item) in items.iter().enumerate() {
            if !item.is_object() {
                return Err(wrong_type(&format!("{name}[{i}]"), Ty::Obj, item));
            }
        }
    }
    Ok(())
}

/// Checks `body` for `endpoint` and extracts what routing needs.
pub fn validate(endpoint: Endpoint, body: &Map<String, Value>) -> Result<RequestMeta, ApiError> {
    let model = required(body, "model", Ty::Str)?
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if model.is_empty() {
        return Err(ApiError::invalid_field("model", "must not be empty"));
    }
    let common = [
        ("stream", Ty::Bool),
        ("temperature", Ty::Num),
        ("top_p", Ty::Num),
        ("user", Ty::Str),
        ("metadata", Ty::Obj),
    ];
    optional(body, &common)?;
    match endpoint {
        Endpoint::ChatCompletions => {
            messages(body, false)?;
            optional(
                body,
                &[
                    ("stream_options", Ty::Obj),
                    ("n", Ty::Int),
                    ("stop", Ty::StrOrArr),
                    ("tools", Ty::Arr),
                    ("tool_choice", Ty::StrOrObj),
                    ("parallel_tool_calls", Ty::Bool),
                    ("response_format", Ty::Obj),
                    ("logprobs", Ty::Bool),
                    ("top_logprobs", Ty::Int),
                    ("presence_penalty", Ty::Num),
                    ("frequency_penalty", Ty::Num),
                    ("seed", Ty::Int),
                    ("logit_bias", Ty::Obj),
                ],
            )?;
            array_of_objects(body, "tools")?;
        }
        Endpoint::Completions => {
            required(body, "prompt", Ty::StrOrArr)?;
            optional(
                body,
                &[
                    ("stream_options", Ty::Obj),
                    ("n", Ty::Int),
                    ("stop", Ty::StrOrArr),
                    ("logprobs", Ty::Int),
                    ("echo", Ty::Bool),
                    ("suffix", Ty::Str),
                    ("best_of", Ty::Int),
                    ("seed", Ty::Int),
                ],
            )?;
        }
        Endpoint::Embeddings => {
            required(body, "input", Ty::StrOrArr)?;
            optional(
                body,
                &[("dimensions", Ty::Int), ("encoding_format", Ty::Str)],
            )?;
        }
        Endpoint::Messages => {
            messages(body, false)?;
            required(body, "max_tokens", Ty::Int)?;
            optional(
                body,
                &[
                    ("system", Ty::StrOrArr),
                    ("stop_sequences", Ty::Arr),
                    ("tools", Ty::Arr),
                    ("tool_choice", Ty::Obj),
                    ("top_k", Ty::Int),
                    ("thinking", Ty::Obj),
                ],
            )?;
            array_of_objects(body, "tools")?;
        }
        Endpoint::CountTokens => {
            messages(body, false)?;
            optional(
                body,
                &[
                    ("system", Ty::StrOrArr),
                    ("tools", Ty::Arr),
                    ("thinking", Ty::Obj),
                ],
            )?;
        }
    }
    if let Some(n) = non_negative_int(body, "n")?
        && n == 0
    {
        return Err(ApiError::invalid_field("n", "must be at least 1"));
    }
    let max_tokens = match non_negative_int(body, "max_completion_tokens")? {
        Some(v) => Some(v),
        None => non_negative_int(body, "max_tokens")?,
    };
    let stream = endpoint.can_stream() && body.get("stream").and_then(Value::as_bool) == Some(true);
    let include_usage = body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        == Some(true);
    Ok(RequestMeta {
        model,
        stream,
        include_usage,
        max_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn extracts_meta_from_a_chat_request() {
        let meta = validate(
            Endpoint::ChatCompletions,
            &obj(json!({
                "model": "gpt-4o", "stream": true, "max_tokens": 5,
                "stream_options": {"include_usage": true},
                "messages": [{"role": "user", "content": "hi"}]
            })),
        )
        .expect("valid");
        assert_eq!(meta.model, "gpt-4o");
        assert!(meta.stream && meta.include_usage);
        assert_eq!(meta.max_tokens, Some(5));
    }

    #[test]
    fn wrong_types_name_the_field() {
        let cases = [
            (json!({"model": 3, "messages": []}), "model"),
            (json!({"model": "m"}), "messages"),
            (json!({"model": "m", "messages": "hi"}), "messages"),
            (json!({"model": "m", "messages": [1]}), "messages[0]"),
            (
                json!({"model": "m", "messages": [{"content": "x"}]}),
                "messages[0].role",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": 5}]}),
                "messages[0].content",
            ),
            (
                json!({"model": "m", "stream": "yes", "messages": [{"role": "user"}]}),
                "stream",
            ),
            (
                json!({"model": "m", "max_tokens": -1, "messages": [{"role": "user"}]}),
                "max_tokens",
            ),
            (
                json!({"model": "m", "tools": [1], "messages": [{"role": "user"}]}),
                "tools[0]",
            ),
        ];
        for (body, field) in cases {
            let e = validate(Endpoint::ChatCompletions, &obj(body.clone())).expect_err("invalid");
            assert!(
                e.message().starts_with(&format!("{field}:")),
                "{body} -> {}",
                e.message()
            );
        }
    }

    #[test]
    fn anthropic_messages_require_max_tokens() {
        let e = validate(
            Endpoint::Messages,
            &obj(json!({"model": "claude", "messages": [{"role": "user", "content": "x"}]})),
        )
        .expect_err("max_tokens is required");
        assert!(e.message().starts_with("max_tokens:"));
    }

    #[test]
    fn nulls_count_as_absent() {
        validate(
            Endpoint::ChatCompletions,
            &obj(json!({"model": "m", "temperature": null, "stop": null,
                        "messages": [{"role": "user", "content": null}]})),
        )
        .expect("nulls are fine");
    }

    #[test]
    fn embeddings_never_stream() {
        let meta = validate(
            Endpoint::Embeddings,
            &obj(json!({"model": "e", "input": "x", "stream": true})),
        )
        .expect("valid");
        assert!(!meta.stream);
    }
}
