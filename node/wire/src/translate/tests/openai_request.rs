//! OpenAI chat request → Anthropic messages request.

use serde_json::{Value, json};

use crate::translate::openai_client_anthropic_provider::chat_request_to_messages;

fn translate(req: Value) -> Value {
    chat_request_to_messages(&req, "claude-sonnet-4-5", 4096).expect("translate")
}

fn error_path(req: Value) -> (String, u16) {
    let err = chat_request_to_messages(&req, "claude-sonnet-4-5", 4096).expect_err("must fail");
    (err.path().to_owned(), err.status())
}

#[test]
fn agent_conversation_with_parallel_tools() {
    let req = json!({
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What's the weather like here and in Tokyo?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/street.jpg"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_abc", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris\"}"}},
                {"id": "call_def", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"location\": \"Tokyo\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_abc", "content": "18°C, sunny"},
            {"role": "tool", "tool_call_id": "call_def", "content": [{"type": "text", "text": "25°C"}]},
            {"role": "user", "content": "Thanks! Which is warmer?"},
            {"role": "assistant", "content": "Tokyo is warmer. "}
        ],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Get the weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
            "strict": true}}],
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "max_completion_tokens": 1000,
        "max_tokens": 5,
        "temperature": 0.7,
        "top_p": 0.9,
        "stop": ["END", "\n\n"],
        "user": "user-123",
        "stream": true,
        "stream_options": {"include_usage": true},
        "logprobs": true,
        "frequency_penalty": 0.5,
        "presence_penalty": 0.1,
        "seed": 42,
        "n": 1
    });
    assert_eq!(
        translate(req),
        json!({
            "model": "claude-sonnet-4-5",
            "system": "You are a helpful assistant.\n\nUse metric units.",
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "What's the weather like here and in Tokyo?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/street.jpg"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_abc", "name": "get_weather", "input": {"location": "Paris"}},
                    {"type": "tool_use", "id": "call_def", "name": "get_weather", "input": {"location": "Tokyo"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_abc", "content": "18°C, sunny"},
                    {"type": "tool_result", "tool_use_id": "call_def", "content": [{"type": "text", "text": "25°C"}]},
                    {"type": "text", "text": "Thanks! Which is warmer?"}
                ]},
                {"role": "assistant", "content": [{"type": "text", "text": "Tokyo is warmer."}]}
            ],
            "tools": [{"name": "get_weather", "description": "Get the weather",
                       "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "max_tokens": 1000,
            "temperature": 0.7,
            "top_p": 0.9,
            "stop_sequences": ["END"],
            "metadata": {"user_id": "user-123"},
            "stream": true
        })
    );
}

#[test]
fn minimal_request_gets_default_max_tokens() {
    let out =
        translate(json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}]}));
    assert_eq!(
        out,
        json!({"model": "claude-sonnet-4-5", "max_tokens": 4096,
               "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]})
    );
    let out = translate(
        json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 7, "stop": "###"}),
    );
    assert_eq!(out["max_tokens"], 7);
    assert_eq!(out["stop_sequences"], json!(["###"]));
}

#[test]
fn tool_choice_variants() {
    let base = |choice: Value, parallel: Value| {
        json!({"messages": [{"role": "user", "content": "x"}],
               "tools": [{"type": "function", "function": {"name": "f"}}],
               "tool_choice": choice, "parallel_tool_calls": parallel})
    };
    let cases = [
        (json!("auto"), Value::Null, json!({"type": "auto"})),
        (json!("none"), Value::Null, json!({"type": "none"})),
        (json!("none"), json!(false), json!({"type": "none"})),
        (json!("required"), json!(true), json!({"type": "any"})),
        (
            json!({"type": "function", "function": {"name": "f"}}),
            Value::Null,
            json!({"type": "tool", "name": "f"}),
        ),
        (
            Value::Null,
            json!(false),
            json!({"type": "auto", "disable_parallel_tool_use": true}),
        ),
    ];
    for (choice, parallel, expected) in cases {
        let out = translate(base(choice.clone(), parallel));
        assert_eq!(
            out["tool_choice"], expected,
            "{choice} {}",
            out["tool_choice"]
        );
        assert_eq!(
            out["tools"],
            json!([{"name": "f", "input_schema": {"type": "object", "properties": {}}}])
        );
    }
    // Without tools there is no tool_choice to send.
    let out = translate(
        json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": "auto", "tools": []}),
    );
    assert!(out.get("tool_choice").is_none() && out.get("tools").is_none());
}

#[test]
fn adjacent_turns_merge_and_empty_ones_drop() {
    let out = translate(json!({"messages": [
        {"role": "user", "content": "a"},
        {"role": "user", "content": [{"type": "text", "text": "b"}]},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": [{"type": "text", "text": "d"}, {"type": "refusal", "refusal": "e"}]}
    ]}));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"},
                                          {"type": "text", "text": "c"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "d"}, {"type": "text", "text": "e"}]}
        ])
    );
}

#[test]
fn tool_results_move_before_text_in_a_merged_user_turn() {
    let out = translate(json!({"messages": [
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call:1", "type": "function", "function": {"name": "f", "arguments": ""}}]},
        {"role": "user", "content": "and also"},
        {"role": "tool", "tool_call_id": "call:1", "content": ""}
    ]}));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1"},
                                          {"type": "text", "text": "and also"}]}
        ])
    );
}

