//! Property tests: chunking never changes what comes out, and garbage never
//! panics. Besides fixtures, the stream translators get generated event payloads
//! (the real event shapes with values of any type, see [`crate::testsuite::hostile`]), fed
//! whole and through the SSE parser at arbitrary splits.

use crate::translate::StreamTranslator;
use bytes::Bytes;
use proptest::prelude::*;
use serde_json::Value;

use super::fixtures::{ANTHROPIC_STREAM, OPENAI_STREAM};
use super::{
    anthropic_events, openai_chunks, parse_sse, run_anthropic_to_openai, run_openai_to_anthropic,
};
use crate::testsuite::hostile;
use crate::translate::sse::{SseEvent, SseParser};
use crate::translate::{AnthropicToOpenAiStream, OpenAiToAnthropicStream};

/// Splits `bytes` at the given points (taken modulo the length).
fn split<'a>(bytes: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p % (bytes.len() + 1)).collect();
    cuts.push(0);
    cuts.push(bytes.len());
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

fn normalized_openai(frames: &[Bytes]) -> Vec<Value> {
    let mut v = openai_chunks(frames);
    for c in v.iter_mut().filter(|c| c.is_object()) {
        c["created"] = Value::Null;
    }
    v
}

fn normalized_anthropic(frames: &[Bytes]) -> Vec<Value> {
    let mut v = anthropic_events(frames);
    if let Some(first) = v.first_mut() {
        first["message"]["id"] = Value::Null;
    }
    v
}

/// One generated SSE event, and how to encode it.
#[derive(Debug, Clone)]
struct GenEvent {
    event: Option<String>,
    data: String,
    eol: &'static str,
    comment: bool,
}

fn gen_event() -> impl Strategy<Value = GenEvent> {
    (
        proptest::option::of("[a-z_]{1,10}"),
        "[^\r]{0,40}",
        prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
        any::<bool>(),
    )
        .prop_map(|(event, data, eol, comment)| GenEvent {
            event,
            data,
            eol,
            comment,
        })
}

fn encode(events: &[GenEvent]) -> Vec<u8> {
    let mut out = String::new();
    for e in events {
        if e.comment {
            out.push_str(": keep-alive");
            out.push_str(e.eol);
            out.push_str(e.eol);
        }
        if let Some(name) = &e.event {
            out.push_str("event: ");
            out.push_str(name);
            out.push_str(e.eol);
        }
        for line in e.data.split('\n') {
            out.push_str("data: ");
            out.push_str(line);
            out.push_str(e.eol);
        }
        out.push_str(e.eol);
    }
    out.into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn sse_parser_is_chunking_independent(
        events in prop::collection::vec(gen_event(), 0..12),
        points in prop::collection::vec(any::<usize>(), 0..24),
    ) {
        let bytes = encode(&events);
        let parsed = parse_sse(split(&bytes, &points));
        let whole = parse_sse([bytes.as_slice()]);
        prop_assert_eq!(&parsed, &whole);
        let got: Vec<(Option<String>, String)> = parsed.into_iter().map(|e| (e.event, e.data)).collect();
        let want: Vec<(Option<String>, String)> = events.into_iter().map(|e| (e.event, e.data)).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn anthropic_stream_translation_is_chunking_independent(
        points in prop::collection::vec(any::<usize>(), 0..48),
        crlf in any::<bool>(),
    ) {
        let stream = if crlf { ANTHROPIC_STREAM.replace('\n', "\r\n") } else { ANTHROPIC_STREAM.to_owned() };
        let (whole, _) = run_anthropic_to_openai([ANTHROPIC_STREAM.as_bytes()], true);
        let (pieces, t) = run_anthropic_to_openai(split(stream.as_bytes(), &points), true);
        prop_assert!(t.finished());
        prop_assert_eq!(normalized_openai(&whole), normalized_openai(&pieces));
    }

    #[test]
    fn openai_stream_translation_is_chunking_independent(
        points in prop::collection::vec(any::<usize>(), 0..48),
        crlf in any::<bool>(),
    ) {
        let stream = if crlf { OPENAI_STREAM.replace('\n', "\r\n") } else { OPENAI_STREAM.to_owned() };
        let (whole, _) = run_openai_to_anthropic([OPENAI_STREAM.as_bytes()]);
        let (pieces, t) = run_openai_to_anthropic(split(stream.as_bytes(), &points));
        prop_assert!(t.finished());
        prop_assert_eq!(normalized_anthropic(&whole), normalized_anthropic(&pieces));
    }

    #[test]
    fn parser_survives_garbage(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        points in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let mut p = SseParser::new(128);
        for c in split(&bytes, &points) {
            p.push(c);
            while let Ok(Some(ev)) = p.next_event() {
                prop_assert!(ev.raw.len() <= 128);
            }
        }
        let _ = p.finish();
    }

    #[test]
    fn translators_survive_garbage(datas in prop::collection::vec(
        prop_oneof![
            "\\PC{0,60}",
            Just(r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}"#.to_owned()),
            Just(r#"{"type":"message_delta","delta":{"stop_reason":7},"usage":{"output_tokens":"x"}}"#.to_owned()),
            Just(r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":3,"function":{"arguments":"{"}}]}}]}"#.to_owned()),
            Just(r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"function":{"name":"f"}}]},"finish_reason":"stop"}]}"#.to_owned()),
            Just(r#"{"choices":null,"usage":{"prompt_tokens":-1}}"#.to_owned()),
            Just("[DONE]".to_owned()),
        ],
        0..12,
    )) {
        let mut a = AnthropicToOpenAiStream::new("m", true);
        let mut o = OpenAiToAnthropicStream::new("m");
        for data in datas {
            let ev = SseEvent { event: None, data, raw: Bytes::new() };
            let _ = a.on_event(&ev);
            let _ = o.on_event(&ev);
        }
        let _ = (a.finish(), o.finish());
    }
}

