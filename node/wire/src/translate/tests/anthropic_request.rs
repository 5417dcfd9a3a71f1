//! Anthropic messages request → OpenAI chat request.

use serde_json::{Value, json};

use crate::translate::anthropic_client_openai_provider::messages_request_to_chat;

fn translate(req: Value) -> Value {
    messages_request_to_chat(&req, "gpt-4o").expect("translate")
}

#[test]
fn agent_conversation_with_parallel_tools() {
    let req = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": [
            {"type": "text", "text": "You are Claude Code."},
            {"type": "text", "text": "Be concise.", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/map.png"}},
                {"type": "text", "text": "Weather at both places?"}
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Two lookups.", "signature": "sig"},
                {"type": "text", "text": "Checking both."},
                {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"location": "Paris"}},
                {"type": "tool_use", "id": "toolu_01B", "name": "get_weather", "input": {"location": "Tokyo"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18°C"},
                {"type": "text", "text": "Also, which is warmer?"},
                {"type": "tool_result", "tool_use_id": "toolu_01B", "is_error": true,
                 "content": [{"type": "text", "text": "timeout"}, {"type": "text", "text": "retry later"}]}
            ]},
            {"role": "assistant", "content": "Paris is"}
        ],
        "tools": [{"name": "get_weather", "description": "Get the weather",
                   "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
                   "cache_control": {"type": "ephemeral"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "stop_sequences": ["</answer>"],
        "temperature": 0.5,
        "top_p": 0.95,
        "top_k": 40,
        "metadata": {"user_id": "u-42"},
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "stream": true
    });
    assert_eq!(
        translate(req),
        json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "You are Claude Code.\n\nBe concise."},
                {"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/map.png"}},
                    {"type": "text", "text": "Weather at both places?"}
                ]},
                {"role": "assistant", "content": "Checking both.", "tool_calls": [
                    {"id": "toolu_01A", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}},
                    {"id": "toolu_01B", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Tokyo\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "toolu_01A", "content": "18°C"},
                {"role": "tool", "tool_call_id": "toolu_01B", "content": "Error: timeout\nretry later"},
                {"role": "user", "content": "Also, which is warmer?"},
                {"role": "assistant", "content": "Paris is"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather",
                       "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}],
            "tool_choice": "required",
            "parallel_tool_calls": false,
            "max_tokens": 1024,
            "stop": ["</answer>"],
            "temperature": 0.5,
            "top_p": 0.95,
            "user": "u-42",
            "stream": true,
            "stream_options": {"include_usage": true}
        })
    );
}

#[test]
fn minimal_request() {
    let out = translate(
        json!({"model": "claude", "max_tokens": 256, "messages": [{"role": "user", "content": "Hello, Claude"}]}),
    );
    assert_eq!(
        out,
        json!({"model": "gpt-4o", "max_tokens": 256, "messages": [{"role": "user", "content": "Hello, Claude"}]})
    );
    let out = translate(
        json!({"max_tokens": 1, "system": "Be nice.", "stream": false,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}),
    );
    assert_eq!(
        out["messages"][0],
        json!({"role": "system", "content": "Be nice."})
    );
    assert_eq!(
        out["messages"][1]["content"],
        json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])
    );
    assert_eq!(out["stream"], false);
    assert!(out.get("stream_options").is_none());
}

#[test]
fn tool_choice_variants() {
    let cases = [
        (json!({"type": "auto"}), json!("auto"), None),
        (json!({"type": "any"}), json!("required"), None),
        (json!({"type": "none"}), json!("none"), None),
        (
            json!({"type": "tool", "name": "f"}),
            json!({"type": "function", "function": {"name": "f"}}),
            None,
        ),
        (
            json!({"type": "auto", "disable_parallel_tool_use": true}),
            json!("auto"),
            Some(false),
        ),
    ];
    for (choice, expected, parallel) in cases {
        let out = translate(
            json!({"max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": choice}),
        );
        assert_eq!(out["tool_choice"], expected);
        assert_eq!(
            out.get("parallel_tool_calls").and_then(Value::as_bool),
            parallel
        );
    }
}

#[test]
fn assistant_tool_use_only_has_null_content_and_documents_convert() {
    let out = translate(json!({"max_tokens": 1, "messages": [
        {"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain doc"}}
        ]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]}
    ]}));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": [
                {"type": "file", "file": {"filename": "document.pdf", "file_data": "data:application/pdf;base64,JVBER"}},
                {"type": "text", "text": "plain doc"}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": ""}
        ])
    );
}

#[test]
fn errors_name_the_offending_field() {
    let msgs = |content: Value| json!({"max_tokens": 1, "messages": [{"role": "user", "content": content}]});
    let cases = [
        (json!("x"), "$", 400),
        (json!({"max_tokens": 1}), "messages", 400),
        (
            json!({"messages": [{"role": "system", "content": "x"}]}),
            "messages[0].role",
            400,
        ),
        (
            json!({"messages": [{"role": "user"}]}),
            "messages[0].content",
            400,
        ),
        (
            msgs(json!([{"type": "text"}])),
            "messages[0].content[0].text",
            400,
        ),
        (
            msgs(json!([{"type": "server_tool_use", "id": "x"}])),
            "messages[0].content[0].type",
            400,
        ),
        (
            msgs(json!([{"type": "image", "source": {"type": "file", "file_id": "f"}}])),
            "messages[0].content[0].source.type",
            400,
        ),
        (
            msgs(
                json!([{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image", "source": {}}]}]),
            ),
            "messages[0].content[0].content[0].type",
            400,
        ),
        (
            msgs(json!([{"type": "tool_result"}])),
            "messages[0].content[0].tool_use_id",
            400,
        ),
        (json!({"messages": [], "system": 5}), "system", 400),
        (json!({"messages": [], "max_tokens": -1}), "max_tokens", 400),
        (
            json!({"messages": [], "stop_sequences": "x"}),
            "stop_sequences",
            400,
        ),
        (
            json!({"messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
            "tools[0].type",
            400,
        ),
        (
            json!({"messages": [], "tools": [{"name": "f"}]}),
            "tools[0].input_schema",
            400,
        ),
        (
            json!({"messages": [], "tools": [{"name": "f", "input_schema": {}}], "tool_choice": {"type": "maybe"}}),
            "tool_choice.type",
            400,
        ),
        (
            json!({"messages": [], "metadata": {"user_id": 7}}),
            "metadata.user_id",
            400,
        ),
    ];
    for (req, path, status) in cases {
        let err = messages_request_to_chat(&req, "gpt-4o").expect_err("must fail");
        assert_eq!((err.path(), err.status()), (path, status), "{req}");
    }
}
