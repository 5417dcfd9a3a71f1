//! OpenAI `chat.completion` → Anthropic Messages response.

use serde_json::{Map, Value};

use super::stop_reason;
use crate::translate::TranslateError;
use crate::translate::usage::Usage;
use crate::translate::util::{new_id, obj};

/// Translates an OpenAI `chat.completion` into an Anthropic `message`
/// reporting `client_model`.
///
/// Content blocks come in the order a stream produces them: a `thinking`
/// block from `reasoning_content` (or `reasoning`, OpenRouter's and
/// Ollama's name) with an empty signature, then the text (`content`, then
/// `refusal`), then one `tool_use` per tool call.
///
/// Tool call `arguments` that are not a JSON object (invalid JSON from the
/// model, or a non-object) become `{}`: Anthropic clients expect an object,
/// and the tool then reports its missing parameters to the model, which is
/// how a model recovers from its own bad call. A missing call id is
/// generated. Only the first choice is used (the gateway never asks for
/// more). The id is a new `msg_…`; `stop_sequence` is always null because
/// OpenAI does not say which sequence matched.
pub fn chat_response_to_messages(
    resp: &Value,
    client_model: &str,
) -> Result<Value, TranslateError> {
    let r = resp
        .as_object()
        .ok_or_else(|| TranslateError::upstream("$", "expected a JSON object"))?;
    if let Some(err) = r.get("error").filter(|e| !e.is_null()) {
        let msg = err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("error response");
        return Err(TranslateError::upstream("error", msg.to_owned()));
    }
    let choice = r
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| TranslateError::upstream("choices", "expected at least one choice"))?;
    let message = choice
        .get("message")
        .and_then(Value::as_object)
        .ok_or_else(|| TranslateError::upstream("choices[0].message", "expected an object"))?;
    let field = |k: &str| {
        message
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };

    let mut content = Vec::new();
    if let Some(thinking) = field("reasoning_content").or_else(|| field("reasoning")) {
        content.push(obj([
            ("type", "thinking".into()),
            ("thinking", thinking.into()),
            ("signature", "".into()),
        ]));
    }
    let mut text = String::new();
    match message.get("content") {
        Some(Value::String(s)) => text.push_str(s),
        // Some compatible servers answer with content parts.
        Some(Value::Array(parts)) => {
            for p in parts {
                if let Some(t) = p.get("text").and_then(Value::as_str) {
                    text.push_str(t);
                }
            }
        }
        _ => {}
    }
    let refusal = field("refusal");
    if let Some(r) = refusal {
        text.push_str(r);
    }
    if !text.is_empty() {
        content.push(obj([("type", "text".into()), ("text", text.into())]));
    }
    let calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for (k, call) in calls.iter().enumerate() {
        content.push(tool_use_block(call, k)?);
    }

    let finish = choice.get("finish_reason").and_then(Value::as_str);
    let usage = Usage::from_openai_response(resp).unwrap_or_default();
    let mut out = Map::new();
    out.insert("id".into(), new_id("msg_").into());
    out.insert("type".into(), "message".into());
    out.insert("role".into(), "assistant".into());
    out.insert("model".into(), client_model.into());
    out.insert("content".into(), Value::Array(content));
    out.insert(
        "stop_reason".into(),
        stop_reason(finish, !calls.is_empty(), refusal.is_some()).into(),
    );
    out.insert("stop_sequence".into(), Value::Null);
    out.insert("usage".into(), usage.to_anthropic_json());
    Ok(Value::Object(out))
}

