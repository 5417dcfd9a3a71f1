//! Anthropic Messages: `POST /v1/messages` and `POST /v1/messages/count_tokens`.

use http::HeaderMap;
use hyper::body::Incoming;
use serde_json::{Map, Value, json};

use super::call::{Abort, Call, Usage};
use super::directives;
use super::fields::{FieldError, Fields, as_object, string_list, type_name};
use super::http::{Resp, to_json};
use super::ids::anthropic_id;
use super::script::{self, GenRequest, Output, Plan, ToolChoice, ToolSpec, chunk_chars};
use super::sse::{self, Frame, Kind};
use super::tokens::InputCount;

/// Characters per streamed `input_json_delta` fragment.
const JSON_FRAGMENT: usize = 6;
/// Generous bound on `stop_sequences` (the API's own limit is large).
const MAX_STOP_SEQUENCES: usize = 1024;

/// `POST /v1/messages`.
pub(crate) async fn messages(
    call: &mut Call,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Resp, Abort> {
    let obj = call.begin(headers, body).await?;
    let (req, stream) = parse(&obj, true)?;
    let (d, stripped) = directives::parse(&req.user_text);
    let drop_after = call.gate(&req.model, stream, Some(&d)).await?;
    let plan = script::plan(&req, &d, &stripped, call.state.cfg.default_output_tokens);
    let usage = Usage {
        input: plan.input_tokens,
        cached: plan.cached_tokens,
        output: plan.output_tokens(),
    };
    let id = anthropic_id("msg_");
    if stream {
        Ok(call.respond_stream(usage, frames(&plan, &req.model, &id), drop_after))
    } else {
        let body = to_json(&message(&plan, &req.model, &id));
        call.respond_json(usage, body).await
    }
}

/// `POST /v1/messages/count_tokens`. Free at Anthropic, so the ledger bills nothing.
pub(crate) async fn count_tokens(
    call: &mut Call,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Resp, Abort> {
    let obj = call.begin(headers, body).await?;
    let (req, _) = parse(&obj, false)?;
    call.gate(&req.model, false, None).await?;
    let usage = Usage {
        input: 0,
        cached: 0,
        output: 0,
    };
    call.respond_json(usage, to_json(&json!({"input_tokens": req.input_tokens})))
        .await
}

/// Parses and validates a Messages request (`count_tokens` has no `max_tokens`).
fn parse(
    obj: &Map<String, Value>,
    need_max_tokens: bool,
) -> Result<(GenRequest, bool), FieldError> {
    let f = Fields::new(obj, "");
    let model = f.str_req("model")?;
    let mut req = GenRequest::new(model);
    if need_max_tokens {
        let max = f.uint_opt("max_tokens", 1, u64::MAX)?;
        req.max_tokens = Some(max.ok_or_else(|| FieldError::Missing("max_tokens".into()))?);
    }
    let messages = f.array_req("messages")?;
    if messages.is_empty() {
        return Err(FieldError::Invalid {
            field: "messages".into(),
            message: "at least one message is required".into(),
        });
    }
    let mut count = InputCount::new(model);
    if let Some(system) = f.get("system") {
        count.message();
        system_text(system, &mut count)?;
    }
    let mut last_user_text: Option<String> = None;
    let mut last_tool_results: Option<String> = None;
    for (i, m) in messages.iter().enumerate() {
        let path = format!("messages.{i}");
        let mo = as_object(m, &path)?;
        let prefix = format!("{path}.");
        let mf = Fields::new(mo, &prefix);
        let role = mf.str_req("role")?;
        if role != "user" && role != "assistant" {
            return Err(FieldError::Invalid {
                field: mf.path("role"),
                message: "Input should be 'user' or 'assistant'".into(),
            });
        }
        count.message();
        let (text, tool_results) = content(&mf, &mut count)?;
        if role == "user" {
            if !text.is_empty() {
                last_user_text = Some(text);
            }
            last_tool_results = tool_results;
        } else {
            last_tool_results = None;
        }
    }
    req.user_text = last_user_text.unwrap_or_default();
    req.tool_result = last_tool_results;

    if let Some(tools) = f.array_opt("tools")? {
        for (i, t) in tools.iter().enumerate() {
            let path = format!("tools.{i}");
            let to = as_object(t, &path)?;
            let prefix = format!("{path}.");
            let tf = Fields::new(to, &prefix);
            req.tools.push(ToolSpec {
                name: tf.str_req("name")?.to_owned(),
                schema: tf
                    .object_opt("input_schema")?
                    .map_or(Value::Null, |s| Value::Object(s.clone())),
            });
        }
        count.tools(&Value::Array(tools.clone()));
    }
    if let Some(tc) = f.object_opt("tool_choice")? {
        let tf = Fields::new(tc, "tool_choice.");
        req.tool_choice = match tf.str_req("type")? {
            "auto" => ToolChoice::Auto,
            "any" => ToolChoice::Any,
            "none" => ToolChoice::None,
            "tool" => ToolChoice::Named(tf.str_req("name")?.to_owned()),
            other => {
                return Err(FieldError::Invalid {
                    field: "tool_choice.type".into(),
                    message: format!(
                        "Input tag '{other}' found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'"
                    ),
                });
            }
        };
        req.parallel_tools = !tf.bool_opt("disable_parallel_tool_use")?.unwrap_or(false);
    }
    req.stop = string_list(
        f.get("stop_sequences"),
        "stop_sequences",
        MAX_STOP_SEQUENCES,
    )?;
    if let Some(th) = f.object_opt("thinking")? {
        let tf = Fields::new(th, "thinking.");
        req.thinking = matches!(tf.str_req("type")?, "enabled" | "adaptive");
    }
    req.input_tokens = count.finish_chat();
    let stream = f.bool_opt("stream")?.unwrap_or(false);
    Ok((req, stream))
}

fn system_text(v: &Value, count: &mut InputCount) -> Result<(), FieldError> {
    match v {
        Value::String(s) => count.text(s),
        Value::Array(blocks) => {
            for (i, b) in blocks.iter().enumerate() {
                let path = format!("system.{i}");
                let bo = as_object(b, &path)?;
                let prefix = format!("{path}.");
                count.text(Fields::new(bo, &prefix).str_req("text")?);
            }
        }
        other => {
            return Err(FieldError::WrongType {
                field: "system".into(),
                expected: "string",
                got: type_name(other),
            });
        }
    }
    Ok(())
}

/// Text of a message's `content` and, if it has `tool_result` blocks, their text.
fn content(
    mf: &Fields<'_, '_>,
    count: &mut InputCount,
) -> Result<(String, Option<String>), FieldError> {
    let blocks = match mf.req("content")? {
        Value::String(s) => {
            count.text(s);
            return Ok((s.clone(), None));
        }
        Value::Array(b) => b,
        other => {
            return Err(FieldError::WrongType {
                field: mf.path("content"),
                expected: "string",
                got: type_name(other),
            });
        }
    };
    let mut texts = Vec::new();
    let mut results: Option<Vec<String>> = None;
    for (j, b) in blocks.iter().enumerate() {
        let path = mf.path(&format!("content.{j}"));
        let bo = as_object(b, &path)?;
        let prefix = format!("{path}.");
        let bf = Fields::new(bo, &prefix);
        match bf.str_req("type")? {
            "text" => {
                let t = bf.str_req("text")?;
                count.text(t);
                texts.push(t.to_owned());
            }
            "image" | "document" => count.image(),
            "tool_use" => {
                count.text(bf.str_req("name")?);
                count.text(&bf.get("input").map(Value::to_string).unwrap_or_default());
            }
            "tool_result" => {
                bf.str_req("tool_use_id")?;
                let text = tool_result_text(&bf, count)?;
                results.get_or_insert_with(Vec::new).push(text);
            }
            "thinking" => count.text(bf.str_opt("thinking")?.unwrap_or("")),
            // Redacted thinking, server tool blocks, search results...: accepted, not counted.
            _ => {}
        }
    }
    Ok((texts.join("\n"), results.map(|r| r.join("\n"))))
}

/// The text of a `tool_result` block, counting each part's tokens on its own.
fn tool_result_text(bf: &Fields<'_, '_>, count: &mut InputCount) -> Result<String, FieldError> {
    match bf.get("content") {
        None => Ok(String::new()),
        Some(Value::String(s)) => {
            count.text(s);
            Ok(s.clone())
        }
        Some(Value::Array(parts)) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            for t in &texts {
                count.text(t);
            }
            Ok(texts.join("\n"))
        }
        Some(other) => Err(FieldError::WrongType {
            field: bf.path("content"),
            expected: "string",
            got: type_name(other),
        }),
    }
}

fn usage_json(plan: &Plan) -> Value {
    json!({
        "input_tokens": plan.input_tokens - plan.cached_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": plan.cached_tokens,
        "output_tokens": plan.output_tokens(),
        "service_tier": "standard",
    })
}

/// The single choice of an Anthropic answer.
fn choice(plan: &Plan) -> Option<&script::Choice> {
    plan.choices.first()
}

/// The non-streaming `message` object.
fn message(plan: &Plan, model: &str, id: &str) -> Value {
    let mut content = Vec::new();
    if let Some(t) = &plan.thinking {
        content.push(
            json!({"type": "thinking", "thinking": t.pieces.concat(), "signature": t.signature}),
        );
    }
    let (stop_reason, stop_sequence) = match choice(plan) {
        Some(c) => {
            match &c.output {
                Output::Text(p) => content.push(json!({"type": "text", "text": p.concat()})),
                Output::Tools(calls) => {
                    for call in calls {
                        content.push(json!({"type": "tool_use", "id": anthropic_id("toolu_"),
                                            "name": call.name, "input": call.input}));
                    }
                }
            }
            (
                c.finish.anthropic(),
                c.finish.stop_sequence().map(str::to_owned),
            )
        }
        None => ("end_turn", None),
    };
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage_json(plan),
    })
}

