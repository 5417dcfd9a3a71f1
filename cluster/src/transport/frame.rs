//! The frame: `kind: u8`, `len: u32` (big-endian), then `len` payload bytes, then the end of
//! the stream. One frame per stream direction.
//!
//! The length comes first so that a receiver can refuse an oversized message before reading
//! (or allocating) any of it, and the stream end must follow the payload exactly, so that a
//! truncated or padded frame is detected rather than silently accepted.

use bytes::Bytes;
use quinn::{ReadExactError, ReadToEndError, RecvStream, SendStream};

use super::MessageKind;

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 5;

/// Application error codes used to reset or stop streams. A requester sees them in
/// [`super::TransportError::Rejected`].
pub mod codes {
    /// The frame exceeded the receiver's cap for its kind.
    pub const TOO_LARGE: u32 = 1;
    /// The frame was truncated, padded, or otherwise broken.
    pub const MALFORMED: u32 = 2;
    /// Nobody on the receiving node handles this kind.
    pub const UNKNOWN_KIND: u32 = 3;
    /// The request handler dropped the request or did not answer in time.
    pub const NO_RESPONSE: u32 = 4;
    /// The receiver's queue for this kind was full.
    pub const BUSY: u32 = 5;
    /// The simulated partition dropped the exchange.
    pub const PARTITIONED: u32 = 6;
    /// The receiver gave up waiting for the rest of the frame.
    pub const TIMED_OUT: u32 = 7;
    /// The requester already runs as many exchanges of this kind with the receiver as it
    /// may (sync pulls, see `ClusterConfig::max_sync_exchanges_per_peer`); retry later.
    pub const TOO_MANY_EXCHANGES: u32 = 8;
    /// The receiver's store failed (a full or failing disk): it takes no writes and ships
    /// none of its rows until it is restarted.
    pub const STORE_FAILED: u32 = 9;
    /// The receiver refused the delta it was asked to hold: it carried another node's writes,
    /// or failed the replica's checks.
    pub const REFUSED_DELTA: u32 = 10;
}

/// Encodes a header. `len` must already have been checked against the caps.
pub fn encode_header(kind: MessageKind, len: u32) -> [u8; HEADER_LEN] {
    let [a, b, c, d] = len.to_be_bytes();
    [kind.0, a, b, c, d]
}

/// Decodes a header.
pub fn decode_header(header: [u8; HEADER_LEN]) -> (MessageKind, u32) {
    let [kind, a, b, c, d] = header;
    (MessageKind(kind), u32::from_be_bytes([a, b, c, d]))
}

/// Why a frame was refused.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// The stream ended inside the header or payload.
    Truncated,
    /// More bytes followed the declared payload.
    Trailing,
    /// The declared length exceeds the cap.
    Oversized { len: u32, cap: usize },
    /// The stream or connection failed underneath (reset, lost); not the peer's framing.
    Stream(quinn::ReadError),
}

impl FrameError {
    pub(crate) fn code(&self) -> u32 {
        match self {
            FrameError::Oversized { .. } => codes::TOO_LARGE,
            _ => codes::MALFORMED,
        }
    }
}

/// Reads a header.
pub(crate) async fn read_header(recv: &mut RecvStream) -> Result<(MessageKind, u32), FrameError> {
    let mut header = [0u8; HEADER_LEN];
    match recv.read_exact(&mut header).await {
        Ok(()) => Ok(decode_header(header)),
        Err(ReadExactError::FinishedEarly(_)) => Err(FrameError::Truncated),
        Err(ReadExactError::ReadError(e)) => Err(FrameError::Stream(e)),
    }
}

/// Reads exactly `len` payload bytes followed by the end of the stream.
pub(crate) async fn read_payload(recv: &mut RecvStream, len: u32) -> Result<Bytes, FrameError> {
    let len = usize::try_from(len).map_err(|_| FrameError::Oversized {
        len,
        cap: usize::MAX,
    })?;
    match recv.read_to_end(len).await {
        Ok(data) if data.len() == len => Ok(Bytes::from(data)),
        Ok(_) => Err(FrameError::Truncated),
        Err(ReadToEndError::TooLong) => Err(FrameError::Trailing),
        Err(ReadToEndError::Read(e)) => Err(FrameError::Stream(e)),
    }
}

/// Writes one frame (header and payload) without finishing the stream.
pub(crate) async fn write_frame(
    send: &mut SendStream,
    kind: MessageKind,
    payload: Bytes,
) -> Result<(), quinn::WriteError> {
    // Callers check the length against the cap (at most u32::MAX) before calling.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    send.write_all(&encode_header(kind, len)).await?;
    send.write_chunk(payload).await
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn header_round_trips(kind in any::<u8>(), len in any::<u32>()) {
            prop_assert_eq!(decode_header(encode_header(MessageKind(kind), len)), (MessageKind(kind), len));
        }
    }
}
