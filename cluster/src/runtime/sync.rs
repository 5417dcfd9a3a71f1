//! Replication over QUIC streams: eager pushes of local deltas, and push-pull anti-entropy.
//!
//! A pull sends our version vector and receives everything the peer has that the vector does
//! not cover, plus the peer's own vector; we merge, then push back what the peer's vector does
//! not cover. Answers travel in chunks of bounded size (see [`super::chunks`]), and each peer
//! may run only a few pulls against us at once (see [`super::limits`]). Deltas are persisted
//! before they count as ours (local writes wait for the fsync; merged remote deltas are queued
//! for the next batch, since peers still hold them).
//!
//! Who may send what: an eager push ([`SYNC_PUSH`]) carries the sender's own writes only, so
//! every dot it claims and every single-writer item in it must belong to the node its
//! certificate names (a rights write ships its budget key whole, other writers' rows included);
//! a push that carries another node's writes is refused and counted. Pull replies and the delta pushed back after a
//! pull ([`SYNC_RELAY`]) relay rows of any writer: that is anti-entropy, and those rows are not
//! signed. Every peer delta, whatever its channel, goes through [`Replica::apply`]'s checks
//! (no dot of our own writer beyond what we issued, no row making rights negative).
//!
//! [`Replica::apply`]: crate::state::Replica::apply

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use chitchat::{ChitchatId, NodeState};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::chunks::{Chunker, PullReply};
use super::{CatalogValue, ClusterError, SYNC_PULL, SYNC_PUSH, SYNC_RELAY, Shared};
use crate::codec::{self, CodecError, Kind};
use crate::crdt::VersionVector;
use crate::hlc::{NodeId, WriterId};
use crate::state::{Delta, DeltaRejected};
use crate::store::SnapshotDone;
use crate::transport::frame::codes;
use crate::transport::{Inbound, IncomingRequest, TransportError};

/// Why an anti-entropy exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The peer could not be reached or refused.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The peer's answer did not decode.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The peer's answer ended before its last frame (the chunks before were merged).
    #[error("the pull's answer ended before its last frame")]
    Cut,
    /// This node's store failed: it neither pulls nor ships rows until restarted.
    #[error("the store failed: {0}")]
    StoreFailed(String),
}

/// Starts the tasks that answer pulls and merge pushes.
pub(super) fn spawn_handlers<V: CatalogValue>(
    shared: &Arc<Shared<V>>,
) -> Result<Vec<JoinHandle<()>>, ClusterError> {
    let max = shared.config.max_sync_bytes;
    let mut pulls = shared.endpoint.serve(SYNC_PULL, max)?;
    let mut pushes = shared.endpoint.subscribe(SYNC_PUSH, max)?;
    let mut relays = shared.endpoint.subscribe(SYNC_RELAY, max)?;
    let for_pulls = shared.clone();
    let for_pushes = shared.clone();
    let for_relays = shared.clone();
    Ok(vec![
        tokio::spawn(async move {
            while let Some(request) = pulls.recv().await {
                answer_pull(&for_pulls, request);
            }
        }),
        tokio::spawn(async move {
            while let Some(message) = pushes.recv().await {
                merge_push(&for_pushes, message, Channel::OwnWrites).await;
            }
        }),
        tokio::spawn(async move {
            while let Some(message) = relays.recv().await {
                merge_push(&for_relays, message, Channel::Relay).await;
            }
        }),
    ])
}