/// The upstream events of a generated stream: each payload as `data` (a JSON string,
/// `[DONE]`, becomes the bare sentinel), named after its `type`, or now and then unnamed or
/// misnamed.
fn generated_events(stream: BoxedStrategy<Vec<Value>>) -> impl Strategy<Value = Vec<SseEvent>> {
    let name = prop_oneof![
        8 => Just(None::<Option<String>>),
        1 => Just(Some(None)),
        1 => "[a-z_]{0,20}".prop_map(|n| Some(Some(n))),
    ];
    (stream, prop::collection::vec(name, 16)).prop_map(|(payloads, names)| {
        payloads
            .into_iter()
            .zip(names.into_iter().cycle())
            .map(|(v, name)| {
                let by_type = v.get("type").and_then(Value::as_str).map(str::to_owned);
                let data = match v {
                    Value::String(s) => s,
                    v => v.to_string(),
                };
                SseEvent {
                    event: name.unwrap_or(by_type),
                    data,
                    raw: Bytes::new(),
                }
            })
            .collect()
    })
}

/// Drives `t` the way the gateway's pump does: each event's frames go out; a translation
/// error ends the stream with an error frame; at the end, the closing frames or (for a
/// stream cut short) an error frame. Returns every frame.
fn drive(t: &mut dyn StreamTranslator, events: &[SseEvent]) -> Vec<Bytes> {
    let mut frames = Vec::new();
    for ev in events {
        if t.finished() {
            break;
        }
        if let Err(e) = t.on_event_into(ev, &mut frames) {
            assert_eq!(e.status(), 502, "{e}");
            frames.push(t.error_frame(502, &e.to_string()));
            break;
        }
    }
    if !t.finished() {
        frames.extend(t.finish());
    }
    if !t.finished() {
        frames.push(t.error_frame(502, "the upstream stream ended early"));
    }
    let _ = t.usage();
    frames
}

/// The frames as (event name, data), with JSON data parsed and the generated parts
/// (`id`, `created`) removed, for comparing two runs.
fn normalized(frames: &[Bytes]) -> Vec<(Option<String>, Value)> {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.shift_remove("id");
                m.shift_remove("created");
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    frames
        .iter()
        .flat_map(|f| parse_sse([f.as_ref()]))
        .map(|ev| {
            let mut v = serde_json::from_str(&ev.data).unwrap_or(Value::String(ev.data));
            strip(&mut v);
            (ev.event, v)
        })
        .collect()
}

/// The bytes of `events` as an upstream would send them.
fn encode_events(events: &[SseEvent]) -> Vec<u8> {
    let mut out = Vec::new();
    for ev in events {
        if let Some(name) = &ev.event {
            out.extend_from_slice(format!("event: {name}\n").as_bytes());
        }
        out.extend_from_slice(format!("data: {}\n\n", ev.data).as_bytes());
    }
    out
}

/// Parses generated streams, whose events may hold several very long strings.
fn parse_big<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<SseEvent> {
    let mut p = SseParser::new(usize::MAX);
    let mut out = Vec::new();
    for c in chunks {
        p.push(c);
        while let Ok(Some(ev)) = p.next_event() {
            out.push(ev);
        }
    }
    out.extend(p.finish().ok().flatten());
    out
}

