//! The shared cluster secret and the CA key derived from it.
//!
//! The secret is 32 random bytes, written as `starling-v1:` followed by 64 hex digits. The
//! prefix names the format version and catches a value pasted into the wrong field; the fixed
//! length catches a truncated one.
//!
//! The CA key seed is `SHA-256(domain separator || secret)`. The secret is already 256
//! uniformly random bits, so a single domain-separated hash is a sound KDF here (HKDF would add
//! an extract step that only matters for non-uniform input). The seed becomes an Ed25519 key in
//! PKCS#8 v1 form (RFC 8410), which rcgen loads like any other key.

use std::fmt;
use std::str::FromStr;

use rand::TryRngCore;
use rand::rngs::OsRng;
use rcgen::{KeyPair, PKCS_ED25519};
use rustls::pki_types::PrivatePkcs8KeyDer;
use sha2::{Digest, Sha256};

use super::TlsError;

/// The textual prefix of a version-1 cluster secret.
pub const SECRET_PREFIX: &str = "starling-v1:";

/// Number of random bytes in a secret.
const SECRET_LEN: usize = 32;

/// The first bytes of a test secret ([`generate_test_secret`]). A random secret starts with
/// them with probability 2^-64, so a production secret is never taken for a test one.
const TEST_SECRET_MARKER: [u8; 8] = *b"STRLTEST";

/// Domain separator for the CA key seed. Changing it changes every cluster's CA.
const CA_KEY_DOMAIN: &[u8] = b"starling-cluster/v1 ca-signing-key\0";

/// Domain separator for the public fingerprint (safe to log, reveals nothing about the key).
const FINGERPRINT_DOMAIN: &[u8] = b"starling-cluster/v1 secret-fingerprint\0";

/// RFC 8410 PKCS#8 v1 prefix for an Ed25519 private key; the 32-byte seed follows.
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A parsed cluster secret. Its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret {
    bytes: [u8; SECRET_LEN],
}

/// Makes a new random cluster secret from the operating system's RNG, in its textual form
/// (`starling-v1:` + 64 hex digits). This is what `starling cluster keygen` prints.
///
/// # Errors
/// [`TlsError::BadSecret`] if the OS RNG fails.
pub fn generate_secret() -> Result<String, TlsError> {
    let mut bytes = [0u8; SECRET_LEN];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|_| TlsError::BadSecret("the operating system RNG failed"))?;
    Ok(ClusterSecret { bytes }.to_text())
}

/// Makes a new random secret marked as a test secret (see [`ClusterSecret::is_test`]): what
/// the fault tests give nodes that run a deliberately broken mode, which refuses to start with
/// any other secret, so that such a node can never join a production cluster.
///
/// # Errors
/// [`TlsError::BadSecret`] if the OS RNG fails.
pub fn generate_test_secret() -> Result<String, TlsError> {
    let mut bytes = [0u8; SECRET_LEN];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|_| TlsError::BadSecret("the operating system RNG failed"))?;
    bytes[..TEST_SECRET_MARKER.len()].copy_from_slice(&TEST_SECRET_MARKER);
    Ok(ClusterSecret { bytes }.to_text())
}

impl ClusterSecret {
    /// Whether this is a test secret made by [`generate_test_secret`].
    pub fn is_test(&self) -> bool {
        self.bytes.starts_with(&TEST_SECRET_MARKER)
    }

