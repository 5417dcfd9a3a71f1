//! The one place that encodes wire and disk payloads.
//!
//! A frame is a fixed 10-byte header followed by a bincode 2 payload (serde, `standard()`
//! configuration: little-endian varints):
//!
//! ```text
//! +------+---------+------+-------------+---------+
//! | STRL | version | kind | payload len | payload |
//! |  4 B |    1 B  |  1 B |  4 B (BE)   |         |
//! +------+---------+------+-------------+---------+
//! ```
//!
//! Swapping bincode for another codec (bincode is no longer maintained; postcard is the
//! alternative) means bumping [`FORMAT_VERSION`] and changing this module only.
//!
//! Decoding never panics and never trusts a length from the wire: wrong magic, unknown version or
//! kind, a declared length that disagrees with the bytes present, a payload over the caller's
//! bound, trailing bytes and malformed payloads are all [`CodecError`]s. bincode allocates a
//! string's buffer before reading it, so the decoder runs under a byte limit chosen from the
//! payload's actual size: the first of 64 KiB, 1 MiB, 16 MiB, 256 MiB and 4 GiB that holds
//! [`DECODE_AMPLIFICATION`] times the payload. A lying length prefix of a string can reserve at
//! most that (about 16 to 256 times the payload, or 64 KiB), not gigabytes; an honest payload
//! always fits, since its decoded containers take at most a few times its compact varint
//! encoding. Sequences and maps are preallocated by serde, not bincode, for at most 1 MiB each
//! whatever their prefix claims (`serde::de::size_hint::cautious`), so a frame of a few bytes
//! can still make the decoder reserve about a MiB per nested container before it fails
//! (`cluster/tests/crdt_hostile.rs` pins the bound).
//! (The limit once came from the payload size alone, so a state of many small rows, such as
//! the full state a node with a wiped disk pulls, could fail to decode: found by the
//! Jepsen-style tests.)
//!
//! Payload types must not rely on `deserialize_any` (bincode is not self-describing), so e.g.
//! `serde_json::Value` cannot be a catalog value; use concrete structs.

use bincode::config::{self, Configuration};
use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest as _, Sha256};

/// The frame magic.
pub const MAGIC: [u8; 4] = *b"STRL";

/// The current frame format version.
pub const FORMAT_VERSION: u8 = 1;

/// Header length in bytes.
pub const HEADER_LEN: usize = 10;

/// A sensible default bound for decoding peer messages (64 MiB). Replication frames are
/// smaller (`ClusterConfig::max_sync_bytes`, 8 MiB by default): full states travel in
/// chunks.
pub const DEFAULT_MAX_PAYLOAD: usize = 64 << 20;

/// What a frame carries. The byte values are part of the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum Kind {
    /// A version vector: "send me what I lack".
    PullRequest = 1,
    /// A replica delta.
    Delta = 2,
    /// A full replica state for a joiner (a delta since the empty vector).
    FullState = 3,
    /// A rights-transfer request.
    RightsRequest = 4,
    /// A rights-transfer notice.
    RightsGrant = 5,
    /// A replica snapshot on disk.
    Snapshot = 6,
    /// One record of the on-disk append-only log.
    LogRecord = 7,
    /// The last frame of a pull's answer: a delta with the whole context it speaks for, and
    /// the answering replica's version vector (the frames before it are plain deltas).
    PullReply = 8,
    /// A node's rate-limit demand and share reports (the governance layer's payload: the
    /// codec frames and bounds it like every other message).
    RateReport = 9,
}

impl Kind {
    /// The kind for a header byte.
    pub fn from_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::PullRequest,
            2 => Kind::Delta,
            3 => Kind::FullState,
            4 => Kind::RightsRequest,
            5 => Kind::RightsGrant,
            6 => Kind::Snapshot,
            7 => Kind::LogRecord,
            8 => Kind::PullReply,
            9 => Kind::RateReport,
            _ => return None,
        })
    }
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// What the payload is.
    pub kind: Kind,
    /// Payload length in bytes.
    pub payload_len: usize,
}

