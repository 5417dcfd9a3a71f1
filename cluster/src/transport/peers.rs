//! The connection cache: one slot per peer address holding its live connection, and the
//! dialling state (one attempt at a time per peer, exponential back-off after a failure).
//!
//! Slots are forgotten once nobody uses them: a slot with no task holding it (no connection
//! being served, no send or dial in flight), no live connection, and no use for
//! [`super::EndpointConfig::forget_idle_peers_after`] goes at the next sweep. Peers restarted
//! on new ports, and addresses gossip has stopped trying, would otherwise leave a slot each
//! forever. What a forgotten slot loses is its back-off, which by then has run out anyway.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// When the slot was last looked up, in ms of the endpoint's clock ([`Inner::clock_ms`]).
    last_used: AtomicU64,
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

/// The slots of peer addresses, and when they were last swept.
#[derive(Default)]
pub(crate) struct PeerTable {
    slots: HashMap<SocketAddr, Arc<PeerSlot>>,
    swept_ms: u64,
}

impl PeerTable {
    /// Slots held now.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn clear(&mut self) {
        self.slots.clear();
    }

    /// The slot for `addr`, created on first use and marked used at `now_ms`; forgets unused
    /// slots first when the last sweep is `idle_ms / 2` old or more.
    fn get(&mut self, addr: SocketAddr, now_ms: u64, idle_ms: u64) -> Arc<PeerSlot> {
        if now_ms.saturating_sub(self.swept_ms) >= idle_ms / 2 {
            self.swept_ms = now_ms;
            self.slots.retain(|_, slot| {
                // The table's own reference is the only one: no task uses the slot.
                Arc::strong_count(slot) > 1
                    || slot.live().is_some()
                    || now_ms.saturating_sub(slot.last_used.load(Ordering::Relaxed)) < idle_ms
            });
        }
        let slot = self.slots.entry(addr).or_default();
        slot.last_used.store(now_ms, Ordering::Relaxed);
        slot.clone()
    }
}

impl Inner {
    /// The cache slot for `addr`, created on first use (`None` only if the lock is poisoned).
    pub(crate) fn slot(&self, addr: SocketAddr) -> Option<Arc<PeerSlot>> {
        let idle_ms =
            u64::try_from(self.config.forget_idle_peers_after.as_millis()).unwrap_or(u64::MAX);
        let now_ms = self.clock_ms();
        let mut peers = self.peers.lock().ok()?;
        Some(peers.get(addr, now_ms, idle_ms))
    }

    /// Milliseconds since the endpoint was bound.
    fn clock_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn slots_nobody_uses_are_forgotten_once_idle() {
        const IDLE: u64 = 1_000;
        let mut table = PeerTable::default();
        drop(table.get(addr(1), 0, IDLE));
        let held = table.get(addr(2), 0, IDLE);
        drop(table.get(addr(3), 600, IDLE));
        assert_eq!(table.len(), 3, "nothing idle long enough yet");
        // At 1,200 ms the sweep runs: slot 1 is idle for 1,200 ms and goes; slot 2 is as idle
        // but a task holds it; slot 3 was used 600 ms ago.
        drop(table.get(addr(4), 1_200, IDLE));
        let mut left: Vec<u16> = table.slots.keys().map(|a| a.port()).collect();
        left.sort_unstable();
        assert_eq!(left, [2, 3, 4]);
        // Once nobody holds slot 2 it goes at the next sweep, with slot 3, now idle too; the
        // slot in use stays.
        drop(held);
        drop(table.get(addr(4), 1_900, IDLE));
        assert_eq!(
            table.slots.keys().map(|a| a.port()).collect::<Vec<_>>(),
            [4]
        );
        drop(table.get(addr(4), 2_500, IDLE));
        assert_eq!(table.len(), 1);
    }
}
