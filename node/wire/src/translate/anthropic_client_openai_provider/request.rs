//! Anthropic Messages request → OpenAI Chat Completions request.

use serde_json::{Map, Value};

use crate::translate::TranslateError;
use crate::translate::util::{
    as_array, as_object, as_str, body_object, obj, opt, opt_number, opt_positive_int, req_str,
};

/// Translates an Anthropic `POST /v1/messages` body into an OpenAI
/// `POST /v1/chat/completions` body for `upstream_model`.
///
/// Mapped:
/// - `system` (string or text blocks, joined with a blank line) → a leading
///   `system` message.
/// - user content: `text` → text parts, `image` (base64 → data URL, url) →
///   `image_url`, base64 PDF `document` → `file` with `file_data`, plain-text
///   `document` → text; a user turn of one text is sent as a plain string.
/// - `tool_result` blocks → `tool` messages (string content; text blocks
///   joined with a newline), in order and before the rest of the user turn;
///   `is_error: true` prefixes the content with `Error: `, since OpenAI has
///   no error flag.
/// - assistant `text` → `content`, `tool_use` → `tool_calls` (input
///   serialized as the `arguments` string).
/// - `tools` (`input_schema` → `parameters`), `tool_choice` auto / any →
///   required / none / tool → function, `disable_parallel_tool_use` →
///   `parallel_tool_calls: false`.
/// - `max_tokens` → `max_tokens` (omitted if absent, which OpenAI allows).
///   Newer OpenAI reasoning models want
///   `max_completion_tokens` instead, but most OpenAI-compatible servers
///   only know `max_tokens`, so it is kept; the gateway may rename it per
///   deployment.
/// - `stop_sequences` → `stop` (OpenAI accepts at most 4; more are passed on
///   and the provider decides), `temperature`, `top_p`, `metadata.user_id` →
///   `user`, `stream` → `stream` plus `stream_options.include_usage` (the
///   gateway always needs usage).
///
/// Rejected: server tools (`web_search_…`, `bash_…`, …), images or
/// documents inside tool results, file-id sources, URL documents, server
/// tool result blocks in history.
///
/// Dropped: `thinking` and assistant thinking/redacted-thinking blocks (no
/// portable OpenAI equivalent), `top_k`, `cache_control`, citations,
/// `service_tier`, `container`, `mcp_servers`, `context_management`, tool
/// `strict`.
pub fn messages_request_to_chat(
    req: &Value,
    upstream_model: &str,
) -> Result<Value, TranslateError> {
    let body = body_object(req)?;
    let messages = match opt(body, "messages") {
        Some(m) => as_array(m, || "messages".into())?,
        None => return Err(TranslateError::invalid("messages", "is required")),
    };

    let mut out_msgs = Vec::with_capacity(messages.len() + 1);
    if let Some(system) = opt(body, "system") {
        let text = system_text(system)?;
        if !text.is_empty() {
            out_msgs.push(obj([("role", "system".into()), ("content", text.into())]));
        }
    }
    for (i, m) in messages.iter().enumerate() {
        let path = || format!("messages[{i}]");
        let mo = as_object(m, path)?;
        let role = req_str(mo, "role", path)?;
        let content = mo.get("content").ok_or_else(|| {
            TranslateError::invalid(format!("messages[{i}].content"), "is required")
        })?;
        match role {
            "user" => user_messages(content, i, &mut out_msgs)?,
            "assistant" => out_msgs.push(assistant_message(content, i)?),
            _ => {
                return Err(TranslateError::invalid(
                    format!("messages[{i}].role"),
                    "expected user or assistant",
                ));
            }
        }
    }

    let mut out = Map::new();
    out.insert("model".into(), upstream_model.into());
    out.insert("messages".into(), Value::Array(out_msgs));
    if let Some(n) = opt_positive_int(body, "max_tokens")? {
        out.insert("max_tokens".into(), n.into());
    }
    for key in ["temperature", "top_p"] {
        if let Some(x) = opt_number(body, key)? {
            out.insert(key.into(), x.into());
        }
    }
    if let Some(stop) = opt(body, "stop_sequences") {
        let seqs = as_array(stop, || "stop_sequences".into())?;
        let mut out_seqs = Vec::with_capacity(seqs.len());
        for (k, s) in seqs.iter().enumerate() {
            out_seqs.push(as_str(s, || format!("stop_sequences[{k}]"))?.into());
        }
        if !out_seqs.is_empty() {
            out.insert("stop".into(), Value::Array(out_seqs));
        }
    }
    if let Some(meta) = opt(body, "metadata") {
        let meta = as_object(meta, || "metadata".into())?;
        if let Some(user) = opt(meta, "user_id") {
            out.insert(
                "user".into(),
                as_str(user, || "metadata.user_id".into())?.into(),
            );
        }
    }
    insert_tools(body, &mut out)?;
    if let Some(stream) = opt(body, "stream") {
        let stream = stream
            .as_bool()
            .ok_or_else(|| TranslateError::invalid("stream", "expected a boolean"))?;
        out.insert("stream".into(), stream.into());
        if stream {
            out.insert(
                "stream_options".into(),
                obj([("include_usage", true.into())]),
            );
        }
    }
    Ok(Value::Object(out))
}

