"""Cross-format calls: each SDK calling the other provider's models through the gateway,
which must translate requests, responses and streams. Only runs in gateway mode."""

import json

import pytest

pytestmark = pytest.mark.gateway_only

OPENAI_TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
ANTHROPIC_TOOLS = [{"name": "get_weather", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def user(text):
    return [{"role": "user", "content": text}]


def test_openai_sdk_to_claude(oai):
    r = oai.chat.completions.create(model="claude-sonnet-4-5", max_tokens=256,
                                    messages=user("Hello from OpenAI [mock:tokens 8]"))
    assert r.choices[0].message.content.startswith("Mock reply to: Hello from OpenAI")
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens == 8


def test_openai_sdk_to_claude_stream(oai):
    chunks = list(oai.chat.completions.create(
        model="claude-sonnet-4-5", max_tokens=256, messages=user("Stream across [mock:tokens 6]"),
        stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Mock reply to: Stream across")
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and usage[0].completion_tokens == 6


def test_openai_sdk_to_claude_tools(oai):
    r = oai.chat.completions.create(model="claude-sonnet-4-5", max_tokens=256, tools=OPENAI_TOOLS,
                                    messages=user('Weather? [mock:call get_weather {"city": "Rome"}]'))
    assert r.choices[0].finish_reason == "tool_calls"
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Rome"}


def test_anthropic_sdk_to_gpt(ant):
    m = ant.messages.create(model="gpt-4o-mini", max_tokens=256, messages=user("Hello from Anthropic [mock:tokens 8]"))
    assert m.content[0].type == "text"
    assert m.content[0].text.startswith("Mock reply to: Hello from Anthropic")
    assert m.stop_reason == "end_turn"
    assert m.usage.output_tokens == 8


def test_anthropic_sdk_to_gpt_stream(ant):
    with ant.messages.stream(model="gpt-4o-mini", max_tokens=256, messages=user("Stream across [mock:tokens 6]")) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text.startswith("Mock reply to: Stream across")
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 6
    assert final.usage.input_tokens > 0


def test_anthropic_sdk_to_gpt_tools(ant):
    with ant.messages.stream(model="gpt-4o-mini", max_tokens=256, tools=ANTHROPIC_TOOLS,
                             messages=user('Weather? [mock:call get_weather {"city": "Rome"}]')) as s:
        final = s.get_final_message()
    assert final.stop_reason == "tool_use"
    tool = [b for b in final.content if b.type == "tool_use"][0]
    assert tool.name == "get_weather"
    assert tool.input == {"city": "Rome"}
