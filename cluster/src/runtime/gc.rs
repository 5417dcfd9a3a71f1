//! Tombstone collection, run only when it is safe.
//!
//! A tombstone may go once every member that could still send us state has acknowledged it
//! (its version vector, seen in its pulls or pull replies, covers the tombstone's dot), our own
//! vector dominates all of theirs, and it is older than `tombstone_min_age` (the rule and its
//! proof are in `crdt::catalog`). The members are everyone gossip knows, live or dead: a dead
//! member that has not acknowledged holds collection back until it returns or gossip forgets it.
//! A member we have no vector for, or whose advertised address differs from the address it
//! talks from, blocks collection: when in doubt, keep the tombstone.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use chitchat::Chitchat;
use tokio::sync::Mutex as AsyncMutex;

use super::{CatalogValue, Shared};

/// Looks for collectable tombstones every `tombstone_gc_interval`, until the node stops.
pub(super) async fn collect_tombstones<V: CatalogValue>(
    shared: Weak<Shared<V>>,
    chitchat: Arc<AsyncMutex<Chitchat>>,
    self_addr: SocketAddr,
) {
    let interval = match shared.upgrade() {
        Some(s) => s.config.tombstone_gc_interval,
        None => return,
    };
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        let members: Vec<SocketAddr> = {
            let chitchat = chitchat.lock().await;
            chitchat
                .node_states()
                .keys()
                .map(|id| id.gossip_advertise_addr)
                .filter(|addr| *addr != self_addr)
                .collect()
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.stats.gc_checks.fetch_add(1, Ordering::Relaxed);
        let acked = {
            let Ok(acked) = shared.acked.lock() else {
                continue;
            };
            let found: Option<Vec<_>> = members.iter().map(|m| acked.get(m).cloned()).collect();
            match found {
                Some(vectors) => vectors,
                None => continue,
            }
        };
        let collected = {
            let mut replica = shared.replica.lock().unwrap_or_else(|p| p.into_inner());
            replica.collect_tombstones(&acked, shared.config.tombstone_min_age)
        };
        shared.stats.gc_runs.fetch_add(1, Ordering::Relaxed);
        if collected > 0 {
            shared
                .stats
                .tombstones_collected
                .fetch_add(collected as u64, Ordering::Relaxed);
            tracing::debug!(collected, "collected tombstones");
        }
    }
}
