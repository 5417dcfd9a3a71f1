//! [`ClusterEndpoint`]: one quinn endpoint per node, server and client at once, with a cache of
//! one connection per peer address (slots unused for a while are forgotten, see
//! [`super::peers`]).
//!
//! Connections are reused for every message to a peer, in both directions: a connection a peer
//! opened to us is also used for our messages to it (so a reply needs no new handshake). When
//! a peer connects anew from an address we already hold a connection for, the new connection
//! replaces the old one: that is what a restarted peer looks like, and its old connection is
//! dead even if it has not timed out yet. A failed send on a cached connection is retried once
//! on a fresh one. A failed connection attempt puts the peer in exponential back-off, counted
//! from the start of the attempt, so that gossip aimed at a dead node costs nothing while the
//! back-off runs, yet an attempt that waited out the connect timeout (a partition) is followed
//! by the next at once.
//!
//! Nothing here blocks for long: connecting, sending and requesting all have timeouts from
//! [`EndpointConfig`], and [`ClusterEndpoint::send_detached`] never waits at all.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use bytes::Bytes;
use quinn::{Connection, VarInt};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::{debug, warn};

use super::config::{EndpointConfig, transport_config};
use super::inbound;
use super::partition::{PartitionTable, PartitionedSocket};
use super::peers::PeerTable;
use super::stats::{LogLimiter, Malformed, TransportStats, bump};
use super::streamed::ResponseFrames;
use super::{MessageKind, TransportError};
use crate::hlc::NodeId;
use crate::tls::{ClusterCredentials, peer_node_id};

/// QUIC application close code for a connection refused after the handshake because the
/// peer's certificate names no node, or a revoked one.
pub const IDENTITY_REFUSED: u32 = 0x1d;

/// A one-way message received from a peer.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The peer's address (its endpoint's address, as seen on the connection).
    pub from: SocketAddr,
    /// The node the peer's certificate names, checked after the handshake: the only node the
    /// peer may speak for.
    pub peer: NodeId,
    /// The message kind.
    pub kind: MessageKind,
    /// The payload.
    pub payload: Bytes,
}

/// A request received from a peer; answer it with [`IncomingRequest::respond`] (one frame),
/// [`IncomingRequest::respond_frames`] (several) or [`IncomingRequest::refuse`]. Dropping it
/// unanswered resets the peer's stream with [`super::frame::codes::NO_RESPONSE`].
#[derive(Debug)]
pub struct IncomingRequest {
    /// The peer's address.
    pub from: SocketAddr,
    /// The node the peer's certificate names (see [`Inbound::peer`]).
    pub peer: NodeId,
    /// The request kind.
    pub kind: MessageKind,
    /// The request payload.
    pub payload: Bytes,
    pub(crate) reply: oneshot::Sender<Reply>,
}

/// How the local handler answers a request.
#[derive(Debug)]
pub(crate) enum Reply {
    /// One response frame.
    Whole(Bytes),
    /// Response frames in order, as the channel yields them, until it closes.
    Frames(mpsc::Receiver<Bytes>),
    /// No response: the stream is reset with this code (see [`super::frame::codes`]).
    Refused(u32),
}

impl IncomingRequest {
    /// Sends the response. Returns `false` if the exchange is already gone (timed out, or
    /// the peer gave up).
    pub fn respond(self, response: Bytes) -> bool {
        self.reply.send(Reply::Whole(response)).is_ok()
    }

    /// Answers with several frames, written in the order `frames` yields them, each within
    /// the send timeout and under the message cap; the response ends when the sender side
    /// closes. The requester reads them with [`ClusterEndpoint::request_frames`]. Each frame
    /// must arrive on the channel within [`EndpointConfig::request_timeout`] of the previous
    /// one, or the exchange is reset with [`super::frame::codes::NO_RESPONSE`]. Returns
    /// `false` if the exchange is already gone.
    pub fn respond_frames(self, frames: mpsc::Receiver<Bytes>) -> bool {
        self.reply.send(Reply::Frames(frames)).is_ok()
    }

