//! chitchat's [`Transport`] and [`Socket`] on top of a [`ClusterEndpoint`], so that gossip runs
//! over authenticated QUIC instead of plain UDP.
//!
//! chitchat calls `send` from its gossip loop, holding no lock but in sequence, once per
//! target; a slow or dead peer must not stall that loop. So `send` only serializes and hands
//! the message to [`ClusterEndpoint::send_detached`], keeping UDP's fire-and-forget semantics.
//! `recv` reads the endpoint's gossip queue (cancel-safe, as chitchat's `select!` needs) and
//! drops messages that chitchat cannot decode, counting them as `decode_errors`.
//!
//! Gossip messages are capped at 65,507 bytes, chitchat's own MTU: chitchat never produces
//! more. That cap does not bound what chitchat *decompresses*: a SYN-ACK or ACK carries its
//! delta as a stream of blocks, each a zstd frame of up to 65,535 bytes once inflated, and
//! chitchat 0.11.2 (`serialize::deserialize_stream`) inflates every block into one growing
//! buffer before parsing it. A zstd frame inflating to 64 KiB of zeros takes about a dozen
//! bytes, so 65,507 bytes of blocks would make chitchat allocate some 300 MB (and then parse
//! it). So [`check_inflation`] walks the block headers first, without inflating anything, and
//! refuses a message whose blocks declare more than [`GOSSIP_MAX_INFLATED`] bytes in all (a
//! zstd frame that does not declare its size counts as the 65,535 bytes chitchat would allow
//! it; zstd itself checks a declared size when inflating). Refused messages are counted as
//! `decode_errors` and as `gossip_inflation_refused`.
//!
//! A peer may gossip only as itself. chitchat messages carry no sender field, but SYN and
//! SYN-ACK carry the sender's digest, in which the sender lists its own node under the address
//! it gossips from. Every digest entry advertised at the address the message came from must
//! name the node the connection's certificate names; otherwise the message is dropped and
//! counted (`gossip_spoofed`). Entries for other addresses are relayed state (that is what
//! gossip is) and cannot be checked here: chitchat's state is not signed.

use std::net::SocketAddr;

use anyhow::bail;
use async_trait::async_trait;
use bytes::Bytes;
use chitchat::transport::{Socket, Transport};
use chitchat::{ChitchatId, ChitchatMessage, Deserializable, Serializable};
use tokio::sync::mpsc;
use tracing::warn;

use super::MessageKind;
use super::endpoint::{ClusterEndpoint, Inbound};
use super::stats::LogLimiter;

/// Largest gossip message accepted: chitchat's `MAX_UDP_DATAGRAM_PAYLOAD_SIZE` (crate-private
/// in chitchat 0.11.2, hence repeated here).
pub const GOSSIP_MAX_MESSAGE_SIZE: usize = 65_507;

/// Most bytes the delta blocks of one gossip message may inflate to (2 MiB). chitchat fills a
/// message up to its MTU counting compressed bytes, so an honest message inflates to a few
/// times 65,507 bytes (its 16 KiB blocks of node metadata compress a few times over); 2 MiB
/// leaves a factor of 32.
pub const GOSSIP_MAX_INFLATED: usize = 2 << 20;

/// The largest block chitchat 0.11.2 inflates (`u16::MAX`, the size of its buffer).
const BLOCK_MAX_INFLATED: usize = u16::MAX as usize;

/// chitchat's message magic number (`message.rs`), little-endian on the wire.
const CHITCHAT_MAGIC: u16 = 45_139;

