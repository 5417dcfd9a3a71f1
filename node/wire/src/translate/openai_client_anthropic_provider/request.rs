//! OpenAI Chat Completions request → Anthropic Messages request.

use serde_json::{Map, Value};

use crate::translate::TranslateError;
use crate::translate::util::{
    anthropic_tool_id, as_array, as_object, as_str, body_object, obj, opt, opt_number,
    opt_positive_int, parse_data_url, req_str, type_name,
};

/// Translates an OpenAI `POST /v1/chat/completions` body into an Anthropic
/// `POST /v1/messages` body for `upstream_model`.
///
/// Mapped:
/// - `system`/`developer` messages → top-level `system` (a string, or text
///   blocks when a part carries `cache_control`); messages in the middle of
///   the conversation are hoisted there too, the only place Anthropic has.
/// - `user`/`assistant` messages → turns of content blocks: `text`,
///   `image_url` (data URLs → base64 source, http(s) → url source), `file`
///   with PDF `file_data` → `document`; assistant `refusal` parts → text;
///   `tool_calls` → `tool_use` (arguments parsed into `input`).
/// - `tool` messages → `tool_result` blocks in a user turn. Adjacent turns
///   of the same role are merged (Anthropic requires alternation), with
///   `tool_result` blocks first as Anthropic requires; empty turns dropped.
/// - `tools` → `name`/`description`/`input_schema`; `tool_choice` auto /
///   none / required→any / function→tool; `parallel_tool_calls: false` →
///   `tool_choice.disable_parallel_tool_use`.
/// - `max_completion_tokens` or `max_tokens` (else `default_max_tokens`),
///   `temperature` (clamped to Anthropic's 0..=1), `top_p`, `stop` →
///   `stop_sequences` (whitespace-only ones dropped: Anthropic rejects them),
///   `user` (or `safety_identifier`) → `metadata.user_id`, `stream`.
/// - `response_format` `json_object`/`json_schema` → an instruction appended
///   to the system prompt. This is best-effort: the model is asked, not
///   constrained, to answer with matching JSON.
/// - `reasoning_effort` → `thinking` with a budget (low 1024, medium 4096,
///   high 16384 tokens, kept below `max_tokens`), only when Anthropic allows
///   it: no forced tool choice, and no earlier assistant tool calls (OpenAI
///   clients do not send back the signed thinking blocks Anthropic then
///   requires). `temperature`/`top_p` are dropped when thinking is on.
/// - `cache_control` on content parts and tools (a common extension) is kept.
///
/// Rejected: `n` > 1, `functions` (deprecated), `input_audio` parts,
/// `file_id` files, non-function tools, `allowed_tools` tool choice.
///
/// Dropped (no Anthropic equivalent): `logprobs`, `top_logprobs`,
/// `frequency_penalty`, `presence_penalty`, `logit_bias`, `seed`,
/// `stream_options` (Anthropic streams always carry usage), `service_tier`,
/// `store`, `metadata`, `modalities`, `audio`, `prediction`,
/// `web_search_options`, `verbosity`, `prompt_cache_key`, tool `strict`,
/// message `name`, assistant `reasoning_content`, `parallel_tool_calls: true`.
pub fn chat_request_to_messages(
    req: &Value,
    upstream_model: &str,
    default_max_tokens: u32,
) -> Result<Value, TranslateError> {
    let body = body_object(req)?;
    check_unsupported(body)?;

    let messages = match opt(body, "messages") {
        Some(m) => as_array(m, || "messages".into())?,
        None => return Err(TranslateError::invalid("messages", "is required")),
    };
    let Converted {
        mut system,
        turns,
        assistant_tool_calls,
    } = convert_messages(messages)?;

    let mut out = Map::new();
    out.insert("model".into(), upstream_model.into());
    if let Some(rf) = opt(body, "response_format") {
        if let Some(instruction) = response_format_instruction(rf)? {
            system.push(text_block(instruction));
        }
    }
    if let Some(system) = system_value(system) {
        out.insert("system".into(), system);
    }
    out.insert(
        "messages".into(),
        Value::Array(
            turns
                .into_iter()
                .map(|t| obj([("role", t.role.into()), ("content", Value::Array(t.blocks))]))
                .collect(),
        ),
    );

    let max_tokens = match opt_positive_int(body, "max_completion_tokens")? {
        Some(n) => n,
        None => opt_positive_int(body, "max_tokens")?.unwrap_or(u64::from(default_max_tokens)),
    };
    out.insert("max_tokens".into(), max_tokens.into());

    let tool_choice = insert_tools(body, &mut out)?;
    let thinking = match opt(body, "reasoning_effort") {
        Some(effort) if !assistant_tool_calls && !tool_choice_forces_tool(tool_choice) => {
            thinking_budget(as_str(effort, || "reasoning_effort".into())?, max_tokens)
        }
        _ => None,
    };
    if let Some(budget) = thinking {
        out.insert(
            "thinking".into(),
            obj([("type", "enabled".into()), ("budget_tokens", budget.into())]),
        );
    } else {
        if let Some(t) = opt_number(body, "temperature")? {
            out.insert("temperature".into(), t.clamp(0.0, 1.0).into());
        }
        if let Some(p) = opt_number(body, "top_p")? {
            out.insert("top_p".into(), p.into());
        }
    }
    if let Some(stop) = stop_sequences(body)? {
        out.insert("stop_sequences".into(), stop);
    }
    let user = match opt(body, "user") {
        Some(u) => Some(u),
        None => opt(body, "safety_identifier"),
    };
    if let Some(user) = user {
        let user = as_str(user, || "user".into())?;
        out.insert("metadata".into(), obj([("user_id", user.into())]));
    }
    if let Some(stream) = opt(body, "stream") {
        let stream = stream
            .as_bool()
            .ok_or_else(|| TranslateError::invalid("stream", "expected a boolean"))?;
        out.insert("stream".into(), stream.into());
    }
    Ok(Value::Object(out))
}