fn input_len(events: &[SseEvent]) -> usize {
    events.iter().map(|e| e.data.len() + 32).sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Generated Anthropic events into the OpenAI-client translator: every frame is a
    /// well-formed OpenAI frame, the output stays within a bound of the input, and a
    /// stream that ends finishes with `[DONE]` or an error.
    #[test]
    fn anthropic_to_openai_survives_generated_events(
        events in generated_events(hostile::anthropic_stream()),
        include_usage in any::<bool>(),
    ) {
        let mut t = AnthropicToOpenAiStream::new("gpt-client", include_usage);
        let frames = drive(&mut t, &events);
        prop_assert!(t.finished());
        let chunks = openai_chunks(&frames);
        let last = chunks.last().cloned().unwrap_or_default();
        prop_assert!(last == "[DONE]" || last.get("error").is_some(), "{last}");
        let out: usize = frames.iter().map(Bytes::len).sum();
        prop_assert!(out <= 4 * input_len(&events) + 1024, "{out} bytes out");
    }

    /// Generated OpenAI chunks into the Anthropic-client translator: every frame is a
    /// well-formed Anthropic event named after its type, within a bound of the input, and
    /// the stream ends with `message_stop` or an error.
    #[test]
    fn openai_to_anthropic_survives_generated_events(
        events in generated_events(hostile::openai_stream()),
    ) {
        let mut t = OpenAiToAnthropicStream::new("claude-client");
        let frames = drive(&mut t, &events);
        prop_assert!(t.finished());
        let evs = anthropic_events(&frames);
        let last = evs.last().and_then(|e| e["type"].as_str()).unwrap_or_default().to_owned();
        prop_assert!(last == "message_stop" || last == "error", "{last}");
        let out: usize = frames.iter().map(Bytes::len).sum();
        prop_assert!(out <= 4 * input_len(&events) + 2048, "{out} bytes out");
    }

    /// The same generated streams as bytes through the parser, split anywhere: the
    /// translation does not depend on the split.
    #[test]
    fn generated_streams_translate_the_same_however_split(
        anthropic in generated_events(hostile::anthropic_stream()),
        openai in generated_events(hostile::openai_stream()),
        points in prop::collection::vec(any::<usize>(), 0..32),
    ) {
        let bytes = encode_events(&anthropic);
        let whole = parse_big([bytes.as_slice()]);
        prop_assert_eq!(&parse_big(split(&bytes, &points)), &whole);
        let a = drive(&mut AnthropicToOpenAiStream::new("m", true), &whole);
        let b = drive(&mut AnthropicToOpenAiStream::new("m", true), &anthropic);
        prop_assert_eq!(normalized(&a), normalized(&b));

        let bytes = encode_events(&openai);
        let whole = parse_big([bytes.as_slice()]);
        prop_assert_eq!(&parse_big(split(&bytes, &points)), &whole);
        let a = drive(&mut OpenAiToAnthropicStream::new("m"), &whole);
        let b = drive(&mut OpenAiToAnthropicStream::new("m"), &openai);
        prop_assert_eq!(normalized(&a), normalized(&b));
    }

    /// Arbitrary bytes, split anywhere, parse to the same events and errors as in one
    /// piece, and nothing buffered exceeds the bound.
    #[test]
    fn parser_results_on_garbage_do_not_depend_on_splits(
        bytes in prop::collection::vec(
            prop_oneof![
                4 => any::<u8>(),
                2 => Just(b'\n'),
                2 => Just(b'\r'),
                1 => Just(b':'),
                1 => Just(b' '),
            ],
            0..400,
        ),
        points in prop::collection::vec(any::<usize>(), 0..24),
        limit in 16usize..256,
    ) {
        let run = |chunks: Vec<&[u8]>| {
            let mut p = SseParser::new(limit);
            let mut out = Vec::new();
            for c in chunks {
                p.push(c);
                loop {
                    match p.next_event() {
                        Ok(Some(ev)) => {
                            assert!(ev.raw.len() <= limit);
                            out.push(Ok(ev));
                        }
                        Ok(None) => break,
                        Err(e) => {
                            out.push(Err(e));
                            return out;
                        }
                    }
                }
            }
            match p.finish() {
                Ok(Some(ev)) => out.push(Ok(ev)),
                Ok(None) => {}
                Err(e) => out.push(Err(e)),
            }
            out
        };
        let whole = run(vec![bytes.as_slice()]);
        let pieces = run(split(&bytes, &points));
        // An oversized event is reported as soon as the limit is crossed, which may be
        // before or after events that a later chunk would have completed; the events
        // before the error agree either way.
        let ok = |v: &Vec<Result<SseEvent, _>>| v.iter().take_while(|r| r.is_ok()).count();
        let n = ok(&whole).min(ok(&pieces));
        prop_assert_eq!(&whole[..n], &pieces[..n]);
        prop_assert_eq!(whole.iter().any(Result::is_err), pieces.iter().any(Result::is_err));
    }
}