/// The event stream: `message_start`, blocks (start, deltas, stop), `message_delta`,
/// `message_stop`, with a `ping` after the first block start, as the real API sends them.
fn frames(plan: &Plan, model: &str, id: &str) -> Vec<Frame> {
    let mut frames = Vec::new();
    let start = json!({"type": "message_start", "message": {
        "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": null, "stop_sequence": null,
        "usage": {
            "input_tokens": plan.input_tokens - plan.cached_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": plan.cached_tokens,
            "output_tokens": 1,
            "service_tier": "standard",
        },
    }});
    frames.push(Frame::new(
        Kind::Preamble,
        sse::event("message_start", &start),
    ));

    let mut index = 0usize;
    let mut block_start = |frames: &mut Vec<Frame>, block: Value| -> usize {
        let i = index;
        let kind = if i == 0 { Kind::Preamble } else { Kind::Mid };
        let v = json!({"type": "content_block_start", "index": i, "content_block": block});
        frames.push(Frame::new(kind, sse::event("content_block_start", &v)));
        if i == 0 {
            frames.push(Frame::new(
                Kind::Preamble,
                sse::event("ping", &json!({"type": "ping"})),
            ));
        }
        index += 1;
        i
    };
    let delta = |i: usize, d: Value| {
        sse::event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": i, "delta": d}),
        )
    };
    let stop = |i: usize| {
        Frame::new(
            Kind::Mid,
            sse::event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": i}),
            ),
        )
    };

    if let Some(t) = &plan.thinking {
        let i = block_start(
            &mut frames,
            json!({"type": "thinking", "thinking": "", "signature": ""}),
        );
        for p in &t.pieces {
            frames.push(Frame::new(
                Kind::Content { tokens: 1 },
                delta(i, json!({"type": "thinking_delta", "thinking": p})),
            ));
        }
        frames.push(Frame::new(
            Kind::Mid,
            delta(
                i,
                json!({"type": "signature_delta", "signature": t.signature}),
            ),
        ));
        frames.push(stop(i));
    }
    let (stop_reason, stop_sequence, output) = match choice(plan) {
        Some(c) => {
            match &c.output {
                Output::Text(pieces) => {
                    let i = block_start(&mut frames, json!({"type": "text", "text": ""}));
                    for p in pieces {
                        frames.push(Frame::new(
                            Kind::Content { tokens: 1 },
                            delta(i, json!({"type": "text_delta", "text": p})),
                        ));
                    }
                    frames.push(stop(i));
                }
                Output::Tools(calls) => {
                    for call in calls {
                        let block = json!({"type": "tool_use", "id": anthropic_id("toolu_"), "name": call.name, "input": {}});
                        let i = block_start(&mut frames, block);
                        frames.push(Frame::new(
                            Kind::Mid,
                            delta(i, json!({"type": "input_json_delta", "partial_json": ""})),
                        ));
                        let mut tokens = call.tokens();
                        for frag in chunk_chars(&call.arguments, JSON_FRAGMENT) {
                            let kind = Kind::Content {
                                tokens: std::mem::take(&mut tokens),
                            };
                            frames.push(Frame::new(
                                kind,
                                delta(i, json!({"type": "input_json_delta", "partial_json": frag})),
                            ));
                        }
                        frames.push(stop(i));
                    }
                }
            }
            (
                c.finish.anthropic(),
                c.finish.stop_sequence().map(str::to_owned),
                plan.output_tokens(),
            )
        }
        None => ("end_turn", None, plan.output_tokens()),
    };
    let md = json!({"type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                    "usage": {"output_tokens": output}});
    frames.push(Frame::new(Kind::Finish, sse::event("message_delta", &md)));
    frames.push(Frame::new(
        Kind::Finish,
        sse::event("message_stop", &json!({"type": "message_stop"})),
    ));
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn validation_names_fields() {
        let ok_msgs = json!([{"role": "user", "content": "hi"}]);
        let cases = [
            (json!({"messages": ok_msgs, "max_tokens": 5}), "model"),
            (json!({"model": "c", "messages": ok_msgs}), "max_tokens"),
            (
                json!({"model": "c", "messages": ok_msgs, "max_tokens": "5"}),
                "max_tokens",
            ),
            (
                json!({"model": "c", "messages": [], "max_tokens": 5}),
                "messages",
            ),
            (
                json!({"model": "c", "messages": [{"role": "system", "content": "x"}], "max_tokens": 5}),
                "messages.0.role",
            ),
            (
                json!({"model": "c", "messages": [{"role": "user"}], "max_tokens": 5}),
                "messages.0.content",
            ),
            (
                json!({"model": "c", "messages": [{"role": "user", "content": [{"type": "text"}]}], "max_tokens": 5}),
                "messages.0.content.0.text",
            ),
            (
                json!({"model": "c", "messages": ok_msgs, "max_tokens": 5, "system": 3}),
                "system",
            ),
            (
                json!({"model": "c", "messages": ok_msgs, "max_tokens": 5, "tools": [{}]}),
                "tools.0.name",
            ),
            (
                json!({"model": "c", "messages": ok_msgs, "max_tokens": 5, "tool_choice": {"type": "x"}}),
                "tool_choice.type",
            ),
        ];
        for (body, field) in cases {
            let err = parse(&obj(body.clone()), true).expect_err("must fail");
            assert_eq!(err.field(), field, "{body}");
        }
        assert!(parse(&obj(json!({"model": "c", "messages": ok_msgs})), false).is_ok());
    }

    #[test]
    fn tool_results_and_text() {
        let body = json!({
            "model": "claude-sonnet-4-5", "max_tokens": 100,
            "system": [{"type": "text", "text": "Be brief."}],
            "messages": [
                {"role": "user", "content": "Weather? [mock:call w {}]"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "w", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "rainy"}]}]},
            ],
        });
        let (req, stream) = parse(&obj(body), true).expect("valid");
        assert!(!stream);
        assert_eq!(req.tool_result.as_deref(), Some("rainy"));
        assert!(req.user_text.starts_with("Weather?"));
    }
}
