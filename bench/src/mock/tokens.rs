//! Deterministic token counting.
//!
//! Input is counted the way the real providers bill it, as far as that is public: OpenAI
//! models with their own tokenizers (tiktoken's `o200k_base` or `cl100k_base`, chosen by
//! model name with the same rule as the gateway's estimator), plus OpenAI's documented chat
//! formatting overheads; other models (Anthropic's tokenizer is not public) with OpenAI's
//! rule of thumb, about four characters per token. The rule is applied the same way
//! everywhere (non-stream usage, stream usage, `count_tokens`), so that a gateway's
//! accounting can be checked against it.
//!
//! Output is the mock's own: each streamed text piece is one token, tool-call arguments count
//! four characters a token ([`text_tokens`]).

/// Tokens charged per chat message for its role and separators.
pub const MESSAGE_OVERHEAD: u64 = 3;
/// Tokens charged once per chat request for priming the assistant's reply.
pub const REPLY_PRIMING: u64 = 3;
/// Tokens charged for a message's `name` on top of its text (OpenAI's rule).
pub const NAME_OVERHEAD: u64 = 1;
/// Tokens charged per image (or audio clip, or file), whatever its size.
pub const IMAGE_TOKENS: u64 = 85;
// Which OpenAI models bill with which tiktoken encoding, and which texts tiktoken cannot take:
// the gateway's own table, so the mock and the gateway's estimator agree by construction.
pub use starling_wire::tiktoken_models::MAX_INLINE_WHITESPACE;
use starling_wire::tiktoken_models::{TiktokenEncoding, encoding_of, has_long_inline_whitespace};

/// How a model's text is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// tiktoken `o200k_base`: `gpt-4o`, `gpt-4.1`, `gpt-4.5`, `gpt-5`, `o1`/`o3`/`o4`, `gpt-oss`.
    O200k,
    /// tiktoken `cl100k_base`: `gpt-4`, `gpt-3.5-turbo`, `text-embedding-3-*`, `ada-002`.
    Cl100k,
    /// `ceil(chars / 4)`: every other model.
    CharsOver4,
}

/// The encoding for `model` (case-insensitive, after an `openai/` or `ft:` prefix).
pub fn encoding_for(model: &str) -> Encoding {
    match encoding_of(model) {
        Some(TiktokenEncoding::O200k) => Encoding::O200k,
        Some(TiktokenEncoding::Cl100k) => Encoding::Cl100k,
        None => Encoding::CharsOver4,
    }
}

impl Encoding {
    /// Tokens of `s`.
    pub fn count(self, s: &str) -> u64 {
        let bpe = match self {
            Encoding::O200k => tiktoken_rs::o200k_base_singleton(),
            Encoding::Cl100k => tiktoken_rs::cl100k_base_singleton(),
            Encoding::CharsOver4 => return text_tokens(s),
        };
        if s.is_empty() {
            0
        } else if has_long_inline_whitespace(s) {
            text_tokens(s)
        } else {
            bpe.count_ordinary(s) as u64
        }
    }
}

/// `ceil(chars / 4)`, counting Unicode scalar values.
pub fn text_tokens(s: &str) -> u64 {
    (s.chars().count() as u64).div_ceil(4)
}

/// Accumulates the input tokens of a chat-style request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InputCount {
    encoding: Encoding,
    total: u64,
}

impl InputCount {
    /// A count for a request to `model`.
    pub(crate) fn new(model: &str) -> Self {
        Self {
            encoding: encoding_for(model),
            total: 0,
        }
    }

    /// Starts a new message (adds the per-message overhead).
    pub(crate) fn message(&mut self) {
        self.total += MESSAGE_OVERHEAD;
    }

    /// Adds a piece of text.
    pub(crate) fn text(&mut self, s: &str) {
        self.total += self.encoding.count(s);
    }

    /// Adds a message's `name`.
    pub(crate) fn name(&mut self, s: &str) {
        self.text(s);
        self.total += NAME_OVERHEAD;
    }

    /// Adds an image.
    pub(crate) fn image(&mut self) {
        self.total += IMAGE_TOKENS;
    }

    /// Adds tool definitions, charged as their compact JSON.
    pub(crate) fn tools(&mut self, tools: &serde_json::Value) {
        self.text(&tools.to_string());
    }

    /// The total including reply priming.
    pub(crate) fn finish_chat(self) -> u64 {
        self.total + REPLY_PRIMING
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(text_tokens(""), 0);
        assert_eq!(text_tokens("abcd"), 1);
        assert_eq!(text_tokens("abcde"), 2);
        assert_eq!(text_tokens("ééé"), 1);
        let mut c = InputCount::new("claude-sonnet-4-5");
        c.message();
        c.text("hello world!");
        assert_eq!(c.finish_chat(), 3 + 3 + 3);
        let mut c = InputCount::new("gpt-4o");
        c.message();
        c.text("hello world!");
        c.name("ann");
        assert_eq!(c.finish_chat(), 3 + 3 + 1 + 1 + 3);
    }

    #[test]
    fn encodings_by_model() {
        assert_eq!(encoding_for("gpt-4o-mini"), Encoding::O200k);
        assert_eq!(encoding_for("o3-mini"), Encoding::O200k);
        assert_eq!(encoding_for("gpt-5.1"), Encoding::O200k);
        assert_eq!(encoding_for("gpt-4-turbo"), Encoding::Cl100k);
        assert_eq!(encoding_for("gpt-3.5-turbo-instruct"), Encoding::Cl100k);
        assert_eq!(encoding_for("text-embedding-3-small"), Encoding::Cl100k);
        assert_eq!(encoding_for("claude-sonnet-4-5"), Encoding::CharsOver4);
        assert_eq!(encoding_for("gpt-4.7"), Encoding::CharsOver4);
        assert_eq!(Encoding::O200k.count("hello world"), 2);
        assert_eq!(Encoding::Cl100k.count("Say this is a test"), 5);
        assert_eq!(Encoding::CharsOver4.count("hello world"), 3);
    }

    #[test]
    fn long_whitespace_does_not_panic() {
        let s = " ".repeat(500_000);
        assert_eq!(Encoding::O200k.count(&s), 125_000);
        let s = format!("{}1", " ".repeat(MAX_INLINE_WHITESPACE));
        assert!(Encoding::Cl100k.count(&s) < 1_000);
    }
}
