"""The official openai SDK against the mock (direct) or the gateway (gateway)."""

import json

import openai
import pytest

MODEL = "gpt-4o-mini"

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "Current time",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}},
]


def user(text):
    return [{"role": "user", "content": text}]


def test_chat_non_stream(oai):
    r = oai.chat.completions.create(model=MODEL, messages=user("Hello there friend [mock:tokens 6]"))
    assert r.object == "chat.completion"
    assert r.id
    assert r.model.startswith(MODEL)
    assert len(r.choices) == 1
    c = r.choices[0]
    assert c.finish_reason == "stop"
    assert c.message.role == "assistant"
    assert c.message.content.startswith("Mock reply to: Hello there friend")
    assert c.message.tool_calls is None
    assert r.usage.completion_tokens == 6
    assert r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + 6


def _collect(stream):
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    return chunks, text, finish


def test_chat_stream_without_usage(oai):
    prompt = user("Stream to me [mock:tokens 5]")
    full = oai.chat.completions.create(model=MODEL, messages=prompt)
    chunks, text, finish = _collect(oai.chat.completions.create(model=MODEL, messages=prompt, stream=True))
    assert text == full.choices[0].message.content
    assert finish == ["stop"]
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert all(c.usage is None for c in chunks), "usage only when asked for"
    assert chunks[0].choices[0].delta.role == "assistant"


def test_chat_stream_include_usage(oai):
    prompt = user("Stream with usage [mock:tokens 4]")
    full = oai.chat.completions.create(model=MODEL, messages=prompt)
    chunks, text, finish = _collect(oai.chat.completions.create(
        model=MODEL, messages=prompt, stream=True, stream_options={"include_usage": True}))
    assert text == full.choices[0].message.content
    assert finish == ["stop"]
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1, "exactly one usage chunk"
    last = chunks[-1]
    assert last is with_usage[0]
    assert last.choices == []
    assert last.usage.completion_tokens == 4
    assert last.usage.prompt_tokens == full.usage.prompt_tokens


def test_parallel_tool_calls(oai):
    prompt = ('Weather and time in Paris? [mock:call get_weather {"city": "Paris"}] '
              '[mock:call get_time {"tz": "Europe/Paris"}]')
    r = oai.chat.completions.create(model=MODEL, messages=user(prompt), tools=TOOLS, tool_choice="auto")
    c = r.choices[0]
    assert c.finish_reason == "tool_calls"
    calls = c.message.tool_calls
    assert [t.function.name for t in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
    assert json.loads(calls[1].function.arguments) == {"tz": "Europe/Paris"}
    assert all(t.id and t.type == "function" for t in calls)
    assert len({t.id for t in calls}) == 2


def test_tool_choice_required_and_named(oai):
    r = oai.chat.completions.create(model=MODEL, messages=user("anything"), tools=TOOLS, tool_choice="required")
    assert r.choices[0].finish_reason == "tool_calls"
    assert r.choices[0].message.tool_calls[0].function.name == "get_weather"
    r = oai.chat.completions.create(model=MODEL, messages=user("anything"), tools=TOOLS,
                                    tool_choice={"type": "function", "function": {"name": "get_time"}})
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_time"
    assert set(json.loads(call.function.arguments)) == {"tz"}


def test_tool_calls_stream(oai):
    prompt = ('Both please [mock:call get_weather {"city": "Lyon"}] '
              '[mock:call get_time {"tz": "UTC"}]')
    stream = oai.chat.completions.create(model=MODEL, messages=user(prompt), tools=TOOLS, stream=True)
    calls, finish = {}, None
    for chunk in stream:
        if not chunk.choices:
            continue
        ch = chunk.choices[0]
        for tc in ch.delta.tool_calls or []:
            entry = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": "", "pieces": 0})
            if tc.id:
                entry["id"] = tc.id
            if tc.function and tc.function.name:
                entry["name"] += tc.function.name
            if tc.function and tc.function.arguments:
                entry["arguments"] += tc.function.arguments
                entry["pieces"] += 1
        finish = ch.finish_reason or finish
    assert finish == "tool_calls"
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Lyon"}
    assert json.loads(calls[1]["arguments"]) == {"tz": "UTC"}
    assert all(c["id"] for c in calls.values())
    assert calls[0]["pieces"] > 1, "arguments arrive in fragments"


def test_multi_turn_tool_round(oai):
    first = user('What is the weather? [mock:call get_weather {"city": "Oslo"}]')
    r1 = oai.chat.completions.create(model=MODEL, messages=first, tools=TOOLS)
    call = r1.choices[0].message.tool_calls[0]
    messages = first + [
        r1.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "minus 3 and snowing"},
    ]
    r2 = oai.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert r2.choices[0].finish_reason == "stop"
    assert "Tool said: minus 3 and snowing" in r2.choices[0].message.content


