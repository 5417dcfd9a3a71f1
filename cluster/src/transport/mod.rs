//! QUIC transport between cluster nodes: one authenticated endpoint per node, carrying chitchat
//! gossip and (for the replication layer) typed messages and request/response exchanges.
//!
//! Why QUIC streams and not datagrams: QUIC datagrams carry about 1,160 bytes here, too small
//! for gossip deltas, and CRDT sync needs far more. Each message gets its own stream, so a lost
//! packet delays one message only, and the stream's FIN marks the end of the message.
//!
//! Wire format, per stream (see [`frame`]): a 5-byte header — kind (1 byte), payload length
//! (u32, big-endian) — then the payload, then FIN. Unidirectional streams carry one-way
//! messages ([`ClusterEndpoint::send`]); bidirectional streams carry one request and one
//! response framed the same way ([`ClusterEndpoint::request`]). The ALPN
//! ([`crate::tls::ALPN`]) versions this format.
//!
//! Hostile or broken input from an authenticated peer — unknown kinds, oversized or truncated
//! frames, slow writers, undecodable gossip — is dropped and counted in [`TransportStats`];
//! nothing a peer sends can panic the node or stop its endpoint. Unauthenticated peers never
//! get past the TLS handshake, which is counted and logged (rate-limited).
//!
//! Modules: [`endpoint`] (the endpoint handle and its shared state), [`config`] (limits and
//! timeouts), `peers` (the connection cache and back-off), `outbound` (send and request),
//! `inbound` (accept loops and stream readers), `streamed` (responses of several frames),
//! [`frame`] (the header), [`stats`] (counters),
//! [`partition`] (the test hook that drops traffic between chosen peers), [`gossip`]
//! (chitchat's `Transport`/`Socket` on top), [`membership`] (spawning chitchat on it, seed
//! re-resolution).

pub mod config;
pub mod endpoint;
pub mod frame;
pub mod gossip;
mod inbound;
pub mod membership;
mod outbound;
pub mod partition;
mod peers;
pub mod stats;
mod streamed;

use std::fmt;
use std::net::SocketAddr;

pub use config::EndpointConfig;
pub use endpoint::{ClusterEndpoint, Inbound, IncomingRequest};
pub use gossip::{
    GOSSIP_MAX_INFLATED, GOSSIP_MAX_MESSAGE_SIZE, InflationError, QuicSocket, QuicTransport,
    check_inflation, decode_gossip,
};
pub use membership::{Membership, MembershipConfig, MembershipError, spawn_membership};
pub use partition::PartitionTable;
pub use stats::{KindSnapshot, StatsSnapshot, TransportStats};
pub use streamed::ResponseFrames;

use crate::tls::TlsError;

/// The type of a message, the first byte of every frame. Receivers subscribe per kind.
///
/// Allocated: 0 is never used (so a zeroed buffer is not a valid frame), 1 is chitchat gossip.
/// The replication layer picks its own kinds from 2 upwards; keep the list in one place there.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageKind(pub u8);

impl MessageKind {
    /// chitchat gossip (SYN, SYN-ACK, ACK, BadCluster), serialized by chitchat itself.
    pub const GOSSIP: MessageKind = MessageKind(1);
}

impl fmt::Debug for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MessageKind::GOSSIP => write!(f, "gossip"),
            MessageKind(k) => write!(f, "kind-{k}"),
        }
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Errors from the cluster transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The UDP socket could not be bound.
    #[error("cannot bind the cluster endpoint to {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The credentials could not be turned into TLS configs.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A setting in [`EndpointConfig`] is out of range.
    #[error("endpoint config: {field}: {reason}")]
    Config {
        /// The field at fault.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A payload is larger than the configured cap.
    #[error("{kind} message of {len} bytes exceeds the {max}-byte cap")]
    TooLarge {
        /// The message kind.
        kind: MessageKind,
        /// Its length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// Connecting to a peer failed (refused, handshake rejected by either side, unreachable).
    #[error("cannot connect to {to}: {reason}")]
    Connect {
        /// The peer.
        to: SocketAddr,
        /// Why.
        reason: String,
    },
    /// A recent connection attempt to this peer failed; the next one waits for the back-off.
    #[error("not reconnecting to {to} yet: the last attempt failed (back-off)")]
    Backoff {
        /// The peer.
        to: SocketAddr,
    },
    /// An operation on an established connection failed.
    #[error("connection to {to} failed: {reason}")]
    Connection {
        /// The peer.
        to: SocketAddr,
        /// Why.
        reason: String,
    },
    /// An operation did not finish in time.
    #[error("{what} with {to} timed out")]
    Timeout {
        /// The peer.
        to: SocketAddr,
        /// Which operation.
        what: &'static str,
    },
    /// The peer refused a request (no handler, handler dropped it, busy, malformed).
    #[error("{to} refused the {kind} request (code {code})")]
    Rejected {
        /// The peer.
        to: SocketAddr,
        /// The request kind.
        kind: MessageKind,
        /// The stream reset code, see [`frame::codes`].
        code: u64,
    },
    /// The peer's response broke the framing rules.
    #[error("bad response from {to}: {reason}")]
    BadResponse {
        /// The peer.
        to: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The simulated partition ([`PartitionTable`]) drops this traffic.
    #[error("traffic to {to} is blocked by the simulated partition")]
    Partitioned {
        /// The peer.
        to: SocketAddr,
    },
    /// Somebody already receives this kind.
    #[error("{kind} already has a receiver on this endpoint")]
    AlreadySubscribed {
        /// The kind.
        kind: MessageKind,
    },
    /// The endpoint has been closed.
    #[error("the cluster endpoint is closed")]
    Closed,
}