/// The `system` field as one string.
fn system_text(system: &Value) -> Result<String, TranslateError> {
    match system {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut text = String::new();
            for (k, b) in blocks.iter().enumerate() {
                let path = || format!("system[{k}]");
                let bo = as_object(b, path)?;
                if req_str(bo, "type", path)? != "text" {
                    return Err(TranslateError::invalid(
                        format!("system[{k}].type"),
                        "expected text",
                    ));
                }
                let t = req_str(bo, "text", path)?;
                if !text.is_empty() && !t.is_empty() {
                    text.push_str("\n\n");
                }
                text.push_str(t);
            }
            Ok(text)
        }
        _ => Err(TranslateError::invalid(
            "system",
            "expected a string or an array of text blocks",
        )),
    }
}

/// One Anthropic user turn → `tool` messages (one per `tool_result`, in
/// order) followed by a `user` message with the remaining content, if any.
fn user_messages(content: &Value, i: usize, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    let blocks = match content {
        Value::String(s) => {
            out.push(obj([
                ("role", "user".into()),
                ("content", s.as_str().into()),
            ]));
            return Ok(());
        }
        Value::Array(blocks) => blocks,
        _ => {
            return Err(TranslateError::invalid(
                format!("messages[{i}].content"),
                "expected a string or an array of content blocks",
            ));
        }
    };
    let mut parts = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let path = || format!("messages[{i}].content[{j}]");
        let bo = as_object(b, path)?;
        match req_str(bo, "type", path)? {
            "text" => parts.push(text_part(req_str(bo, "text", path)?)),
            "image" => parts.push(image_part(bo, &path)?),
            "document" => parts.push(document_part(bo, &path)?),
            "tool_result" => out.push(tool_message(bo, &path)?),
            other => {
                return Err(TranslateError::unsupported(
                    format!("messages[{i}].content[{j}].type"),
                    format!("content block type `{other}` is not supported in user messages"),
                ));
            }
        }
    }
    let content = match parts.as_slice() {
        [] => return Ok(()),
        // Plain text as a string: every OpenAI-compatible server takes it.
        [single] if single.get("type").and_then(Value::as_str) == Some("text") => {
            single.get("text").cloned().unwrap_or_default()
        }
        _ => Value::Array(parts),
    };
    out.push(obj([("role", "user".into()), ("content", content)]));
    Ok(())
}

fn text_part(text: &str) -> Value {
    obj([("type", "text".into()), ("text", text.into())])
}

fn image_part(b: &Map<String, Value>, path: &dyn Fn() -> String) -> Result<Value, TranslateError> {
    let spath = || format!("{}.source", path());
    let source = as_object(b.get("source").unwrap_or(&Value::Null), spath)?;
    let url = match req_str(source, "type", spath)? {
        "base64" => {
            let media = req_str(source, "media_type", spath)?;
            let data = req_str(source, "data", spath)?;
            format!("data:{media};base64,{data}")
        }
        "url" => req_str(source, "url", spath)?.to_owned(),
        other => {
            return Err(TranslateError::unsupported(
                format!("{}.type", spath()),
                format!("image source `{other}` is not supported"),
            ));
        }
    };
    Ok(obj([
        ("type", "image_url".into()),
        ("image_url", obj([("url", url.into())])),
    ]))
}

fn document_part(
    b: &Map<String, Value>,
    path: &dyn Fn() -> String,
) -> Result<Value, TranslateError> {
    let spath = || format!("{}.source", path());
    let source = as_object(b.get("source").unwrap_or(&Value::Null), spath)?;
    match req_str(source, "type", spath)? {
        "base64" if req_str(source, "media_type", spath)? == "application/pdf" => {
            let data = req_str(source, "data", spath)?;
            let filename = opt(b, "title")
                .and_then(Value::as_str)
                .unwrap_or("document.pdf");
            Ok(obj([
                ("type", "file".into()),
                (
                    "file",
                    obj([
                        ("filename", filename.into()),
                        (
                            "file_data",
                            format!("data:application/pdf;base64,{data}").into(),
                        ),
                    ]),
                ),
            ]))
        }
        "text" => Ok(text_part(req_str(source, "data", spath)?)),
        other => Err(TranslateError::unsupported(
            format!("{}.type", spath()),
            format!("document source `{other}` is not supported; send a base64 PDF or text"),
        )),
    }
}

