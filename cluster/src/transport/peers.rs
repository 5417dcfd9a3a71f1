//! The connection cache: one slot per peer address holding its live connection, and the
//! dialling state (one attempt at a time per peer, exponential back-off after a failure).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quinn::Connection;
use tokio::time::timeout;
use tracing::{debug, warn};

use super::TransportError;
use super::endpoint::Inner;
use super::stats::bump;
use crate::hlc::NodeId;

/// One peer address: its cached connection, and the dialling state.
#[derive(Default)]
pub(crate) struct PeerSlot {
    conn: Mutex<Option<Connection>>,
    dial: tokio::sync::Mutex<Backoff>,
}

/// When the next connection attempt may start, and how long the one after a further failure
/// will wait.
#[derive(Default)]
struct Backoff {
    until: Option<Instant>,
    next: Duration,
}

impl PeerSlot {
    /// The cached connection, unless it has closed.
    fn live(&self) -> Option<Connection> {
        let guard = self.conn.lock().ok()?;
        guard
            .as_ref()
            .filter(|c| c.close_reason().is_none())
            .cloned()
    }

    pub(crate) fn set(&self, conn: Connection) {
        if let Ok(mut guard) = self.conn.lock() {
            *guard = Some(conn);
        }
    }

    /// Forgets the cached connection if it is still `stable_id`.
    pub(crate) fn clear_if(&self, stable_id: usize) {
        if let Ok(mut guard) = self.conn.lock()
            && guard.as_ref().is_some_and(|c| c.stable_id() == stable_id)
        {
            *guard = None;
        }
    }
}

impl Inner {
    /// The live connection to `to`: the cached one, or a new one (one attempt at a time per
    /// peer, subject to the back-off).
    pub(crate) async fn connection(
        self: &Arc<Self>,
        to: SocketAddr,
    ) -> Result<Connection, TransportError> {
        let slot = self.slot(to).ok_or(TransportError::Closed)?;
        if let Some(conn) = slot.live() {
            return Ok(conn);
        }
        let mut dial = timeout(self.config.connect_timeout, slot.dial.lock())
            .await
            .map_err(|_| TransportError::Timeout {
                to,
                what: "waiting for another connection attempt",
            })?;
        // Another task may have connected, or the peer may have connected to us, meanwhile.
        if let Some(conn) = slot.live() {
            return Ok(conn);
        }
        if dial.until.is_some_and(|until| Instant::now() < until) {
            return Err(TransportError::Backoff { to });
        }
        let started = Instant::now();
        match self.dial(to).await {
            Ok((conn, peer)) => {
                *dial = Backoff::default();
                self.adopt(conn.clone(), peer);
                Ok(conn)
            }
            Err(e) => {
                // The back-off runs from the start of the failed attempt, so that an attempt
                // that waited out the connect timeout (no answer: a partition, a host down)
                // may be followed by the next at once. Waiting the back-off on top of it
                // left a peer behind a healed partition unreached for up to the timeout plus
                // the longest back-off (about 4 s); now at most the timeout, during which
                // QUIC resends its first packet.
                let cfg = &self.config;
                let wait = dial
                    .next
                    .clamp(cfg.reconnect_backoff_min, cfg.reconnect_backoff_max);
                dial.until = Some(started + wait);
                dial.next = wait.saturating_mul(2);
                Err(e)
            }
        }
    }

    /// Connects to `to` and identifies the peer (see [`Inner::identify`]).
    async fn dial(&self, to: SocketAddr) -> Result<(Connection, NodeId), TransportError> {
        let failed = |reason: String| {
            bump(&self.stats.connects_failed);
            if let Some(suppressed) = self.connect_log.allow() {
                warn!(peer = %to, error = %reason, suppressed, "cluster connection attempt failed");
            }
            TransportError::Connect { to, reason }
        };
        let connecting = match self.endpoint.connect(to, &self.server_name) {
            Ok(connecting) => connecting,
            Err(quinn::ConnectError::EndpointStopping) => return Err(TransportError::Closed),
            Err(e) => return Err(failed(e.to_string())),
        };
        match timeout(self.config.connect_timeout, connecting).await {
            Ok(Ok(conn)) => {
                let peer = self.identify(&conn).map_err(|reason| {
                    bump(&self.stats.connects_failed);
                    TransportError::Connect { to, reason }
                })?;
                bump(&self.stats.connects_ok);
                debug!(peer = %to, node = %peer, "cluster connection established");
                Ok((conn, peer))
            }
            Ok(Err(e)) => Err(failed(e.to_string())),
            Err(_) => Err(failed(format!(
                "no handshake within {:?}",
                self.config.connect_timeout
            ))),
        }
    }
}
