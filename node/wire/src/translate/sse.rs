//! Server-sent events: an incremental parser for upstream streams and the
//! frame encoders for what the gateway sends to clients.
//!
//! The parser follows the WHATWG event-stream rules that matter for LLM
//! providers: `\n`, `\r\n` and lone `\r` line endings, `:` comment lines
//! (OpenRouter's keep-alives), multi-line `data:`, an optional single space
//! after the colon, and `id:`/`retry:` ignored. A block without any `data`
//! field dispatches nothing, as the spec says; its bytes are dropped (the
//! gateway sends its own keep-alives on translated streams).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Serialize;

/// One dispatched server-sent event.
///
/// Blocks without a `data` field (keep-alive comments) are not events and
/// produce nothing. A passthrough that must relay keep-alives too should
/// forward the upstream chunks as they arrive and use the parser only to
/// observe the events (usage, errors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if the block had one.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The bytes of the whole block as received, from its first line through
    /// the blank line that ended it, so a passthrough can forward the
    /// original bytes unchanged.
    pub raw: Bytes,
}

/// Why the SSE stream could not be parsed. Either way the upstream stream
/// is unusable and the parser stays failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// One event (its whole block, line endings included) grew past the
    /// configured bound; parsing stops so that a
    /// misbehaving upstream cannot make the gateway buffer without limit.
    #[error("server-sent event exceeds {limit} bytes")]
    EventTooLarge {
        /// The configured `max_event_bytes`.
        limit: usize,
    },
    /// The stream ended in the middle of a line.
    #[error("stream ended in the middle of an event ({pending} bytes pending)")]
    Truncated {
        /// How many bytes of the unfinished event were received.
        pending: usize,
    },
}