fn tool_use_block(call: &Value, k: usize) -> Result<Value, TranslateError> {
    let function = call.get("function");
    let name = function
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            TranslateError::upstream(
                format!("choices[0].message.tool_calls[{k}].function.name"),
                "is missing",
            )
        })?;
    let id = match call.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => new_id("toolu_"),
    };
    let input = match function.and_then(|f| f.get("arguments")) {
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => Value::Object(Map::new()),
        },
        Some(v @ Value::Object(_)) => v.clone(),
        _ => Value::Object(Map::new()),
    };
    Ok(obj([
        ("type", "tool_use".into()),
        ("id", id.into()),
        ("name", name.into()),
        ("input", input),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn completion(message: Value, finish: &str) -> Value {
        json!({
            "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
            "object": "chat.completion",
            "created": 1741570283,
            "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
            "usage": {"prompt_tokens": 1117, "completion_tokens": 46, "total_tokens": 1163,
                      "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0}},
            "service_tier": "default",
            "system_fingerprint": "fp_fc9f1d7035"
        })
    }

    #[test]
    fn text_response() {
        let resp = completion(
            json!({"role": "assistant", "content": "The image shows a boardwalk.", "refusal": null, "annotations": []}),
            "stop",
        );
        let out = chat_response_to_messages(&resp, "claude-alias").expect("translate");
        let id = out["id"].as_str().unwrap_or_default().to_owned();
        assert!(id.starts_with("msg_"), "{id}");
        assert_eq!(
            out,
            json!({
                "id": id, "type": "message", "role": "assistant", "model": "claude-alias",
                "content": [{"type": "text", "text": "The image shows a boardwalk."}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 93, "output_tokens": 46,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1024}
            })
        );
    }

    #[test]
    fn tool_calls_response() {
        let resp = completion(
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_abc", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"location\":\"Boston, MA\"}"}},
                {"id": "call_def", "type": "function",
                 "function": {"name": "get_time", "arguments": ""}},
                {"id": "", "type": "function",
                 "function": {"name": "broken", "arguments": "{\"a\":"}}
            ]}),
            "tool_calls",
        );
        let out = chat_response_to_messages(&resp, "m").expect("translate");
        assert_eq!(out["stop_reason"], "tool_use");
        let content = out["content"].as_array().cloned().unwrap_or_default();
        assert_eq!(content.len(), 3);
        assert_eq!(
            content[0],
            json!({"type": "tool_use", "id": "call_abc", "name": "get_weather",
                   "input": {"location": "Boston, MA"}})
        );
        assert_eq!(content[1]["input"], json!({}));
        assert_eq!(
            content[2]["input"],
            json!({}),
            "invalid JSON arguments become {{}}"
        );
        assert!(
            content[2]["id"]
                .as_str()
                .unwrap_or_default()
                .starts_with("toolu_")
        );
    }

    #[test]
    fn reasoning_text_and_refusal() {
        let resp = completion(
            json!({"role": "assistant", "content": "Answer.", "reasoning_content": "Think."}),
            "stop",
        );
        let out = chat_response_to_messages(&resp, "m").expect("translate");
        assert_eq!(
            out["content"],
            json!([{"type": "thinking", "thinking": "Think.", "signature": ""},
                   {"type": "text", "text": "Answer."}])
        );
        let resp = completion(
            json!({"role": "assistant", "content": null, "refusal": "I can't help with that."}),
            "stop",
        );
        let out = chat_response_to_messages(&resp, "m").expect("translate");
        assert_eq!(out["stop_reason"], "refusal");
        assert_eq!(
            out["content"],
            json!([{"type": "text", "text": "I can't help with that."}])
        );
    }

    #[test]
    fn stop_with_tool_calls_is_tool_use_and_length_wins() {
        let msg = json!({"role": "assistant", "content": "",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]});
        let out =
            chat_response_to_messages(&completion(msg.clone(), "stop"), "m").expect("translate");
        assert_eq!(out["stop_reason"], "tool_use");
        let out = chat_response_to_messages(&completion(msg, "length"), "m").expect("translate");
        assert_eq!(out["stop_reason"], "max_tokens");
    }

    #[test]
    fn malformed_responses_are_upstream_errors() {
        for resp in [
            json!(null),
            json!({"choices": []}),
            json!({"choices": [{"finish_reason": "stop"}]}),
            json!({"error": {"message": "boom", "type": "server_error"}}),
            json!({"choices": [{"message": {"tool_calls": [{"id": "x", "function": {}}]}}]}),
        ] {
            let err = chat_response_to_messages(&resp, "m").expect_err("must fail");
            assert_eq!(err.status(), 502, "{resp}");
        }
    }

    #[test]
    fn content_parts_and_missing_usage() {
        let resp = json!({"choices": [{"message": {"role": "assistant",
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}, "finish_reason": null}]});
        let out = chat_response_to_messages(&resp, "m").expect("translate");
        assert_eq!(out["content"], json!([{"type": "text", "text": "ab"}]));
        assert_eq!(out["stop_reason"], "end_turn");
        assert_eq!(out["usage"]["input_tokens"], 0);
    }
}
