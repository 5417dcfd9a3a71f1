//! The sending side: one-way messages on unidirectional streams, and request/response
//! exchanges on bidirectional streams, over the cached connection with timeouts.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use quinn::{RecvStream, VarInt};
use tokio::time::timeout;

use super::endpoint::Inner;
use super::frame::{self, FrameError, HEADER_LEN, codes};
use super::stats::bump;
use super::{MessageKind, TransportError};

impl Inner {
    pub(crate) fn check_len(
        &self,
        kind: MessageKind,
        len: usize,
        max: usize,
    ) -> Result<(), TransportError> {
        let max = max.min(self.config.max_message_size).min(u32::MAX as usize);
        if len > max {
            return Err(TransportError::TooLarge { kind, len, max });
        }
        Ok(())
    }

    /// See [`super::ClusterEndpoint::send`].
    pub(crate) async fn send(
        self: &Arc<Self>,
        to: SocketAddr,
        kind: MessageKind,
        payload: Bytes,
    ) -> Result<(), TransportError> {
        self.check_len(kind, payload.len(), usize::MAX)?;
        if self.partitioned(self.local_addr, to) {
            // A partition loses messages silently, as the network would.
            return Ok(());
        }
        let frame_len = HEADER_LEN + payload.len();
        for attempt in 0..2 {
            let conn = self.connection(to).await?;
            let result = timeout(self.config.send_timeout, async {
                let mut stream = conn.open_uni().await.map_err(|e| (true, e.to_string()))?;
                frame::write_frame(&mut stream, kind, payload.clone())
                    .await
                    .map_err(|e| (is_connection_lost(&e), e.to_string()))?;
                stream.finish().map_err(|e| (false, e.to_string()))
            })
            .await;
            match result {
                Ok(Ok(())) => {
                    self.stats.sent(kind, frame_len);
                    return Ok(());
                }
                // The cached connection was dead: forget it and try once on a fresh one.
                Ok(Err((true, _))) if attempt == 0 => {
                    if let Some(slot) = self.slot(to) {
                        slot.clear_if(conn.stable_id());
                    }
                }
                Ok(Err((_, reason))) => {
                    bump(&self.stats.send_failures);
                    return Err(TransportError::Connection { to, reason });
                }
                Err(_) => {
                    bump(&self.stats.send_failures);
                    return Err(TransportError::Timeout { to, what: "send" });
                }
            }
        }
        bump(&self.stats.send_failures);
        Err(TransportError::Connection {
            to,
            reason: "connection lost twice".into(),
        })
    }

    /// See [`super::ClusterEndpoint::request`].
    pub(crate) async fn request(
        self: &Arc<Self>,
        to: SocketAddr,
        kind: MessageKind,
        payload: Bytes,
        max_response: usize,
    ) -> Result<Bytes, TransportError> {
        self.check_len(kind, payload.len(), usize::MAX)?;
        if self.partitioned(self.local_addr, to) {
            return Err(TransportError::Partitioned { to });
        }
        let cap = max_response.min(self.config.max_message_size);
        let exchange = self.exchange(to, kind, payload, cap);
        let result = match timeout(self.config.request_timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Timeout {
                to,
                what: "request",
            }),
        };
        match result {
            Ok(_) if self.partitioned(to, self.local_addr) => {
                bump(&self.stats.requests_failed);
                Err(TransportError::Partitioned { to })
            }
            Ok(body) => {
                self.stats.received(kind, HEADER_LEN + body.len());
                Ok(body)
            }
            Err(e) => {
                bump(&self.stats.requests_failed);
                Err(e)
            }
        }
    }

    /// One request/response exchange on a new bidirectional stream. Opening the stream is
    /// retried once on a fresh connection if the cached one turns out dead; nothing has been
    /// sent at that point, so the retry cannot duplicate the request.
    async fn exchange(
        self: &Arc<Self>,
        to: SocketAddr,
        kind: MessageKind,
        payload: Bytes,
        cap: usize,
    ) -> Result<Bytes, TransportError> {
        let mut recv = self.open_request(to, kind, payload).await?;
        let bad = |reason: String| TransportError::BadResponse { to, reason };
        let (reply_kind, len) = frame::read_header(&mut recv)
            .await
            .map_err(|e| response_error(e, to, kind, &bad))?;
        if reply_kind != kind {
            return Err(bad(format!("response kind {reply_kind}, expected {kind}")));
        }
        if usize::try_from(len).map_or(true, |len| len > cap) {
            let _ = recv.stop(VarInt::from_u32(codes::TOO_LARGE));
            return Err(bad(format!(
                "response of {len} bytes exceeds the {cap}-byte cap"
            )));
        }
        frame::read_payload(&mut recv, len)
            .await
            .map_err(|e| response_error(e, to, kind, &bad))
    }

    /// Opens a bidirectional stream to `to` and sends the request on it; returns the stream's
    /// receiving half, for the response.
    pub(crate) async fn open_request(
        self: &Arc<Self>,
        to: SocketAddr,
        kind: MessageKind,
        payload: Bytes,
    ) -> Result<RecvStream, TransportError> {
        let lost = |e: String| TransportError::Connection { to, reason: e };
        let mut attempt = 0;
        let (mut send, recv) = loop {
            let conn = self.connection(to).await?;
            match conn.open_bi().await {
                Ok(streams) => break streams,
                Err(_) if attempt == 0 => {
                    attempt += 1;
                    if let Some(slot) = self.slot(to) {
                        slot.clear_if(conn.stable_id());
                    }
                }
                Err(e) => return Err(lost(e.to_string())),
            }
        };
        let request_len = HEADER_LEN + payload.len();
        frame::write_frame(&mut send, kind, payload)
            .await
            .map_err(|e| lost(e.to_string()))?;
        send.finish().map_err(|e| lost(e.to_string()))?;
        self.stats.sent(kind, request_len);
        Ok(recv)
    }
}

fn response_error(
    err: FrameError,
    to: SocketAddr,
    kind: MessageKind,
    bad: &dyn Fn(String) -> TransportError,
) -> TransportError {
    match err {
        FrameError::Stream(e) => stream_error(e, to, kind),
        other => bad(format!("{other:?}")),
    }
}

/// What a failed read of a response stream means: the simulated partition, the responder's
/// refusal (its reset code), or a lost connection.
pub(crate) fn stream_error(
    err: quinn::ReadError,
    to: SocketAddr,
    kind: MessageKind,
) -> TransportError {
    match err {
        quinn::ReadError::Reset(code) if code == VarInt::from_u32(codes::PARTITIONED) => {
            TransportError::Partitioned { to }
        }
        quinn::ReadError::Reset(code) => TransportError::Rejected {
            to,
            kind,
            code: code.into_inner(),
        },
        e => TransportError::Connection {
            to,
            reason: e.to_string(),
        },
    }
}

fn is_connection_lost(err: &quinn::WriteError) -> bool {
    matches!(err, quinn::WriteError::ConnectionLost(_))
}