/// Incremental SSE parser: feed it the bytes as they arrive with
/// [`SseParser::push`], take the complete events with
/// [`SseParser::next_event`], and call [`SseParser::finish`] at the end of
/// the stream.
///
/// Chunks may split the stream at any byte, including inside a UTF-8
/// character or between `\r` and `\n`. The buffer only ever holds the event
/// in progress (plus whatever the last `push` delivered), and an event over
/// `max_event_bytes` is an error.
#[derive(Debug)]
pub struct SseParser {
    /// Unconsumed bytes; always starts at the first byte of the current block.
    buf: BytesMut,
    /// Offset in `buf` of the first line not yet parsed.
    pos: usize,
    /// Offset in `buf` up to which no line ending was found: the search for the next one
    /// resumes there rather than at `pos`, so a long line delivered in small chunks is
    /// scanned once, not once per chunk (which was quadratic in the line's length).
    scan_from: usize,
    /// Bytes examined while searching for line endings, to check that the search is linear.
    #[cfg(test)]
    scanned: usize,
    max_event_bytes: usize,
    event: Option<String>,
    data: String,
    has_data: bool,
    /// The previous line ended with a `\r` that was the last byte received:
    /// a `\n` arriving next belongs to that line ending.
    skip_lf: bool,
    /// Whether the start of the stream was checked for a UTF-8 BOM.
    bom_checked: bool,
    failed: Option<SseError>,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl SseParser {
    /// A parser that rejects any single event larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            pos: 0,
            scan_from: 0,
            #[cfg(test)]
            scanned: 0,
            max_event_bytes,
            event: None,
            data: String::new(),
            has_data: false,
            skip_lf: false,
            bom_checked: false,
            failed: None,
        }
    }

    /// Appends bytes received from upstream.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// Returns the next complete event, `Ok(None)` if more bytes are needed,
    /// or an error if the stream is unusable (the error then repeats).
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, SseError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if !self.bom_checked {
            let n = self.buf.len().min(BOM.len());
            if self.buf.get(..n) != BOM.get(..n) {
                self.bom_checked = true;
            } else if n == BOM.len() {
                self.buf.advance(n);
                self.scan_from = 0;
                self.bom_checked = true;
            } else {
                return Ok(None);
            }
        }
        loop {
            if self.skip_lf {
                match self.buf.get(self.pos) {
                    None => return Ok(None),
                    Some(b'\n') => self.pos += 1,
                    Some(_) => {}
                }
                self.skip_lf = false;
            }
            let start = self.scan_from.max(self.pos);
            let tail = self.buf.get(start..).unwrap_or_default();
            let found = tail.iter().position(|b| *b == b'\n' || *b == b'\r');
            #[cfg(test)]
            {
                self.scanned += found.map_or(tail.len(), |i| i + 1);
            }
            let Some(i) = found else {
                self.scan_from = self.buf.len();
                if self.buf.len() > self.max_event_bytes {
                    return Err(self.fail(SseError::EventTooLarge {
                        limit: self.max_event_bytes,
                    }));
                }
                return Ok(None);
            };
            let line_end = start + i;
            let next = match (self.buf.get(line_end), self.buf.get(line_end + 1)) {
                (Some(b'\r'), Some(b'\n')) => line_end + 2,
                // A blank line ending in a `\r` that is the last byte so far
                // waits for the next byte, so `raw` does not depend on where
                // the chunks were split (CRLF is the common case).
                (Some(b'\r'), None) if line_end == self.pos => {
                    self.scan_from = line_end;
                    return Ok(None);
                }
                (Some(b'\r'), None) => {
                    self.skip_lf = true;
                    line_end + 1
                }
                _ => line_end + 1,
            };
            if next > self.max_event_bytes {
                return Err(self.fail(SseError::EventTooLarge {
                    limit: self.max_event_bytes,
                }));
            }
            let line = self.buf.get(self.pos..line_end).unwrap_or_default();
            self.pos = next;
            if !line.is_empty() {
                apply_line(line, &mut self.event, &mut self.data, &mut self.has_data);
                continue;
            }
            // A blank line ends the block.
            if let Some(ev) = self.take_event(next) {
                return Ok(Some(ev));
            }
        }
    }

    /// Call once the upstream stream has ended (after draining
    /// [`SseParser::next_event`]).
    ///
    /// Returns the last event if its lines were complete but the final blank
    /// line is missing (some servers close right after `data: [DONE]\n`),
    /// `Ok(None)` if nothing meaningful is pending, and
    /// [`SseError::Truncated`] if the stream stopped in the middle of a line
    /// that was not a comment.
    pub fn finish(&mut self) -> Result<Option<SseEvent>, SseError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        self.skip_lf = false;
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        // A lone `\r` is a blank line still waiting for a possible `\n`.
        if !rest.is_empty() && rest != b"\r" && !rest.starts_with(b":") {
            let pending = self.buf.len();
            return Err(self.fail(SseError::Truncated { pending }));
        }
        let len = self.buf.len();
        let ev = self.take_event(len);
        self.buf.clear();
        Ok(ev)
    }

    /// Ends the current block at `end`: the event if it had data, else
    /// nothing (the block's bytes are dropped either way from the buffer).
    fn take_event(&mut self, end: usize) -> Option<SseEvent> {
        let end = end.min(self.buf.len());
        let event = self.event.take();
        self.pos = 0;
        self.scan_from = 0;
        if !std::mem::take(&mut self.has_data) {
            self.buf.advance(end);
            self.data.clear();
            return None;
        }
        // The spec joins data lines with LF and drops the last one.
        if self.data.ends_with('\n') {
            self.data.pop();
        }
        Some(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
            raw: self.buf.split_to(end).freeze(),
        })
    }

    fn fail(&mut self, err: SseError) -> SseError {
        self.buf = BytesMut::new();
        self.data = String::new();
        self.pos = 0;
        self.scan_from = 0;
        self.failed = Some(err.clone());
        err
    }
}

/// Applies one non-empty line of a block to the event being built.
fn apply_line(line: &[u8], event: &mut Option<String>, data: &mut String, has_data: &mut bool) {
    if line.first() == Some(&b':') {
        return; // comment / keep-alive
    }
    let (name, value) = match line.iter().position(|b| *b == b':') {
        Some(c) => {
            let value = line.get(c + 1..).unwrap_or_default();
            let value = value.strip_prefix(b" ").unwrap_or(value);
            (line.get(..c).unwrap_or_default(), value)
        }
        None => (line, &[][..]),
    };
    match name {
        b"data" => {
            data.push_str(&String::from_utf8_lossy(value));
            data.push('\n');
            *has_data = true;
        }
        b"event" => *event = Some(String::from_utf8_lossy(value).into_owned()),
        // `id` and `retry` only matter to browsers reconnecting; LLM streams
        // are not resumable, so they are ignored like unknown fields.
        _ => {}
    }
}

/// Builds outgoing SSE frames in one reused buffer: each frame is split off
/// as its own [`Bytes`], so consecutive frames share one allocation (and
/// once the frames sent earlier are dropped, the buffer is reclaimed)
/// instead of allocating a buffer per frame.
#[derive(Debug)]
pub struct FrameEncoder {
    buf: BytesMut,
}

