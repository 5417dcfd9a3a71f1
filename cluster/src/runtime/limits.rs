//! Per-peer caps on concurrent exchanges: a peer may run at most N at once against this node;
//! one more is refused at once (the caller answers with a clear code and counts it), never
//! queued.
//!
//! Keyed by the peer's node id as its certificate names it, so a peer that dials from several
//! ports or connections still shares one allowance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::hlc::NodeId;

/// Counts the exchanges in flight per peer, up to a cap.
#[derive(Debug)]
pub(crate) struct PerPeer {
    cap: usize,
    active: Mutex<HashMap<NodeId, usize>>,
}

/// One exchange in flight; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Permit {
    limits: Arc<PerPeer>,
    peer: NodeId,
}

impl PerPeer {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            active: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for `peer`, or `None` if it already runs `cap` exchanges.
    pub(crate) fn try_acquire(self: &Arc<Self>, peer: &NodeId) -> Option<Permit> {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        let running = active.entry(peer.clone()).or_insert(0);
        if *running >= self.cap {
            return None;
        }
        *running += 1;
        Some(Permit {
            limits: self.clone(),
            peer: peer.clone(),
        })
    }

    /// Peers with an exchange running now (a peer's entry goes with its last exchange).
    pub(crate) fn peers(&self) -> usize {
        self.active.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Exchanges `peer` runs now.
    #[cfg(test)]
    fn running(&self, peer: &NodeId) -> usize {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        active.get(peer).copied().unwrap_or(0)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut active = self.limits.active.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = active.get_mut(&self.peer) {
            *running = running.saturating_sub(1);
            if *running == 0 {
                active.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_peer_gets_its_own_allowance() {
        let limits = Arc::new(PerPeer::new(2));
        let a = &NodeId::new("n1").expect("id");
        let b = &NodeId::new("n2").expect("id");
        let first = limits.try_acquire(a).unwrap();
        let _second = limits.try_acquire(a).unwrap();
        assert!(limits.try_acquire(a).is_none());
        let _other = limits.try_acquire(b).unwrap();
        drop(first);
        assert_eq!(limits.running(a), 1);
        let _again = limits.try_acquire(a).unwrap();
        assert!(limits.try_acquire(a).is_none());
        assert_eq!(limits.peers(), 2);
    }

    #[test]
    fn a_peer_with_nothing_running_leaves_no_entry() {
        let limits = Arc::new(PerPeer::new(1));
        let a = &NodeId::new("n1").expect("id");
        let permit = limits.try_acquire(a).unwrap();
        assert!(limits.try_acquire(a).is_none(), "refused, not counted");
        drop(permit);
        assert_eq!(limits.peers(), 0);
    }
}
