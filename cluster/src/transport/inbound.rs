//! The receiving side: the accept loop (TLS handshakes), one task per connection accepting its
//! streams, and one short-lived task per stream reading a single frame under a deadline.
//!
//! Every failure here is local to one stream or one connection: it is counted, logged at a
//! limited rate, and the task ends. The endpoint keeps serving.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use quinn::{Connection, RecvStream, SendStream, VarInt};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, timeout, timeout_at};
use tracing::{debug, warn};

use super::MessageKind;
use super::endpoint::{Inbound, IncomingRequest, Inner, Reply, Route};
use super::frame::{self, FrameError, HEADER_LEN, codes};
use super::peers::PeerSlot;
use super::stats::{Malformed, bump};
use super::streamed;
use crate::hlc::NodeId;

/// Accepts connections until the endpoint closes.
pub(crate) async fn accept_loop(inner: Arc<Inner>) {
    while let Some(incoming) = inner.endpoint.accept().await {
        if inner.endpoint.open_connections() >= inner.config.max_connections {
            bump(&inner.stats.connections_refused);
            incoming.refuse();
            continue;
        }
        // Address validation: an Initial from an address that has not proven it can receive
        // our packets gets a Retry (a token bound to that address), not a handshake. A spoofed
        // source never sees the token, so it can neither make us do TLS work nor use us to
        // amplify traffic towards a victim; a real peer echoes the token at once (one extra
        // round trip per new connection).
        if inner.config.validate_addresses && !incoming.remote_address_validated() {
            if incoming.may_retry() {
                match incoming.retry() {
                    Ok(()) => bump(&inner.stats.retries_sent),
                    Err(e) => e.into_incoming().ignore(),
                }
            } else {
                // It already carried a token, yet its address is not validated: a forged or
                // stale token. Dropped silently, as an answer could itself amplify.
                bump(&inner.stats.connections_refused);
                incoming.ignore();
            }
            continue;
        }
        tokio::spawn(handshake(inner.clone(), incoming));
    }
    debug!(addr = %inner.local_addr, "cluster endpoint closed");
}

async fn handshake(inner: Arc<Inner>, incoming: quinn::Incoming) {
    let remote = incoming.remote_address();
    let result = match incoming.accept() {
        Ok(connecting) => match timeout(inner.config.connect_timeout, connecting).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("handshake timed out".to_string()),
        },
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(conn) => {
            bump(&inner.stats.handshakes_accepted);
            let Ok(peer) = inner.identify(&conn) else {
                return;
            };
            debug!(peer = %remote, node = %peer, "cluster peer connected");
            inner.adopt(conn, peer);
        }
        Err(reason) => {
            bump(&inner.stats.handshakes_rejected);
            if let Some(suppressed) = inner.handshake_log.allow() {
                warn!(
                    peer = %remote,
                    error = %reason,
                    suppressed,
                    "rejected a cluster handshake (peer without this cluster's credentials?)"
                );
            }
        }
    }
}

/// Accepts the streams a peer opens on `conn` until the connection ends, then forgets it.
/// Every message is tagged with `peer`, the node id its certificate names.
pub(crate) async fn serve_connection(
    inner: Arc<Inner>,
    slot: Arc<PeerSlot>,
    conn: Connection,
    peer: NodeId,
) {
    let from = conn.remote_address();
    loop {
        tokio::select! {
            uni = conn.accept_uni() => match uni {
                Ok(recv) => {
                    tokio::spawn(read_message(inner.clone(), from, peer.clone(), recv));
                }
                Err(_) => break,
            },
            bi = conn.accept_bi() => match bi {
                Ok((send, recv)) => {
                    tokio::spawn(answer_request(inner.clone(), from, peer.clone(), send, recv));
                }
                Err(_) => break,
            },
        }
    }
    slot.clear_if(conn.stable_id());
    debug!(peer = %from, reason = ?conn.close_reason(), "cluster connection ended");
}

/// Reads one message from a unidirectional stream and hands it to the kind's receiver.
async fn read_message(inner: Arc<Inner>, from: SocketAddr, peer: NodeId, mut recv: RecvStream) {
    let Ok((kind, payload, tx)) = read_frame(&inner, from, &mut recv, &inner.messages).await else {
        return;
    };
    if inner.partitioned(from, inner.local_addr) {
        return;
    }
    let frame_len = HEADER_LEN + payload.len();
    match tx.try_send(Inbound {
        from,
        peer,
        kind,
        payload,
    }) {
        Ok(()) => inner.stats.received(kind, frame_len),
        Err(TrySendError::Full(_)) => bump(&inner.stats.queue_full),
        Err(TrySendError::Closed(_)) => inner.stats.malformed(Some(kind), Malformed::UnknownKind),
    }
}