fn answer_pull<V: CatalogValue>(shared: &Arc<Shared<V>>, request: IncomingRequest) {
    shared.count_received(request.payload.len());
    // Rows this node applied but could not persist must not reach peers: after a restart it
    // could issue their dots again with other values.
    if shared.store.failure().is_some() {
        request.refuse(codes::STORE_FAILED);
        return;
    }
    let vv: VersionVector = match codec::decode_kind(
        &request.payload,
        Kind::PullRequest,
        shared.config.max_sync_bytes,
    ) {
        Ok(vv) => vv,
        Err(e) => {
            shared.stats.malformed.fetch_add(1, Ordering::Relaxed);
            shared.endpoint.record_decode_error(SYNC_PULL);
            tracing::debug!(peer = %request.from, "malformed pull: {e}");
            return;
        }
    };
    if let Ok(mut acked) = shared.acked.lock() {
        acked.insert(request.from, vv.clone());
    }
    let Some(permit) = shared.pulls_in_flight.try_acquire(&request.peer) else {
        shared.stats.pulls_refused.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(peer = %request.from, node = %request.peer, "refused a pull: the peer runs too many already");
        request.refuse(codes::TOO_MANY_EXCHANGES);
        return;
    };
    let (delta, version) = {
        let replica = shared.replica.lock().unwrap_or_else(|p| p.into_inner());
        (replica.delta_since(&vv), replica.version())
    };
    // One frame waits in the channel while the transport writes the previous one: the answer
    // is encoded a chunk at a time, as fast as the peer reads it.
    let (frames, outgoing) = mpsc::channel(1);
    if !request.respond_frames(outgoing) {
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let mut chunks = Chunker::new(delta, version, shared.config.sync_chunk_bytes);
        while let Some(frame) = chunks.next_frame() {
            match frame {
                Ok(bytes) => {
                    let len = bytes.len();
                    if frames.send(bytes).await.is_err() {
                        return;
                    }
                    shared.count_sent(len);
                }
                Err(e) => {
                    tracing::error!("cannot encode a pull reply: {e}");
                    return;
                }
            }
        }
        shared.heard();
    });
}

/// What a one-way delta may carry.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Channel {
    /// An eager push: the sender's own writes only.
    OwnWrites,
    /// The push-back of an anti-entropy exchange: rows of any writer.
    Relay,
}

async fn merge_push<V: CatalogValue>(shared: &Shared<V>, message: Inbound, channel: Channel) {
    shared.count_received(message.payload.len());
    let kind = match channel {
        Channel::OwnWrites => SYNC_PUSH,
        Channel::Relay => SYNC_RELAY,
    };
    match decode_delta::<V>(&message.payload, shared.config.max_sync_bytes) {
        Ok(delta) => {
            if channel == Channel::OwnWrites
                && let Some(writer) = foreign_writer(&delta, &message.peer)
            {
                shared.stats.spoofed_pushes.fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = shared.reject_log.allow() {
                    tracing::warn!(
                        peer = %message.from, node = %message.peer, writer = ?writer, suppressed,
                        "refused a pushed delta carrying another node's writes"
                    );
                }
                return;
            }
            if merge(shared, delta, Some(message.payload)).await {
                shared.heard();
            }
        }
        Err(e) => {
            shared.stats.malformed.fetch_add(1, Ordering::Relaxed);
            shared.endpoint.record_decode_error(kind);
            tracing::debug!(peer = %message.from, "malformed push: {e}");
        }
    }
}

/// The first writer in `delta` that is not of node `node`, if any: in the dots it claims (its
/// context) and in its single-writer items (catalog entries, counter cells, floors). Rights
/// rows are left out: a node's own rights write ships the whole budget key, every writer's row
/// of it included (merged by maximum, as in any relay), under a context holding only its own
/// dot.
pub(super) fn foreign_writer<V>(delta: &Delta<V>, node: &NodeId) -> Option<WriterId> {
    let items = &delta.items;
    delta
        .context
        .writers()
        .chain(items.catalog.iter().map(|(_, e)| &e.stamp.writer))
        .chain(items.counters.cells.iter().map(|(_, w, _)| w))
        .chain(items.counters.floors.iter().map(|(_, w, _)| w))
        .chain(items.rights.floors.iter().map(|(_, w, _)| w))
        .find(|w| &w.node != node)
        .cloned()
}

/// Decodes a delta frame: a pushed or pulled delta, or a log record (the same payload).
pub(super) fn decode_delta<V: CatalogValue>(
    bytes: &[u8],
    max: usize,
) -> Result<Delta<V>, CodecError> {
    let kind = codec::decode_header(bytes)?.kind;
    let expected = if kind == Kind::LogRecord {
        Kind::LogRecord
    } else {
        Kind::Delta
    };
    codec::decode_kind(bytes, expected, max)
}

