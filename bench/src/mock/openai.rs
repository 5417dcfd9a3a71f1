//! OpenAI (and Azure OpenAI) chat completions: `POST /v1/chat/completions`.

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::Incoming;
use serde_json::{Map, Value, json};

use super::azure;
use super::call::{Abort, Call, Usage};
use super::detrand::fnv1a;
use super::directives;
use super::errors::Flavor;
use super::fields::{FieldError, Fields, as_object, string_list};
use super::http::{Resp, to_json};
use super::ids::{call_id, openai_id, unix_secs};
use super::script::{
    self, Choice, GenRequest, JsonMode, Output, Plan, ToolChoice, ToolSpec, chunk_chars,
};
use super::sse::{self, DONE, Frame, Kind};
use super::tokens::InputCount;

/// What OpenAI reports as the backend configuration.
pub(crate) const FINGERPRINT: &str = "fp_mock0001";
const ROLES: [&str; 6] = [
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];
/// Characters per streamed fragment of tool-call arguments.
const ARG_FRAGMENT: usize = 6;

/// Options that change the shape of the answer, not its content.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ChatOpts {
    pub stream: bool,
    pub include_usage: bool,
    pub logprobs: bool,
    pub top_logprobs: usize,
    pub azure: bool,
}

/// Serves a chat completion. `deployment` is set for Azure and names the model.
pub(crate) async fn chat(
    call: &mut Call,
    headers: &HeaderMap,
    body: Incoming,
    deployment: Option<&str>,
) -> Result<Resp, Abort> {
    let obj = call.begin(headers, body).await?;
    let model = Fields::new(&obj, "").model_or_deployment(deployment)?;
    let (req, mut opts) = parse(&obj, &model)?;
    opts.azure = call.flavor == Flavor::Azure;
    let (d, stripped) = directives::parse(&req.user_text);
    let drop_after = call.gate(&model, opts.stream, Some(&d)).await?;
    let plan = script::plan(&req, &d, &stripped, call.state.cfg.default_output_tokens);
    let usage = Usage {
        input: plan.input_tokens,
        cached: plan.cached_tokens,
        output: plan.output_tokens(),
    };
    let id = openai_id("chatcmpl-");
    let created = unix_secs();
    if opts.stream {
        let frames = frames(&plan, &model, opts, &id, created);
        Ok(call.respond_stream(usage, frames, drop_after))
    } else {
        let body = to_json(&completion(&plan, &model, opts, &id, created));
        call.respond_json(usage, body).await
    }
}