    /// Refuses the request at once: the requester sees [`TransportError::Rejected`] with
    /// `code` (see [`super::frame::codes`]). Returns `false` if the exchange is already gone.
    pub fn refuse(self, code: u32) -> bool {
        self.reply.send(Reply::Refused(code)).is_ok()
    }
}

/// Where the messages of one kind go.
pub(crate) struct Route<T> {
    pub(crate) tx: mpsc::Sender<T>,
    pub(crate) max_size: usize,
}

/// State shared by the endpoint handle and its background tasks.
pub(crate) struct Inner {
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) local_addr: SocketAddr,
    pub(crate) server_name: String,
    pub(crate) config: EndpointConfig,
    pub(crate) stats: Arc<TransportStats>,
    pub(crate) peers: Mutex<PeerTable>,
    /// The origin of the peer table's clock.
    pub(crate) started: Instant,
    pub(crate) messages: RwLock<HashMap<MessageKind, Route<Inbound>>>,
    pub(crate) requests: RwLock<HashMap<MessageKind, Route<IncomingRequest>>>,
    pub(crate) detached: Arc<Semaphore>,
    pub(crate) handshake_log: LogLimiter,
    pub(crate) frame_log: LogLimiter,
    pub(crate) connect_log: LogLimiter,
    pub(crate) identity_log: LogLimiter,
}

impl Inner {
    /// Whether the simulated partition drops traffic `from → to`; counts the drop.
    pub(crate) fn partitioned(&self, from: SocketAddr, to: SocketAddr) -> bool {
        let blocked = self
            .config
            .partition
            .as_ref()
            .is_some_and(|p| !p.drops_packets() && p.is_blocked(from, to));
        if blocked {
            bump(&self.stats.partition_dropped);
        }
        blocked
    }

    /// The cap for `kind` on the given route table, or `None` if nobody handles it.
    pub(crate) fn route_of<T>(
        table: &RwLock<HashMap<MessageKind, Route<T>>>,
        kind: MessageKind,
    ) -> Option<(mpsc::Sender<T>, usize)> {
        let routes = table.read().ok()?;
        let route = routes.get(&kind)?;
        (!route.tx.is_closed()).then(|| (route.tx.clone(), route.max_size))
    }

    /// Takes an established, identified connection into the cache and starts serving its
    /// streams, tagging each message with `peer`.
    pub(crate) fn adopt(self: &Arc<Self>, conn: Connection, peer: NodeId) {
        let remote = conn.remote_address();
        if let Some(slot) = self.slot(remote) {
            slot.set(conn.clone());
            tokio::spawn(inbound::serve_connection(self.clone(), slot, conn, peer));
        }
    }

    /// The node id the peer's certificate names, after a successful handshake in either
    /// direction. A leaf that names no node, or a revoked node, closes the connection before
    /// any stream is served; that is counted and logged (rate-limited).
    pub(crate) fn identify(&self, conn: &Connection) -> Result<NodeId, String> {
        let refused = match peer_node_id(conn) {
            Ok(id) if !self.config.revoked_nodes.contains(&id) => return Ok(id),
            Ok(id) => {
                bump(&self.stats.peers_revoked);
                format!("node {id} is revoked ([cluster].revoked_nodes)")
            }
            Err(e) => {
                bump(&self.stats.peers_unidentified);
                e.to_string()
            }
        };
        conn.close(VarInt::from_u32(IDENTITY_REFUSED), b"identity refused");
        if let Some(suppressed) = self.identity_log.allow() {
            warn!(
                peer = %conn.remote_address(), error = %refused, suppressed,
                "refused a cluster connection after the handshake"
            );
        }
        Err(refused)
    }
}

/// Closes the quinn endpoint when the last [`ClusterEndpoint`] handle is dropped.
struct CloseGuard {
    inner: Arc<Inner>,
}

