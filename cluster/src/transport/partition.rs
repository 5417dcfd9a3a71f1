//! A simulated network partition, for tests: a shared table of blocked directed links that
//! every endpoint consults before sending and after receiving.
//!
//! Links are keyed by the endpoints' socket addresses (what an endpoint knows itself and its
//! peers by), so tests should bind each node to its own address (`127.0.0.1:0` works). A
//! blocked link `a → b` means: `a` silently drops what it would send to `b`, and `b` drops
//! whatever still arrives from `a`; requests across it fail with
//! [`super::TransportError::Partitioned`]. Blocking only one direction gives the one-way
//! partitions the design asks tests to cover; [`PartitionTable::heal`] lifts everything.
//!
//! A table made with [`PartitionTable::new`] drops *messages*: connections stay up underneath,
//! as they would across a partition shorter than the idle timeout. One made with
//! [`PartitionTable::packets`] drops the UDP *datagrams* instead, as the nftables rules of the
//! fault tests do: QUIC sees a real partition, so connections idle out, connection attempts
//! time out and back off, and after [`PartitionTable::heal`] the endpoints must reconnect. The
//! sender drops a blocked datagram, so every endpoint of a test must share the table. With no
//! rule set the check is one atomic load.

use std::collections::HashSet;
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

/// The set of blocked directed links. Share it as `Arc<PartitionTable>` through
/// [`super::EndpointConfig::partition`].
#[derive(Debug, Default)]
pub struct PartitionTable {
    any: AtomicBool,
    packets: bool,
    blocked: RwLock<HashSet<(SocketAddr, SocketAddr)>>,
}

impl PartitionTable {
    /// An empty table (everything flows) that drops messages, over connections that stay up.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty table that drops UDP datagrams: a partition QUIC itself sees (see the module
    /// docs).
    pub fn packets() -> Self {
        Self {
            packets: true,
            ..Self::default()
        }
    }

    /// Whether this table drops datagrams rather than messages.
    pub fn drops_packets(&self) -> bool {
        self.packets
    }

    fn update(&self, f: impl FnOnce(&mut HashSet<(SocketAddr, SocketAddr)>)) {
        let mut blocked = match self.blocked.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut blocked);
        self.any.store(!blocked.is_empty(), Ordering::Release);
    }

    /// Drops traffic from `from` to `to` (one direction).
    pub fn block(&self, from: SocketAddr, to: SocketAddr) {
        self.update(|b| {
            b.insert((from, to));
        });
    }

    /// Restores traffic from `from` to `to`.
    pub fn unblock(&self, from: SocketAddr, to: SocketAddr) {
        self.update(|b| {
            b.remove(&(from, to));
        });
    }

    /// Drops traffic both ways between `a` and `b`.
    pub fn block_both(&self, a: SocketAddr, b: SocketAddr) {
        self.update(|set| {
            set.insert((a, b));
            set.insert((b, a));
        });
    }

    /// Splits the nodes into two sides that cannot reach each other (either direction).
    pub fn split(&self, side_a: &[SocketAddr], side_b: &[SocketAddr]) {
        self.update(|set| {
            for &a in side_a {
                for &b in side_b {
                    set.insert((a, b));
                    set.insert((b, a));
                }
            }
        });
    }

    /// Cuts `node` off from every address in `others`, both ways.
    pub fn isolate(&self, node: SocketAddr, others: &[SocketAddr]) {
        self.split(&[node], others);
    }

    /// Lifts every rule.
    pub fn heal(&self) {
        self.update(HashSet::clear);
    }

    /// Whether traffic from `from` to `to` is dropped.
    pub fn is_blocked(&self, from: SocketAddr, to: SocketAddr) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        match self.blocked.read() {
            Ok(set) => set.contains(&(from, to)),
            Err(poisoned) => poisoned.into_inner().contains(&(from, to)),
        }
    }
}

/// A UDP socket that drops the datagrams a [`PartitionTable::packets`] table blocks from its
/// address to their destination, and passes everything else to the socket it wraps.
pub(crate) struct PartitionedSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    local: SocketAddr,
    table: Arc<PartitionTable>,
}

impl PartitionedSocket {
    pub(crate) fn wrap(
        inner: Arc<dyn AsyncUdpSocket>,
        table: Arc<PartitionTable>,
    ) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let local = inner.local_addr()?;
        Ok(Arc::new(Self {
            inner,
            local,
            table,
        }))
    }
}

impl fmt::Debug for PartitionedSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionedSocket")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl AsyncUdpSocket for PartitionedSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        if self.table.is_blocked(self.local, transmit.destination) {
            // Lost on the wire: the sender cannot tell.
            return Ok(());
        }
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn directed_rules() {
        let t = PartitionTable::new();
        assert!(!t.is_blocked(addr(1), addr(2)));
        t.block(addr(1), addr(2));
        assert!(t.is_blocked(addr(1), addr(2)));
        assert!(!t.is_blocked(addr(2), addr(1)));
        t.split(&[addr(1)], &[addr(3), addr(4)]);
        assert!(t.is_blocked(addr(4), addr(1)));
        assert!(!t.is_blocked(addr(3), addr(4)));
        t.unblock(addr(1), addr(2));
        assert!(!t.is_blocked(addr(1), addr(2)));
        t.heal();
        assert!(!t.is_blocked(addr(4), addr(1)));
    }
}
