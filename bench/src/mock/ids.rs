//! Identifiers and wall-clock timestamps in the shapes the real providers use.

use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Seconds since the Unix epoch, as OpenAI's `created` field.
pub(crate) fn unix_secs() -> u64 {
    unix_ms() / 1000
}

/// 32 lowercase hex digits, as in OpenAI ids (`chatcmpl-…`, `req_…`).
pub(crate) fn hex_id() -> String {
    Uuid::new_v4().simple().to_string()
}

/// OpenAI-style id: `prefix` followed by hex.
pub(crate) fn openai_id(prefix: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + 32);
    s.push_str(prefix);
    s.push_str(&hex_id());
    s
}

/// `prefix` followed by `len` (at most 22) random base62 characters.
pub(crate) fn base62_id(prefix: &str, len: usize) -> String {
    let mut n = Uuid::new_v4().as_u128();
    let mut s = String::with_capacity(prefix.len() + len);
    s.push_str(prefix);
    // 62^22 > 2^122 random bits of a v4 uuid, so 22 digits use all of them.
    for _ in 0..len.min(22) {
        // `n % 62` is below 62, so the index is always in bounds.
        s.push(char::from(BASE62[(n % 62) as usize]));
        n /= 62;
    }
    s
}

/// Anthropic-style id: `prefix` + `01` + 22 base62 characters (`msg_01…`, `toolu_01…`).
pub(crate) fn anthropic_id(prefix: &str) -> String {
    base62_id(&format!("{prefix}01"), 22)
}

/// OpenAI tool call id: `call_` + 24 base62 characters.
pub(crate) fn call_id() -> String {
    let mut s = base62_id("call_", 22);
    s.push_str(&base62_id("", 2));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_shapes() {
        let a = anthropic_id("msg_");
        assert!(a.starts_with("msg_01"));
        assert_eq!(a.len(), 4 + 24);
        assert!(a[4..].chars().all(|c| c.is_ascii_alphanumeric()));
        let o = openai_id("chatcmpl-");
        assert_eq!(o.len(), 9 + 32);
        assert_ne!(openai_id("x"), openai_id("x"));
        assert_eq!(call_id().len(), 5 + 24);
    }
}