/// Merges a peer's delta and queues it for disk if it changed anything. Returns `false` if
/// the delta was refused ([`crate::state::DeltaRejected`]: counted and logged, nothing
/// merged), or not merged because it could not be persisted. Waits for room in the store's
/// queue first when that is full (see [`crate::store`]).
pub(super) async fn merge<V: CatalogValue>(
    shared: &Shared<V>,
    delta: Delta<V>,
    raw: Option<Bytes>,
) -> bool {
    // What cannot be persisted is not merged: peers still hold it for later.
    if shared.store.failure().is_some() {
        return false;
    }
    // A peer's rows make this node a member before they are applied, so nothing they bring
    // (a budget it mints, say) is ever acted on as by a node alone.
    shared.become_member();
    let encoded = match raw {
        Some(raw) => raw,
        None => match codec::encode(Kind::Delta, &delta) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!("cannot encode a peer's delta; not merged: {e}");
                return false;
            }
        },
    };
    let room = match shared.store.room(encoded.len()).await {
        Ok(room) => room,
        Err(e) => {
            tracing::error!("cannot persist a peer's delta; not merged: {e}");
            return false;
        }
    };
    let changed = {
        let mut replica = shared.replica.lock().unwrap_or_else(|p| p.into_inner());
        let outcome = replica.apply(delta);
        if let Some(rejected) = &outcome.rejected {
            let counter = match rejected {
                DeltaRejected::FutureOwnSeq { .. } => &shared.stats.rejected_future_seq,
                DeltaRejected::NegativeRights { .. } => &shared.stats.rejected_negative_rights,
                DeltaRejected::MalformedDot { .. } => &shared.stats.rejected_malformed_dots,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = shared.reject_log.allow() {
                tracing::warn!(
                    reason = rejected.reason(),
                    suppressed,
                    "refused a peer's delta: {rejected}"
                );
            }
            return false;
        }
        if let Some(skew) = &outcome.clock_skew {
            shared.stats.clock_skewed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("merged a delta from a peer whose clock runs ahead: {skew}");
        }
        let observer = shared.observer();
        for id in &outcome.catalog_changed {
            shared.catalog_changed(observer.as_ref(), id, replica.catalog().get(id));
        }
        !outcome.catalog_changed.is_empty()
            || outcome.counters_changed > 0
            || !outcome.rights_changed.is_empty()
    };
    if changed {
        let len = encoded.len();
        if let Err(e) = shared.store.append_nowait(room, encoded) {
            tracing::error!("cannot persist a merged delta: {e}");
        }
        after_persist(shared, len);
    }
    true
}

/// One pull-push exchange with `peer`.
pub(super) async fn exchange<V: CatalogValue>(
    shared: &Shared<V>,
    peer: SocketAddr,
) -> Result<(), SyncError> {
    exchange_with(shared, None, peer).await
}

/// One pull-push exchange with `peer`, node `node_id` if known: a pull that completes with
/// everything merged is recorded as the node's last sync (what catching up counts).
pub(super) async fn exchange_with<V: CatalogValue>(
    shared: &Shared<V>,
    node_id: Option<&str>,
    peer: SocketAddr,
) -> Result<(), SyncError> {
    if let Some(reason) = shared.store.failure() {
        return Err(SyncError::StoreFailed(reason.to_owned()));
    }
    let max = shared.config.max_sync_bytes;
    let request = {
        let replica = shared.replica.lock().unwrap_or_else(|p| p.into_inner());
        codec::encode(Kind::PullRequest, &replica.version())?
    };
    shared.count_sent(request.len());
    let mut frames = shared
        .endpoint
        .request_frames(peer, SYNC_PULL, request, max)
        .await?;
    let mut whole = true;
    let (version, merged) = loop {
        let Some(frame) = frames.next().await? else {
            return Err(SyncError::Cut);
        };
        shared.count_received(frame.len());
        match codec::decode_header(&frame)?.kind {
            // A chunk: merged and persisted now, so a transfer cut later keeps it.
            Kind::Delta => {
                shared.stats.chunks_received.fetch_add(1, Ordering::Relaxed);
                let delta = codec::decode_kind::<Delta<V>>(&frame, Kind::Delta, max)?;
                if !delta.is_empty() {
                    whole &= merge(shared, delta, Some(frame)).await;
                }
            }
            _ => {
                let PullReply { delta, version } =
                    codec::decode_kind::<PullReply<V>>(&frame, Kind::PullReply, max)?;
                break (
                    version,
                    delta.is_empty() || merge(shared, delta, None).await,
                );
            }
        }
    };
    drop(frames);
    if merged {
        shared.heard();
        if whole && let Some(node_id) = node_id {
            shared
                .last_sync
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(node_id.to_owned(), Instant::now());
        }
    }
    if let Ok(mut acked) = shared.acked.lock() {
        acked.insert(peer, version.clone());
    }
    push_back(shared, peer, &version).await
}