impl Drop for CloseGuard {
    fn drop(&mut self) {
        close(&self.inner);
    }
}

fn close(inner: &Inner) {
    inner.endpoint.close(VarInt::from_u32(0), b"shutdown");
    if let Ok(mut peers) = inner.peers.lock() {
        peers.clear();
    }
    if let Ok(mut routes) = inner.messages.write() {
        routes.clear();
    }
    if let Ok(mut routes) = inner.requests.write() {
        routes.clear();
    }
}

/// Binds an endpoint whose socket drops the datagrams `table` blocks (tests).
fn bind_partitioned(
    server: quinn::ServerConfig,
    addr: SocketAddr,
    table: Arc<PartitionTable>,
) -> std::io::Result<quinn::Endpoint> {
    let runtime: Arc<dyn quinn::Runtime> = Arc::new(quinn::TokioRuntime);
    let socket = runtime.wrap_udp_socket(std::net::UdpSocket::bind(addr)?)?;
    quinn::Endpoint::new_with_abstract_socket(
        quinn::EndpointConfig::default(),
        Some(server),
        PartitionedSocket::wrap(socket, table)?,
        runtime,
    )
}

/// A node's cluster endpoint: one UDP socket, QUIC with mutual TLS, serving and dialling
/// peers. Cheap to clone; the endpoint closes when the last clone is dropped or on
/// [`ClusterEndpoint::close`].
#[derive(Clone)]
pub struct ClusterEndpoint {
    inner: Arc<Inner>,
    _guard: Arc<CloseGuard>,
}

impl std::fmt::Debug for ClusterEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterEndpoint")
            .field("local_addr", &self.inner.local_addr)
            .finish_non_exhaustive()
    }
}

