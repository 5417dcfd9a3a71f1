//! Virtual key secrets: generated once, shown once, stored only as a SHA-256 hash.

use sha2::{Digest, Sha256};

/// The prefix of every virtual key secret, so that leaked keys are easy to recognise and scan
/// for.
pub const SECRET_PREFIX: &str = "sk-strl-";

/// A SHA-256 digest of a secret, the index the request path looks keys up by.
pub type SecretHash = [u8; 32];

/// A new random secret: the prefix and 48 hex characters (192 bits).
pub fn generate() -> String {
    let bytes: [u8; 24] = rand::random();
    let mut s = String::with_capacity(SECRET_PREFIX.len() + 48);
    s.push_str(SECRET_PREFIX);
    push_hex(&mut s, &bytes);
    s
}

/// The SHA-256 of a presented secret.
pub fn hash(secret: &str) -> SecretHash {
    Sha256::digest(secret.as_bytes()).into()
}

/// Lowercase hex of a hash, as stored in the catalog.
pub fn to_hex(hash: &SecretHash) -> String {
    let mut s = String::with_capacity(64);
    push_hex(&mut s, hash);
    s
}

/// Parses a stored hash; `None` if it is not 64 hex characters.
pub fn from_hex(text: &str) -> Option<SecretHash> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A hint for humans: the prefix, the first four characters after it and the last four.
pub fn hint(secret: &str) -> String {
    let body = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let chars: Vec<char> = body.chars().collect();
    if chars.len() < 12 {
        return format!("{SECRET_PREFIX}…");
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{SECRET_PREFIX}{head}…{tail}")
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_unique_and_hash_round_trips() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(a.starts_with(SECRET_PREFIX));
        assert_eq!(a.len(), SECRET_PREFIX.len() + 48);
        let h = hash(&a);
        assert_eq!(from_hex(&to_hex(&h)), Some(h));
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(from_hex("zz"), None);
        assert!(hint(&a).starts_with(SECRET_PREFIX));
        assert!(!hint(&a).contains(&a[SECRET_PREFIX.len() + 4..a.len() - 4]));
    }
}