/// The messages, converted: system text blocks, merged turns, and whether
/// an assistant message carried tool calls.
struct Converted {
    system: Vec<Value>,
    turns: Vec<Turn>,
    assistant_tool_calls: bool,
}

fn convert_messages(messages: &[Value]) -> Result<Converted, TranslateError> {
    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    let mut assistant_tool_calls = false;
    for (i, m) in messages.iter().enumerate() {
        let path = || format!("messages[{i}]");
        let mo = as_object(m, path)?;
        let content = opt(mo, "content");
        match req_str(mo, "role", path)? {
            "system" | "developer" => {
                if let Some(c) = content {
                    content_blocks(
                        c,
                        &|| format!("messages[{i}].content"),
                        Parts::Text,
                        &mut system,
                    )?;
                }
            }
            "user" => {
                let mut blocks = Vec::new();
                if let Some(c) = content {
                    content_blocks(
                        c,
                        &|| format!("messages[{i}].content"),
                        Parts::User,
                        &mut blocks,
                    )?;
                }
                push_turn(&mut turns, "user", blocks);
            }
            "assistant" => {
                let mut blocks = Vec::new();
                if let Some(c) = content {
                    content_blocks(
                        c,
                        &|| format!("messages[{i}].content"),
                        Parts::Assistant,
                        &mut blocks,
                    )?;
                }
                if let Some(calls) = opt(mo, "tool_calls") {
                    let before = blocks.len();
                    tool_use_blocks(calls, i, &mut blocks)?;
                    assistant_tool_calls |= blocks.len() > before;
                }
                if opt(mo, "function_call").is_some() {
                    return Err(TranslateError::unsupported(
                        format!("messages[{i}].function_call"),
                        "deprecated function_call is not supported; use tool_calls",
                    ));
                }
                push_turn(&mut turns, "assistant", blocks);
            }
            "tool" => {
                let block = tool_result_block(mo, i)?;
                push_turn(&mut turns, "user", vec![block]);
            }
            "function" => {
                return Err(TranslateError::unsupported(
                    format!("messages[{i}].role"),
                    "deprecated function messages are not supported; use tool messages",
                ));
            }
            _ => {
                return Err(TranslateError::invalid(
                    format!("messages[{i}].role"),
                    "expected one of system, developer, user, assistant, tool",
                ));
            }
        }
    }
    finish_turns(&mut turns);
    if turns.is_empty() {
        return Err(TranslateError::invalid(
            "messages",
            "must contain at least one non-empty user or assistant message",
        ));
    }

    Ok(Converted {
        system,
        turns,
        assistant_tool_calls,
    })
}

