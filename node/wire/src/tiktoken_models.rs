//! Which OpenAI models bill with which tiktoken encoding, and which texts tiktoken cannot
//! take: the facts the gateway's estimator (`starling_governance::estimate`) and the mock
//! provider (`bench/src/mock/tokens.rs`) must agree on.

/// A tiktoken encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TiktokenEncoding {
    /// `o200k_base`.
    O200k,
    /// `cl100k_base`.
    Cl100k,
}

/// Model families on `o200k_base`; a prefix matches when followed by the end of the name,
/// `-`, `:` or `.` (`gpt-5.1`).
const O200K_FAMILIES: [&str; 10] = [
    "gpt-4o",
    "chatgpt-4o",
    "gpt-4.1",
    "gpt-4.5",
    "gpt-5",
    "gpt-oss",
    "o1",
    "o3",
    "o4",
    "codex-mini",
];

/// Model families on `cl100k_base`; a prefix matches when followed by the end of the name,
/// `-` or `:`; not `.`, so that an unknown `gpt-4.x` is not taken for `gpt-4`.
const CL100K_FAMILIES: [&str; 7] = [
    "gpt-4",
    "gpt-3.5-turbo",
    "gpt-35-turbo",
    "text-embedding-3",
    "text-embedding-ada-002",
    "davinci-002",
    "babbage-002",
];

/// The encoding `model` bills with (case-insensitive, after an `openai/` or `ft:` prefix);
/// `None` for models outside OpenAI's families.
pub fn encoding_of(model: &str) -> Option<TiktokenEncoding> {
    let base = model_base(model);
    if O200K_FAMILIES.iter().any(|f| in_family(base, f, true)) {
        Some(TiktokenEncoding::O200k)
    } else if CL100K_FAMILIES.iter().any(|f| in_family(base, f, false)) {
        Some(TiktokenEncoding::Cl100k)
    } else {
        None
    }
}

/// The model name without a routing (`openai/`) or fine-tune (`ft:`) prefix.
pub fn model_base(model: &str) -> &str {
    let mut m = model.trim();
    for prefix in ["openai/", "ft:"] {
        if m.get(..prefix.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(prefix))
        {
            m = &m[prefix.len()..];
        }
    }
    m
}

/// Whether `model` is `family` or a variant of it: the family's name followed by the end, `-`
/// or `:`, or `.` when `dot` is set.
pub fn in_family(model: &str, family: &str, dot: bool) -> bool {
    let Some(head) = model.get(..family.len()) else {
        return false;
    };
    head.eq_ignore_ascii_case(family)
        && match model.as_bytes().get(family.len()) {
            None | Some(b'-' | b':') => true,
            Some(b'.') => dot,
            Some(_) => false,
        }
}

/// Longest stretch of whitespace without a line break that a text may have to go through a
/// BPE. tiktoken's pre-tokenizer backtracks over such stretches and panics from about 300,000
/// characters on (fancy-regex's stack limit), so the limit keeps a large margin; texts with a
/// longer stretch are counted another way.
pub const MAX_INLINE_WHITESPACE: usize = 16 * 1024;

/// Whether `s` has a stretch of whitespace without a line break longer than
/// [`MAX_INLINE_WHITESPACE`] characters (`char::is_whitespace` is the regex `\s`).
pub fn has_long_inline_whitespace(s: &str) -> bool {
    if s.len() <= MAX_INLINE_WHITESPACE {
        return false;
    }
    let mut run = 0usize;
    for ch in s.chars() {
        if ch.is_whitespace() && ch != '\n' && ch != '\r' {
            run += 1;
            if run > MAX_INLINE_WHITESPACE {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}
