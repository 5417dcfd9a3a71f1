"""What the SDKs report as usage matches the mock's ground-truth ledger."""

MODEL = "gpt-4o-mini"


def _last(mock, api, model):
    entries = [e for e in mock.ledger() if e["api"] == api and e["model"].startswith(model)]
    assert entries, f"no {api} call for {model} in the ledger"
    return entries[-1]


def test_openai_usage_matches_ledger(target, oai):
    r = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Bill me [mock:tokens 9]"}])
    e = _last(target.mock, "openai.chat", MODEL)
    assert e["outcome"] == "ok" and e["status"] == 200
    assert (e["input_tokens"], e["output_tokens"]) == (r.usage.prompt_tokens, r.usage.completion_tokens)
    assert e["cost_micros"] > 0
    if target.mode == "direct":
        assert e["request_id"] == r._request_id


def test_anthropic_stream_usage_matches_ledger(target, ant):
    model = "claude-haiku-4-5"
    with ant.messages.stream(model=model, max_tokens=64, messages=[{"role": "user", "content": "Bill [mock:tokens 7]"}]) as s:
        final = s.get_final_message()
    e = _last(target.mock, "anthropic.messages", model)
    assert e["stream"] is True and e["outcome"] == "ok"
    assert (e["input_tokens"], e["output_tokens"]) == (final.usage.input_tokens, 7)
    # claude-haiku-4-5: $1 in, $5 out per Mtok → ceil(in × 1) + ceil(7 × 5) micro-dollars.
    assert e["cost_micros"] == e["input_tokens"] + 35


def test_summary_totals(target):
    s = target.mock.summary()
    entries = target.mock.ledger()
    assert s["calls"] >= len(entries)
    assert s["cost_micros"] >= sum(e["cost_micros"] for e in entries)