/// Reads one request from a bidirectional stream, waits for the local handler's answer and
/// writes it back. Every refusal resets the stream with a code from [`codes`], so the
/// requester learns at once instead of waiting for its timeout.
async fn answer_request(
    inner: Arc<Inner>,
    from: SocketAddr,
    peer: NodeId,
    mut send: SendStream,
    mut recv: RecvStream,
) {
    let reset = |send: &mut SendStream, code: u32| {
        let _ = send.reset(VarInt::from_u32(code));
    };
    let (kind, payload, tx) = match read_frame(&inner, from, &mut recv, &inner.requests).await {
        Ok(read) => read,
        Err(code) => return reset(&mut send, code),
    };
    if inner.partitioned(from, inner.local_addr) {
        return reset(&mut send, codes::PARTITIONED);
    }
    let (reply, response) = oneshot::channel();
    let request_len = HEADER_LEN + payload.len();
    match tx.try_send(IncomingRequest {
        from,
        peer,
        kind,
        payload,
        reply,
    }) {
        Ok(()) => inner.stats.received(kind, request_len),
        Err(TrySendError::Full(_)) => {
            bump(&inner.stats.queue_full);
            return reset(&mut send, codes::BUSY);
        }
        Err(TrySendError::Closed(_)) => {
            inner.stats.malformed(Some(kind), Malformed::UnknownKind);
            return reset(&mut send, codes::UNKNOWN_KIND);
        }
    }
    let response: Bytes = match timeout(inner.config.request_timeout, response).await {
        Ok(Ok(Reply::Whole(response))) => response,
        Ok(Ok(Reply::Frames(frames))) => {
            return streamed::write_frames(&inner, from, kind, send, frames).await;
        }
        Ok(Ok(Reply::Refused(code))) => return reset(&mut send, code),
        _ => return reset(&mut send, codes::NO_RESPONSE),
    };
    if inner.partitioned(inner.local_addr, from) {
        return reset(&mut send, codes::PARTITIONED);
    }
    if response.len() > inner.config.max_message_size {
        warn!(
            peer = %from, %kind, len = response.len(),
            "local handler produced a response over the message cap; not sent"
        );
        bump(&inner.stats.send_failures);
        return reset(&mut send, codes::TOO_LARGE);
    }
    let response_len = HEADER_LEN + response.len();
    let written = timeout(inner.config.send_timeout, async {
        frame::write_frame(&mut send, kind, response)
            .await
            .map_err(|e| e.to_string())?;
        send.finish().map_err(|e| e.to_string())
    })
    .await;
    match written {
        Ok(Ok(())) => inner.stats.sent(kind, response_len),
        Ok(Err(e)) => {
            bump(&inner.stats.send_failures);
            debug!(peer = %from, %kind, error = %e, "response not sent");
        }
        Err(_) => {
            bump(&inner.stats.send_failures);
            reset(&mut send, codes::TIMED_OUT);
        }
    }
}

/// Reads one frame under the read deadline and finds its receiver. On failure the stream is
/// stopped, the reason counted, and the stop code returned.
async fn read_frame<T>(
    inner: &Inner,
    from: SocketAddr,
    recv: &mut RecvStream,
    table: &RwLock<HashMap<MessageKind, Route<T>>>,
) -> Result<(MessageKind, Bytes, mpsc::Sender<T>), u32> {
    let deadline = Instant::now() + inner.config.read_timeout;
    let (kind, len) = match timeout_at(deadline, frame::read_header(recv)).await {
        Ok(Ok(header)) => header,
        Ok(Err(e)) => return Err(refuse(inner, from, recv, None, e)),
        Err(_) => return Err(timed_out(inner, from, recv, None)),
    };
    let Some((tx, cap)) = Inner::route_of(table, kind) else {
        return Err(drop_malformed(
            inner,
            from,
            recv,
            Some(kind),
            Malformed::UnknownKind,
            codes::UNKNOWN_KIND,
            "no receiver for this kind",
        ));
    };
    if usize::try_from(len).map_or(true, |len| len > cap) {
        return Err(refuse(
            inner,
            from,
            recv,
            Some(kind),
            FrameError::Oversized { len, cap },
        ));
    }
    match timeout_at(deadline, frame::read_payload(recv, len)).await {
        Ok(Ok(payload)) => Ok((kind, payload, tx)),
        Ok(Err(e)) => Err(refuse(inner, from, recv, Some(kind), e)),
        Err(_) => Err(timed_out(inner, from, recv, Some(kind))),
    }
}

fn refuse(
    inner: &Inner,
    from: SocketAddr,
    recv: &mut RecvStream,
    kind: Option<MessageKind>,
    err: FrameError,
) -> u32 {
    let code = err.code();
    let (why, detail) = match err {
        FrameError::Stream(e) => {
            bump(&inner.stats.stream_errors);
            debug!(peer = %from, ?kind, error = %e, "cluster stream failed");
            return code;
        }
        FrameError::Truncated => (Malformed::Truncated, String::new()),
        FrameError::Trailing => (Malformed::Trailing, String::new()),
        FrameError::Oversized { len, cap } => (
            Malformed::Oversized,
            format!("declared {len} bytes, cap {cap}"),
        ),
    };
    drop_malformed(inner, from, recv, kind, why, code, &detail)
}

fn timed_out(
    inner: &Inner,
    from: SocketAddr,
    recv: &mut RecvStream,
    kind: Option<MessageKind>,
) -> u32 {
    drop_malformed(
        inner,
        from,
        recv,
        kind,
        Malformed::Timeout,
        codes::TIMED_OUT,
        "",
    )
}

fn drop_malformed(
    inner: &Inner,
    from: SocketAddr,
    recv: &mut RecvStream,
    kind: Option<MessageKind>,
    why: Malformed,
    code: u32,
    detail: &str,
) -> u32 {
    inner.stats.malformed(kind, why);
    let _ = recv.stop(VarInt::from_u32(code));
    if let Some(suppressed) = inner.frame_log.allow() {
        warn!(
            peer = %from, ?kind, reason = ?why, detail, suppressed,
            "dropped a malformed cluster message"
        );
    }
    code
}