impl Header {
    /// Header plus payload length.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }
}

/// Why a frame could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Fewer bytes than a header.
    #[error("frame truncated: {got} bytes, a header needs {HEADER_LEN}")]
    Truncated {
        /// Bytes present.
        got: usize,
    },
    /// The frame does not start with `STRL`.
    #[error("bad magic {0:02x?}")]
    BadMagic([u8; 4]),
    /// A format version this build does not speak.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u8),
    /// An unknown message kind.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// A frame of another kind than expected.
    #[error("expected a {expected:?} frame, got {got:?}")]
    WrongKind {
        /// The kind asked for.
        expected: Kind,
        /// The kind found.
        got: Kind,
    },
    /// The payload is larger than allowed.
    #[error("payload of {len} bytes exceeds the limit of {max}")]
    Oversize {
        /// Payload length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The header's length disagrees with the bytes present.
    #[error("header declares {declared} payload bytes, {actual} present")]
    LengthMismatch {
        /// Declared by the header.
        declared: usize,
        /// Present after the header.
        actual: usize,
    },
    /// The payload decoded without using all of its bytes.
    #[error("{0} trailing bytes after the payload")]
    TrailingBytes(usize),
    /// The value could not be encoded.
    #[error("encode failed: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// The payload is malformed.
    #[error("malformed payload: {0}")]
    Decode(#[from] bincode::error::DecodeError),
}

/// The bincode configuration of [`FORMAT_VERSION`] 1 (decoding adds a byte limit).
const WIRE: Configuration = config::standard();

/// Encodes `value` as a `kind` frame.
pub fn encode<T: Serialize + ?Sized>(kind: Kind, value: &T) -> Result<Bytes, CodecError> {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(&MAGIC);
    buf.push(FORMAT_VERSION);
    buf.push(kind as u8);
    buf.extend_from_slice(&[0; 4]);
    bincode::serde::encode_into_std_write(value, &mut buf, WIRE)?;
    let len = buf.len() - HEADER_LEN;
    let declared = u32::try_from(len).map_err(|_| CodecError::Oversize {
        len,
        max: u32::MAX as usize,
    })?;
    if let Some(slot) = buf.get_mut(6..HEADER_LEN) {
        slot.copy_from_slice(&declared.to_be_bytes());
    }
    Ok(Bytes::from(buf))
}

/// Decodes the header at the start of `frame` (for stream readers: read [`HEADER_LEN`] bytes,
/// then `payload_len` more).
pub fn decode_header(frame: &[u8]) -> Result<Header, CodecError> {
    let head: [u8; HEADER_LEN] = frame
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(CodecError::Truncated { got: frame.len() })?;
    let [m0, m1, m2, m3, version, kind, l0, l1, l2, l3] = head;
    if [m0, m1, m2, m3] != MAGIC {
        return Err(CodecError::BadMagic([m0, m1, m2, m3]));
    }
    if version != FORMAT_VERSION {
        return Err(CodecError::UnsupportedVersion(version));
    }
    let kind = Kind::from_byte(kind).ok_or(CodecError::UnknownKind(kind))?;
    let payload_len = usize::try_from(u32::from_be_bytes([l0, l1, l2, l3])).unwrap_or(usize::MAX);
    Ok(Header { kind, payload_len })
}

/// Decodes a whole frame whose payload may be at most `max_payload` bytes.
pub fn decode<T: DeserializeOwned>(
    frame: &[u8],
    max_payload: usize,
) -> Result<(Kind, T), CodecError> {
    let header = decode_header(frame)?;
    if header.payload_len > max_payload {
        return Err(CodecError::Oversize {
            len: header.payload_len,
            max: max_payload,
        });
    }
    let payload = frame.get(HEADER_LEN..).unwrap_or_default();
    if payload.len() != header.payload_len {
        return Err(CodecError::LengthMismatch {
            declared: header.payload_len,
            actual: payload.len(),
        });
    }
    let (value, used) = decode_payload::<T>(payload)?;
    if used != payload.len() {
        return Err(CodecError::TrailingBytes(payload.len() - used));
    }
    Ok((header.kind, value))
}

/// Like [`decode`], but the frame must be of kind `expected`.
pub fn decode_kind<T: DeserializeOwned>(
    frame: &[u8],
    expected: Kind,
    max_payload: usize,
) -> Result<T, CodecError> {
    let header = decode_header(frame)?;
    if header.kind != expected {
        return Err(CodecError::WrongKind {
            expected,
            got: header.kind,
        });
    }
    decode(frame, max_payload).map(|(_, v)| v)
}

/// How much more memory than wire bytes a decoded value may claim: bincode counts each
/// container's elements at their in-memory size, which for rows of varints and short strings
/// is a few times their encoding (a `u64` dot takes one to nine bytes on the wire, eight in
/// memory).
pub const DECODE_AMPLIFICATION: usize = 16;

/// Runs bincode under the smallest byte-limit tier that holds [`DECODE_AMPLIFICATION`] times
/// the payload (see the module docs).
fn decode_payload<T: DeserializeOwned>(
    payload: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    macro_rules! under {
        ($limit:expr) => {
            bincode::serde::decode_from_slice(payload, WIRE.with_limit::<{ $limit }>())
        };
    }
    match payload.len().saturating_mul(DECODE_AMPLIFICATION) {
        n if n <= 1 << 16 => under!(1 << 16),
        n if n <= 1 << 20 => under!(1 << 20),
        n if n <= 1 << 24 => under!(1 << 24),
        n if n <= 1 << 28 => under!(1 << 28),
        _ => under!(u32::MAX as usize),
    }
}

/// The length of `value`'s payload encoding, without encoding it anywhere.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize, CodecError> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    bincode::serde::encode_into_std_write(value, &mut count, WIRE)?;
    Ok(count.0)
}