/// Why a gossip message was refused before chitchat decoded it.
#[derive(Debug, thiserror::Error)]
pub enum InflationError {
    /// The blocks declare more than the budget once inflated.
    #[error("gossip blocks would inflate to more than {budget} bytes")]
    OverBudget {
        /// The budget.
        budget: usize,
    },
    /// The message's framing is broken (chitchat would refuse it too).
    #[error("malformed gossip framing: {0}")]
    Malformed(&'static str),
}

/// Checks, without inflating anything, that the delta blocks of a chitchat 0.11.2 message
/// declare at most `budget` bytes in all (see the module docs). Messages without a delta (SYN,
/// BadCluster) and unknown framings pass: chitchat decodes or refuses them without inflating.
pub fn check_inflation(message: &[u8], budget: usize) -> Result<(), InflationError> {
    let mut buf = message;
    let Some((&[m0, m1, version, kind], rest)) = buf.split_first_chunk::<4>() else {
        return Ok(());
    };
    if u16::from_le_bytes([m0, m1]) != CHITCHAT_MAGIC || version != 0 {
        return Ok(());
    }
    buf = rest;
    match kind {
        // SYN-ACK: the digest, then the delta.
        1 => skip_digest(&mut buf)?,
        // ACK: the delta.
        2 => {}
        // SYN and BadCluster carry no compressed stream.
        _ => return Ok(()),
    }
    let mut total = 0usize;
    loop {
        let block_type = take(&mut buf, 1)?;
        match block_type.first() {
            Some(0) => return Ok(()),
            Some(1) => {
                let len = take_u16(&mut buf)?;
                let block = take(&mut buf, usize::from(len))?;
                let inflated = match zstd::zstd_safe::get_frame_content_size(block) {
                    Ok(Some(n)) => usize::try_from(n).unwrap_or(usize::MAX),
                    // Undeclared or unreadable: at most what chitchat's buffer takes (an
                    // unreadable frame fails to inflate anyway).
                    _ => BLOCK_MAX_INFLATED,
                };
                total = total.saturating_add(inflated.min(BLOCK_MAX_INFLATED));
            }
            Some(2) => {
                let len = take_u16(&mut buf)?;
                take(&mut buf, usize::from(len))?;
                total = total.saturating_add(usize::from(len));
            }
            _ => return Err(InflationError::Malformed("invalid block type")),
        }
        if total > budget {
            return Err(InflationError::OverBudget { budget });
        }
    }
}

/// Skips a chitchat digest: a `u16` count of (node id, 24 bytes of heartbeat and versions).
fn skip_digest(buf: &mut &[u8]) -> Result<(), InflationError> {
    let nodes = take_u16(buf)?;
    for _ in 0..nodes {
        // A node id: u16-prefixed string, u64 generation, IP (tag 4 or 6, then the address),
        // u16 port.
        let id_len = take_u16(buf)?;
        take(buf, usize::from(id_len))?;
        take(buf, 8)?;
        let ip_len = match take(buf, 1)?.first() {
            Some(4) => 4,
            Some(6) => 16,
            _ => return Err(InflationError::Malformed("invalid IP version")),
        };
        take(buf, ip_len + 2 + 24)?;
    }
    Ok(())
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], InflationError> {
    if buf.len() < n {
        return Err(InflationError::Malformed("truncated"));
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn take_u16(buf: &mut &[u8]) -> Result<u16, InflationError> {
    let b = take(buf, 2)?;
    Ok(u16::from_le_bytes([
        b.first().copied().unwrap_or(0),
        b.get(1).copied().unwrap_or(0),
    ]))
}

/// Decodes a gossip message after [`check_inflation`] with [`GOSSIP_MAX_INFLATED`].
pub fn decode_gossip(message: &[u8]) -> anyhow::Result<ChitchatMessage> {
    check_inflation(message, GOSSIP_MAX_INFLATED)?;
    ChitchatMessage::deserialize(&mut &message[..])
}

/// chitchat transport over a [`ClusterEndpoint`]. The endpoint must already be bound: its
/// address is the node's gossip address, so `open` only checks that chitchat asks for the
/// same one.
#[derive(Debug, Clone)]
pub struct QuicTransport {
    endpoint: ClusterEndpoint,
}

impl QuicTransport {
    /// Wraps a bound endpoint.
    pub fn new(endpoint: ClusterEndpoint) -> Self {
        Self { endpoint }
    }
}

#[async_trait]
impl Transport for QuicTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let bound = self.endpoint.local_addr();
        if listen_addr != bound {
            bail!(
                "chitchat listen address {listen_addr} differs from the cluster endpoint's \
                 address {bound}; set chitchat's listen_addr to the endpoint's local_addr()"
            );
        }
        let inbox = self
            .endpoint
            .subscribe(MessageKind::GOSSIP, GOSSIP_MAX_MESSAGE_SIZE)?;
        Ok(Box::new(QuicSocket {
            endpoint: self.endpoint.clone(),
            inbox,
            decode_log: LogLimiter::new(self.endpoint.config().log_interval),
            spoof_log: LogLimiter::new(self.endpoint.config().log_interval),
        }))
    }
}

/// The chitchat [`Socket`] of a [`QuicTransport`]. Dropping it releases the gossip
/// subscription, so the transport can be opened again.
pub struct QuicSocket {
    endpoint: ClusterEndpoint,
    inbox: mpsc::Receiver<Inbound>,
    decode_log: LogLimiter,
    spoof_log: LogLimiter,
}

#[async_trait]
impl Socket for QuicSocket {
    async fn send(&mut self, to: SocketAddr, msg: ChitchatMessage) -> anyhow::Result<()> {
        let payload = Bytes::from(msg.serialize_to_vec());
        // Dropped sends are counted by the endpoint; gossip tolerates loss like UDP does.
        self.endpoint
            .send_detached(to, MessageKind::GOSSIP, payload);
        Ok(())
    }