/// Pushes to `peer` what its `version` lacks. One push when it fits a chunk; otherwise its
/// items in chunks, each a delta claiming only its own items' dots (the pushes travel on
/// separate streams, so none may claim a dot another carries): the peer's own next pull from
/// us brings the rest of the context.
async fn push_back<V: CatalogValue>(
    shared: &Shared<V>,
    peer: SocketAddr,
    version: &VersionVector,
) -> Result<(), SyncError> {
    let back = {
        let replica = shared.replica.lock().unwrap_or_else(|p| p.into_inner());
        replica.delta_since(version)
    };
    if back.is_empty() {
        return Ok(());
    }
    let budget = shared.config.sync_chunk_bytes;
    if codec::encoded_len(&back)? <= budget {
        let whole = codec::encode(Kind::Delta, &back)?;
        shared.count_sent(whole.len());
        shared.endpoint.send(peer, SYNC_RELAY, whole).await?;
        return Ok(());
    }
    let mut chunks = Chunker::items_only(back, budget);
    while let Some(frame) = chunks.next_frame() {
        let bytes = frame?;
        shared.count_sent(bytes.len());
        shared.endpoint.send(peer, SYNC_RELAY, bytes).await?;
    }
    Ok(())
}

/// The periodic anti-entropy loop: one exchange per tick with the live peer tried least
/// recently, each in its own task. Round robin rather than a random pick bounds how long any
/// peer goes without an exchange to (peers × `sync_interval`), which is what bounds catching
/// up after a partition heals. Gossip may call a peer live that this node cannot reach
/// (bridge and ring partitions): an exchange with it waits for its timeout in its own task,
/// so it never holds up the exchanges with the peers that do answer.
pub(super) async fn anti_entropy<V: CatalogValue>(
    shared: Arc<Shared<V>>,
    live: watch::Receiver<BTreeMap<ChitchatId, NodeState>>,
    self_id: String,
) {
    let mut tick = tokio::time::interval(shared.config.sync_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tried: HashMap<String, Instant> = HashMap::new();
    let busy: Arc<std::sync::Mutex<HashSet<String>>> = Arc::default();
    loop {
        tick.tick().await;
        let peers = peers_of(live.borrow().keys(), &self_id);
        tried.retain(|id, _| peers.iter().any(|(p, _)| p == id));
        let idle: Vec<_> = {
            let busy = busy.lock().unwrap_or_else(|p| p.into_inner());
            peers
                .into_iter()
                .filter(|(id, _)| !busy.contains(id))
                .collect()
        };
        let Some((node_id, addr)) = least_recently_tried(&idle, &tried).cloned() else {
            continue;
        };
        tried.insert(node_id.clone(), Instant::now());
        busy.lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node_id.clone());
        let (shared, busy) = (shared.clone(), busy.clone());
        tokio::spawn(async move {
            match exchange_with(&shared, Some(&node_id), addr).await {
                Ok(()) => {
                    shared.stats.rounds.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    shared.stats.round_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(peer = %addr, "anti-entropy exchange failed: {e}");
                }
            }
            busy.lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&node_id);
        });
    }
}

/// The peer tried longest ago (never tried first; ties to the first listed).
fn least_recently_tried<'a>(
    peers: &'a [(String, SocketAddr)],
    tried: &HashMap<String, Instant>,
) -> Option<&'a (String, SocketAddr)> {
    peers.iter().min_by_key(|(id, _)| tried.get(id).copied())
}

/// Live peers other than `self_id`, as (node id, address).
pub(super) fn peers_of<'a>(
    ids: impl Iterator<Item = &'a ChitchatId>,
    self_id: &str,
) -> Vec<(String, SocketAddr)> {
    ids.filter(|id| &*id.node_id != self_id)
        .map(|id| (id.node_id.to_string(), id.gossip_advertise_addr))
        .collect()
}

/// Sends an already-encoded delta to every peer, without waiting.
pub(super) fn push_to_peers<V>(
    shared: &Shared<V>,
    peers: Vec<(String, SocketAddr)>,
    record: &Bytes,
) {
    for (_, addr) in peers {
        if shared
            .endpoint
            .send_detached(addr, SYNC_PUSH, record.clone())
        {
            shared.count_sent(record.len());
        }
    }
}

