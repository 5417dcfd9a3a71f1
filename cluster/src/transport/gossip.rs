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
//! more, and the cap also bounds what a peer can make chitchat decompress.
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
            match ChitchatMessage::deserialize(&mut &inbound.payload[..]) {
                Ok(msg) => return Ok((inbound.from, msg)),
                Err(e) => {
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