/// Parses and validates a chat request.
pub(crate) fn parse(
    obj: &Map<String, Value>,
    model: &str,
) -> Result<(GenRequest, ChatOpts), FieldError> {
    let f = Fields::new(obj, "");
    let mut req = GenRequest::new(model);
    let messages = f.array_req("messages")?;
    if messages.is_empty() {
        return Err(FieldError::Invalid {
            field: "messages".into(),
            message: "empty array. Expected an array with minimum length 1, but got an empty array instead.".into(),
        });
    }
    let mut count = InputCount::new(model);
    let mut roles = Vec::with_capacity(messages.len());
    let mut texts = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        let mo = as_object(m, &path)?;
        let prefix = format!("{path}.");
        let mf = Fields::new(mo, &prefix);
        let role = mf.str_req("role")?;
        if !ROLES.contains(&role) {
            return Err(FieldError::Invalid {
                field: mf.path("role"),
                message: format!(
                    "Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'."
                ),
            });
        }
        count.message();
        count.text(role);
        let text = content_text(&mf, &mut count)?;
        if let Some(name) = mf.str_opt("name")? {
            count.name(name);
        }
        if role == "assistant" {
            for (j, tc) in mf
                .array_opt("tool_calls")?
                .into_iter()
                .flatten()
                .enumerate()
            {
                let tpath = format!("{prefix}tool_calls[{j}]");
                let tco = as_object(tc, &tpath)?;
                let fpath = format!("{tpath}.function");
                let tprefix = format!("{tpath}.");
                let func = as_object(Fields::new(tco, &tprefix).req("function")?, &fpath)?;
                let fprefix = format!("{fpath}.");
                let ff = Fields::new(func, &fprefix);
                count.text(ff.str_req("name")?);
                count.text(ff.str_opt("arguments")?.unwrap_or(""));
            }
            // The legacy single `function_call`.
            if let Some(fc) = mf.object_opt("function_call")? {
                let fprefix = format!("{prefix}function_call.");
                let ff = Fields::new(fc, &fprefix);
                count.text(ff.str_opt("name")?.unwrap_or(""));
                count.text(ff.str_opt("arguments")?.unwrap_or(""));
            }
        }
        if role == "tool" {
            mf.str_req("tool_call_id")?;
        }
        roles.push(role);
        texts.push(text);
    }
    // Directives and echoed words come from the last user message.
    if let Some(i) = roles.iter().rposition(|r| *r == "user") {
        req.user_text = texts[i].clone();
    }
    // A conversation ending in tool results gets an answer quoting them.
    let trailing = roles
        .iter()
        .rev()
        .take_while(|r| **r == "tool" || **r == "function")
        .count();
    if trailing > 0 {
        req.tool_result = Some(texts[texts.len() - trailing..].join("\n"));
    }

    if let Some(tools) = f.array_opt("tools")? {
        for (i, t) in tools.iter().enumerate() {
            req.tools.push(tool_spec(t, i)?);
        }
    }
    // Tool definitions, and legacy `functions`, are billed as their JSON.
    for key in ["tools", "functions"] {
        if let Some(defs @ Value::Array(_)) = f.get(key) {
            count.tools(defs);
        }
    }
    req.tool_choice = tool_choice(f.get("tool_choice"))?;
    req.parallel_tools = f.bool_opt("parallel_tool_calls")?.unwrap_or(true);
    req.n = f.uint_opt("n", 1, 128)?.map_or(1, |n| n as usize);
    req.max_tokens = match f.uint_opt("max_completion_tokens", 1, u64::MAX)? {
        Some(m) => Some(m),
        None => f.uint_opt("max_tokens", 1, u64::MAX)?,
    };
    req.stop = string_list(f.get("stop"), "stop", 4)?;
    req.json = response_format(&f)?;
    req.input_tokens = count.finish_chat();

    let (stream, include_usage) = f.stream_and_usage()?;
    let logprobs = f.bool_opt("logprobs")?.unwrap_or(false);
    let top_logprobs = f.uint_opt("top_logprobs", 0, 20)?.unwrap_or(0) as usize;
    Ok((
        req,
        ChatOpts {
            stream,
            include_usage,
            logprobs,
            top_logprobs,
            azure: false,
        },
    ))
}

/// The text of a message's `content` (string or parts), counting its tokens.
fn content_text(mf: &Fields<'_, '_>, count: &mut InputCount) -> Result<String, FieldError> {
    match mf.get("content") {
        None => Ok(String::new()),
        Some(Value::String(s)) => {
            count.text(s);
            Ok(s.clone())
        }
        Some(Value::Array(parts)) => {
            let mut texts = Vec::new();
            for (j, p) in parts.iter().enumerate() {
                let path = mf.path(&format!("content[{j}]"));
                let po = as_object(p, &path)?;
                let prefix = format!("{path}.");
                let pf = Fields::new(po, &prefix);
                match pf.str_req("type")? {
                    "text" | "input_text" => {
                        let t = pf.str_req("text")?;
                        count.text(t);
                        texts.push(t);
                    }
                    "refusal" => count.text(pf.str_req("refusal")?),
                    "image_url" | "input_audio" | "file" => count.image(),
                    other => {
                        return Err(FieldError::Invalid {
                            field: pf.path("type"),
                            message: format!(
                                "Invalid value: '{other}'. Supported values are: 'text', 'image_url', 'input_audio', 'refusal', and 'file'."
                            ),
                        });
                    }
                }
            }
            Ok(texts.join("\n"))
        }
        Some(v) => Err(FieldError::WrongType {
            field: mf.path("content"),
            expected: "string",
            got: super::fields::type_name(v),
        }),
    }
}