impl ClusterEndpoint {
    /// Binds `addr` (port 0 picks a free port; see [`ClusterEndpoint::local_addr`]) and starts
    /// accepting peers that present a certificate from the cluster CA. Must be called inside
    /// a Tokio runtime.
    ///
    /// # Errors
    /// [`TransportError::Tls`] for unusable credentials, [`TransportError::Config`] for an
    /// out-of-range setting, [`TransportError::Bind`] if the socket cannot be bound.
    pub fn bind(
        addr: SocketAddr,
        credentials: &ClusterCredentials,
        config: EndpointConfig,
    ) -> Result<Self, TransportError> {
        let transport = Arc::new(transport_config(&config)?);
        let mut server = credentials.server_config()?;
        server.transport_config(transport.clone());
        server.max_incoming(config.max_connections.max(1));
        let mut client = credentials.client_config()?;
        client.transport_config(transport);
        let mut endpoint = match config.partition.as_ref().filter(|p| p.drops_packets()) {
            Some(table) => bind_partitioned(server, addr, table.clone()),
            None => quinn::Endpoint::server(server, addr),
        }
        .map_err(|source| TransportError::Bind { addr, source })?;
        endpoint.set_default_client_config(client);
        let local_addr = endpoint
            .local_addr()
            .map_err(|source| TransportError::Bind { addr, source })?;
        let inner = Arc::new(Inner {
            endpoint,
            local_addr,
            server_name: credentials.server_name().to_string(),
            detached: Arc::new(Semaphore::new(config.max_detached_sends)),
            handshake_log: LogLimiter::new(config.log_interval),
            frame_log: LogLimiter::new(config.log_interval),
            connect_log: LogLimiter::new(config.log_interval),
            identity_log: LogLimiter::new(config.log_interval),
            config,
            stats: Arc::new(TransportStats::default()),
            peers: Mutex::new(PeerTable::default()),
            started: Instant::now(),
            messages: RwLock::new(HashMap::new()),
            requests: RwLock::new(HashMap::new()),
        });
        tokio::spawn(inbound::accept_loop(inner.clone()));
        Ok(Self {
            _guard: Arc::new(CloseGuard {
                inner: inner.clone(),
            }),
            inner,
        })
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The endpoint's counters.
    pub fn stats(&self) -> &Arc<TransportStats> {
        &self.inner.stats
    }

    /// The endpoint's settings.
    pub fn config(&self) -> &EndpointConfig {
        &self.inner.config
    }

    /// Receives the one-way messages of `kind`, up to `max_size` bytes each (capped by
    /// [`EndpointConfig::max_message_size`]). Larger ones are refused before being read.
    /// Messages of a kind nobody receives are dropped and counted as `unknown_kind`. A kind
    /// has at most one receiver; once it is dropped the kind may be subscribed again.
    ///
    /// # Errors
    /// [`TransportError::AlreadySubscribed`], or [`TransportError::Closed`].
    pub fn subscribe(
        &self,
        kind: MessageKind,
        max_size: usize,
    ) -> Result<mpsc::Receiver<Inbound>, TransportError> {
        self.register(&self.inner.messages, kind, max_size)
    }

    /// Like [`ClusterEndpoint::subscribe`], but takes the kind over from a receiver that
    /// already holds it (that receiver then sees the end of its queue).
    ///
    /// # Errors
    /// [`TransportError::Closed`].
    pub fn resubscribe(
        &self,
        kind: MessageKind,
        max_size: usize,
    ) -> Result<mpsc::Receiver<Inbound>, TransportError> {
        if let Ok(mut routes) = self.inner.messages.write() {
            routes.remove(&kind);
        }
        self.subscribe(kind, max_size)
    }

    /// Receives the requests of `kind` (see [`ClusterEndpoint::request`]), up to `max_size`
    /// bytes each. Same rules as [`ClusterEndpoint::subscribe`]; request kinds are a separate
    /// namespace from message kinds.
    ///
    /// # Errors
    /// [`TransportError::AlreadySubscribed`], or [`TransportError::Closed`].
    pub fn serve(
        &self,
        kind: MessageKind,
        max_size: usize,
    ) -> Result<mpsc::Receiver<IncomingRequest>, TransportError> {
        self.register(&self.inner.requests, kind, max_size)
    }

    fn register<T>(
        &self,
        table: &RwLock<HashMap<MessageKind, Route<T>>>,
        kind: MessageKind,
        max_size: usize,
    ) -> Result<mpsc::Receiver<T>, TransportError> {
        let mut routes = table.write().map_err(|_| TransportError::Closed)?;
        if routes.get(&kind).is_some_and(|r| !r.tx.is_closed()) {
            return Err(TransportError::AlreadySubscribed { kind });
        }
        let (tx, rx) = mpsc::channel(self.inner.config.inbound_queue.max(1));
        let max_size = max_size
            .min(self.inner.config.max_message_size)
            .min(u32::MAX as usize);
        routes.insert(kind, Route { tx, max_size });
        Ok(rx)
    }

    /// Sends one message on its own unidirectional stream, connecting (or reconnecting) to
    /// `to` as needed. Returns once the message is handed to QUIC (not when the peer has
    /// read it). Traffic blocked by the simulated partition is dropped silently, as a network
    /// would.
    ///
    /// # Errors
    /// [`TransportError::TooLarge`], connection errors ([`TransportError::Connect`],
    /// [`TransportError::Backoff`], [`TransportError::Connection`]) or
    /// [`TransportError::Timeout`].
    pub async fn send(
        &self,
        to: SocketAddr,
        kind: MessageKind,
        payload: Bytes,
    ) -> Result<(), TransportError> {
        self.inner.send(to, kind, payload).await
    }

    /// Fire-and-forget [`ClusterEndpoint::send`] on a background task, for callers that must
    /// never wait (the gossip loop). Returns `false` if the message was dropped at once because
    /// too many detached sends are in flight; later failures are only counted.
    pub fn send_detached(&self, to: SocketAddr, kind: MessageKind, payload: Bytes) -> bool {
        let Ok(permit) = self.inner.detached.clone().try_acquire_owned() else {
            bump(&self.inner.stats.sends_dropped);
            return false;
        };
        let inner = self.inner.clone();
        tokio::spawn(async move {
            if let Err(e) = inner.send(to, kind, payload).await {
                if matches!(e, TransportError::Backoff { .. }) {
                    bump(&inner.stats.sends_dropped);
                }
                debug!(peer = %to, %kind, error = %e, "cluster message not sent");
            }
            drop(permit);
        });
        true
    }

    /// Sends a request on a bidirectional stream and waits for the response, at most
    /// `max_response` bytes (capped by [`EndpointConfig::max_message_size`]), within
    /// [`EndpointConfig::request_timeout`]. This is the exchange push-pull anti-entropy needs.
    ///
    /// # Errors
    /// As [`ClusterEndpoint::send`], plus [`TransportError::Rejected`] (the peer has no
    /// handler, is busy, or its handler did not answer), [`TransportError::BadResponse`], and
    /// [`TransportError::Partitioned`].
    pub async fn request(
        &self,
        to: SocketAddr,
        kind: MessageKind,
        payload: Bytes,
        max_response: usize,
    ) -> Result<Bytes, TransportError> {
        self.inner.request(to, kind, payload, max_response).await
    }

    /// Like [`ClusterEndpoint::request`], for a handler that answers with several frames
    /// ([`IncomingRequest::respond_frames`]): returns once the request is sent; read the
    /// frames, each at most `max_frame` bytes and each within
    /// [`EndpointConfig::request_timeout`], with [`ResponseFrames::next`].
    ///
    /// # Errors
    /// As [`ClusterEndpoint::request`], for sending the request.
    pub async fn request_frames(
        &self,
        to: SocketAddr,
        kind: MessageKind,
        payload: Bytes,
        max_frame: usize,
    ) -> Result<ResponseFrames, TransportError> {
        self.inner
            .request_frames(to, kind, payload, max_frame)
            .await
    }

    /// The cached connection to `to`, connecting if needed. For callers that need raw
    /// streams (and for tests that play a misbehaving peer).
    ///
    /// # Errors
    /// As the connection errors of [`ClusterEndpoint::send`].
    pub async fn connection(&self, to: SocketAddr) -> Result<Connection, TransportError> {
        self.inner.connection(to).await
    }

    /// Records that a consumer could not decode a received payload of `kind` (counted as
    /// malformed, reason `decode_errors`).
    pub fn record_decode_error(&self, kind: MessageKind) {
        self.inner.stats.malformed(Some(kind), Malformed::Decode);
    }

    /// Records that a gossip message was refused because its blocks would inflate beyond
    /// [`super::gossip::GOSSIP_MAX_INFLATED`] (counted besides its decode error).
    pub(crate) fn record_gossip_inflation_refused(&self) {
        bump(&self.inner.stats.gossip_inflation_refused);
    }

    /// Records a gossip message dropped because its sender claimed another node's identity.
    pub fn record_gossip_spoofed(&self) {
        bump(&self.inner.stats.gossip_spoofed);
    }

    /// Closes the endpoint now: every connection is closed, receivers see the end of their
    /// queue, and further sends fail. quinn's driver releases the UDP port shortly afterwards
    /// (asynchronously), once its tasks have wound down.
    pub fn close(&self) {
        close(&self.inner);
    }

    /// Peer addresses the connection cache holds a slot for (a live connection, or dialling
    /// state kept while the address is in use).
    pub fn peer_slots(&self) -> usize {
        self.inner.peers.lock().map_or(0, |p| p.len())
    }

    /// QUIC connections open now, inbound and outbound.
    pub fn open_connections(&self) -> usize {
        self.inner.endpoint.open_connections()
    }

    /// Waits until every connection has been closed cleanly (after
    /// [`ClusterEndpoint::close`]), so that peers learn of the shutdown.
    pub async fn wait_idle(&self) {
        self.inner.endpoint.wait_idle().await;
    }
}
