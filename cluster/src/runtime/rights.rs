//! The rights-transfer exchange over QUIC (the escrow protocol of `crdt::transfer`).
//!
//! A node low on budget rights sends a [`RightsRequest`] to a peer that holds some. The donor
//! answers under its [`DonorPolicy`] with an ordinary, monotone transfer write in its own row,
//! **fsynced before it answers** (a donor that forgot a transfer after a crash could spend the
//! same rights again), and ships that write's delta in the reply, so the requester holds the
//! rights as soon as the reply arrives. The same delta also replicates like any other change.
//! Nothing in the exchange creates rights: a lost reply strands nothing (the transfer still
//! reaches the requester by anti-entropy), and a duplicated request moves more rights to the
//! requester, never more than the donor holds.
//!
//! A request's `from` (the recipient) must be a writer of the node the requester's certificate
//! names; a request on behalf of another node is refused and counted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use super::sync::{self, SyncError};
use super::{CatalogValue, ClusterError, SYNC_RIGHTS, Shared};
use crate::codec::{self, Kind};
use crate::crdt::{BudgetKey, DonorPolicy, RightsGrant, RightsRequest};
use crate::state::Delta;
use crate::transport::IncomingRequest;

/// The donor's answer: a grant and the transfer's delta, or nothing to give.
#[derive(Serialize, Deserialize)]
#[serde(bound(deserialize = "V: CatalogValue"))]
struct RightsReply<V> {
    grant: Option<(RightsGrant, Delta<V>)>,
}

/// Answers rights requests from peers, each on its own task (answers wait for an fsync).
pub(super) fn spawn_donor<V: CatalogValue>(
    shared: &Arc<Shared<V>>,
    policy: DonorPolicy,
) -> Result<tokio::task::JoinHandle<()>, ClusterError> {
    let mut requests = shared.endpoint.serve(SYNC_RIGHTS, 64 * 1024)?;
    let shared = shared.clone();
    Ok(tokio::spawn(async move {
        while let Some(request) = requests.recv().await {
            let shared = shared.clone();
            tokio::spawn(async move { answer(&shared, request, policy).await });
        }
    }))
}

async fn answer<V: CatalogValue>(
    shared: &Shared<V>,
    request: IncomingRequest,
    policy: DonorPolicy,
) {
    shared.count_received(request.payload.len());
    let Ok(wanted) =
        codec::decode_kind::<RightsRequest>(&request.payload, Kind::RightsRequest, 64 * 1024)
    else {
        shared.stats.malformed.fetch_add(1, Ordering::Relaxed);
        shared.endpoint.record_decode_error(SYNC_RIGHTS);
        return;
    };
    // A peer asks for itself: rights go to the requester's writer, which must be the node
    // its certificate names. Unanswered, the requester's stream is reset.
    if wanted.from.node != request.peer {
        shared
            .stats
            .spoofed_rights_requests
            .fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = shared.reject_log.allow() {
            tracing::warn!(
                peer = %request.from, node = %request.peer, claimed = ?wanted.from, suppressed,
                "refused a rights request on behalf of another node"
            );
        }
        return;
    }
    // Room before the transfer is applied: once it is, its record is queued without a wait.
    let room = match shared.store.room(0).await {
        Ok(room) => room,
        Err(e) => {
            tracing::error!("cannot persist a rights transfer; not answering: {e}");
            return;
        }
    };
    let answered = {
        let mut replica = shared.replica.lock().unwrap_or_else(|p| p.into_inner());
        replica.answer_rights_request(&wanted, &policy)
    };
    let reply = match answered {
        None => RightsReply { grant: None },
        Some((grant, delta)) => {
            let record = match codec::encode(Kind::LogRecord, &delta) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("cannot encode a rights transfer: {e}");
                    return;
                }
            };
            // Durable before the requester may spend it.
            let durable = match shared.store.append_queued(room, record.clone()) {
                Ok(done) => done.wait().await,
                Err(e) => Err(e),
            };
            if let Err(e) = durable {
                tracing::error!("cannot persist a rights transfer; not answering: {e}");
                return;
            }
            sync::after_persist(shared, record.len());
            RightsReply {
                grant: Some((grant, delta)),
            }
        }
    };
    match codec::encode(Kind::RightsGrant, &reply) {
        Ok(bytes) => {
            shared.count_sent(bytes.len());
            request.respond(bytes);
        }
        Err(e) => tracing::error!("cannot encode a rights reply: {e}"),
    }
}

/// Asks `peer` for `amount` rights of `key`; merges the transfer on arrival. Returns the
/// grant, or `None` if the peer had nothing to spare.
pub(super) async fn request<V: CatalogValue>(
    shared: &Shared<V>,
    peer: SocketAddr,
    key: &BudgetKey,
    amount: u64,
) -> Result<Option<RightsGrant>, SyncError> {
    let from = {
        let replica = shared.replica.lock().unwrap_or_else(|p| p.into_inner());
        replica.writer().clone()
    };
    let wanted = RightsRequest {
        key: key.clone(),
        from,
        amount,
        request_id: rand::random(),
    };
    let bytes = codec::encode(Kind::RightsRequest, &wanted)?;
    shared.count_sent(bytes.len());
    let reply = shared
        .endpoint
        .request(peer, SYNC_RIGHTS, bytes, shared.config.max_sync_bytes)
        .await?;
    shared.count_received(reply.len());
    let RightsReply { grant } = codec::decode_kind::<RightsReply<V>>(
        &reply,
        Kind::RightsGrant,
        shared.config.max_sync_bytes,
    )?;
    Ok(match grant {
        Some((grant, delta)) => {
            if sync::merge(shared, delta, None).await {
                shared.heard();
            }
            Some(grant)
        }
        None => {
            shared.heard();
            None
        }
    })
}