/// A `tool_result` block → a `tool` message.
fn tool_message(
    b: &Map<String, Value>,
    path: &dyn Fn() -> String,
) -> Result<Value, TranslateError> {
    let id = req_str(b, "tool_use_id", path)?;
    let mut text = String::new();
    if opt(b, "is_error").and_then(Value::as_bool) == Some(true) {
        text.push_str("Error: ");
    }
    match opt(b, "content") {
        None => {}
        Some(Value::String(s)) => text.push_str(s),
        Some(Value::Array(blocks)) => {
            let mut first = true;
            for (k, c) in blocks.iter().enumerate() {
                let cpath = || format!("{}.content[{k}]", path());
                let co = as_object(c, cpath)?;
                match req_str(co, "type", cpath)? {
                    "text" => {
                        if !std::mem::take(&mut first) {
                            text.push('\n');
                        }
                        text.push_str(req_str(co, "text", cpath)?);
                    }
                    other => {
                        return Err(TranslateError::unsupported(
                            format!("{}.type", cpath()),
                            format!(
                                "`{other}` blocks in tool results are not supported; OpenAI tool messages carry text only"
                            ),
                        ));
                    }
                }
            }
        }
        Some(_) => {
            return Err(TranslateError::invalid(
                format!("{}.content", path()),
                "expected a string or an array of content blocks",
            ));
        }
    }
    Ok(obj([
        ("role", "tool".into()),
        ("tool_call_id", id.into()),
        ("content", text.into()),
    ]))
}

/// An Anthropic assistant turn → one assistant message.
fn assistant_message(content: &Value, i: usize) -> Result<Value, TranslateError> {
    let blocks = match content {
        Value::String(s) => {
            return Ok(obj([
                ("role", "assistant".into()),
                ("content", s.as_str().into()),
            ]));
        }
        Value::Array(blocks) => blocks,
        _ => {
            return Err(TranslateError::invalid(
                format!("messages[{i}].content"),
                "expected a string or an array of content blocks",
            ));
        }
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let path = || format!("messages[{i}].content[{j}]");
        let bo = as_object(b, path)?;
        match req_str(bo, "type", path)? {
            "text" => text.push_str(req_str(bo, "text", path)?),
            "tool_use" => {
                let id = req_str(bo, "id", path)?;
                let name = req_str(bo, "name", path)?;
                let arguments = bo
                    .get("input")
                    .map_or_else(|| "{}".to_owned(), Value::to_string);
                calls.push(obj([
                    ("id", id.into()),
                    ("type", "function".into()),
                    (
                        "function",
                        obj([("name", name.into()), ("arguments", arguments.into())]),
                    ),
                ]));
            }
            // Signed reasoning only Anthropic can verify; OpenAI has no slot.
            "thinking" | "redacted_thinking" => {}
            other => {
                return Err(TranslateError::unsupported(
                    format!("messages[{i}].content[{j}].type"),
                    format!("content block type `{other}` is not supported in assistant messages"),
                ));
            }
        }
    }
    let mut m = Map::new();
    m.insert("role".into(), "assistant".into());
    let content = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    m.insert("content".into(), content);
    if !calls.is_empty() {
        m.insert("tool_calls".into(), Value::Array(calls));
    }
    Ok(Value::Object(m))
}

/// `tools`, `tool_choice` and `disable_parallel_tool_use`.
fn insert_tools(
    body: &Map<String, Value>,
    out: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    let tools = match opt(body, "tools") {
        Some(t) => as_array(t, || "tools".into())?,
        None => &[],
    };
    if tools.is_empty() {
        return Ok(());
    }
    let mut converted = Vec::with_capacity(tools.len());
    for (k, tool) in tools.iter().enumerate() {
        let path = || format!("tools[{k}]");
        let to = as_object(tool, path)?;
        if let Some(kind) = opt(to, "type")
            .and_then(Value::as_str)
            .filter(|t| *t != "custom")
        {
            return Err(TranslateError::unsupported(
                format!("tools[{k}].type"),
                format!("server tool `{kind}` is not supported by the provider"),
            ));
        }
        let mut f = Map::new();
        f.insert("name".into(), req_str(to, "name", path)?.into());
        if let Some(d) = opt(to, "description") {
            f.insert(
                "description".into(),
                as_str(d, || format!("tools[{k}].description"))?.into(),
            );
        }
        let schema = match to.get("input_schema") {
            Some(s @ Value::Object(_)) => s.clone(),
            Some(_) => {
                return Err(TranslateError::invalid(
                    format!("tools[{k}].input_schema"),
                    "expected an object",
                ));
            }
            None => {
                return Err(TranslateError::invalid(
                    format!("tools[{k}].input_schema"),
                    "is required",
                ));
            }
        };
        f.insert("parameters".into(), schema);
        converted.push(obj([
            ("type", "function".into()),
            ("function", Value::Object(f)),
        ]));
    }
    out.insert("tools".into(), Value::Array(converted));

    let Some(choice) = opt(body, "tool_choice") else {
        return Ok(());
    };
    let co = as_object(choice, || "tool_choice".into())?;
    let value = match req_str(co, "type", || "tool_choice".into())? {
        "auto" => "auto".into(),
        "any" => "required".into(),
        "none" => "none".into(),
        "tool" => {
            let name = req_str(co, "name", || "tool_choice".into())?;
            obj([
                ("type", "function".into()),
                ("function", obj([("name", name.into())])),
            ])
        }
        _ => {
            return Err(TranslateError::invalid(
                "tool_choice.type",
                "expected auto, any, tool or none",
            ));
        }
    };
    out.insert("tool_choice".into(), value);
    if opt(co, "disable_parallel_tool_use").and_then(Value::as_bool) == Some(true) {
        out.insert("parallel_tool_calls".into(), false.into());
    }
    Ok(())
}