/// Fields whose meaning cannot be kept: reject rather than silently change
/// the behaviour the client asked for.
fn check_unsupported(body: &Map<String, Value>) -> Result<(), TranslateError> {
    if let Some(n) = opt(body, "n") {
        match n.as_u64() {
            Some(1) => {}
            Some(n) if n > 1 => {
                return Err(TranslateError::unsupported(
                    "n",
                    "the provider returns a single choice; n must be 1",
                ));
            }
            _ => return Err(TranslateError::invalid("n", "expected a positive integer")),
        }
    }
    if opt(body, "functions").is_some() {
        return Err(TranslateError::unsupported(
            "functions",
            "deprecated functions are not supported; use tools",
        ));
    }
    Ok(())
}

/// One Anthropic turn being assembled.
struct Turn {
    role: &'static str,
    blocks: Vec<Value>,
}

/// Appends blocks as a turn, merging into the previous turn of the same
/// role; a turn without blocks is dropped (Anthropic rejects empty content).
fn push_turn(turns: &mut Vec<Turn>, role: &'static str, mut blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last.role == role => last.blocks.append(&mut blocks),
        _ => turns.push(Turn { role, blocks }),
    }
}

/// Fixes what Anthropic's validation would reject after merging.
fn finish_turns(turns: &mut Vec<Turn>) {
    for t in turns.iter_mut().filter(|t| t.role == "user") {
        // Tool results must come before any other block of the user turn.
        t.blocks
            .sort_by_key(|b| b.get("type").and_then(Value::as_str) != Some("tool_result"));
    }
    // A final assistant turn is a prefill, which must not end in whitespace.
    if let Some(last) = turns.last_mut().filter(|t| t.role == "assistant") {
        if let Some(Value::Object(b)) = last.blocks.last_mut() {
            if b.get("type").and_then(Value::as_str) == Some("text") {
                if let Some(Value::String(text)) = b.get_mut("text") {
                    let trimmed = text.trim_end().len();
                    text.truncate(trimmed);
                    if text.is_empty() {
                        last.blocks.pop();
                    }
                }
            }
        }
        if last.blocks.is_empty() {
            turns.pop();
        }
    }
}

/// Which content parts a message may carry.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Parts {
    /// system/developer messages: text only.
    Text,
    /// user and tool messages: text, images, files.
    User,
    /// assistant messages: text and refusals.
    Assistant,
}

/// Converts an OpenAI `content` (string or parts) into Anthropic blocks.
/// Empty text is skipped: Anthropic rejects empty text blocks.
fn content_blocks(
    content: &Value,
    path: &dyn Fn() -> String,
    allowed: Parts,
    out: &mut Vec<Value>,
) -> Result<(), TranslateError> {
    let parts = match content {
        Value::String(s) => {
            if !s.is_empty() {
                out.push(text_block(s.clone()));
            }
            return Ok(());
        }
        Value::Array(parts) => parts,
        other => {
            return Err(TranslateError::invalid(
                path(),
                format!(
                    "expected a string or an array of content parts, got {}",
                    type_name(other)
                ),
            ));
        }
    };
    for (j, part) in parts.iter().enumerate() {
        let ppath = || format!("{}[{j}]", path());
        let po = as_object(part, ppath)?;
        let kind = req_str(po, "type", ppath)?;
        let block = match (kind, allowed) {
            ("text", _) => {
                let text = req_str(po, "text", ppath)?;
                (!text.is_empty()).then(|| text_block(text.to_owned()))
            }
            ("refusal", Parts::Assistant) => {
                let text = req_str(po, "refusal", ppath)?;
                (!text.is_empty()).then(|| text_block(text.to_owned()))
            }
            ("image_url", Parts::User) => Some(image_block(po, &ppath)?),
            ("file", Parts::User) => Some(document_block(po, &ppath)?),
            ("input_audio", Parts::User) => {
                return Err(TranslateError::unsupported(
                    format!("{}.type", ppath()),
                    "audio input is not supported by the provider",
                ));
            }
            _ => {
                return Err(TranslateError::invalid(
                    format!("{}.type", ppath()),
                    format!("content part type `{kind}` is not allowed here"),
                ));
            }
        };
        if let Some(mut block) = block {
            copy_cache_control(po, &mut block);
            out.push(block);
        }
    }
    Ok(())
}

