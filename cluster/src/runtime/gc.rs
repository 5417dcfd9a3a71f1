//! Tombstone collection, run only when it is safe.
//!
//! A tombstone may go once every member that could still send us state has acknowledged it
//! (its version vector, seen in its pulls or pull replies, covers the tombstone's dot), our own
//! vector dominates all of theirs, and it is older than `tombstone_min_age` (the rule and its
//! proof are in `crdt::catalog`). The members are everyone gossip knows, live or dead: a dead
//! member that has not acknowledged holds collection back until it returns or gossip forgets it.
//! A member we have no vector for, or whose advertised address differs from the address it
//! talks from, blocks collection: when in doubt, keep the tombstone.
//!
//! The vectors are kept per address, and addresses change as nodes restart (a new process may
//! bind a new port), so [`forget_departed`] drops the vectors (and last-sync times) of peers
//! gossip no longer knows. That never lets collection run sooner: collection asks only about
//! the members gossip knows, and a member whose vector was dropped (it left, then came back)
//! blocks collection until it shows a vector again.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use chitchat::{Chitchat, ChitchatId};
use tokio::sync::Mutex as AsyncMutex;

use super::{CatalogValue, Shared};

/// How often the per-peer maps are pruned of departed peers. Cheap (one pass over members
/// and maps of the size of the membership); frequent enough that a restarting node's old
/// addresses go soon after gossip forgets them.
const FORGET_INTERVAL: Duration = Duration::from_secs(5);

/// Every member gossip knows, live or dead, this node included.
async fn members(chitchat: &AsyncMutex<Chitchat>) -> Vec<ChitchatId> {
    chitchat
        .lock()
        .await
        .node_states()
        .keys()
        .cloned()
        .collect()
}

/// Drops, every [`FORGET_INTERVAL`], the acknowledged vectors of addresses and the last-sync
/// times of node ids that no member gossip knows has, until the node stops.
pub(super) async fn forget_departed<V>(
    shared: Weak<Shared<V>>,
    chitchat: Arc<AsyncMutex<Chitchat>>,
) {
    let mut tick = tokio::time::interval(FORGET_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let members = members(&chitchat).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let addrs: BTreeSet<SocketAddr> =
            members.iter().map(|id| id.gossip_advertise_addr).collect();
        let ids: BTreeSet<&str> = members.iter().map(|id| &*id.node_id).collect();
        if let Ok(mut acked) = shared.acked.lock() {
            acked.retain(|addr, _| addrs.contains(addr));
        }
        if let Ok(mut last_sync) = shared.last_sync.lock() {
            last_sync.retain(|id, _| ids.contains(id.as_str()));
        }
    }
}

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
        let members: Vec<SocketAddr> = members(&chitchat)
            .await
            .into_iter()
            .map(|id| id.gossip_advertise_addr)
            .filter(|addr| *addr != self_addr)
            .collect();
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