/// SHA-256 of the canonical bincode encoding of `value`, streamed into the hasher.
///
/// Canonical as long as `value` serialises deterministically: use `BTreeMap`/`BTreeSet`, never
/// `HashMap`, wherever order would show.
pub fn digest<T: Serialize + ?Sized>(value: &T) -> Result<[u8; 32], CodecError> {
    let mut hasher = Sha256::new();
    bincode::serde::encode_into_std_write(value, &mut hasher, WIRE)?;
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_header() {
        let frame = encode(Kind::Delta, &("hello", 7u64)).unwrap();
        assert_eq!(&frame[..4], b"STRL");
        assert_eq!(frame[4], FORMAT_VERSION);
        assert_eq!(frame[5], Kind::Delta as u8);
        let h = decode_header(&frame).unwrap();
        assert_eq!(h.frame_len(), frame.len());
        let (kind, v): (Kind, (String, u64)) = decode(&frame, 1024).unwrap();
        assert_eq!((kind, v), (Kind::Delta, ("hello".to_owned(), 7)));
    }

    #[test]
    fn lying_string_length_is_refused_cheaply() {
        // Payload: a varint length of 2^40 (0xFD + u64 LE) and nothing else.
        let mut frame = Vec::from(MAGIC);
        frame.push(FORMAT_VERSION);
        frame.push(Kind::Delta as u8);
        let payload = [0xFD, 0, 0, 0, 0, 0, 1, 0, 0];
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(&payload);
        let err = decode::<String>(&frame, 1 << 20).unwrap_err();
        assert!(matches!(err, CodecError::Decode(_)), "{err}");
    }

    /// Small numbers take one byte on the wire and eight in memory: a payload just under a
    /// limit tier used to fail to decode once its containers claimed more than the tier
    /// (found by the Jepsen-style tests: a node with a wiped disk could not decode the full
    /// state it pulled).
    #[test]
    fn compact_payloads_that_decode_larger_still_decode() {
        let dots: Vec<u64> = vec![1; 60_000];
        let frame = encode(Kind::Delta, &dots).unwrap();
        assert!(
            frame.len() < 1 << 16,
            "the payload sits in the smallest tier"
        );
        let (_, back): (Kind, Vec<u64>) = decode(&frame, 1 << 20).unwrap();
        assert_eq!(back, dots);
    }
}