    async fn recv(&mut self) -> anyhow::Result<(SocketAddr, ChitchatMessage)> {
        loop {
            let Some(inbound) = self.inbox.recv().await else {
                bail!("the cluster endpoint is closed");
            };
            if let Some(claimed) = spoofed_sender(&inbound) {
                self.endpoint.record_gossip_spoofed();
                if let Some(suppressed) = self.spoof_log.allow() {
                    warn!(
                        peer = %inbound.from, node = %inbound.peer, claimed = ?claimed,
                        suppressed, "dropped gossip that claims another node's identity"
                    );
                }
                continue;
            }
            match decode_gossip(&inbound.payload) {
                Ok(msg) => return Ok((inbound.from, msg)),
                Err(e) => {
                    if let Some(InflationError::OverBudget { .. }) = e.downcast_ref() {
                        self.endpoint.record_gossip_inflation_refused();
                    }
                    self.endpoint.record_decode_error(MessageKind::GOSSIP);
                    if let Some(suppressed) = self.decode_log.allow() {
                        warn!(
                            peer = %inbound.from, len = inbound.payload.len(), error = %e,
                            suppressed, "dropped an undecodable gossip message"
                        );
                    }
                }
            }
        }
    }
}

/// chitchat 0.11.2's message header: magic number (u16), protocol version (u8), type (u8).
const HEADER: usize = 4;
/// chitchat's message type codes for SYN and SYN-ACK (both start with the sender's digest).
const SYN: u8 = 0;
const SYN_ACK: u8 = 1;

/// The node id a gossip message claims for its sender when that is not the node its
/// certificate names: a digest entry advertised at the address the message came from, under
/// another node id. `None` when the message is fine, or is no SYN/SYN-ACK, or does not parse
/// (chitchat's own decoding then counts it).
fn spoofed_sender(inbound: &Inbound) -> Option<ChitchatId> {
    let bytes = &inbound.payload[..];
    let kind = *bytes.get(HEADER - 1)?;
    if kind != SYN && kind != SYN_ACK {
        return None;
    }
    let mut rest = bytes.get(HEADER..)?;
    let entries = u16::deserialize(&mut rest).ok()?;
    for _ in 0..entries {
        let id = ChitchatId::deserialize(&mut rest).ok()?;
        // The node digest: heartbeat, last GC version, max version.
        for _ in 0..3 {
            u64::deserialize(&mut rest).ok()?;
        }
        if id.gossip_advertise_addr == inbound.from && *id.node_id != *inbound.peer.as_str() {
            return Some(id);
        }
    }
    None
}