    /// Parses the textual form. Surrounding whitespace (a trailing newline from a file) is
    /// ignored; hex digits may be upper or lower case.
    ///
    /// # Errors
    /// [`TlsError::BadSecret`] naming what is wrong: missing prefix, wrong length, non-hex
    /// digit, or an all-zero secret.
    pub fn parse(text: &str) -> Result<Self, TlsError> {
        let text = text.trim();
        let Some(hex) = text.strip_prefix(SECRET_PREFIX) else {
            return Err(TlsError::BadSecret(
                "missing the `starling-v1:` prefix (make one with `starling cluster keygen`)",
            ));
        };
        if hex.len() != SECRET_LEN * 2 {
            return Err(TlsError::BadSecret(
                "expected 64 hex digits after `starling-v1:`",
            ));
        }
        let mut bytes = [0u8; SECRET_LEN];
        for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let (Some(hi), Some(lo)) = (hex_value(pair[0]), hex_value(pair[1])) else {
                return Err(TlsError::BadSecret(
                    "non-hex character after `starling-v1:`",
                ));
            };
            *byte = (hi << 4) | lo;
        }
        if bytes.iter().all(|b| *b == 0) {
            return Err(TlsError::BadSecret("the all-zero secret is not allowed"));
        }
        Ok(Self { bytes })
    }

    /// Builds a secret from raw bytes (tests, or a secret kept in binary form).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self { bytes }
    }

    /// The textual form, `starling-v1:` + 64 lowercase hex digits.
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(SECRET_PREFIX.len() + SECRET_LEN * 2);
        out.push_str(SECRET_PREFIX);
        push_hex(&mut out, &self.bytes);
        out
    }

    /// A short public fingerprint (16 hex digits) that is equal on nodes holding the same
    /// secret. Safe to log: it is a one-way hash under its own domain separator.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::new()
            .chain_update(FINGERPRINT_DOMAIN)
            .chain_update(self.bytes)
            .finalize();
        let mut out = String::with_capacity(16);
        push_hex(&mut out, &digest[..8]);
        out
    }

    /// The cluster CA's Ed25519 signing key, identical on every node holding this secret.
    ///
    /// # Errors
    /// [`TlsError::Generate`] if rcgen refuses the derived key (never expected).
    pub(crate) fn derive_ca_key(&self) -> Result<KeyPair, TlsError> {
        let seed = Sha256::new()
            .chain_update(CA_KEY_DOMAIN)
            .chain_update(self.bytes)
            .finalize();
        let mut pkcs8 = Vec::with_capacity(ED25519_PKCS8_V1_PREFIX.len() + seed.len());
        pkcs8.extend_from_slice(&ED25519_PKCS8_V1_PREFIX);
        pkcs8.extend_from_slice(&seed);
        KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(pkcs8), &PKCS_ED25519)
            .map_err(|source| TlsError::Generate {
                what: "cluster CA key derived from the secret",
                source,
            })
    }
}

impl FromStr for ClusterSecret {
    type Err = TlsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterSecret(fingerprint {})", self.fingerprint())
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secret_round_trips() {
        let text = generate_secret().unwrap();
        assert!(text.starts_with(SECRET_PREFIX));
        assert_eq!(text.len(), SECRET_PREFIX.len() + 64);
        let secret = ClusterSecret::parse(&format!("  {text}\n")).unwrap();
        assert_eq!(secret.to_text(), text);
        assert_eq!(
            ClusterSecret::parse(&text.to_uppercase().replace("STARLING-V1:", SECRET_PREFIX))
                .unwrap(),
            secret
        );
    }

    #[test]
    fn bad_secrets_are_named() {
        let good = generate_secret().unwrap();
        let hex = good.strip_prefix(SECRET_PREFIX).unwrap();
        for (bad, needle) in [
            (hex.to_string(), "prefix"),
            (format!("starling-v2:{hex}"), "prefix"),
            (format!("{SECRET_PREFIX}{}", &hex[..63]), "64 hex digits"),
            (format!("{SECRET_PREFIX}{hex}0"), "64 hex digits"),
            (format!("{SECRET_PREFIX}{}g", &hex[..63]), "non-hex"),
            (format!("{SECRET_PREFIX}{}", "0".repeat(64)), "all-zero"),
        ] {
            let err = ClusterSecret::parse(&bad).unwrap_err().to_string();
            assert!(err.contains(needle), "{bad:?}: {err}");
        }
    }

    #[test]
    fn derived_key_is_deterministic_and_secret_specific() {
        let a = ClusterSecret::from_bytes([7; 32]);
        let b = ClusterSecret::from_bytes([8; 32]);
        let ka1 = a.derive_ca_key().unwrap();
        let ka2 = a.derive_ca_key().unwrap();
        let kb = b.derive_ca_key().unwrap();
        assert_eq!(ka1.public_key_raw(), ka2.public_key_raw());
        assert_ne!(ka1.public_key_raw(), kb.public_key_raw());
        assert_eq!(
            a.fingerprint(),
            ClusterSecret::from_bytes([7; 32]).fingerprint()
        );
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn test_secrets_are_marked_and_random_ones_are_not() {
        let test = ClusterSecret::parse(&generate_test_secret().expect("rng")).expect("parses");
        assert!(test.is_test());
        let other = ClusterSecret::parse(&generate_test_secret().expect("rng")).expect("parses");
        assert_ne!(test, other, "test secrets are random beyond the marker");
        let real = ClusterSecret::parse(&generate_secret().expect("rng")).expect("parses");
        assert!(!real.is_test());
    }

    #[test]
    fn debug_is_redacted() {
        let text = generate_secret().unwrap();
        let secret = ClusterSecret::parse(&text).unwrap();
        let shown = format!("{secret:?}");
        assert!(!shown.contains(&text[SECRET_PREFIX.len()..]));
    }
}