/// Counts a persisted record of `len` bytes and snapshots when enough have accumulated.
pub(super) fn after_persist<V: CatalogValue>(shared: &Shared<V>, len: usize) {
    let count = shared.since_snapshot.fetch_add(1, Ordering::Relaxed) + 1;
    let logged = shared.logged_bytes.fetch_add(len as u64, Ordering::Relaxed) + len as u64;
    let due = snapshot_due(
        count,
        shared.config.snapshot_every,
        logged,
        shared.snapshot_bytes.load(Ordering::Relaxed),
    );
    if !due || shared.snapshotting.swap(true, Ordering::AcqRel) {
        return;
    }
    match queue_snapshot(shared) {
        Ok(done) => {
            let store_dir = shared.store.dir().to_owned();
            let flag = shared.snapshot_flag();
            tokio::spawn(async move {
                if let Err(e) = done.wait().await {
                    tracing::error!(dir = %store_dir.display(), "snapshot failed: {e}");
                }
                flag.store(false, Ordering::Release);
            });
        }
        Err(e) => {
            shared.snapshotting.store(false, Ordering::Release);
            tracing::error!("cannot snapshot: {e}");
        }
    }
}

/// Whether to snapshot: after `every` records, and once the log since the last snapshot has
/// grown to half that snapshot's size. A snapshot re-encodes the whole state, so taking one
/// every `every` records alone would make loading N entries cost O(N²) (a million keys took
/// minutes per hundred thousand); with the size rule the snapshots' cost stays within twice
/// the bytes logged, and a recovery replays at most about half a snapshot's worth of log.
fn snapshot_due(records: u64, every: u64, logged_bytes: u64, last_snapshot_bytes: u64) -> bool {
    records >= every && logged_bytes >= last_snapshot_bytes / 2
}

/// Encodes the full state and queues it, under the replica lock: every delta applied before is
/// in it, and every record queued before it was applied before it, so no acknowledged record
/// can fall between the snapshot and the logs it replaces.
fn queue_snapshot<V: CatalogValue>(shared: &Shared<V>) -> Result<SnapshotDone, ClusterError> {
    let replica = shared.replica.lock().unwrap_or_else(|p| p.into_inner());
    let bytes = codec::encode(Kind::Snapshot, &replica.full_state())?;
    shared.since_snapshot.store(0, Ordering::Relaxed);
    shared.logged_bytes.store(0, Ordering::Relaxed);
    shared
        .snapshot_bytes
        .store(bytes.len() as u64, Ordering::Relaxed);
    Ok(shared.store.queue_snapshot(bytes)?)
}

/// Writes a snapshot now.
pub(super) async fn snapshot<V: CatalogValue>(shared: &Shared<V>) -> Result<(), ClusterError> {
    queue_snapshot(shared)?.wait().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_wait_for_the_log_to_grow_with_the_state() {
        // A small state: every `every` records, as before.
        assert!(!snapshot_due(9_999, 10_000, 1 << 20, 1_000));
        assert!(snapshot_due(10_000, 10_000, 1 << 20, 1_000));
        // A 100 MB state is not re-encoded for 10 000 small records (3 MB of log) ...
        assert!(!snapshot_due(10_000, 10_000, 3 << 20, 100 << 20));
        // ... but once the log reaches half its size.
        assert!(snapshot_due(200_000, 10_000, 50 << 20, 100 << 20));
        // No snapshot yet: the record count alone decides.
        assert!(snapshot_due(10_000, 10_000, 0, 0));
    }

    #[test]
    fn anti_entropy_takes_peers_in_turn() {
        let peers: Vec<(String, SocketAddr)> = (1..=3)
            .map(|i| {
                (
                    format!("n{i}"),
                    SocketAddr::from(([127, 0, 0, 1], 7000 + i)),
                )
            })
            .collect();
        let mut tried = HashMap::new();
        let start = Instant::now();
        let mut order = Vec::new();
        for round in 0..6u64 {
            let (id, _) = least_recently_tried(&peers, &tried)
                .cloned()
                .expect("a peer");
            tried.insert(id.clone(), start + std::time::Duration::from_millis(round));
            order.push(id);
        }
        assert_eq!(order, ["n1", "n2", "n3", "n1", "n2", "n3"]);
        assert!(least_recently_tried(&[], &tried).is_none());
    }
}