/// Buffer size of a stream translator's encoder: a few dozen chunks.
const STREAM_BUFFER: usize = 4096;

impl Default for FrameEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameEncoder {
    /// An encoder sized for a stream of frames.
    pub fn new() -> Self {
        Self::with_capacity(STREAM_BUFFER)
    }

    /// An encoder whose buffer starts at (and is renewed with) `capacity`
    /// bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(capacity),
        }
    }

    /// `data: <json>\n\n`, the OpenAI chunk frame.
    pub fn openai_data(&mut self, json: &impl Serialize) -> Bytes {
        self.buf.reserve(256);
        self.buf.put_slice(b"data: ");
        self.put_json(json);
        self.buf.put_slice(b"\n\n");
        self.buf.split().freeze()
    }

    /// `event: <type>\ndata: <json>\n\n`, the Anthropic event frame. Line
    /// breaks in `event_type` are dropped so they cannot split the frame.
    pub fn anthropic_event(&mut self, event_type: &str, json: &impl Serialize) -> Bytes {
        self.buf.reserve(256);
        self.buf.put_slice(b"event: ");
        for part in event_type.split(['\r', '\n']) {
            self.buf.put_slice(part.as_bytes());
        }
        self.buf.put_slice(b"\ndata: ");
        self.put_json(json);
        self.buf.put_slice(b"\n\n");
        self.buf.split().freeze()
    }

    fn put_json(&mut self, json: &impl Serialize) {
        let start = self.buf.len();
        // Compact serde_json output escapes every control character, so the
        // payload is always a single line. Serializing a `Value` or the
        // translators' structs cannot fail; should a caller's type fail, the
        // frame still stays well-formed.
        if serde_json::to_writer((&mut self.buf).writer(), json).is_err() {
            self.buf.truncate(start);
            self.buf.put_slice(b"{}");
        }
    }
}

/// `data: <json>\n\n` (an OpenAI stream chunk).
pub fn openai_data_frame(json: &impl Serialize) -> Bytes {
    FrameEncoder::with_capacity(256).openai_data(json)
}

/// `data: [DONE]\n\n`, the OpenAI end-of-stream sentinel (no allocation).
pub fn openai_done_frame() -> Bytes {
    Bytes::from_static(b"data: [DONE]\n\n")
}