fn text_block(text: String) -> Value {
    obj([("type", "text".into()), ("text", Value::String(text))])
}

/// Keeps a part's `cache_control` (an Anthropic extension many OpenAI
/// clients send for prompt caching).
fn copy_cache_control(from: &Map<String, Value>, to: &mut Value) {
    if let (Some(cc @ Value::Object(_)), Value::Object(to)) = (from.get("cache_control"), to) {
        to.insert("cache_control".into(), cc.clone());
    }
}

fn image_block(
    part: &Map<String, Value>,
    path: &dyn Fn() -> String,
) -> Result<Value, TranslateError> {
    let url = match part.get("image_url") {
        Some(Value::String(url)) => url.as_str(),
        Some(Value::Object(o)) => req_str(o, "url", || format!("{}.image_url", path()))?,
        _ => {
            return Err(TranslateError::invalid(
                format!("{}.image_url", path()),
                "is required",
            ));
        }
    };
    let url_path = || format!("{}.image_url.url", path());
    let source = if url.starts_with("data:") {
        let d = parse_data_url(url)
            .ok_or_else(|| TranslateError::invalid(url_path(), "expected a base64 data URL"))?;
        obj([
            ("type", "base64".into()),
            ("media_type", d.media_type.into()),
            ("data", d.data.into()),
        ])
    } else if url.starts_with("https://") || url.starts_with("http://") {
        obj([("type", "url".into()), ("url", url.into())])
    } else {
        return Err(TranslateError::invalid(
            url_path(),
            "expected an http(s) or data URL",
        ));
    };
    Ok(obj([("type", "image".into()), ("source", source)]))
}

/// A `file` part with inline PDF data → a `document` block.
fn document_block(
    part: &Map<String, Value>,
    path: &dyn Fn() -> String,
) -> Result<Value, TranslateError> {
    let fpath = || format!("{}.file", path());
    let file = as_object(part.get("file").unwrap_or(&Value::Null), fpath)?;
    let Some(data) = opt(file, "file_data") else {
        return Err(TranslateError::unsupported(
            format!("{}.file_id", fpath()),
            "uploaded files cannot be passed to the provider; send file_data",
        ));
    };
    let data = as_str(data, || format!("{}.file_data", fpath()))?;
    match parse_data_url(data) {
        Some(d) if d.media_type == "application/pdf" => Ok(obj([
            ("type", "document".into()),
            (
                "source",
                obj([
                    ("type", "base64".into()),
                    ("media_type", "application/pdf".into()),
                    ("data", d.data.into()),
                ]),
            ),
        ])),
        _ => Err(TranslateError::unsupported(
            format!("{}.file_data", fpath()),
            "only base64 data URLs of PDF files are supported",
        )),
    }
}

/// Assistant `tool_calls` → `tool_use` blocks.
fn tool_use_blocks(calls: &Value, i: usize, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    let calls = as_array(calls, || format!("messages[{i}].tool_calls"))?;
    for (k, call) in calls.iter().enumerate() {
        let path = || format!("messages[{i}].tool_calls[{k}]");
        let co = as_object(call, path)?;
        if let Some(t) = opt(co, "type")
            .and_then(Value::as_str)
            .filter(|t| *t != "function")
        {
            return Err(TranslateError::unsupported(
                format!("{}.type", path()),
                format!("tool call type `{t}` is not supported; only function"),
            ));
        }
        let id = req_str(co, "id", path)?;
        let fpath = || format!("{}.function", path());
        let function = as_object(co.get("function").unwrap_or(&Value::Null), fpath)?;
        let name = req_str(function, "name", fpath)?;
        let apath = || format!("{}.function.arguments", path());
        let input = match opt(function, "arguments") {
            None => Value::Object(Map::new()),
            Some(Value::String(s)) if s.trim().is_empty() => Value::Object(Map::new()),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(v @ Value::Object(_)) => v,
                Ok(_) => {
                    return Err(TranslateError::invalid(
                        apath(),
                        "must encode a JSON object",
                    ));
                }
                Err(e) => {
                    return Err(TranslateError::invalid(
                        apath(),
                        format!("is not valid JSON: {e}"),
                    ));
                }
            },
            // Some clients send the object itself rather than its encoding.
            Some(v @ Value::Object(_)) => v.clone(),
            Some(_) => return Err(TranslateError::invalid(apath(), "expected a JSON string")),
        };
        out.push(obj([
            ("type", "tool_use".into()),
            ("id", anthropic_tool_id(id).into()),
            ("name", name.into()),
            ("input", input),
        ]));
    }
    Ok(())
}

