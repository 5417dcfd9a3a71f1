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

/// The anti-entropy loop: one exchange per tick with the live peer tried least recently, each
/// in its own task, and, as soon as gossip says so, one with every peer that has just become
/// live (a healed partition, a restart) and with every peer whose last exchange failed at
/// least one interval ago.
///
/// Round robin rather than a random pick bounds how long any peer goes without an exchange
/// to (peers × `sync_interval`). Waiting for the round robin after a heal, though, left the
/// peers behind it unsynced for up to that long, and a peer whose exchange failed (refused
/// while its connection was still backing off) for a whole round more: the exchanges that
/// repair a partition are the ones to run first. Gossip may call a peer live that this node
/// cannot reach (bridge and ring partitions): an exchange with it waits for its timeout in its
/// own task, so it never holds up the exchanges with the peers that do answer, and it is
/// retried once per interval.
pub(super) async fn anti_entropy<V: CatalogValue>(
    shared: Arc<Shared<V>>,
    mut live: watch::Receiver<BTreeMap<ChitchatId, NodeState>>,
    self_id: String,
) {
    let interval = shared.config.sync_interval;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tried: HashMap<String, Instant> = HashMap::new();
    let state: Arc<std::sync::Mutex<Exchanges>> = Arc::default();
    let done = Arc::new(tokio::sync::Notify::new());
    loop {
        let ticked = tokio::select! {
            _ = tick.tick() => true,
            changed = live.changed() => {
                if changed.is_err() {
                    // Membership has stopped: the node is shutting down.
                    return;
                }
                false
            }
            // An exchange ended: room for the peers still waiting to be taken at once.
            () = done.notified() => false,
        };
        let peers = peers_of(live.borrow().keys(), &self_id);
        tried.retain(|id, _| peers.iter().any(|(p, _)| p == id));
        let picks = {
            let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
            state
                .failed
                .retain(|id, _| peers.iter().any(|(p, _)| p == id));
            state.picks(&peers, &tried, ticked, Instant::now())
        };
        for (node_id, addr) in picks {
            tried.insert(node_id.clone(), Instant::now());
            state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .busy
                .insert(node_id.clone());
            let (shared, state, done) = (shared.clone(), state.clone(), done.clone());
            tokio::spawn(async move {
                let result = exchange_with(&shared, Some(&node_id), addr).await;
                {
                    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                    state.busy.remove(&node_id);
                    match result {
                        Ok(()) => {
                            shared.stats.rounds.fetch_add(1, Ordering::Relaxed);
                            state.failed.remove(&node_id);
                        }
                        Err(e) => {
                            shared.stats.round_failures.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(peer = %addr, "anti-entropy exchange failed: {e}");
                            state.failed.insert(node_id, Instant::now() + interval);
                        }
                    }
                }
                done.notify_one();
            });
        }
    }
}

/// Most exchanges in flight for which the loop starts one outside its round robin (with a
/// peer just live, or a retry). Each answer holds what the peer lacks: a node that rejoins with
/// an empty data dir, or one side of a partition in a large cluster, would otherwise pull the
/// same rows from every peer at once. The first exchanges bring them; the next ones, started
/// as these end, carry only what is left. The round robin's own exchange is never held back,
/// so peers that cannot be reached do not stall it.
const AT_ONCE: usize = 2;

/// The anti-entropy loop's view of its exchanges.
#[derive(Default)]
struct Exchanges {
    /// Peers (by node id) with an exchange running.
    busy: HashSet<String>,
    /// Peers whose last exchange failed, with when to try again.
    failed: HashMap<String, Instant>,
}

impl Exchanges {
    /// Whom to exchange with now, among the live `peers` (a node may be listed twice, under two
    /// gossip generations, while its previous process is not yet judged dead): the idle peers
    /// never tried while live (they have just become live) or whose failed exchange is due for
    /// a retry, while fewer than [`AT_ONCE`] exchanges run, and on a tick (`ticked`) also the
    /// idle peer tried least recently.
    fn picks(
        &self,
        peers: &[(String, SocketAddr)],
        tried: &HashMap<String, Instant>,
        ticked: bool,
        now: Instant,
    ) -> Vec<(String, SocketAddr)> {
        let mut idle: Vec<(String, SocketAddr)> = Vec::new();
        for (id, addr) in peers {
            if !self.busy.contains(id) && !idle.iter().any(|(seen, _)| seen == id) {
                idle.push((id.clone(), *addr));
            }
        }
        let mut picks: Vec<(String, SocketAddr)> = idle
            .iter()
            .filter(|(id, _)| {
                !tried.contains_key(id) || self.failed.get(id).is_some_and(|at| *at <= now)
            })
            .take(AT_ONCE.saturating_sub(self.busy.len()))
            .cloned()
            .collect();
        if ticked
            && let Some(next) = least_recently_tried(&idle, tried)
            && !picks.iter().any(|(id, _)| *id == next.0)
        {
            picks.push(next.clone());
        }
        picks
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

    fn peer(i: u16) -> (String, SocketAddr) {
        (
            format!("n{i}"),
            SocketAddr::from(([127, 0, 0, 1], 7000 + i)),
        )
    }

    /// Regression (jepsen seed 31): after a heal, the peers that had just become live were
    /// synced one per tick (500 ms) at best, and one whose exchange had failed (its
    /// connection still backing off) only after a whole round over every other peer.
    #[test]
    fn peers_just_live_and_failed_exchanges_are_taken_at_once() {
        let peers: Vec<_> = (1..=4).map(peer).collect();
        let start = Instant::now();
        let later = start + std::time::Duration::from_secs(1);
        let mut tried = HashMap::new();
        let mut state = Exchanges::default();
        // At start every peer is new: AT_ONCE of them are taken at once, tick or not, then the
        // next as those end.
        let first = state.picks(&peers, &tried, false, start);
        assert_eq!(first, vec![peer(1), peer(2)]);
        for (id, _) in &first {
            tried.insert(id.clone(), start);
            state.busy.insert(id.clone());
        }
        assert!(state.picks(&peers, &tried, false, start).is_empty());
        state.busy.remove("n1");
        assert_eq!(state.picks(&peers, &tried, false, start), vec![peer(3)]);
        state.busy.clear();
        for (id, _) in &peers {
            tried.insert(id.clone(), start);
        }
        // Between ticks, nothing is due.
        assert!(state.picks(&peers, &tried, false, start).is_empty());
        // On a tick, the least recently tried.
        assert_eq!(state.picks(&peers, &tried, true, start), vec![peer(1)]);
        // n3 failed, retried once its interval has passed; n2 is still busy.
        state.failed.insert("n3".into(), later);
        state.busy.insert("n2".into());
        assert!(state.picks(&peers, &tried, false, start).is_empty());
        assert_eq!(state.picks(&peers, &tried, false, later), vec![peer(3)]);
        // n4 went dead and came back: never tried while live, so taken at once (once n2's
        // exchange leaves room for two).
        tried.remove("n4");
        state.busy.remove("n2");
        assert_eq!(
            state.picks(&peers, &tried, false, later),
            vec![peer(3), peer(4)]
        );
        // However many exchanges run, a tick still takes the least recently tried peer.
        state.busy.extend(["n3".to_owned(), "n4".to_owned()]);
        assert_eq!(state.picks(&peers, &tried, true, later), vec![peer(1)]);
        state.busy.clear();
        // A node listed under two gossip generations is taken once.
        let twice = vec![peer(5), peer(5)];
        assert_eq!(state.picks(&twice, &tried, false, later), vec![peer(5)]);
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