#[test]
fn cache_control_and_system_blocks() {
    let out = translate(json!({"messages": [
        {"role": "system", "content": [{"type": "text", "text": "Long context", "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": [{"type": "text", "text": "q", "cache_control": {"type": "ephemeral"}}]}
    ]}));
    assert_eq!(
        out["system"],
        json!([{"type": "text", "text": "Long context", "cache_control": {"type": "ephemeral"}}])
    );
    assert_eq!(
        out["messages"][0]["content"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
}

#[test]
fn pdf_file_part_becomes_document() {
    let out = translate(json!({"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}}
    ]}]}));
    assert_eq!(
        out["messages"][0]["content"][0],
        json!({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}})
    );
}

#[test]
fn response_format_becomes_system_instruction() {
    let out = translate(
        json!({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer",
            "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}}}),
    );
    let system = out["system"].as_str().expect("system string");
    assert!(
        system.starts_with("Be brief.\n\nRespond only with a single valid JSON value"),
        "{system}"
    );
    assert!(system.contains("\"answer\""), "{system}");
    // The schema is the last line; compared as JSON because key order
    // depends on serde_json's `preserve_order` feature.
    let schema: Value =
        serde_json::from_str(system.lines().last().unwrap_or_default()).expect("schema JSON");
    assert_eq!(
        schema,
        json!({"type": "object", "properties": {"a": {"type": "integer"}}})
    );
    let out = translate(
        json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}),
    );
    assert!(
        out["system"]
            .as_str()
            .expect("system")
            .contains("JSON object")
    );
    let out = translate(
        json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "text"}}),
    );
    assert!(out.get("system").is_none());
}

#[test]
fn reasoning_effort_enables_thinking_when_allowed() {
    let out = translate(json!({"messages": [{"role": "user", "content": "x"}],
        "reasoning_effort": "medium", "max_tokens": 10000, "temperature": 0.2}));
    assert_eq!(
        out["thinking"],
        json!({"type": "enabled", "budget_tokens": 4096})
    );
    assert!(
        out.get("temperature").is_none(),
        "thinking requires the default temperature"
    );
    // The budget stays below max_tokens, and needs at least 1024.
    let out = translate(
        json!({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "high", "max_tokens": 2000}),
    );
    assert_eq!(out["thinking"]["budget_tokens"], 1999);
    let out = translate(
        json!({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "low", "max_tokens": 1000}),
    );
    assert!(out.get("thinking").is_none());
    // Not with earlier tool calls (their thinking blocks are not sent back).
    let out = translate(
        json!({"max_tokens": 10000, "reasoning_effort": "low", "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "r"}]}),
    );
    assert!(out.get("thinking").is_none());
}

#[test]
fn temperature_is_clamped_to_anthropic_range() {
    let out =
        translate(json!({"messages": [{"role": "user", "content": "x"}], "temperature": 1.6}));
    assert_eq!(out["temperature"], 1.0);
}

#[test]
fn errors_name_the_offending_field() {
    let user = |content: Value| json!({"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": content}]});
    let cases = [
        (json!([]), "$", 400),
        (json!({}), "messages", 400),
        (
            json!({"messages": [{"role": "system", "content": "only system"}]}),
            "messages",
            400,
        ),
        (
            json!({"messages": [{"content": "x"}]}),
            "messages[0].role",
            400,
        ),
        (
            json!({"messages": [{"role": "wizard", "content": "x"}]}),
            "messages[0].role",
            400,
        ),
        (
            user(json!([{"type": "video", "url": "x"}])),
            "messages[1].content[0].type",
            400,
        ),
        (
            user(json!([{"type": "text"}])),
            "messages[1].content[0].text",
            400,
        ),
        (
            user(json!([{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}])),
            "messages[1].content[0].image_url.url",
            400,
        ),
        (
            user(json!([{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}])),
            "messages[1].content[0].type",
            400,
        ),
        (user(json!(42)), "messages[1].content", 400),
        (
            json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
            "function": {"name": "f", "arguments": "{\"a\":"}}]}]}),
            "messages[0].tool_calls[0].function.arguments",
            400,
        ),
        (
            json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
            "function": {"name": "f", "arguments": "[1]"}}]}]}),
            "messages[0].tool_calls[0].function.arguments",
            400,
        ),
        (
            json!({"messages": [{"role": "tool", "content": "x"}]}),
            "messages[0].tool_call_id",
            400,
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "n": 2}),
            "n",
            400,
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}),
            "max_tokens",
            400,
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": "9"}),
            "max_completion_tokens",
            400,
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}),
            "temperature",
            400,
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "stop": ["a", 1]}),
            "stop[1]",
            400,
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search"}]}),
            "tools[0].type",
            400,
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {}}]}),
            "tools[0].function.name",
            400,
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": "sometimes"}),
            "tool_choice",
            400,
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "functions": [{"name": "f"}]}),
            "functions",
            400,
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "yaml"}}),
            "response_format.type",
            400,
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc"}}]}]}),
            "messages[0].content[0].file.file_id",
            400,
        ),
    ];
    for (req, path, status) in cases {
        assert_eq!(error_path(req.clone()), (path.to_owned(), status), "{req}");
    }
}

#[test]
fn invalid_arguments_error_mentions_json_problem() {
    let req = json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
        "function": {"name": "f", "arguments": "{oops"}}]}]});
    let err = chat_request_to_messages(&req, "m", 1).expect_err("invalid");
    let msg = err.to_string();
    assert!(
        msg.contains("messages[0].tool_calls[0].function.arguments")
            && msg.contains("not valid JSON"),
        "{msg}"
    );
}
