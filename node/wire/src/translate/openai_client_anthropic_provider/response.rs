//! Anthropic Messages response → OpenAI `chat.completion`.

use serde_json::{Map, Value};

use super::finish_reason;
use crate::translate::usage::Usage;
use crate::translate::util::{new_id, obj, unix_now};
use crate::translate::{TranslateError, util};

/// Translates an Anthropic `message` response into an OpenAI
/// `chat.completion` reporting `client_model`.
///
/// Text blocks are concatenated into `message.content` (`null` when the
/// answer is only tool calls), `tool_use` blocks become `tool_calls` (the
/// input serialized as the `arguments` string), `thinking` blocks become
/// `message.reasoning_content` (the convention of DeepSeek, vLLM and
/// LiteLLM). Server-tool and redacted-thinking blocks are dropped. The id is
/// `chatcmpl-` followed by Anthropic's message id, for traceability.
pub fn messages_response_to_chat(
    resp: &Value,
    client_model: &str,
) -> Result<Value, TranslateError> {
    let r = resp
        .as_object()
        .ok_or_else(|| TranslateError::upstream("$", "expected a JSON object"))?;
    if r.get("type").and_then(Value::as_str) == Some("error") {
        let msg = r
            .get("error")
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("error response");
        return Err(TranslateError::upstream("error", msg.to_owned()));
    }
    let blocks = match r.get("content") {
        Some(Value::Array(b)) => b.as_slice(),
        Some(other) => {
            return Err(TranslateError::upstream(
                "content",
                format!("expected an array, got {}", util::type_name(other)),
            ));
        }
        None => return Err(TranslateError::upstream("content", "is missing")),
    };

    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let field = |k: &str| b.get(k).and_then(Value::as_str);
        match field("type") {
            Some("text") => text.push_str(field("text").unwrap_or_default()),
            Some("thinking") => reasoning.push_str(field("thinking").unwrap_or_default()),
            Some("tool_use") => {
                let id = field("id").ok_or_else(|| {
                    TranslateError::upstream(format!("content[{j}].id"), "is missing")
                })?;
                let name = field("name").ok_or_else(|| {
                    TranslateError::upstream(format!("content[{j}].name"), "is missing")
                })?;
                let arguments = b
                    .get("input")
                    .map_or_else(|| "{}".to_owned(), Value::to_string);
                tool_calls.push(obj([
                    ("id", id.into()),
                    ("type", "function".into()),
                    (
                        "function",
                        obj([("name", name.into()), ("arguments", arguments.into())]),
                    ),
                ]));
            }
            _ => {} // redacted_thinking, server tools: nothing to show
        }
    }

    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    let content = if text.is_empty() && !tool_calls.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    message.insert("content".into(), content);
    message.insert("refusal".into(), Value::Null);
    if !reasoning.is_empty() {
        message.insert("reasoning_content".into(), reasoning.into());
    }
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }

    let stop_reason = r.get("stop_reason").and_then(Value::as_str);
    let id = match r.get("id").and_then(Value::as_str) {
        Some(id) => format!("chatcmpl-{id}"),
        None => new_id("chatcmpl-"),
    };
    let usage = Usage::from_anthropic_response(resp).unwrap_or_default();
    Ok(obj([
        ("id", id.into()),
        ("object", "chat.completion".into()),
        ("created", unix_now().into()),
        ("model", client_model.into()),
        (
            "choices",
            Value::Array(vec![obj([
                ("index", 0.into()),
                ("message", Value::Object(message)),
                ("logprobs", Value::Null),
                ("finish_reason", finish_reason(stop_reason).into()),
            ])]),
        ),
        ("usage", usage.to_openai_json()),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn response(content: Value, stop_reason: &str) -> Value {
        json!({
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": null,
            "usage": {"input_tokens": 2095, "output_tokens": 503,
                      "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1000}
        })
    }

    #[test]
    fn text_response() {
        let resp = response(
            json!([{"type": "text", "text": "Hi! My name is Claude."}]),
            "end_turn",
        );
        let out = messages_response_to_chat(&resp, "my-alias").expect("translate");
        let created = out["created"].clone();
        assert!(created.as_u64().unwrap_or(0) > 1_600_000_000);
        assert_eq!(
            out,
            json!({
                "id": "chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL",
                "object": "chat.completion",
                "created": created,
                "model": "my-alias",
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hi! My name is Claude.", "refusal": null},
                    "logprobs": null,
                    "finish_reason": "stop"
                }],
                "usage": {"prompt_tokens": 3195, "completion_tokens": 503, "total_tokens": 3698,
                          "prompt_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 100}}
            })
        );
    }

    #[test]
    fn thinking_text_and_parallel_tool_use() {
        let resp = response(
            json!([
                {"type": "thinking", "thinking": "The user wants weather.", "signature": "EqQBCgIYAhIM"},
                {"type": "text", "text": "Let me check "},
                {"type": "text", "text": "both cities."},
                {"type": "tool_use", "id": "toolu_01A", "name": "get_weather",
                 "input": {"location": "San Francisco, CA", "unit": "celsius"}},
                {"type": "tool_use", "id": "toolu_01B", "name": "get_time", "input": {}},
                {"type": "redacted_thinking", "data": "abc"}
            ]),
            "tool_use",
        );
        let out = messages_response_to_chat(&resp, "claude").expect("translate");
        let choice = &out["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], "Let me check both cities.");
        assert_eq!(
            choice["message"]["reasoning_content"],
            "The user wants weather."
        );
        let calls = &choice["message"]["tool_calls"];
        assert_eq!(
            calls[0],
            json!({"id": "toolu_01A", "type": "function", "function": {"name": "get_weather",
                   "arguments": "{\"location\":\"San Francisco, CA\",\"unit\":\"celsius\"}"}})
        );
        assert_eq!(
            calls[1]["function"],
            json!({"name": "get_time", "arguments": "{}"})
        );
        let args: Value = serde_json::from_str(
            calls[0]["function"]["arguments"]
                .as_str()
                .unwrap_or_default(),
        )
        .expect("arguments are JSON");
        assert_eq!(
            args,
            json!({"location": "San Francisco, CA", "unit": "celsius"})
        );
    }

    #[test]
    fn only_tool_use_gives_null_content() {
        let resp = response(
            json!([{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}]),
            "tool_use",
        );
        let out = messages_response_to_chat(&resp, "m").expect("translate");
        assert_eq!(out["choices"][0]["message"]["content"], Value::Null);
    }

    #[test]
    fn stop_reason_table() {
        let table = [
            ("end_turn", "stop"),
            ("max_tokens", "length"),
            ("stop_sequence", "stop"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
            ("pause_turn", "stop"),
            ("model_context_window_exceeded", "length"),
            ("something_new", "stop"),
        ];
        for (anthropic, openai) in table {
            let resp = response(json!([{"type": "text", "text": "x"}]), anthropic);
            let out = messages_response_to_chat(&resp, "m").expect("translate");
            assert_eq!(out["choices"][0]["finish_reason"], openai, "{anthropic}");
        }
    }

    #[test]
    fn malformed_responses_are_upstream_errors() {
        let bad = [
            json!([]),
            json!({"type": "message"}),
            json!({"content": "text"}),
            json!({"content": [{"type": "tool_use", "name": "f", "input": {}}]}),
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ];
        for resp in bad {
            let err = messages_response_to_chat(&resp, "m").expect_err("must fail");
            assert_eq!(err.status(), 502, "{resp}");
        }
    }

    #[test]
    fn missing_usage_is_zero() {
        let mut resp = response(json!([]), "end_turn");
        if let Some(o) = resp.as_object_mut() {
            o.remove("usage");
        }
        let out = messages_response_to_chat(&resp, "m").expect("translate");
        assert_eq!(out["usage"]["total_tokens"], 0);
        assert_eq!(out["choices"][0]["message"]["content"], "");
    }
}