fn tool_spec(t: &Value, i: usize) -> Result<ToolSpec, FieldError> {
    let path = format!("tools[{i}]");
    let to = as_object(t, &path)?;
    let prefix = format!("{path}.");
    let tf = Fields::new(to, &prefix);
    let ty = tf.str_opt("type")?.unwrap_or("function");
    let key = if ty == "custom" { "custom" } else { "function" };
    let fpath = format!("{prefix}{key}");
    let func = as_object(tf.req(key)?, &fpath)?;
    let fprefix = format!("{fpath}.");
    let ff = Fields::new(func, &fprefix);
    Ok(ToolSpec {
        name: ff.str_req("name")?.to_owned(),
        schema: ff.get("parameters").cloned().unwrap_or(Value::Null),
    })
}

fn tool_choice(v: Option<&Value>) -> Result<ToolChoice, FieldError> {
    let invalid = |m: &str| FieldError::Invalid {
        field: "tool_choice".into(),
        message: m.to_owned(),
    };
    match v {
        None => Ok(ToolChoice::Auto),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Any),
            other => Err(invalid(&format!(
                "Invalid value: '{other}'. Supported values are: 'none', 'auto', and 'required'."
            ))),
        },
        Some(Value::Object(o)) => {
            let f = Fields::new(o, "tool_choice.");
            match f.str_req("type")? {
                "function" => {
                    let func = as_object(f.req("function")?, "tool_choice.function")?;
                    let name = Fields::new(func, "tool_choice.function.").str_req("name")?;
                    Ok(ToolChoice::Named(name.to_owned()))
                }
                _ => Ok(ToolChoice::Auto),
            }
        }
        Some(other) => Err(FieldError::WrongType {
            field: "tool_choice".into(),
            expected: "string",
            got: super::fields::type_name(other),
        }),
    }
}

fn response_format(f: &Fields<'_, '_>) -> Result<Option<JsonMode>, FieldError> {
    let Some(rf) = f.object_opt("response_format")? else {
        return Ok(None);
    };
    let rff = Fields::new(rf, "response_format.");
    match rff.str_req("type")? {
        "text" => Ok(None),
        "json_object" => Ok(Some(JsonMode::Object)),
        "json_schema" => {
            let js = rff.object_opt("json_schema")?;
            let schema = js
                .and_then(|j| j.get("schema"))
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"}));
            Ok(Some(JsonMode::Schema(schema)))
        }
        other => Err(FieldError::Invalid {
            field: "response_format.type".into(),
            message: format!(
                "Invalid value: '{other}'. Supported values are: 'text', 'json_object', and 'json_schema'."
            ),
        }),
    }
}

/// A plausible, deterministic log-probability entry for a generated token.
pub(crate) fn logprob_entry(token: &str, top: usize) -> Value {
    let lp = logprob_of(token);
    let alternatives = [
        " the", " a", ".", ",", " and", " of", " to", " in", " is", " it",
    ];
    let mut tops = Vec::with_capacity(top);
    if top > 0 {
        tops.push(json!({"token": token, "logprob": lp, "bytes": token.as_bytes()}));
    }
    for (k, alt) in alternatives
        .iter()
        .filter(|a| **a != token)
        .take(top.saturating_sub(1))
        .enumerate()
    {
        let alp = lp - 1.5 - k as f64 * 0.75;
        tops.push(json!({"token": alt, "logprob": alp, "bytes": alt.as_bytes()}));
    }
    json!({"token": token, "logprob": lp, "bytes": token.as_bytes(), "top_logprobs": tops})
}

/// Deterministic log-probability in (-0.5, 0].
pub(crate) fn logprob_of(token: &str) -> f64 {
    -((fnv1a(token.as_bytes()) % 5000) as f64) / 10_000.0
}

