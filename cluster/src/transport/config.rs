//! [`EndpointConfig`]: every limit and timeout of the cluster endpoint, and the quinn transport
//! settings derived from them.
//!
//! The defaults suit a LAN cluster of up to ~50 nodes. The flow-control windows are derived
//! from the message cap so that one whole message always fits in a stream's window, while the
//! connection window bounds what one peer can make us buffer.

use std::sync::Arc;
use std::time::Duration;

use quinn::{IdleTimeout, VarInt};

use super::TransportError;
use super::frame::HEADER_LEN;
use super::partition::PartitionTable;
use crate::hlc::NodeId;

/// Settings of a [`super::ClusterEndpoint`]. `Default` gives the production values.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Hard cap on any payload, sent or received, in bytes (default 1 MiB). Subscribers may
    /// set a lower cap for their kind.
    pub max_message_size: usize,
    /// Time allowed to receive a whole inbound frame once its stream is open (default 5 s).
    pub read_timeout: Duration,
    /// Time allowed to establish a connection, handshake included (default 2 s).
    pub connect_timeout: Duration,
    /// Time allowed to open a stream and write a message (default 2 s).
    pub send_timeout: Duration,
    /// Time allowed for a whole request/response exchange, and for a local handler to answer
    /// (default 5 s).
    pub request_timeout: Duration,
    /// Capacity of each kind's inbound queue; a message that finds it full is dropped and
    /// counted (default 1024).
    pub inbound_queue: usize,
    /// Most fire-and-forget sends in flight at once; more are dropped and counted
    /// (default 1024).
    pub max_detached_sends: usize,
    /// A connection with no traffic (keep-alives included) for this long is closed
    /// (default 5 s).
    pub idle_timeout: Duration,
    /// Keep-alive interval on idle connections (default 1 s).
    pub keep_alive: Duration,
    /// Most concurrent streams a peer may open on one connection, per direction type
    /// (default 256). Further streams wait for flow-control credit, which bounds the work a
    /// single peer can queue.
    pub max_streams_per_connection: u32,
    /// Most connections (inbound and outbound) at once; further inbound ones are refused
    /// (default 1024).
    pub max_connections: usize,
    /// First back-off after a failed connection attempt, counted from the start of that
    /// attempt; doubles per failure (default 100 ms).
    pub reconnect_backoff_min: Duration,
    /// Longest back-off (default 2 s).
    pub reconnect_backoff_max: Duration,
    /// A peer address with no connection and no traffic for this long is forgotten by the
    /// connection cache, back-off included (default 30 s). Keep it well above
    /// `reconnect_backoff_max`, so that an address is forgotten only once its back-off has run
    /// out.
    pub forget_idle_peers_after: Duration,
    /// Minimum interval between log lines about rejected handshakes, and about malformed
    /// frames (default 10 s); the lines in between are counted, not logged.
    pub log_interval: Duration,
    /// Answer a connection attempt from an address not yet validated with a QUIC Retry, so
    /// that the peer proves it receives packets at its source address before we do any
    /// handshake work (default on). Turn off only where one extra round trip per new
    /// connection matters more than spoofed-source floods.
    pub validate_addresses: bool,
    /// Node ids whose connections are refused after the handshake, both directions, even
    /// though their certificates verify: a lost or compromised node cut off without
    /// re-keying the cluster (default none). See [`crate::tls`] for what a node id is.
    pub revoked_nodes: Arc<[NodeId]>,
    /// Simulated partition (tests only; default none): consulted on every send and receive,
    /// or, for a [`PartitionTable::packets`] table, on every UDP datagram sent.
    pub partition: Option<Arc<PartitionTable>>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            max_message_size: 1 << 20,
            read_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            send_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            inbound_queue: 1024,
            max_detached_sends: 1024,
            idle_timeout: Duration::from_secs(5),
            keep_alive: Duration::from_secs(1),
            max_streams_per_connection: 256,
            max_connections: 1024,
            reconnect_backoff_min: Duration::from_millis(100),
            reconnect_backoff_max: Duration::from_secs(2),
            forget_idle_peers_after: Duration::from_secs(30),
            log_interval: Duration::from_secs(10),
            validate_addresses: true,
            revoked_nodes: Arc::from(Vec::new()),
            partition: None,
        }
    }
}

pub(crate) fn transport_config(
    config: &EndpointConfig,
) -> Result<quinn::TransportConfig, TransportError> {
    let bad = |field, reason: String| TransportError::Config { field, reason };
    if config.max_message_size == 0 {
        return Err(bad("max_message_size", "must be positive".into()));
    }
    let mut transport = quinn::TransportConfig::default();
    let idle = IdleTimeout::try_from(config.idle_timeout)
        .map_err(|e| bad("idle_timeout", e.to_string()))?;
    transport.max_idle_timeout(Some(idle));
    if !config.keep_alive.is_zero() {
        transport.keep_alive_interval(Some(config.keep_alive));
    }
    let streams = VarInt::from_u32(config.max_streams_per_connection.max(1));
    transport.max_concurrent_uni_streams(streams);
    transport.max_concurrent_bidi_streams(streams);
    // One whole message fits in a stream's window; the connection window bounds what a peer
    // can make us buffer across all its streams.
    let stream_window = (config.max_message_size as u64).saturating_add(HEADER_LEN as u64);
    let conn_window = stream_window.saturating_mul(4).max(16 << 20);
    transport.stream_receive_window(
        VarInt::from_u64(stream_window).map_err(|e| bad("max_message_size", e.to_string()))?,
    );
    transport.receive_window(
        VarInt::from_u64(conn_window).map_err(|e| bad("max_message_size", e.to_string()))?,
    );
    transport.datagram_receive_buffer_size(None);
    Ok(transport)
}
