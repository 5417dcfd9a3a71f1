//! Server-sent events: frame encoding and the task that paces a stream out to the client.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde_json::Value;
use tokio::sync::mpsc;

use super::http::{Chunk, MockBody, StreamAborted};
use super::ledger::{Outcome, Ticket};

/// `data: {json}\n\n` (OpenAI).
pub(crate) fn data(json: &Value) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"data: ");
    // Writing a `Value` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, json);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// `event: NAME\ndata: {json}\n\n` (Anthropic).
pub(crate) fn event(name: &str, json: &Value) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    let _ = serde_json::to_writer(&mut out, json);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// OpenAI's stream terminator.
pub(crate) const DONE: &[u8] = b"data: [DONE]\n\n";

/// The role of a frame in the stream, which decides pacing and where faults may cut it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Before the first content (role chunk, `message_start`, first block start, `ping`).
    Preamble,
    /// Carries generated content and `tokens` output tokens; paced by ttft / inter-token.
    Content { tokens: u64 },
    /// Structure between contents (block stop/start, next tool call header).
    Mid,
    /// From the finish chunk on (finish reason, usage, terminator).
    Finish,
}

/// One frame of a stream.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub kind: Kind,
    pub bytes: Bytes,
}

impl Frame {
    pub(crate) fn new(kind: Kind, bytes: Bytes) -> Self {
        Self { kind, bytes }
    }
}

/// Pacing of a stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pacing {
    pub ttft: Duration,
    pub inter_token: Duration,
}

/// Starts the producer task and returns the body it feeds.
///
/// The ledger ticket (already holding the full usage) travels with the task: it is finished
/// `ok` just before the last frame
/// (so a client that has read the terminator always finds the entry), `dropped` when the
/// stream is cut on purpose after `drop_after` content frames, and `client_gone` (by `Drop`)
/// when the client disconnects; cut streams bill the output tokens sent so far.
pub(crate) fn spawn(
    frames: Vec<Frame>,
    pacing: Pacing,
    drop_after: Option<u32>,
    ticket: Ticket,
) -> MockBody {
    let (tx, rx) = mpsc::channel::<Chunk>(16);
    tokio::spawn(pump(frames, pacing, drop_after, ticket, tx));
    MockBody::channel(rx)
}

async fn pump(
    frames: Vec<Frame>,
    pacing: Pacing,
    drop_after: Option<u32>,
    mut ticket: Ticket,
    tx: mpsc::Sender<Chunk>,
) {
    let last = frames.len().saturating_sub(1);
    let mut content_sent: u32 = 0;
    let mut tokens_sent: u64 = 0;
    let mut finishing = false;
    // Frames with no delay between them go out as one write, as any fast server's would;
    // paced frames go out one by one.
    let mut pending = BytesMut::new();
    for (i, frame) in frames.into_iter().enumerate() {
        match frame.kind {
            Kind::Content { tokens } => {
                if drop_after == Some(content_sent) {
                    return cut(ticket, tokens_sent, pending, &tx).await;
                }
                let delay = if content_sent == 0 {
                    pacing.ttft
                } else {
                    pacing.inter_token
                };
                if !delay.is_zero() && !flush(&mut pending, &tx).await {
                    ticket.set_output(tokens_sent);
                    return; // client gone: the ticket records it on drop
                }
                if !pause(&tx, delay).await {
                    ticket.set_output(tokens_sent);
                    return;
                }
                content_sent += 1;
                tokens_sent += tokens;
            }
            Kind::Finish if !finishing => {
                finishing = true;
                // Fewer content frames than `drop_after`: cut before the finish.
                if drop_after.is_some() {
                    return cut(ticket, tokens_sent, pending, &tx).await;
                }
            }
            _ => {}
        }
        pending.extend_from_slice(&frame.bytes);
        if i == last {
            // The ticket already holds the full usage of the plan; record it before the
            // terminator leaves, so a client that saw the end always finds the entry.
            ticket.finish(Outcome::Ok);
        }
    }
    if !flush(&mut pending, &tx).await {
        ticket.set_output(tokens_sent);
    }
}

/// Sends what is pending; returns whether the client is still there.
async fn flush(pending: &mut BytesMut, tx: &mpsc::Sender<Chunk>) -> bool {
    if pending.is_empty() {
        return !tx.is_closed();
    }
    tx.send(Ok(pending.split().freeze())).await.is_ok()
}

async fn cut(
    mut ticket: Ticket,
    tokens_sent: u64,
    mut pending: BytesMut,
    tx: &mpsc::Sender<Chunk>,
) {
    ticket.set_output(tokens_sent);
    ticket.finish(Outcome::Dropped);
    if flush(&mut pending, tx).await {
        let _ = tx.send(Err(StreamAborted)).await;
    }
}

/// Sleeps, unless the client leaves first; returns whether the client is still there.
async fn pause(tx: &mpsc::Sender<Chunk>, d: Duration) -> bool {
    if d.is_zero() {
        return !tx.is_closed();
    }
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        () = tx.closed() => false,
    }
}