fn usage_json(plan: &Plan) -> Value {
    let output = plan.output_tokens();
    json!({
        "prompt_tokens": plan.input_tokens,
        "completion_tokens": output,
        "total_tokens": plan.input_tokens + output,
        "prompt_tokens_details": {"cached_tokens": plan.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": plan.thinking_tokens(),
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    })
}

fn tool_calls_json(calls: &[script::ToolCall]) -> Value {
    Value::Array(
        calls
            .iter()
            .map(|c| {
                json!({"id": call_id(), "type": "function",
                       "function": {"name": c.name, "arguments": c.arguments}})
            })
            .collect(),
    )
}

fn logprobs_json(choice: &Choice, opts: ChatOpts) -> Value {
    match (&choice.output, opts.logprobs) {
        (Output::Text(pieces), true) => json!({
            "content": pieces.iter().map(|p| logprob_entry(p, opts.top_logprobs)).collect::<Vec<_>>(),
            "refusal": null,
        }),
        _ => Value::Null,
    }
}

/// The non-streaming `chat.completion` object.
fn completion(plan: &Plan, model: &str, opts: ChatOpts, id: &str, created: u64) -> Value {
    let choices: Vec<Value> = plan
        .choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut message = json!({
                "role": "assistant",
                "content": c.text(),
                "refusal": null,
                "annotations": [],
            });
            if let Output::Tools(calls) = &c.output {
                message["tool_calls"] = tool_calls_json(calls);
            }
            let mut choice = json!({
                "index": i,
                "message": message,
                "logprobs": logprobs_json(c, opts),
                "finish_reason": c.finish.openai(),
            });
            if opts.azure {
                choice["content_filter_results"] = azure::filter_results();
            }
            choice
        })
        .collect();
    let mut v = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage_json(plan),
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    });
    if opts.azure {
        v["prompt_filter_results"] = azure::prompt_filter_results();
    }
    v
}