def test_json_object_mode(oai):
    r = oai.chat.completions.create(model=MODEL, messages=user("Reply in JSON"),
                                    response_format={"type": "json_object"})
    assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_n_choices(oai):
    r = oai.chat.completions.create(model=MODEL, messages=user("Two answers [mock:tokens 3]"), n=2)
    assert [c.index for c in r.choices] == [0, 1]
    assert r.usage.completion_tokens == 6


def test_stop_sequence(oai):
    r = oai.chat.completions.create(model=MODEL, messages=user("alpha beta gamma"), stop=["beta"])
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == "Mock reply to: alpha "


def test_max_tokens_length(oai):
    r = oai.chat.completions.create(model=MODEL, messages=user("long [mock:tokens 40]"), max_completion_tokens=5)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 5


def test_logprobs(oai):
    r = oai.chat.completions.create(model=MODEL, messages=user("lp [mock:tokens 3]"), logprobs=True, top_logprobs=2)
    content = r.choices[0].logprobs.content
    assert [t.token for t in content] == ["Mock", " reply", " to:"]
    assert all(t.logprob <= 0 and len(t.top_logprobs) == 2 for t in content)


def test_legacy_completions(oai):
    r = oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say this is a test", max_tokens=5)
    assert r.object == "text_completion"
    assert r.choices[0].text == "Mock reply to: Say this"
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 5
    text = "".join(c.choices[0].text for c in oai.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Say this is a test", max_tokens=5, stream=True) if c.choices)
    assert text == r.choices[0].text


def test_embeddings(oai):
    r = oai.embeddings.create(model="text-embedding-3-small", input=["hello world", "goodbye"])
    assert [d.index for d in r.data] == [0, 1]
    v0 = r.data[0].embedding
    assert len(v0) == 1536
    assert abs(sum(x * x for x in v0) - 1.0) < 1e-3
    again = oai.embeddings.create(model="text-embedding-3-small", input="hello world")
    assert again.data[0].embedding == v0, "deterministic"
    as_float = oai.embeddings.create(model="text-embedding-3-small", input="hello world", encoding_format="float")
    assert as_float.data[0].embedding == pytest.approx(v0, abs=1e-6)
    small = oai.embeddings.create(model="text-embedding-3-small", input="x", dimensions=64)
    assert len(small.data[0].embedding) == 64
    assert r.usage.prompt_tokens > 0


def test_models_list(oai):
    ids = {m.id for m in oai.models.list()}
    assert {"gpt-4o-mini", "text-embedding-3-small"} <= ids, f"models listed: {sorted(ids)}"


def test_rate_limit_error(oai):
    with pytest.raises(openai.RateLimitError) as e:
        oai.chat.completions.create(model=MODEL, messages=user("slow down [mock:error 429 retry-after=1]"))
    assert e.value.status_code == 429
    assert e.value.response.headers.get("retry-after") == "1"


def test_server_error(oai):
    with pytest.raises(openai.InternalServerError) as e:
        oai.chat.completions.create(model=MODEL, messages=user("boom [mock:error 500]"))
    assert e.value.status_code >= 500


def test_bad_key(target):
    client = target.openai(api_key="sk-invalid-key")
    with pytest.raises(openai.AuthenticationError) as e:
        client.chat.completions.create(model=MODEL, messages=user("hi"))
    assert e.value.status_code == 401