/// `event: <type>\ndata: <json>\n\n` (an Anthropic stream event).
pub fn anthropic_event_frame(event_type: &str, json: &impl Serialize) -> Bytes {
    FrameEncoder::with_capacity(256).anthropic_event(event_type, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 16;

    fn drain(p: &mut SseParser, out: &mut Vec<SseEvent>) {
        while let Some(ev) = p.next_event().expect("parse") {
            out.push(ev);
        }
    }

    fn parse_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<SseEvent> {
        let mut p = SseParser::new(MAX);
        let mut out = Vec::new();
        for c in chunks {
            p.push(c);
            drain(&mut p, &mut out);
        }
        out.extend(p.finish().expect("finish"));
        out
    }

    fn ev(event: Option<&str>, data: &str, raw: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_owned),
            data: data.to_owned(),
            raw: Bytes::copy_from_slice(raw.as_bytes()),
        }
    }

    /// A stream mixing every line ending, comments, multi-line data,
    /// fields without a space, ignored fields and non-ASCII text.
    const MIXED: &str = concat!(
        ": OPENROUTER PROCESSING\n\n",
        "event: message_start\ndata: {\"a\":\"héllo ✓\"}\n\n",
        "data:no-space\r\n\r\n",
        "id: 7\r\nretry: 1000\r\ndata: first\r\ndata: second\r\n\r\n",
        "data: cr-only\r\r",
        ": keep-alive\r\n\r\n",
        "event: ping\ndata\n\n",
        "data: {\"emoji\":\"😀\"}\n\n",
        "data: [DONE]\n\n",
    );

    fn mixed_expected() -> Vec<SseEvent> {
        vec![
            ev(
                Some("message_start"),
                "{\"a\":\"héllo ✓\"}",
                "event: message_start\ndata: {\"a\":\"héllo ✓\"}\n\n",
            ),
            ev(None, "no-space", "data:no-space\r\n\r\n"),
            ev(
                None,
                "first\nsecond",
                "id: 7\r\nretry: 1000\r\ndata: first\r\ndata: second\r\n\r\n",
            ),
            ev(None, "cr-only", "data: cr-only\r\r"),
            ev(Some("ping"), "", "event: ping\ndata\n\n"),
            ev(None, "{\"emoji\":\"😀\"}", "data: {\"emoji\":\"😀\"}\n\n"),
            ev(None, "[DONE]", "data: [DONE]\n\n"),
        ]
    }

    #[test]
    fn parses_mixed_stream_in_one_chunk() {
        assert_eq!(parse_chunks([MIXED.as_bytes()]), mixed_expected());
    }

    #[test]
    fn every_split_point_gives_same_events() {
        let bytes = MIXED.as_bytes();
        let expected = mixed_expected();
        for split in 1..bytes.len() {
            let (a, b) = bytes.split_at(split);
            assert_eq!(parse_chunks([a, b]), expected, "split at {split}");
        }
    }

    #[test]
    fn every_pair_of_split_points_gives_same_events() {
        let bytes = MIXED.as_bytes();
        let expected = mixed_expected();
        for i in 1..bytes.len() {
            for j in i..bytes.len() {
                let chunks = [&bytes[..i], &bytes[i..j], &bytes[j..]];
                assert_eq!(parse_chunks(chunks), expected, "splits {i},{j}");
            }
        }
    }

    #[test]
    fn byte_at_a_time_gives_same_events() {
        let events = parse_chunks(MIXED.as_bytes().chunks(1));
        assert_eq!(events, mixed_expected());
    }

    #[test]
    fn crlf_split_between_cr_and_lf() {
        let mut p = SseParser::new(MAX);
        let mut out = Vec::new();
        p.push(b"data: a\r\n\r");
        drain(&mut p, &mut out);
        assert!(out.is_empty(), "waits to see whether a LF follows");
        p.push(b"\ndata: b\r");
        drain(&mut p, &mut out);
        assert_eq!(out, vec![ev(None, "a", "data: a\r\n\r\n")]);
        p.push(b"\n\r");
        drain(&mut p, &mut out);
        p.push(b"\n");
        drain(&mut p, &mut out);
        assert_eq!(out.get(1), Some(&ev(None, "b", "data: b\r\n\r\n")));
        assert_eq!(out.len(), 2);
        assert_eq!(p.finish(), Ok(None));
    }

    #[test]
    fn cr_only_event_at_end_of_stream_is_flushed_by_finish() {
        let mut p = SseParser::new(MAX);
        p.push(b"data: a\r\r");
        assert_eq!(p.next_event(), Ok(None));
        assert_eq!(p.finish(), Ok(Some(ev(None, "a", "data: a\r\r"))));
    }

    #[test]
    fn comment_only_blocks_dispatch_nothing() {
        let events = parse_chunks([b": ping\n\n:\n\n: x\r\n\r\n".as_slice()]);
        assert!(events.is_empty());
    }

    #[test]
    fn comment_inside_event_is_kept_in_raw() {
        let events = parse_chunks([b": note\ndata: x\n\n".as_slice()]);
        assert_eq!(events, vec![ev(None, "x", ": note\ndata: x\n\n")]);
    }

    #[test]
    fn data_keeps_only_one_leading_space_and_colons_in_value() {
        let events = parse_chunks([b"data:  two spaces: yes\n\n".as_slice()]);
        assert_eq!(
            events.first().map(|e| e.data.as_str()),
            Some(" two spaces: yes")
        );
    }

    #[test]
    fn leading_bom_is_skipped_even_when_split() {
        let bytes = b"\xEF\xBB\xBFdata: x\n\n";
        for split in 1..bytes.len() {
            let (a, b) = bytes.split_at(split);
            let events = parse_chunks([a, b]);
            assert_eq!(events, vec![ev(None, "x", "data: x\n\n")], "split {split}");
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let events = parse_chunks([b"data: \xFFok\n\n".as_slice()]);
        assert_eq!(events.first().map(|e| e.data.as_str()), Some("\u{FFFD}ok"));
    }

    #[test]
    fn oversized_event_is_an_error_and_sticks() {
        let mut p = SseParser::new(16);
        p.push(b"data: 0123456789abcdef");
        assert_eq!(p.next_event(), Err(SseError::EventTooLarge { limit: 16 }));
        p.push(b"\n\n");
        assert_eq!(p.next_event(), Err(SseError::EventTooLarge { limit: 16 }));
        assert!(p.finish().is_err());
    }

    #[test]
    fn oversized_multi_line_event_is_an_error() {
        let mut p = SseParser::new(16);
        p.push(b"data: 0123\ndata: 4567\ndata: 89ab\n");
        assert_eq!(p.next_event(), Err(SseError::EventTooLarge { limit: 16 }));
    }

    #[test]
    fn many_small_events_in_one_big_chunk_are_fine() {
        let mut p = SseParser::new(16);
        let chunk = b"data: 0123\n\n".repeat(100);
        p.push(&chunk);
        let mut out = Vec::new();
        drain(&mut p, &mut out);
        assert_eq!(out.len(), 100);
    }

    #[test]
    fn limit_counts_the_whole_block() {
        let block = b"data: 1234\r\n\r\n";
        let mut p = SseParser::new(block.len());
        p.push(block);
        assert_eq!(
            p.next_event().ok().flatten().map(|e| e.data),
            Some("1234".into())
        );
        let mut p = SseParser::new(block.len() - 1);
        p.push(block);
        assert!(p.next_event().is_err());
    }

    #[test]
    fn finish_flushes_event_missing_blank_line() {
        let mut p = SseParser::new(MAX);
        p.push(b"data: [DONE]\n");
        assert_eq!(p.next_event(), Ok(None));
        assert_eq!(p.finish(), Ok(Some(ev(None, "[DONE]", "data: [DONE]\n"))));
    }

    #[test]
    fn finish_detects_truncated_line() {
        let mut p = SseParser::new(MAX);
        p.push(b"data: {\"choices\":[{\"del");
        assert_eq!(p.next_event(), Ok(None));
        assert_eq!(p.finish(), Err(SseError::Truncated { pending: 23 }));
    }

    #[test]
    fn finish_ignores_unterminated_comment_and_empty_tail() {
        let mut p = SseParser::new(MAX);
        p.push(b"data: x\n\n: keep-alive");
        assert!(p.next_event().ok().flatten().is_some());
        assert_eq!(p.finish(), Ok(None));
        let mut p = SseParser::new(MAX);
        assert_eq!(p.finish(), Ok(None));
    }

    #[test]
    fn raw_bytes_reparse_to_same_event() {
        for e in mixed_expected() {
            let again = parse_chunks([e.raw.as_ref()]);
            assert_eq!(again, vec![e]);
        }
    }

    /// Regression: the search for a line ending restarted at the start of the line on every
    /// chunk, so an upstream trickling one long line in small chunks cost time quadratic in
    /// its length (200 kB in one-byte chunks: minutes of CPU; 4 MiB, the gateway's bound:
    /// hours). Each byte is now examined about once, however the stream is split.
    #[test]
    fn a_long_line_in_small_chunks_is_scanned_once() {
        const LINE: usize = 50_000;
        let mut p = SseParser::new(MAX * 16);
        p.push(b"data: ");
        for _ in 0..LINE {
            p.push(b"x");
            assert_eq!(p.next_event(), Ok(None));
        }
        p.push(b"\r");
        assert_eq!(p.next_event(), Ok(None));
        p.push(b"\r\n");
        let ev = p.next_event().expect("parse").expect("event");
        assert_eq!(ev.data.len(), LINE);
        assert!(
            p.scanned <= 2 * (LINE + 16),
            "{} bytes examined for a {LINE}-byte line",
            p.scanned
        );
    }

    #[test]
    fn frame_encoders() {
        let v = serde_json::json!({"a": "line\nbreak"});
        assert_eq!(
            &openai_data_frame(&v)[..],
            b"data: {\"a\":\"line\\nbreak\"}\n\n"
        );
        assert_eq!(&openai_done_frame()[..], b"data: [DONE]\n\n");
        assert_eq!(
            &anthropic_event_frame("message_stop", &serde_json::json!({"type": "message_stop"}))[..],
            b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        );
        assert_eq!(
            &anthropic_event_frame("a\nb", &1)[..],
            b"event: ab\ndata: 1\n\n",
            "line breaks in the event name are dropped"
        );
        let mut enc = FrameEncoder::new();
        let a = enc.openai_data(&1);
        let b = enc.openai_data(&2);
        assert_eq!((&a[..], &b[..]), (&b"data: 1\n\n"[..], &b"data: 2\n\n"[..]));
        // Consecutive frames are carved out of the same allocation.
        assert_eq!(a.as_ptr().wrapping_add(a.len()), b.as_ptr());
    }
}