/// The `chat.completion.chunk` stream.
fn frames(plan: &Plan, model: &str, opts: ChatOpts, id: &str, created: u64) -> Vec<Frame> {
    // The envelope is the same for every chunk: serialize it once and splice each chunk's
    // `choices` in, which keeps long streams cheap for the benchmarks.
    let envelope = json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    })
    .to_string();
    let prefix = format!("data: {},\"choices\":", envelope.trim_end_matches('}'));
    let suffix = if opts.include_usage {
        ",\"usage\":null}\n\n"
    } else {
        "}\n\n"
    };
    let chunk = |choices: Value| -> Bytes {
        let mut out = Vec::with_capacity(prefix.len() + 128);
        out.extend_from_slice(prefix.as_bytes());
        // Writing a `Value` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, &choices);
        out.extend_from_slice(suffix.as_bytes());
        Bytes::from(out)
    };
    let choice = |i: usize, delta: Value, logprobs: Value, finish: Option<&str>| json!([{"index": i, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]);
    let mut frames = Vec::new();
    if opts.azure {
        // Azure opens every stream with the prompt's content-filter verdict and no choices.
        let v = json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                       "prompt_filter_results": azure::prompt_filter_results()});
        frames.push(Frame::new(Kind::Preamble, sse::data(&v)));
    }
    // Reasoning tokens are billed with the first content frame.
    let mut extra = plan.thinking_tokens();
    for (i, c) in plan.choices.iter().enumerate() {
        match &c.output {
            Output::Text(pieces) => {
                let delta = json!({"role": "assistant", "content": "", "refusal": null});
                frames.push(Frame::new(
                    Kind::Preamble,
                    chunk(choice(i, delta, Value::Null, None)),
                ));
                for p in pieces {
                    let lp = if opts.logprobs {
                        json!({"content": [logprob_entry(p, opts.top_logprobs)], "refusal": null})
                    } else {
                        Value::Null
                    };
                    let kind = Kind::Content {
                        tokens: 1 + std::mem::take(&mut extra),
                    };
                    frames.push(Frame::new(
                        kind,
                        chunk(choice(i, json!({"content": p}), lp, None)),
                    ));
                }
            }
            Output::Tools(calls) => {
                for (k, call) in calls.iter().enumerate() {
                    let header = json!([{"index": k, "id": call_id(), "type": "function",
                                         "function": {"name": call.name, "arguments": ""}}]);
                    let (kind, delta) = if k == 0 {
                        let d = json!({"role": "assistant", "content": null, "tool_calls": header, "refusal": null});
                        (Kind::Preamble, d)
                    } else {
                        (Kind::Mid, json!({"tool_calls": header}))
                    };
                    frames.push(Frame::new(kind, chunk(choice(i, delta, Value::Null, None))));
                    let mut tokens = call.tokens() + std::mem::take(&mut extra);
                    for frag in chunk_chars(&call.arguments, ARG_FRAGMENT) {
                        let delta =
                            json!({"tool_calls": [{"index": k, "function": {"arguments": frag}}]});
                        let kind = Kind::Content {
                            tokens: std::mem::take(&mut tokens),
                        };
                        frames.push(Frame::new(kind, chunk(choice(i, delta, Value::Null, None))));
                    }
                }
            }
        }
    }
    for (i, c) in plan.choices.iter().enumerate() {
        let f = chunk(choice(i, json!({}), Value::Null, Some(c.finish.openai())));
        frames.push(Frame::new(Kind::Finish, f));
    }
    if opts.include_usage {
        let v = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
            "choices": [],
            "usage": usage_json(plan),
        });
        frames.push(Frame::new(Kind::Finish, sse::data(&v)));
    }
    frames.push(Frame::new(Kind::Finish, Bytes::from_static(DONE)));
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
        let cases = [
            (json!({"messages": "x"}), "messages"),
            (json!({"messages": []}), "messages"),
            (json!({"messages": [1]}), "messages[0]"),
            (json!({"messages": [{"content": "x"}]}), "messages[0].role"),
            (json!({"messages": [{"role": "bot"}]}), "messages[0].role"),
            (
                json!({"messages": [{"role": "user", "content": 5}]}),
                "messages[0].content",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "text"}]}]}),
                "messages[0].content[0].text",
            ),
            (
                json!({"messages": [{"role": "tool", "content": "x"}]}),
                "messages[0].tool_call_id",
            ),
            (
                json!({"messages": [{"role": "user"}], "max_tokens": "5"}),
                "max_tokens",
            ),
            (json!({"messages": [{"role": "user"}], "n": 0}), "n"),
            (json!({"messages": [{"role": "user"}], "stop": [1]}), "stop"),
            (
                json!({"messages": [{"role": "user"}], "stream_options": {}}),
                "stream_options",
            ),
            (
                json!({"messages": [{"role": "user"}], "tools": [{"type": "function"}]}),
                "tools[0].function",
            ),
            (
                json!({"messages": [{"role": "user"}], "tool_choice": 3}),
                "tool_choice",
            ),
            (
                json!({"messages": [{"role": "user"}], "response_format": {"type": "yaml"}}),
                "response_format.type",
            ),
        ];
        for (body, field) in cases {
            let err = parse(&obj(body.clone()), "m").expect_err("must fail");
            assert_eq!(err.field(), field, "{body}");
        }
    }

    #[test]
    fn counts_and_extracts() {
        let body = json!({
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Weather in Paris? [mock:call w {}]"}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c", "content": "sunny"},
            ],
            "tools": [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}],
            "stream": true, "stream_options": {"include_usage": true},
        });
        let (req, opts) = parse(&obj(body), "gpt-4o").expect("valid");
        assert!(opts.stream && opts.include_usage);
        assert_eq!(req.tool_result.as_deref(), Some("sunny"));
        assert!(req.user_text.starts_with("Weather in Paris?"));
        assert_eq!(req.tools.len(), 1);
        assert!(req.input_tokens > 12);
    }
}
