//! A node's earlier lives: catching up after a start, and taking back the budget rights that
//! earlier incarnations of this node still hold.
//!
//! A node whose data dir was wiped, damaged or left by a failed store starts under a new
//! incarnation ([`crate::store::IncarnationStart`]). The old incarnation can never write
//! again (only this node holds its node id's certificate, and it has moved on), but its
//! undebited rights stay in its row. Once this node has **caught up** — completed a pull from
//! every member gossip knows of, live or dead (a dead one holds the wait until it answers or
//! gossip forgets it), and from at least `expect_nodes − 1` of them when that is set — it has
//! every write any member holds, and so, since a node uses a debit only after a peer has it on
//! disk ([`super::witness`]), every debit its earlier lives used. It then reclaims their rights
//! into its own row: what they held unused comes back to the budget, and what they had debited
//! into pools they lost stays spent. The argument is written out in `docs/guarantees.md`.
//!
//! Two things keep it from taking rights twice: a second live process under this node id (a
//! misconfiguration) stops it, and an operator's reclaim of this node that it has seen leaves
//! nothing to take (a reclaimed writer holds only what reached it after the reclaim; see
//! [`crate::crdt::rights`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use chitchat::{Chitchat, ChitchatId, NodeState};
use tokio::sync::Mutex as AsyncMutex;
use tokio::sync::watch;

use super::{CatalogValue, Shared, sync};
use crate::crdt::BudgetKey;

/// How often the node looks for earlier lives' rights to take back.
const RECLAIM_INTERVAL: Duration = Duration::from_secs(1);

/// Whether this node has caught up (see the module docs); latched once true. A node that is
/// not a member of a larger cluster has nobody to catch up with.
pub(super) async fn caught_up<V>(shared: &Shared<V>, chitchat: &AsyncMutex<Chitchat>) -> bool {
    if shared.caught_up.load(Ordering::Relaxed) || !shared.is_clustered() {
        return true;
    }
    if shared.started.elapsed() < shared.config.catch_up_grace {
        return false;
    }
    let own = shared.config.node_id.as_str();
    let members: BTreeSet<String> = {
        let chitchat = chitchat.lock().await;
        chitchat
            .node_states()
            .keys()
            .map(|id| id.node_id.to_string())
            .filter(|id| id != own)
            .collect()
    };
    let pulled: BTreeSet<String> = shared
        .last_sync
        .lock()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let enough = shared
        .config
        .expect_nodes
        .is_none_or(|n| pulled.len() + 1 >= n);
    let done = !members.is_empty() && enough && members.is_subset(&pulled);
    if done {
        shared.caught_up.store(true, Ordering::Relaxed);
        tracing::info!(members = members.len(), "caught up with every known member");
    }
    done
}

/// Takes back earlier lives' rights once caught up, until the node stops.
pub(super) async fn reclaim_earlier_lives<V: CatalogValue>(
    shared: Weak<Shared<V>>,
    chitchat: Arc<AsyncMutex<Chitchat>>,
    live: watch::Receiver<BTreeMap<ChitchatId, NodeState>>,
) {
    let mut tick = tokio::time::interval(RECLAIM_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let holding = {
            let replica = shared.replica.lock().unwrap_or_else(|p| p.into_inner());
            replica.earlier_lives_hold_rights()
        };
        if !holding || !caught_up(&shared, &chitchat).await {
            continue;
        }
        if let Some(other) = second_process(&chitchat, &shared.config.node_id).await {
            if let Some(suppressed) = shared.reject_log.allow() {
                tracing::error!(
                    other = %other.gossip_advertise_addr, suppressed,
                    "another live process runs under this node id: not taking back earlier incarnations' rights"
                );
            }
            continue;
        }
        let peers = sync::peers_of(live.borrow().keys(), &shared.config.node_id);
        match shared.mutate(peers, |r| r.reclaim_earlier_lives()).await {
            Ok(taken) => report(&shared, &taken),
            Err(e) => tracing::error!("cannot persist the reclaim of earlier lives' rights: {e}"),
        }
    }
}

/// A live gossip member under this node id other than this process, if any.
async fn second_process(chitchat: &AsyncMutex<Chitchat>, node_id: &str) -> Option<ChitchatId> {
    let chitchat = chitchat.lock().await;
    let me = chitchat.self_chitchat_id().clone();
    chitchat
        .live_nodes()
        .find(|id| &*id.node_id == node_id && **id != me)
        .cloned()
}

fn report<V>(shared: &Shared<V>, taken: &[(BudgetKey, crate::hlc::WriterId, u64)]) {
    for (key, writer, amount) in taken {
        shared
            .stats
            .earlier_lives_reclaimed
            .fetch_add(*amount, Ordering::Relaxed);
        tracing::warn!(
            budget = %key.scope, period = ?key.period, incarnation = writer.incarnation, amount,
            "took back an earlier incarnation's unused budget rights"
        );
    }
}
