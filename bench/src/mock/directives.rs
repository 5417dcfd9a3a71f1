//! Directives: instructions to the mock written inside the prompt.
//!
//! They live in the text of the last user-authored message, so they survive any gateway that
//! forwards (or translates) the conversation. Syntax, anywhere in the text:
//!
//! | directive | effect |
//! |---|---|
//! | `[mock:tokens N]` | reply with N output tokens (before `max_tokens` / stop sequences) |
//! | `[mock:call NAME {json}]` | when the request has tools: call tool NAME with these arguments (JSON object, default `{}`); several → parallel calls |
//! | `[mock:thinking]` | start with a thinking block (Anthropic) / report reasoning tokens (OpenAI) |
//! | `[mock:error STATUS]`, `[mock:error 429 retry-after=S]` | answer with that error status in the provider's format |
//! | `[mock:drop-after K]` | stream K content chunks then cut the connection; non-stream: cut before answering |
//! | `[mock:slow-first-byte MS]` | wait MS milliseconds before the response headers |
//! | `[mock:cached N]` | report N of the prompt tokens as read from the prompt cache |
//!
//! Unknown or malformed directives are ignored (and still removed from the echoed text).

use serde_json::Value;

/// Upper bounds, because prompts are untrusted and a huge number would allocate a huge reply.
const MAX_TOKENS: u32 = 100_000;
const MAX_CALLS: usize = 64;
const MAX_DELAY_MS: u64 = 600_000;

/// The directives found in a prompt.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directives {
    /// `[mock:tokens N]`.
    pub tokens: Option<u32>,
    /// `[mock:call NAME {args}]`, in order.
    pub calls: Vec<(String, Value)>,
    /// `[mock:thinking]`.
    pub thinking: bool,
    /// `[mock:error STATUS retry-after=S]`: status and optional retry-after seconds.
    pub error: Option<(u16, Option<u64>)>,
    /// `[mock:drop-after K]`.
    pub drop_after: Option<u32>,
    /// `[mock:slow-first-byte MS]`.
    pub slow_first_byte_ms: Option<u64>,
    /// `[mock:cached N]`.
    pub cached: Option<u64>,
}

/// Parses all directives in `text` and returns them with the text stripped of them.
pub fn parse(text: &str) -> (Directives, String) {
    const OPEN: &str = "[mock:";
    let mut d = Directives::default();
    let mut stripped = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        stripped.push_str(&rest[..start]);
        let body = &rest[start + OPEN.len()..];
        match parse_one(body, &mut d) {
            Some(consumed) => rest = &body[consumed..],
            None => {
                // Not a well-formed directive: keep the text and look further.
                stripped.push_str(OPEN);
                rest = body;
            }
        }
    }
    stripped.push_str(rest);
    (d, stripped)
}

/// Parses one directive after `[mock:`; returns the bytes consumed including the `]`.
fn parse_one(body: &str, d: &mut Directives) -> Option<usize> {
    let name_end = body.find(|c: char| c.is_whitespace() || c == ']')?;
    let name = &body[..name_end];
    if name == "call" {
        return parse_call(body, name_end, d);
    }
    let close = body.find(']')?;
    let args: Vec<&str> = body[name_end..close].split_whitespace().collect();
    match (name, args.as_slice()) {
        ("tokens", [n]) => {
            d.tokens = n
                .parse::<u64>()
                .ok()
                .map(|n| u32::try_from(n.min(u64::from(MAX_TOKENS))).unwrap_or(MAX_TOKENS));
        }
        ("thinking", []) => d.thinking = true,
        ("error", [status, extra @ ..]) => {
            let status = status
                .parse::<u16>()
                .ok()
                .filter(|s| (400..=599).contains(s));
            let retry = extra
                .iter()
                .find_map(|a| a.strip_prefix("retry-after="))
                .and_then(|s| s.parse::<u64>().ok());
            if let Some(s) = status {
                d.error = Some((s, retry));
            }
        }
        ("drop-after", [k]) => d.drop_after = k.parse().ok(),
        ("slow-first-byte", [ms]) => {
            d.slow_first_byte_ms = ms.parse::<u64>().ok().map(|v| v.min(MAX_DELAY_MS));
        }
        ("cached", [n]) => d.cached = n.parse().ok(),
        _ => {}
    }
    Some(close + 1)
}

/// `call NAME {json}]` — the JSON may itself contain `]`, so it is parsed, not scanned.
fn parse_call(body: &str, name_end: usize, d: &mut Directives) -> Option<usize> {
    let after = &body[name_end..];
    let ws = after.len() - after.trim_start().len();
    let mut pos = name_end + ws;
    let tool_end = body[pos..]
        .find(|c: char| c.is_whitespace() || c == ']')
        .map(|i| pos + i)?;
    let tool = &body[pos..tool_end];
    if tool.is_empty() {
        return None;
    }
    pos = tool_end;
    let after = &body[pos..];
    pos += after.len() - after.trim_start().len();
    let mut args = Value::Object(Default::default());
    if body[pos..].starts_with('{') {
        let mut it = serde_json::Deserializer::from_str(&body[pos..]).into_iter::<Value>();
        match it.next() {
            Some(Ok(v @ Value::Object(_))) => {
                args = v;
                pos += it.byte_offset();
            }
            _ => return None,
        }
        let after = &body[pos..];
        pos += after.len() - after.trim_start().len();
    }
    if !body[pos..].starts_with(']') {
        return None;
    }
    if d.calls.len() < MAX_CALLS {
        d.calls.push((tool.to_owned(), args));
    }
    Some(pos + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_all_kinds() {
        let (d, s) = parse(
            "Hi [mock:tokens 5] there [mock:call get_weather {\"city\": \"Paris\", \"l\": [1]}] \
             [mock:call noop] [mock:thinking][mock:error 429 retry-after=3] [mock:drop-after 2] \
             [mock:slow-first-byte 10] [mock:cached 4] end",
        );
        assert_eq!(d.tokens, Some(5));
        assert_eq!(
            d.calls,
            vec![
                ("get_weather".to_owned(), json!({"city": "Paris", "l": [1]})),
                ("noop".to_owned(), json!({})),
            ]
        );
        assert!(d.thinking);
        assert_eq!(d.error, Some((429, Some(3))));
        assert_eq!(d.drop_after, Some(2));
        assert_eq!(d.slow_first_byte_ms, Some(10));
        assert_eq!(d.cached, Some(4));
        assert_eq!(
            s.split_whitespace().collect::<Vec<_>>(),
            vec!["Hi", "there", "end"]
        );
    }

    #[test]
    fn malformed_is_ignored_not_fatal() {
        for t in [
            "[mock:",
            "[mock:tokens",
            "[mock:call]",
            "[mock:call x {bad json}]",
            "[mock:call x {\"a\":1}",
            "[mock:error 200]",
            "[mock:tokens -1]",
            "[mock:error]",
            "[mock:🦀 é]",
        ] {
            let (d, _) = parse(t);
            assert_eq!(d.tokens, None, "{t}");
            assert!(d.calls.is_empty(), "{t}");
            assert_eq!(d.error, None, "{t}");
        }
        let (d, s) = parse("a [mock:call x {\"a\":1} b");
        assert!(d.calls.is_empty());
        assert!(s.contains("[mock:call"));
    }

    #[test]
    fn bounded() {
        let (d, _) = parse("[mock:tokens 4000000000] [mock:slow-first-byte 99999999999]");
        assert_eq!(d.tokens, Some(MAX_TOKENS));
        assert_eq!(d.slow_first_byte_ms, Some(MAX_DELAY_MS));
    }
}
