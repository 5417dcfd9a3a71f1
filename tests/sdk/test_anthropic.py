"""The official anthropic SDK against the mock (direct) or the gateway (gateway)."""

import anthropic
import pytest

MODEL = "claude-sonnet-4-5"

TOOLS = [
    {"name": "get_weather", "description": "Current weather",
     "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
    {"name": "get_time", "description": "Current time",
     "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}},
]


def user(text):
    return [{"role": "user", "content": text}]


def test_messages_create(ant):
    m = ant.messages.create(model=MODEL, max_tokens=256, system="Be terse.",
                            messages=user("Hello Claude friend [mock:tokens 6]"))
    assert m.type == "message"
    assert m.role == "assistant"
    assert m.id
    assert m.stop_reason == "end_turn"
    assert m.stop_sequence is None
    assert [b.type for b in m.content] == ["text"]
    assert m.content[0].text.startswith("Mock reply to: Hello Claude friend")
    assert m.usage.output_tokens == 6
    assert m.usage.input_tokens > 0


def test_messages_stream(ant):
    prompt = user("Stream to me [mock:tokens 5]")
    full = ant.messages.create(model=MODEL, max_tokens=256, messages=prompt)
    with ant.messages.stream(model=MODEL, max_tokens=256, messages=prompt) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == full.content[0].text
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 5
    assert final.usage.input_tokens == full.usage.input_tokens


def test_raw_stream_events(ant):
    events = list(ant.messages.create(model=MODEL, max_tokens=64, messages=user("raw [mock:tokens 2]"), stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start"
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds.count("content_block_delta") == 2
    assert events[-2].usage.output_tokens == 2


def test_tool_use(ant):
    prompt = user('Weather and time? [mock:call get_weather {"city": "Paris"}] [mock:call get_time {"tz": "UTC"}]')
    m = ant.messages.create(model=MODEL, max_tokens=256, tools=TOOLS, messages=prompt)
    assert m.stop_reason == "tool_use"
    blocks = [b for b in m.content if b.type == "tool_use"]
    assert [b.name for b in blocks] == ["get_weather", "get_time"]
    assert blocks[0].input == {"city": "Paris"}
    assert blocks[1].input == {"tz": "UTC"}
    assert all(b.id for b in blocks)


def test_tool_use_stream_input_json_delta(ant):
    prompt = user('Weather? [mock:call get_weather {"city": "São Paulo", "days": [1, 2, 3]}]')
    partials = []
    with ant.messages.stream(model=MODEL, max_tokens=256, tools=TOOLS, messages=prompt) as stream:
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                partials.append(event.delta.partial_json)
        final = stream.get_final_message()
    assert len([p for p in partials if p]) > 1, "input arrives in fragments"
    assert final.stop_reason == "tool_use"
    tool = final.content[0]
    assert tool.type == "tool_use" and tool.name == "get_weather"
    assert tool.input == {"city": "São Paulo", "days": [1, 2, 3]}


def test_tool_result_round(ant):
    first = user('Weather? [mock:call get_weather {"city": "Oslo"}]')
    m1 = ant.messages.create(model=MODEL, max_tokens=256, tools=TOOLS, messages=first)
    tool = m1.content[0]
    messages = first + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m1.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "minus 3 and snowing"}]},
    ]
    m2 = ant.messages.create(model=MODEL, max_tokens=256, tools=TOOLS, messages=messages)
    assert m2.stop_reason == "end_turn"
    assert "Tool said: minus 3 and snowing" in m2.content[0].text


def test_thinking(ant):
    prompt = user("Think first [mock:thinking] [mock:tokens 3]")
    m = ant.messages.create(model=MODEL, max_tokens=2048, messages=prompt)
    assert [b.type for b in m.content] == ["thinking", "text"]
    assert m.content[0].thinking and m.content[0].signature
    with ant.messages.stream(model=MODEL, max_tokens=2048, messages=prompt) as stream:
        thinking = "".join(e.thinking for e in stream if e.type == "thinking")
        final = stream.get_final_message()
    assert thinking == m.content[0].thinking
    assert final.content[0].type == "thinking"
    assert final.content[0].signature == m.content[0].signature
    assert final.usage.output_tokens == m.usage.output_tokens


def test_stop_sequences(ant):
    m = ant.messages.create(model=MODEL, max_tokens=256, messages=user("alpha beta gamma"), stop_sequences=["beta"])
    assert m.stop_reason == "stop_sequence"
    assert m.stop_sequence == "beta"
    assert m.content[0].text == "Mock reply to: alpha "


def test_max_tokens(ant):
    m = ant.messages.create(model=MODEL, max_tokens=4, messages=user("long [mock:tokens 50]"))
    assert m.stop_reason == "max_tokens"
    assert m.usage.output_tokens == 4


def test_count_tokens(ant):
    kwargs = dict(model=MODEL, system="Be terse.", tools=TOOLS, messages=user("Count these tokens please"))
    counted = ant.messages.count_tokens(**kwargs)
    used = ant.messages.create(max_tokens=16, **kwargs)
    assert counted.input_tokens == used.usage.input_tokens
    assert counted.input_tokens > 0


def test_rate_limit_error(ant):
    with pytest.raises(anthropic.RateLimitError) as e:
        ant.messages.create(model=MODEL, max_tokens=16, messages=user("slow [mock:error 429 retry-after=1]"))
    assert e.value.status_code == 429
    assert e.value.response.headers.get("retry-after") == "1"


def test_overloaded_error(ant):
    with pytest.raises(anthropic.APIStatusError) as e:
        ant.messages.create(model=MODEL, max_tokens=16, messages=user("busy [mock:error 529]"))
    assert e.value.status_code == 529


def test_bad_key(target):
    client = target.anthropic(api_key="sk-ant-invalid-key")
    with pytest.raises(anthropic.AuthenticationError) as e:
        client.messages.create(model=MODEL, max_tokens=16, messages=user("hi"))
    assert e.value.status_code == 401
