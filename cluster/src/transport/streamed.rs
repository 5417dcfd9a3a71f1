//! Responses of several frames on one bidirectional stream, for exchanges whose answer may be
//! large (a full state): the responder writes frames one after the other as it produces them,
//! then finishes the stream; the requester reads and uses them one at a time. Every frame
//! stays under the kind's cap, so neither side ever holds more than a frame or two of the
//! answer, and a stream cut midway leaves the frames already read intact.
//!
//! Same framing as one-frame responses ([`super::frame`]), repeated; the stream's end after a
//! whole frame ends the response, an end inside a frame is a truncation.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use quinn::{ReadExactError, RecvStream, SendStream, VarInt};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tracing::debug;

use super::endpoint::Inner;
use super::frame::{self, HEADER_LEN, codes, decode_header};
use super::outbound::stream_error;
use super::stats::bump;
use super::{MessageKind, TransportError};

/// Writes the frames a local handler produces as the response on `send`, then finishes it.
/// A frame over the message cap, a handler that stalls, a partition or a write that times
/// out resets the stream.
pub(crate) async fn write_frames(
    inner: &Inner,
    from: SocketAddr,
    kind: MessageKind,
    mut send: SendStream,
    mut frames: mpsc::Receiver<Bytes>,
) {
    let reset = |send: &mut SendStream, code: u32| {
        let _ = send.reset(VarInt::from_u32(code));
    };
    loop {
        let next = match timeout(inner.config.request_timeout, frames.recv()).await {
            Ok(next) => next,
            Err(_) => return reset(&mut send, codes::NO_RESPONSE),
        };
        let Some(payload) = next else {
            break;
        };
        if inner.partitioned(inner.local_addr, from) {
            return reset(&mut send, codes::PARTITIONED);
        }
        if payload.len() > inner.config.max_message_size {
            tracing::warn!(
                peer = %from, %kind, len = payload.len(),
                "local handler produced a response frame over the message cap; not sent"
            );
            bump(&inner.stats.send_failures);
            return reset(&mut send, codes::TOO_LARGE);
        }
        let len = HEADER_LEN + payload.len();
        match timeout(
            inner.config.send_timeout,
            frame::write_frame(&mut send, kind, payload),
        )
        .await
        {
            Ok(Ok(())) => inner.stats.sent(kind, len),
            Ok(Err(e)) => {
                bump(&inner.stats.send_failures);
                debug!(peer = %from, %kind, error = %e, "response frame not sent");
                return;
            }
            Err(_) => {
                bump(&inner.stats.send_failures);
                return reset(&mut send, codes::TIMED_OUT);
            }
        }
    }
    if let Err(e) = send.finish() {
        debug!(peer = %from, %kind, error = %e, "response not finished");
    }
}

/// The frames of a response, read one at a time (see
/// [`super::ClusterEndpoint::request_frames`]). Dropping it stops the stream, which tells the
/// responder to stop producing.
pub struct ResponseFrames {
    inner: Arc<Inner>,
    to: SocketAddr,
    kind: MessageKind,
    recv: RecvStream,
    max_frame: usize,
    done: bool,
}

impl std::fmt::Debug for ResponseFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFrames")
            .field("to", &self.to)
            .field("kind", &self.kind)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl ResponseFrames {
    /// The next frame's payload, or `None` once the responder has finished the response.
    ///
    /// # Errors
    /// [`TransportError::Rejected`] (the responder refused, or reset the stream midway),
    /// [`TransportError::BadResponse`] (a frame of another kind, over the cap, or truncated),
    /// [`TransportError::Timeout`] (no whole frame within the request timeout),
    /// [`TransportError::Partitioned`] or [`TransportError::Connection`]. After an error, the
    /// response is over.
    pub async fn next(&mut self) -> Result<Option<Bytes>, TransportError> {
        if self.done {
            return Ok(None);
        }
        let read = timeout(self.inner.config.request_timeout, self.read_frame()).await;
        let result = match read {
            Ok(result) => result,
            Err(_) => Err(TransportError::Timeout {
                to: self.to,
                what: "response frame",
            }),
        };
        let result = match result {
            Ok(Some(_)) if self.inner.partitioned(self.to, self.inner.local_addr) => {
                Err(TransportError::Partitioned { to: self.to })
            }
            other => other,
        };
        match &result {
            Ok(Some(payload)) => {
                self.inner
                    .stats
                    .received(self.kind, HEADER_LEN + payload.len());
            }
            Ok(None) => self.done = true,
            Err(_) => {
                self.done = true;
                bump(&self.inner.stats.requests_failed);
                let _ = self.recv.stop(VarInt::from_u32(codes::MALFORMED));
            }
        }
        result
    }

    async fn read_frame(&mut self) -> Result<Option<Bytes>, TransportError> {
        let (to, kind) = (self.to, self.kind);
        let bad = |reason: String| TransportError::BadResponse { to, reason };
        let mut header = [0u8; HEADER_LEN];
        match self.recv.read_exact(&mut header).await {
            Ok(()) => {}
            Err(ReadExactError::FinishedEarly(0)) => return Ok(None),
            Err(ReadExactError::FinishedEarly(_)) => return Err(bad("truncated header".into())),
            Err(ReadExactError::ReadError(e)) => return Err(stream_error(e, to, kind)),
        }
        let (frame_kind, len) = decode_header(header);
        if frame_kind != kind {
            return Err(bad(format!("response kind {frame_kind}, expected {kind}")));
        }
        let len = match usize::try_from(len) {
            Ok(len) if len <= self.max_frame => len,
            _ => {
                let _ = self.recv.stop(VarInt::from_u32(codes::TOO_LARGE));
                return Err(bad(format!(
                    "response frame of {len} bytes exceeds the {}-byte cap",
                    self.max_frame
                )));
            }
        };
        let mut payload = vec![0u8; len];
        match self.recv.read_exact(&mut payload).await {
            Ok(()) => Ok(Some(Bytes::from(payload))),
            Err(ReadExactError::FinishedEarly(_)) => Err(bad("truncated frame".into())),
            Err(ReadExactError::ReadError(e)) => Err(stream_error(e, to, kind)),
        }
    }
}

impl Inner {
    /// See [`super::ClusterEndpoint::request_frames`].
    pub(crate) async fn request_frames(
        self: &Arc<Self>,
        to: SocketAddr,
        kind: MessageKind,
        payload: Bytes,
        max_frame: usize,
    ) -> Result<ResponseFrames, TransportError> {
        self.check_len(kind, payload.len(), usize::MAX)?;
        if self.partitioned(self.local_addr, to) {
            return Err(TransportError::Partitioned { to });
        }
        let opened = timeout(
            self.config.request_timeout,
            self.open_request(to, kind, payload),
        )
        .await
        .unwrap_or(Err(TransportError::Timeout {
            to,
            what: "request",
        }));
        match opened {
            Ok(recv) => Ok(ResponseFrames {
                inner: self.clone(),
                to,
                kind,
                recv,
                max_frame: max_frame
                    .min(self.config.max_message_size)
                    .min(u32::MAX as usize),
                done: false,
            }),
            Err(e) => {
                bump(&self.stats.requests_failed);
                Err(e)
            }
        }
    }
}
