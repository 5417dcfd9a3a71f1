//! Witnessed debits: a node uses budget rights it debited only once a peer holds the debit on
//! disk.
//!
//! Why: a node whose data dir is lost (wiped, damaged, or its store failed) comes back under a
//! new incarnation, and its earlier life's rights should return to the budget without an
//! operator ([`super::lives`]). That is safe only if every debit the earlier life used is
//! known to the cluster: otherwise its rights, as the survivors see them, include some it
//! already spent, and handing those back spends them twice. A debit is one write per pool
//! refill (about every 2 s of a budget's spend on a node), not one per request, so waiting
//! for one peer's fsync costs a round trip per refill, off the request path.
//!
//! The node sends its budget key, as it last wrote it, to every live peer ([`SYNC_WITNESS`],
//! request and response); a peer merges it like an eager push (the same sender check: only
//! the sender's own writes), waits until its store has it on disk, and answers with an empty
//! frame. The first answer is enough. Rows only grow, so witnessing a key's current row also
//! witnesses every earlier debit of it: a debit that found no peer is credited with the next
//! one that does.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};

use super::sync::{self, SyncError};
use super::{CatalogValue, ClusterError, SYNC_WITNESS, Shared};
use crate::codec::{self, Kind};
use crate::crdt::BudgetKey;
use crate::transport::frame::codes;
use crate::transport::{IncomingRequest, TransportError};

/// Why a debit could not be witnessed.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// No live peer to ask.
    #[error("no live peer to witness the debit")]
    NoPeer,
    /// This node has no row for the key: nothing was debited.
    #[error("nothing to witness: this node has not written the budget key")]
    NothingWritten,
    /// Every peer asked failed or refused; the last failure.
    #[error("no peer witnessed the debit: {0}")]
    Failed(#[from] SyncError),
}

/// Answers peers' requests to witness their debits, each on its own task (answers wait for an
/// fsync).
pub(super) fn spawn_witness<V: CatalogValue>(
    shared: &Arc<Shared<V>>,
) -> Result<tokio::task::JoinHandle<()>, ClusterError> {
    let mut requests = shared
        .endpoint
        .serve(SYNC_WITNESS, shared.config.max_sync_bytes)?;
    let shared = shared.clone();
    Ok(tokio::spawn(async move {
        while let Some(request) = requests.recv().await {
            let shared = shared.clone();
            tokio::spawn(async move { hold(&shared, request).await });
        }
    }))
}

async fn hold<V: CatalogValue>(shared: &Shared<V>, request: IncomingRequest) {
    shared.count_received(request.payload.len());
    if shared.store.failure().is_some() {
        request.refuse(codes::STORE_FAILED);
        return;
    }
    let delta = match sync::decode_delta::<V>(&request.payload, shared.config.max_sync_bytes) {
        Ok(delta) => delta,
        Err(e) => {
            shared.stats.malformed.fetch_add(1, Ordering::Relaxed);
            shared.endpoint.record_decode_error(SYNC_WITNESS);
            tracing::debug!(peer = %request.from, "malformed witness request: {e}");
            request.refuse(codes::MALFORMED);
            return;
        }
    };
    if let Some(writer) = sync::foreign_writer(&delta, &request.peer) {
        shared.stats.spoofed_pushes.fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = shared.reject_log.allow() {
            tracing::warn!(
                peer = %request.from, node = %request.peer, writer = ?writer, suppressed,
                "refused to witness a delta carrying another node's writes"
            );
        }
        request.refuse(codes::REFUSED_DELTA);
        return;
    }
    if !sync::merge(shared, delta, Some(request.payload.clone())).await {
        request.refuse(codes::REFUSED_DELTA);
        return;
    }
    // Merged or already held: either way on disk once everything queued so far is.
    if let Err(e) = shared.store.sync().await {
        tracing::error!("cannot persist a debit to witness: {e}");
        request.refuse(codes::STORE_FAILED);
        return;
    }
    shared.heard();
    shared
        .stats
        .witnessed_for_peers
        .fetch_add(1, Ordering::Relaxed);
    request.respond(Bytes::new());
}

/// Has a live peer hold `key` as this node last wrote it, durably; returns once the first one
/// has (see the module docs).
pub(super) async fn witness<V: CatalogValue>(
    shared: &Shared<V>,
    peers: Vec<std::net::SocketAddr>,
    key: &BudgetKey,
) -> Result<(), WitnessError> {
    if peers.is_empty() {
        return Err(WitnessError::NoPeer);
    }
    let record = {
        let replica = shared.replica.lock().unwrap_or_else(|p| p.into_inner());
        let delta = replica
            .own_rights_delta(key)
            .ok_or(WitnessError::NothingWritten)?;
        codec::encode(Kind::Delta, &delta).map_err(SyncError::from)?
    };
    let mut asks: FuturesUnordered<_> = peers
        .into_iter()
        .map(|peer| {
            shared.count_sent(record.len());
            shared
                .endpoint
                .request(peer, SYNC_WITNESS, record.clone(), 64)
        })
        .collect();
    let mut last = SyncError::Transport(TransportError::Closed);
    while let Some(answer) = asks.next().await {
        match answer {
            Ok(_) => {
                shared.heard();
                return Ok(());
            }
            Err(e) => last = SyncError::Transport(e),
        }
    }
    Err(WitnessError::Failed(last))
}