/// A `tool` message → one `tool_result` block.
fn tool_result_block(mo: &Map<String, Value>, i: usize) -> Result<Value, TranslateError> {
    let path = || format!("messages[{i}]");
    let id = req_str(mo, "tool_call_id", path)?;
    let mut block = Map::new();
    block.insert("type".into(), "tool_result".into());
    block.insert("tool_use_id".into(), anthropic_tool_id(id).into());
    match opt(mo, "content") {
        Some(Value::String(s)) if !s.is_empty() => {
            block.insert("content".into(), s.as_str().into());
        }
        Some(c @ Value::Array(_)) => {
            let mut blocks = Vec::new();
            content_blocks(
                c,
                &|| format!("messages[{i}].content"),
                Parts::User,
                &mut blocks,
            )?;
            if !blocks.is_empty() {
                block.insert("content".into(), Value::Array(blocks));
            }
        }
        None | Some(Value::String(_)) => {}
        Some(_) => {
            return Err(TranslateError::invalid(
                format!("messages[{i}].content"),
                "expected a string or an array of content parts",
            ));
        }
    }
    Ok(Value::Object(block))
}

/// The `system` value: a plain string unless a block needs `cache_control`.
fn system_value(blocks: Vec<Value>) -> Option<Value> {
    if blocks.is_empty() {
        return None;
    }
    if blocks.iter().any(|b| b.get("cache_control").is_some()) {
        return Some(Value::Array(blocks));
    }
    let texts: Vec<&str> = blocks
        .iter()
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect();
    Some(Value::String(texts.join("\n\n")))
}

/// The system-prompt instruction standing in for `response_format`.
fn response_format_instruction(rf: &Value) -> Result<Option<String>, TranslateError> {
    let ro = as_object(rf, || "response_format".into())?;
    match req_str(ro, "type", || "response_format".into())? {
        "text" => Ok(None),
        "json_object" => Ok(Some(
            "Respond only with a single valid JSON object, without any surrounding text or code fences."
                .to_owned(),
        )),
        "json_schema" => {
            let js = as_object(
                ro.get("json_schema").unwrap_or(&Value::Null),
                || "response_format.json_schema".into(),
            )?;
            let schema = opt(js, "schema").map_or_else(|| "{}".to_owned(), Value::to_string);
            let name = opt(js, "name").and_then(Value::as_str).unwrap_or("response");
            Ok(Some(format!(
                "Respond only with a single valid JSON value, without any surrounding text or code fences, \
                 that conforms to the JSON schema named \"{name}\" below.\n{schema}"
            )))
        }
        _ => Err(TranslateError::invalid(
            "response_format.type",
            "expected text, json_object or json_schema",
        )),
    }
}

