// Provider streams and responses written after the public API references
// (the examples in OpenAI's and Anthropic's streaming docs), extended to
// cover thinking, parallel tool calls, keep-alives and prompt caching.
// Each stream has the equivalent non-streaming response alongside, for the
// stream == non-stream checks.

/// Anthropic stream: thinking (with signature), text split over deltas with
/// a `ping` in between, two `tool_use` blocks (arguments in fragments, an
/// empty first fragment as Anthropic sends), `message_delta` with the
/// cumulative output tokens.
pub const ANTHROPIC_STREAM: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01Aq9w938a90dw8qQ6Vnwq5x","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":2048,"output_tokens":2,"service_tier":"standard"}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"The user wants the weather"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":" in two cities."}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"I'll check the weather in "}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"San Francisco and Tokyo — “both”.\n"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"location\": \"San Fra"}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"ncisco, CA\", \"unit\": \"fah"}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"renheit\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: content_block_start
data: {"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_01CqvQVzYqkRN6ZdXBhZWu9D","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{\"location\": \"Tokyo, JP\", \"unit\": \"celsius\", \"days\": [1, 2]}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":3}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"#;

/// The non-streaming response equivalent to [`ANTHROPIC_STREAM`].
pub const ANTHROPIC_RESPONSE: &str = r#"{
  "id": "msg_01Aq9w938a90dw8qQ6Vnwq5x",
  "type": "message",
  "role": "assistant",
  "model": "claude-sonnet-4-5-20250929",
  "content": [
    {"type": "thinking", "thinking": "The user wants the weather in two cities.", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"},
    {"type": "text", "text": "I'll check the weather in San Francisco and Tokyo — “both”.\n"},
    {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {"location": "San Francisco, CA", "unit": "fahrenheit"}},
    {"type": "tool_use", "id": "toolu_01CqvQVzYqkRN6ZdXBhZWu9D", "name": "get_weather", "input": {"location": "Tokyo, JP", "unit": "celsius", "days": [1, 2]}}
  ],
  "stop_reason": "tool_use",
  "stop_sequence": null,
  "usage": {"input_tokens": 472, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 2048, "output_tokens": 89, "service_tier": "standard"}
}"#;

/// OpenAI stream with `stream_options.include_usage`: role chunk, an
/// OpenRouter keep-alive comment, text, two parallel tool calls whose
/// arguments arrive in fragments, the finish chunk, the usage chunk with
/// `choices: []`, and `[DONE]`.
pub const OPENAI_STREAM: &str = r#"data: {"id":"chatcmpl-AZ9xQhR2bM3Kt6aLJ8oQ","object":"chat.completion.chunk","created":1733000000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_7f6be3efb0","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}

: OPENROUTER PROCESSING

data: {"id":"chatcmpl-AZ9xQhR2bM3Kt6aLJ8oQ","object":"chat.completion.chunk","created":1733000000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_7f6be3efb0","choices":[{"index":0,"delta":{"content":"Let me check "},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-AZ9xQhR2bM3Kt6aLJ8oQ","object":"chat.completion.chunk","created":1733000000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_7f6be3efb0","choices":[{"index":0,"delta":{"content":"both cities — “now”.\n"},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-AZ9xQhR2bM3Kt6aLJ8oQ","object":"chat.completion.chunk","created":1733000000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_7f6be3efb0","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_DdmO9pD3xa9XTPNJ32zg2hcA","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-AZ9xQhR2bM3Kt6aLJ8oQ","object":"chat.completion.chunk","created":1733000000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_7f6be3efb0","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"lo"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-AZ9xQhR2bM3Kt6aLJ8oQ","object":"chat.completion.chunk","created":1733000000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_7f6be3efb0","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"cation\": \"San"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-AZ9xQhR2bM3Kt6aLJ8oQ","object":"chat.completion.chunk","created":1733000000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_7f6be3efb0","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":" Francisco, CA\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-AZ9xQhR2bM3Kt6aLJ8oQ","object":"chat.completion.chunk","created":1733000000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_7f6be3efb0","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_ABQk4ggtB5dPh2bxKsYv9vB7","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-AZ9xQhR2bM3Kt6aLJ8oQ","object":"chat.completion.chunk","created":1733000000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_7f6be3efb0","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{\"location\": \"Tok"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-AZ9xQhR2bM3Kt6aLJ8oQ","object":"chat.completion.chunk","created":1733000000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_7f6be3efb0","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"yo, JP\", \"unit\": \"célsius\", \"days\": [1, 2]}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-AZ9xQhR2bM3Kt6aLJ8oQ","object":"chat.completion.chunk","created":1733000000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_7f6be3efb0","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}

data: {"id":"chatcmpl-AZ9xQhR2bM3Kt6aLJ8oQ","object":"chat.completion.chunk","created":1733000000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_7f6be3efb0","choices":[],"usage":{"prompt_tokens":82,"completion_tokens":45,"total_tokens":127,"prompt_tokens_details":{"cached_tokens":64,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}

data: [DONE]

"#;

/// The non-streaming response equivalent to [`OPENAI_STREAM`].
pub const OPENAI_RESPONSE: &str = r#"{
  "id": "chatcmpl-AZ9xQhR2bM3Kt6aLJ8oQ",
  "object": "chat.completion",
  "created": 1733000000,
  "model": "gpt-4o-2024-08-06",
  "choices": [{
    "index": 0,
    "message": {
      "role": "assistant",
      "content": "Let me check both cities — “now”.\n",
      "refusal": null,
      "annotations": [],
      "tool_calls": [
        {"id": "call_DdmO9pD3xa9XTPNJ32zg2hcA", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\": \"San Francisco, CA\"}"}},
        {"id": "call_ABQk4ggtB5dPh2bxKsYv9vB7", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\": \"Tokyo, JP\", \"unit\": \"célsius\", \"days\": [1, 2]}"}}
      ]
    },
    "logprobs": null,
    "finish_reason": "tool_calls"
  }],
  "usage": {"prompt_tokens": 82, "completion_tokens": 45, "total_tokens": 127,
            "prompt_tokens_details": {"cached_tokens": 64, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
  "service_tier": "default",
  "system_fingerprint": "fp_7f6be3efb0"
}"#;
