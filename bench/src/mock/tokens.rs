//! Deterministic token counting.
//!
//! Real tokenizers are model-specific and large; the mock only needs a rule that is stable and
//! applied the same way everywhere (non-stream usage, stream usage, `count_tokens`), so that a
//! gateway's accounting can be checked against it. The rule is OpenAI's own rule of thumb, about
//! four characters per token, plus small fixed overheads that mimic chat formatting.

/// Tokens charged per chat message for its role and separators.
pub const MESSAGE_OVERHEAD: u64 = 3;
/// Tokens charged once per chat request for priming the assistant's reply.
pub const REPLY_PRIMING: u64 = 3;
/// Tokens charged per image, whatever its size.
pub const IMAGE_TOKENS: u64 = 85;

/// `ceil(chars / 4)`, counting Unicode scalar values.
pub fn text_tokens(s: &str) -> u64 {
    (s.chars().count() as u64).div_ceil(4)
}

/// Accumulates the input tokens of a chat-style request.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct InputCount {
    total: u64,
}

impl InputCount {
    /// Starts a new message (adds the per-message overhead).
    pub(crate) fn message(&mut self) {
        self.total += MESSAGE_OVERHEAD;
    }

    /// Adds a piece of text.
    pub(crate) fn text(&mut self, s: &str) {
        self.total += text_tokens(s);
    }

    /// Adds an image.
    pub(crate) fn image(&mut self) {
        self.total += IMAGE_TOKENS;
    }

    /// Adds tool definitions, charged by their compact JSON length.
    pub(crate) fn tools(&mut self, tools: &serde_json::Value) {
        let len = serde_json::to_string(tools).map(|s| s.len()).unwrap_or(0);
        self.total += (len as u64).div_ceil(4);
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
        let mut c = InputCount::default();
        c.message();
        c.text("hello world!");
        assert_eq!(c.finish_chat(), 3 + 3 + 3);
    }
}