/// `tools`, `tool_choice` and `parallel_tool_calls`; returns the
/// `tool_choice` written, if any.
fn insert_tools<'a>(
    body: &Map<String, Value>,
    out: &'a mut Map<String, Value>,
) -> Result<Option<&'a Value>, TranslateError> {
    let Some(tools) = opt(body, "tools") else {
        return Ok(None);
    };
    let tools = as_array(tools, || "tools".into())?;
    if tools.is_empty() {
        return Ok(None);
    }
    let mut converted = Vec::with_capacity(tools.len());
    for (k, tool) in tools.iter().enumerate() {
        let path = || format!("tools[{k}]");
        let to = as_object(tool, path)?;
        let kind = req_str(to, "type", path)?;
        if kind != "function" {
            return Err(TranslateError::unsupported(
                format!("tools[{k}].type"),
                format!("tool type `{kind}` is not supported; only function"),
            ));
        }
        let fpath = || format!("tools[{k}].function");
        let f = as_object(to.get("function").unwrap_or(&Value::Null), fpath)?;
        let mut t = Map::new();
        t.insert("name".into(), req_str(f, "name", fpath)?.into());
        if let Some(d) = opt(f, "description") {
            t.insert(
                "description".into(),
                as_str(d, || format!("{}.description", fpath()))?.into(),
            );
        }
        let schema = match opt(f, "parameters") {
            Some(p @ Value::Object(_)) => p.clone(),
            Some(_) => {
                return Err(TranslateError::invalid(
                    format!("{}.parameters", fpath()),
                    "expected an object",
                ));
            }
            // OpenAI allows omitting parameters; Anthropic needs a schema.
            None => obj([
                ("type", "object".into()),
                ("properties", Value::Object(Map::new())),
            ]),
        };
        t.insert("input_schema".into(), schema);
        let mut t = Value::Object(t);
        copy_cache_control(to, &mut t);
        converted.push(t);
    }
    out.insert("tools".into(), Value::Array(converted));

    let mut choice = match opt(body, "tool_choice") {
        None => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => "auto",
            "none" => "none",
            "required" => "any",
            _ => {
                return Err(TranslateError::invalid(
                    "tool_choice",
                    "expected auto, none or required",
                ));
            }
        })
        .map(|t| obj([("type", t.into())])),
        Some(Value::Object(o)) => match o.get("type").and_then(Value::as_str) {
            Some("function") => {
                let f = as_object(o.get("function").unwrap_or(&Value::Null), || {
                    "tool_choice.function".into()
                })?;
                let name = req_str(f, "name", || "tool_choice.function".into())?;
                Some(obj([("type", "tool".into()), ("name", name.into())]))
            }
            Some("allowed_tools") => {
                return Err(TranslateError::unsupported(
                    "tool_choice.type",
                    "allowed_tools is not supported by the provider",
                ));
            }
            _ => {
                return Err(TranslateError::invalid(
                    "tool_choice.type",
                    "expected function",
                ));
            }
        },
        Some(_) => {
            return Err(TranslateError::invalid(
                "tool_choice",
                "expected a string or an object",
            ));
        }
    };
    if opt(body, "parallel_tool_calls").and_then(Value::as_bool) == Some(false) {
        let c = choice.get_or_insert_with(|| obj([("type", "auto".into())]));
        // `none` takes no options; there is nothing to parallelize anyway.
        if let Some(o) = c
            .as_object_mut()
            .filter(|o| o.get("type").and_then(Value::as_str) != Some("none"))
        {
            o.insert("disable_parallel_tool_use".into(), true.into());
        }
    }
    Ok(match choice {
        Some(c) => {
            out.insert("tool_choice".into(), c);
            out.get("tool_choice")
        }
        None => None,
    })
}

fn tool_choice_forces_tool(choice: Option<&Value>) -> bool {
    matches!(
        choice.and_then(|c| c.get("type")).and_then(Value::as_str),
        Some("any" | "tool")
    )
}

/// Thinking budget for an OpenAI `reasoning_effort`, if thinking can be
/// enabled: Anthropic needs at least 1024 tokens and fewer than `max_tokens`.
fn thinking_budget(effort: &str, max_tokens: u64) -> Option<u64> {
    let budget: u64 = match effort {
        "minimal" | "low" => 1024,
        "medium" => 4096,
        "high" | "xhigh" => 16384,
        _ => return None, // "none", or a value this gateway does not know
    };
    let budget = budget.min(max_tokens.saturating_sub(1));
    (budget >= 1024).then_some(budget)
}

/// `stop` (string or array) → `stop_sequences`.
fn stop_sequences(body: &Map<String, Value>) -> Result<Option<Value>, TranslateError> {
    let keep = |s: &str| !s.trim().is_empty();
    let seqs: Vec<Value> = match opt(body, "stop") {
        None => return Ok(None),
        Some(Value::String(s)) => keep(s).then(|| s.as_str().into()).into_iter().collect(),
        Some(Value::Array(items)) => {
            let mut seqs = Vec::with_capacity(items.len());
            for (k, s) in items.iter().enumerate() {
                let s = as_str(s, || format!("stop[{k}]"))?;
                if keep(s) {
                    seqs.push(s.into());
                }
            }
            seqs
        }
        Some(_) => {
            return Err(TranslateError::invalid(
                "stop",
                "expected a string or an array of strings",
            ));
        }
    };
    Ok((!seqs.is_empty()).then_some(Value::Array(seqs)))
}
