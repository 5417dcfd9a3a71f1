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
//! Connections stay up underneath, as they would across a real short partition: only the
//! messages vanish. With no rule set the check is one atomic load.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// The set of blocked directed links. Share it as `Arc<PartitionTable>` through
/// [`super::EndpointConfig::partition`].
#[derive(Debug, Default)]
pub struct PartitionTable {
    any: AtomicBool,
    blocked: RwLock<HashSet<(SocketAddr, SocketAddr)>>,
}

impl PartitionTable {
    /// An empty table (everything flows).
    pub fn new() -> Self {
        Self::default()
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
