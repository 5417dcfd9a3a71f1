//! Property tests: chunking never changes what comes out, and garbage never
//! panics.

use crate::translate::StreamTranslator;
use bytes::Bytes;
use proptest::prelude::*;
use serde_json::Value;

use super::fixtures::{ANTHROPIC_STREAM, OPENAI_STREAM};
use super::{
    anthropic_events, openai_chunks, parse_sse, run_anthropic_to_openai, run_openai_to_anthropic,
};
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
