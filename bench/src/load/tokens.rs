//! Spotting token events in a streamed response's bytes, to time the first token and the gaps
//! between tokens without parsing every event.
//!
//! A token event is an OpenAI chunk whose delta carries non-empty `content`, or an Anthropic
//! `text_delta`. Both providers and the gateway write compact JSON, so a byte search suffices.
//! A marker split across two reads is missed, which at worst drops one gap sample.

use memchr::memmem::Finder;
use std::sync::LazyLock;

use super::request::ApiFormat;

static OPENAI_CONTENT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""content":""#));
static ANTHROPIC_TEXT: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(br#""type":"text_delta""#));

/// How many token events `chunk` holds.
pub fn count(format: ApiFormat, chunk: &[u8]) -> usize {
    match format {
        ApiFormat::Openai => {
            let finder = &*OPENAI_CONTENT;
            let marker = finder.needle().len();
            finder
                .find_iter(chunk)
                // `"content":""` is the empty first delta, not a token.
                .filter(|&at| chunk.get(at + marker).is_some_and(|&b| b != b'"'))
                .count()
        }
        ApiFormat::Anthropic => ANTHROPIC_TEXT.find_iter(chunk).count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_tokens_not_empty_deltas() {
        let chunk = br#"data: {"choices":[{"delta":{"role":"assistant","content":""}}]}

data: {"choices":[{"delta":{"content":"Mock"}}]}

data: {"choices":[{"delta":{"content":" reply"}}]}

"#;
        assert_eq!(count(ApiFormat::Openai, chunk), 2);
        let chunk = br#"event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Mock"}}

"#;
        assert_eq!(count(ApiFormat::Anthropic, chunk), 1);
        assert_eq!(count(ApiFormat::Anthropic, b"event: ping\n\n"), 0);
    }
}
