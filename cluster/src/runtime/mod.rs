//! A running cluster member: the replica, its durable copy, membership, and replication.
//!
//! [`ClusterNode::start`] opens the data dir (identity and incarnation, snapshot and log),
//! rebuilds the replica, binds the QUIC endpoint, joins gossip, and starts two replication
//! paths over QUIC streams:
//!
//! * **eager push**: every local mutation's delta is sent at once to every live peer, so an
//!   update usually reaches the cluster within one network round trip;
//! * **anti-entropy**: every `sync_interval`, a pull from the live peer tried least recently,
//!   and at once from every peer that has just become live (send our version vector, receive
//!   what we lack plus the peer's vector) followed by a push of what the peer lacks. This repairs anything eager push lost (partitions, restarts, drops) and
//!   doubles as the full state transfer for a node that joins or fell behind (its vector is
//!   empty or old, so the reply is everything).
//!
//! The replica sits behind a plain mutex that is never held across an `.await`: mutations and
//! merges are short and synchronous, and encoding happens under the lock only for the delta
//! being produced. Deltas are idempotent and commutative, so the order in which they reach
//! disk or peers does not matter for correctness.
//!
//! A local change is pushed to peers only once it is on disk ([`ClusterNode::mutate`] waits
//! for the fsync; [`ClusterNode::mutate_nowait`] does not wait for the disk, only for room in
//! the store's queue when it is full, and pushes after the fsync):
//! a node restarted on its data dir reuses its writer slot, which is safe only if no peer
//! ever saw a dot the disk does not hold (see [`crate::hlc`]). The one exception, for both, is
//! an anti-entropy pull answered inside that group commit's window (a few ms), which carries
//! the replica as it is.
//!
//! Besides replication the node offers governance a few services: a catalog observer
//! ([`ClusterNode::set_catalog_observer`]), staleness ([`ClusterNode::last_heard`]), one-way
//! messages of its own kinds ([`ClusterNode::broadcast`], [`ClusterNode::subscribe`], e.g.
//! [`RATE_REPORT`]), and the operator's reclaim of a dead node's budget rights
//! ([`ClusterNode::reclaim_node`]).
//!
//! Lock order: the replica lock, then the observer slot; the chitchat lock is never taken
//! while the replica lock is held.

mod chunks;
mod config;
mod gc;
mod limits;
mod lives;
mod rights;
mod sync;
mod witness;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chitchat::{ChitchatId, NodeState};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use config::ClusterConfig;
pub use sync::SyncError;
pub use witness::WitnessError;

use crate::crdt::BudgetKey;
use crate::transport::Inbound;

use crate::codec::{self, CodecError, Kind};
use crate::hlc::{HlcClock, NodeId, WriterId};
use crate::state::{Delta, Digest, Replica};
use crate::store::{IncarnationStart, OnDamage, Store, StoreError};
use crate::transport::membership::{Membership, MembershipConfig, spawn_membership};
use crate::transport::stats::LogLimiter;
use crate::transport::{ClusterEndpoint, MessageKind, TransportError};

/// Transport kind of a pull request (request/response stream).
pub const SYNC_PULL: MessageKind = MessageKind(10);
/// Transport kind of a pushed delta (one-way stream).
pub const SYNC_PUSH: MessageKind = MessageKind(11);
/// Transport kind of a budget-rights request (request/response stream).
pub const SYNC_RIGHTS: MessageKind = MessageKind(12);
/// Transport kind reserved for the node's rate-limit demand reports (one-way, via
/// [`ClusterNode::broadcast`] and [`ClusterNode::subscribe`]).
pub const RATE_REPORT: MessageKind = MessageKind(13);
/// Transport kind of the delta an anti-entropy exchange pushes back after a pull (one-way
/// stream). Unlike [`SYNC_PUSH`], which carries only the sender's own writes, it relays rows
/// of any writer.
pub const SYNC_RELAY: MessageKind = MessageKind(14);
/// Transport kind of a request to hold a budget debit durably before its writer uses it
/// (request/response stream; see [`ClusterNode::witness`]).
pub const SYNC_WITNESS: MessageKind = MessageKind(15);

/// Kinds the cluster itself uses; [`ClusterNode::broadcast`] and [`ClusterNode::subscribe`]
/// refuse them.
const RESERVED_KINDS: [MessageKind; 6] = [
    MessageKind::GOSSIP,
    SYNC_PULL,
    SYNC_PUSH,
    SYNC_RIGHTS,
    SYNC_RELAY,
    SYNC_WITNESS,
];

/// Called with `(id, Some(value))` when a catalog entry becomes live or changes and
/// `(id, None)` when it is deleted; see [`ClusterNode::set_catalog_observer`].
pub type CatalogObserver<V> = Arc<dyn Fn(&str, Option<&V>) + Send + Sync>;

/// What the catalog may hold.
pub trait CatalogValue: Clone + Eq + Serialize + DeserializeOwned + Send + Sync + 'static {}
impl<T: Clone + Eq + Serialize + DeserializeOwned + Send + Sync + 'static> CatalogValue for T {}

/// Why the node could not start or write.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The node id is not acceptable.
    #[error("node id: {0}")]
    NodeId(String),
    /// The data dir could not be opened or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A persisted record could not be decoded.
    #[error("data dir record: {0}")]
    Codec(#[from] CodecError),
    /// The QUIC endpoint could not be set up.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Gossip could not start.
    #[error("membership: {0}")]
    Membership(String),
    /// The message kind belongs to the cluster's own protocols.
    #[error("message kind {0} is reserved by the cluster")]
    ReservedKind(MessageKind),
    /// A setting of [`ClusterConfig`] is out of range.
    #[error("cluster config: {field}: {reason}")]
    Config {
        /// The field at fault.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

/// Why [`ClusterNode::reclaim_node`] refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ReclaimError {
    /// The node named is this node.
    #[error("{0:?} is this node; a node cannot reclaim its own rights")]
    SelfNode(String),
    /// The node named is live in gossip: it is not dead, and could still be spending.
    #[error("{0:?} is live in gossip; reclaim only a node that is gone for good")]
    Live(String),
    /// A live peer could not be synced with first, so a write of the dead node that reached
    /// only that peer could be missed (and its rights taken twice). Retry when it answers.
    #[error("cannot catch up with live peer {peer:?} before reclaiming: {source}")]
    CatchUp {
        /// The peer's node id.
        peer: String,
        /// Why the exchange failed.
        source: SyncError,
    },
    /// The reclaim could not be persisted.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// Replication counters, exported as metrics by the node.
#[derive(Debug, Default)]
pub struct SyncStats {
    /// Anti-entropy rounds that completed.
    pub rounds: AtomicU64,
    /// Anti-entropy rounds that failed (peer unreachable, refused, malformed).
    pub round_failures: AtomicU64,
    /// Replication bytes sent (pushes, pull requests and replies).
    pub bytes_sent: AtomicU64,
    /// Replication bytes received.
    pub bytes_received: AtomicU64,
    /// Deltas that failed to decode; dropped.
    pub malformed: AtomicU64,
    /// Deltas merged from a peer whose catalog stamps ran further ahead of our clock than the
    /// forward bound (our clock moved only up to the bound).
    pub clock_skewed: AtomicU64,
    /// Times the tombstone collector looked (every `tombstone_gc_interval`).
    pub gc_checks: AtomicU64,
    /// Tombstone collection rounds that ran (every member had acknowledged a version).
    pub gc_runs: AtomicU64,
    /// Tombstones collected.
    pub tombstones_collected: AtomicU64,
    /// Pulls refused because the peer already ran `max_sync_exchanges_per_peer` with us.
    pub pulls_refused: AtomicU64,
    /// Frames of pull answers received that were chunks (every frame but the last of each
    /// answer): how often full states had to be split.
    pub chunks_received: AtomicU64,
    /// Peer deltas refused whole because they claimed dots of this node's writer beyond the
    /// last one it issued (by more than [`crate::state::OWN_RECOVERY_WINDOW`]).
    pub rejected_future_seq: AtomicU64,
    /// Peer deltas refused whole because a rights row would make its writer's rights
    /// negative.
    pub rejected_negative_rights: AtomicU64,
    /// Peer deltas refused whole because an item had no dot, or shared its dot with another.
    pub rejected_malformed_dots: AtomicU64,
    /// Eager pushes refused because they carried writes of another node than the sender's
    /// certificate names.
    pub spoofed_pushes: AtomicU64,
    /// Rights requests refused because they asked for rights on behalf of another node than
    /// the sender's certificate names.
    pub spoofed_rights_requests: AtomicU64,
    /// Peers' debits this node held on disk for them ([`ClusterNode::witness`]).
    pub witnessed_for_peers: AtomicU64,
    /// Budget rights (micro-units) taken back from this node's earlier incarnations.
    pub earlier_lives_reclaimed: AtomicU64,
}

pub(crate) struct Shared<V> {
    pub replica: Mutex<Replica<V>>,
    pub store: Store,
    pub endpoint: ClusterEndpoint,
    pub stats: SyncStats,
    pub config: ClusterConfig,
    /// When each peer (by node id) last completed a sync exchange with us. Pruned of node ids
    /// gossip no longer knows ([`gc::forget_departed`]).
    pub last_sync: Mutex<BTreeMap<String, Instant>>,
    /// Records appended since the last snapshot.
    pub since_snapshot: AtomicU64,
    /// Bytes of those records.
    pub logged_bytes: AtomicU64,
    /// Size of the last snapshot written (or recovered), bytes.
    pub snapshot_bytes: AtomicU64,
    /// A snapshot is being written (one at a time).
    pub snapshotting: Arc<AtomicBool>,
    /// The newest version vector each peer (by address) has shown us: in its pull requests
    /// and its pull replies. Everything at or below it, the peer has. Pruned of addresses no
    /// member gossip knows has ([`gc::forget_departed`]), so restarts on new ports do not
    /// pile up entries.
    pub acked: Mutex<BTreeMap<SocketAddr, crate::crdt::VersionVector>>,
    /// Rate-limits the log lines about refused deltas, pushes and rights requests.
    pub reject_log: LogLimiter,
    /// The catalog observer; only called, set and read under the replica lock.
    pub observer: Mutex<Option<CatalogObserver<V>>>,
    /// When this node last heard from a peer, as nanoseconds after `started` plus one
    /// (0: never). An atomic so the request path can read it without a lock.
    pub last_heard: AtomicU64,
    /// The origin of `last_heard`.
    pub started: Instant,
    /// The pulls each peer runs against us, capped per peer.
    pub pulls_in_flight: Arc<limits::PerPeer>,
    /// Whether this node is a member of a cluster of several nodes: by configuration, by the
    /// other nodes' writes its data holds, or once it hears from a peer. A member fails closed
    /// without word from its peers and has its debits witnessed.
    pub clustered: AtomicBool,
    /// Latched once the node has caught up with every known member (see [`lives`]).
    pub caught_up: AtomicBool,
    /// Why this incarnation began.
    pub start: IncarnationStart,
}

/// How many entries the node keeps per peer, in each of its per-peer maps: each is bounded
/// by the peers gossip knows (live, or dead for less than `dead_node_grace`), not by how often
/// peers restarted. For metrics and the soak test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStateSizes {
    /// Acknowledged version vectors, by peer address (tombstone collection reads them).
    pub acked: usize,
    /// Last completed sync exchange, by peer node id.
    pub last_sync: usize,
    /// Peers running a pull against this node now.
    pub pulls_in_flight: usize,
    /// Peer addresses in the endpoint's connection cache.
    pub endpoint_peers: usize,
    /// QUIC connections open now.
    pub connections: usize,
}

/// A member of a member's view of the cluster.
#[derive(Debug, Clone, Serialize)]
pub struct MemberInfo {
    /// Node id.
    pub node_id: String,
    /// Gossip and sync address.
    pub gossip_addr: SocketAddr,
    /// Whether the failure detector considers it alive.
    pub live: bool,
    /// Its published metadata (HTTP address, version, readiness, ...).
    pub metadata: BTreeMap<String, String>,
    /// Milliseconds since it last completed a sync exchange with this node.
    pub last_sync_ms_ago: Option<u64>,
}

/// A running cluster member.
pub struct ClusterNode<V: CatalogValue> {
    shared: Arc<Shared<V>>,
    membership: Option<Membership>,
    tasks: Vec<JoinHandle<()>>,
    writer: WriterId,
    /// Live members as gossip last computed them (self included), readable without awaiting
    /// the chitchat lock.
    live: watch::Receiver<BTreeMap<ChitchatId, NodeState>>,
    /// The runtime the node started on, for the tasks `mutate_nowait` spawns.
    runtime: tokio::runtime::Handle,
}

impl<V: CatalogValue> ClusterNode<V> {
    /// Opens the data dir, rebuilds the replica, binds QUIC and joins the cluster.
    pub async fn start(config: ClusterConfig) -> Result<Self, ClusterError> {
        config.validate()?;
        let node = NodeId::new(&config.node_id).map_err(|e| ClusterError::NodeId(e.to_string()))?;
        // Peers take this node for the node its certificate names; a mismatch would make every
        // message it sends look like impersonation.
        if config.credentials.node_id() != &node {
            return Err(ClusterError::NodeId(format!(
                "the cluster certificate names node {}, not the configured {node}",
                config.credentials.node_id()
            )));
        }
        // A member's peers hold every row it shipped, so it can begin afresh over damaged data;
        // a lone node would lose acknowledged records without a word, so it refuses to start.
        let on_damage = if config.expects_peers() {
            OnDamage::FreshIncarnation
        } else {
            OnDamage::Refuse
        };
        let opening = Instant::now();
        // `validate` keeps it within u32.
        let queue_bytes = u32::try_from(config.store_queue_bytes).unwrap_or(u32::MAX);
        let (store, identity, recovered) =
            Store::open_with_queue(&config.data_dir, node.as_str(), on_damage, queue_bytes)?;
        let writer = WriterId::new(node, identity.incarnation);
        let clock = HlcClock::system(writer.clone());
        let snapshot_bytes = recovered.snapshot.as_ref().map_or(0, |b| b.len() as u64);
        let logged_bytes: u64 = recovered.records.iter().map(|r| r.len() as u64).sum();
        let mut replica = match recovered.snapshot.as_deref() {
            Some(bytes) => {
                let state: Delta<V> = codec::decode_kind(bytes, Kind::Snapshot, usize::MAX)?;
                Replica::restore(clock, state)
            }
            None => Replica::new(clock),
        };
        for record in &recovered.records {
            let delta: Delta<V> = sync::decode_delta(record, usize::MAX)?;
            // Our own history: a stamp ahead of a clock that jumped back is still ours, and
            // our own dots ahead of the replica being rebuilt are ours to replay.
            replica.replay(delta);
        }
        // How long a restart takes before the node can serve (a whole cluster restarted at once
        // waits for its slowest member's replay).
        tracing::info!(
            snapshot_bytes,
            log_records = recovered.records.len(),
            log_bytes = logged_bytes,
            ms = u64::try_from(opening.elapsed().as_millis()).unwrap_or(u64::MAX),
            "recovered the replica from the data dir"
        );
        let clustered =
            !config.is_single_node() && (config.expects_peers() || replica.knows_other_nodes());
        let mut endpoint_config = config.endpoint.clone();
        endpoint_config.max_message_size =
            endpoint_config.max_message_size.max(config.max_sync_bytes);
        let endpoint = ClusterEndpoint::bind(config.listen, &config.credentials, endpoint_config)?;
        let shared = Arc::new(Shared {
            replica: Mutex::new(replica),
            store,
            endpoint: endpoint.clone(),
            stats: SyncStats::default(),
            last_sync: Mutex::new(BTreeMap::new()),
            since_snapshot: AtomicU64::new(recovered.records.len() as u64),
            logged_bytes: AtomicU64::new(logged_bytes),
            snapshot_bytes: AtomicU64::new(snapshot_bytes),
            snapshotting: Arc::new(AtomicBool::new(false)),
            acked: Mutex::new(BTreeMap::new()),
            reject_log: LogLimiter::new(endpoint.config().log_interval),
            observer: Mutex::new(None),
            last_heard: AtomicU64::new(0),
            started: Instant::now(),
            pulls_in_flight: Arc::new(limits::PerPeer::new(config.max_sync_exchanges_per_peer)),
            clustered: AtomicBool::new(clustered),
            caught_up: AtomicBool::new(false),
            start: recovered.start,
            config,
        });
        if recovered.set_aside.is_some() {
            // What could be read of the earlier life lives only in memory now: persist it
            // under the new incarnation before anything else.
            sync::snapshot(&shared).await?;
        }
        let mut tasks = sync::spawn_handlers(&shared)?;
        tasks.push(rights::spawn_donor(&shared, shared.config.donor_policy)?);
        tasks.push(witness::spawn_witness(&shared)?);
        let advertise = shared
            .config
            .advertise
            .unwrap_or_else(|| endpoint.local_addr());
        // chitchat's generation must grow with every process start (peers otherwise take the
        // restarted process for the old one and ignore its fresh, lower-versioned state); the
        // incarnation only changes with the data dir, so it cannot serve.
        let mut membership_config = MembershipConfig::new(
            shared.config.node_id.clone(),
            crate::hlc::system_now_ms(),
            advertise,
            shared.config.cluster_id.clone(),
        );
        membership_config.seeds = shared.config.seeds.clone();
        membership_config.gossip_interval = shared.config.gossip_interval;
        membership_config.failure_detector.dead_node_grace_period = shared.config.dead_node_grace;
        let key_values = shared.config.metadata.clone().into_iter().collect();
        let membership = spawn_membership(&endpoint, membership_config, key_values)
            .await
            .map_err(|e| ClusterError::Membership(e.to_string()))?;
        let live = membership.chitchat().lock().await.live_nodes_watcher();
        tasks.push(tokio::spawn(sync::anti_entropy(
            shared.clone(),
            live.clone(),
            writer.node.as_str().to_owned(),
        )));
        tasks.push(tokio::spawn(
            crate::transport::membership::log_liveness_changes(
                live.clone(),
                writer.node.as_str().to_owned(),
            ),
        ));
        tasks.push(tokio::spawn(gc::collect_tombstones(
            Arc::downgrade(&shared),
            membership.chitchat(),
            advertise,
        )));
        tasks.push(tokio::spawn(lives::reclaim_earlier_lives(
            Arc::downgrade(&shared),
            membership.chitchat(),
            live.clone(),
        )));
        tasks.push(tokio::spawn(gc::forget_departed(
            Arc::downgrade(&shared),
            membership.chitchat(),
        )));
        Ok(Self {
            shared,
            membership: Some(membership),
            tasks,
            writer,
            live,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// This node's writer slot (node id and incarnation).
    pub fn writer(&self) -> &WriterId {
        &self.writer
    }

    /// The QUIC address this node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.endpoint.local_addr()
    }

    /// Replication counters.
    pub fn stats(&self) -> &SyncStats {
        &self.shared.stats
    }

    /// The QUIC endpoint's counters (handshakes, malformed messages, bytes).
    pub fn transport_stats(&self) -> crate::transport::StatsSnapshot {
        self.shared.endpoint.stats().snapshot()
    }

    /// The depth of the store's write queue (see [`crate::store`]).
    pub fn store_queue(&self) -> crate::store::QueueStats {
        self.shared.store.queue_stats()
    }

    /// The sizes of the per-peer maps this node keeps.
    pub fn peer_state_sizes(&self) -> PeerStateSizes {
        let len = |m: &Mutex<BTreeMap<_, _>>| m.lock().map_or(0, |m| m.len());
        PeerStateSizes {
            acked: self.shared.acked.lock().map_or(0, |m| m.len()),
            last_sync: len(&self.shared.last_sync),
            pulls_in_flight: self.shared.pulls_in_flight.peers(),
            endpoint_peers: self.shared.endpoint.peer_slots(),
            connections: self.shared.endpoint.open_connections(),
        }
    }

    /// Counters of one message kind (gossip, [`SYNC_PULL`], [`SYNC_PUSH`]).
    pub fn kind_stats(&self, kind: MessageKind) -> crate::transport::KindSnapshot {
        self.shared.endpoint.stats().kind(kind)
    }

    /// A copy of the live catalog entry `id`, read under the replica lock. Not for the request
    /// path: a node mirrors what its requests need through [`Self::set_catalog_observer`] into
    /// lock-free structures of its own (the gateway's governance index), so a second mirror of
    /// every entry here would only double the catalog's memory.
    pub fn catalog_get(&self, id: &str) -> Option<V> {
        self.read(|r| r.catalog().get(id).cloned())
    }

    /// Reads the replica under its lock. Keep `f` short: it blocks writers.
    pub fn read<R>(&self, f: impl FnOnce(&Replica<V>) -> R) -> R {
        let replica = self
            .shared
            .replica
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        f(&replica)
    }

    /// Applies a local mutation, persists its delta (waiting for the fsync) and pushes it to
    /// every live peer. Returns what `f` returned.
    pub async fn mutate<R>(
        &self,
        f: impl FnOnce(&mut Replica<V>) -> (Delta<V>, R),
    ) -> Result<R, ClusterError> {
        self.shared.mutate(self.live_peers(), f).await
    }

    /// Like [`Self::mutate`], but returns as soon as the delta is applied and queued for disk
    /// (group commit), without waiting for the fsync. The delta is pushed to peers once its
    /// batch is fsynced (a few ms later), as `mutate` does, so that peers do not learn of a
    /// write this node's disk could still lose. For usage counters on the request path: a
    /// crash may lose the changes of the last few milliseconds (an undercount). Never use it
    /// for budget rights or the catalog, whose writes must be durable before the caller acts
    /// on them. Waits for nothing but room in the store's queue when that is full (before `f`
    /// runs: see [`crate::store`]); the push runs on the runtime the node started on.
    pub async fn mutate_nowait<R>(
        &self,
        f: impl FnOnce(&mut Replica<V>) -> (Delta<V>, R),
    ) -> Result<R, ClusterError> {
        let room = self.shared.store.room(0).await?;
        let (record, result) = self.shared.apply_local(f)?;
        let Some(record) = record else {
            return Ok(result);
        };
        let done = self.shared.store.append_queued(room, record.clone())?;
        sync::after_persist(&self.shared, record.len());
        let shared = self.shared.clone();
        let live = self.live.clone();
        let self_id = self.writer.node.as_str().to_owned();
        self.runtime.spawn(async move {
            match done.wait().await {
                Ok(()) => {
                    let peers = sync::peers_of(live.borrow().keys(), &self_id);
                    sync::push_to_peers(&shared, peers, &record);
                }
                // Not durable, so not shipped: peers must never see a dot we could lose.
                Err(e) => tracing::error!("cannot persist a local change: {e}"),
            }
        });
        Ok(result)
    }

    /// Puts a catalog entry, durably, and replicates it.
    pub async fn catalog_put(&self, id: &str, value: V) -> Result<(), ClusterError> {
        self.mutate(|r| (r.put(id, value), ())).await
    }

    /// Deletes a catalog entry (a tombstone), durably, and replicates it.
    pub async fn catalog_delete(&self, id: &str) -> Result<(), ClusterError> {
        self.mutate(|r| (r.delete(id), ())).await
    }

    /// Why this node's store stopped, if it did (a full or failing disk). From then on the node
    /// takes no writes, merges nothing and ships none of its rows; it should answer not ready
    /// and be restarted once its disk is fixed.
    pub fn store_failure(&self) -> Option<String> {
        self.shared.store.failure().map(str::to_owned)
    }

    /// Whether this node's store failed ([`Self::store_failure`] without the reason): one
    /// atomic read, for the request path.
    pub fn store_failed(&self) -> bool {
        self.shared.store.failure().is_some()
    }

    /// The replica's digest.
    pub fn digest(&self) -> Result<Digest, CodecError> {
        self.read(Replica::digest)
    }

    /// Every member this node knows of, live or not, with its metadata.
    pub async fn members(&self) -> Vec<MemberInfo> {
        let Some(membership) = &self.membership else {
            return Vec::new();
        };
        let chitchat = membership.chitchat();
        let chitchat = chitchat.lock().await;
        let live: Vec<_> = chitchat.live_nodes().cloned().collect();
        let last_sync = self
            .shared
            .last_sync
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        chitchat
            .node_states()
            .iter()
            .map(|(id, state)| MemberInfo {
                node_id: id.node_id.to_string(),
                gossip_addr: id.gossip_advertise_addr,
                live: live.contains(id),
                metadata: state
                    .key_values()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                last_sync_ms_ago: last_sync
                    .get(&*id.node_id)
                    .map(|t| u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)),
            })
            .collect()
    }

    /// Sets a metadata key-value gossiped for this node.
    pub async fn set_metadata(&self, key: &str, value: &str) {
        if let Some(membership) = &self.membership {
            membership
                .chitchat()
                .lock()
                .await
                .self_node_state()
                .set(key, value);
        }
    }

    /// Live peers (self excluded), from gossip's last liveness update.
    fn live_peers(&self) -> Vec<(String, SocketAddr)> {
        sync::peers_of(self.live.borrow().keys(), self.writer.node.as_str())
    }

    /// Every live peer (this node excluded) as `(node id, gossip and sync address)`, as the
    /// failure detector last judged them. A node restarted moments ago may briefly show twice
    /// (its previous process, under another gossip generation, until that one is judged dead).
    pub fn live_peers_info(&self) -> Vec<(String, SocketAddr)> {
        let mut peers = self.live_peers();
        peers.sort();
        peers.dedup();
        peers
    }

    /// How many distinct nodes are live, this node included.
    pub fn member_count_live(&self) -> usize {
        let peers = self.live_peers();
        let ids: BTreeSet<&str> = peers.iter().map(|(id, _)| id.as_str()).collect();
        ids.len() + 1
    }

    /// The latest instant at which this node completed a sync exchange with a peer, merged a
    /// delta a peer pushed, answered a peer's pull or received a rights transfer from a peer;
    /// `None` if it never has. Governance fails closed when this is too old.
    pub fn last_heard(&self) -> Option<Instant> {
        self.shared.last_heard()
    }

    /// Whether this node is a member of a cluster of several nodes (see
    /// [`ClusterConfig::expect_nodes`]): by configuration, by other nodes' writes in its data,
    /// or since it first heard from a peer. A member that has not heard from a peer lately is
    /// stale (governance fails closed), and it uses a budget debit only once a peer holds it
    /// ([`Self::witness`]). A one-node cluster never is.
    pub fn is_clustered(&self) -> bool {
        self.shared.is_clustered()
    }

    /// Whether this node has caught up since it started: completed a pull from every member
    /// gossip knows of (see the `lives` module). Latched once true; true at once for a node
    /// that is not a member of a larger cluster.
    pub async fn caught_up(&self) -> bool {
        match &self.membership {
            Some(membership) => lives::caught_up(&self.shared, &membership.chitchat()).await,
            None => false,
        }
    }

    /// Why this node's incarnation began at this start.
    pub fn incarnation_start(&self) -> IncarnationStart {
        self.shared.start
    }

    /// Has a live peer hold budget key `key`, as this node last wrote it, on its disk, and
    /// returns once one has: call it after a debit and before using the debited rights, so
    /// that the cluster knows every debit this node used even if its disk is lost (see the
    /// `witness` module). Rows only grow, so it also witnesses every earlier write of `key`.
    pub async fn witness(&self, key: &BudgetKey) -> Result<(), WitnessError> {
        let peers = self.live_peers_info().into_iter().map(|(_, a)| a).collect();
        witness::witness(&self.shared, peers, key).await
    }

    /// Calls `f` for every change of the live catalog: `(id, Some(value))` for an entry
    /// written, `(id, None)` for one deleted, from local mutations and merged deltas alike,
    /// under the replica lock and in the order the changes are applied. On registration, `f`
    /// is first called once for every live entry, under the same lock, so no change is missed
    /// or seen out of order. A second call replaces the observer.
    ///
    /// `f` runs on the write path with the replica locked: keep it short, and never call back
    /// into this node from it (that would deadlock).
    pub fn set_catalog_observer(&self, f: CatalogObserver<V>) {
        let replica = self
            .shared
            .replica
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for (id, value) in replica.catalog().iter() {
            f(id, Some(value));
        }
        *self
            .shared
            .observer
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    /// Sends `payload` as a one-way message of `kind` to every live peer, without waiting
    /// (fire and forget: a peer that is down, or has nobody subscribed to `kind`, misses it;
    /// sends beyond the endpoint's limit of detached sends are dropped and counted). The
    /// cluster's own kinds (gossip and sync) are refused: nothing is sent and an error is
    /// logged.
    pub fn broadcast(&self, kind: MessageKind, payload: Bytes) {
        if RESERVED_KINDS.contains(&kind) {
            tracing::error!(%kind, "refusing to broadcast on a kind reserved by the cluster");
            return;
        }
        for (_, addr) in self.live_peers_info() {
            self.shared
                .endpoint
                .send_detached(addr, kind, payload.clone());
        }
    }

    /// Receives the one-way messages of `kind` that peers send this node, up to `max_size`
    /// bytes each (larger ones are refused and counted); each carries its sender's address.
    /// May be called at any time after start; messages of `kind` that arrive while nobody
    /// receives them are dropped (and counted as of unknown kind). One receiver per kind: a
    /// second call takes the kind over, and the earlier receiver sees the end of its queue.
    ///
    /// For the cluster's own kinds (gossip and sync), or once the node is shut down, the
    /// receiver is already closed (its `recv` returns `None` at once) and an error is logged.
    pub fn subscribe(&self, kind: MessageKind, max_size: usize) -> mpsc::Receiver<Inbound> {
        let refused = if RESERVED_KINDS.contains(&kind) {
            ClusterError::ReservedKind(kind)
        } else {
            match self.shared.endpoint.resubscribe(kind, max_size) {
                Ok(inbox) => return inbox,
                Err(e) => ClusterError::Transport(e),
            }
        };
        tracing::error!(%kind, "cannot subscribe: {refused}");
        let (_, closed) = mpsc::channel(1);
        closed
    }

    /// An operator declares node `dead_node` gone for good: for every budget key where a
    /// writer of that node (any incarnation) holds rights, this node's writer takes them over,
    /// durably (one write, fsynced, then replicated). Returns what was taken, per key.
    ///
    /// Refused for this node itself and for a node gossip considers live. First syncs with
    /// every live peer, so that every write of the dead node that reached any live node is
    /// seen before its rights are computed; fails if one of them cannot be reached. Run it
    /// once, on one node: two concurrent reclaims of the same node on two nodes would both
    /// take its rights (see [`crate::crdt::rights`]).
    pub async fn reclaim_node(
        &self,
        dead_node: &str,
    ) -> Result<Vec<(BudgetKey, u64)>, ReclaimError> {
        if dead_node == self.writer.node.as_str() {
            return Err(ReclaimError::SelfNode(dead_node.to_owned()));
        }
        if let Some(membership) = &self.membership {
            let chitchat = membership.chitchat();
            let chitchat = chitchat.lock().await;
            if chitchat.live_nodes().any(|id| &*id.node_id == dead_node) {
                return Err(ReclaimError::Live(dead_node.to_owned()));
            }
        }
        for (peer, addr) in self.live_peers_info() {
            sync::exchange_with(&self.shared, Some(&peer), addr)
                .await
                .map_err(|source| ReclaimError::CatchUp { peer, source })?;
        }
        let taken = self.mutate(|r| r.reclaim_node(dead_node)).await?;
        let mut per_key: BTreeMap<BudgetKey, u64> = BTreeMap::new();
        for (key, _, amount) in taken {
            let total = per_key.entry(key).or_insert(0);
            *total = total.saturating_add(amount);
        }
        if !per_key.is_empty() {
            tracing::warn!(
                dead_node,
                keys = per_key.len(),
                "reclaimed a dead node's budget rights"
            );
        }
        Ok(per_key.into_iter().collect())
    }

    /// Asks `peer` for `amount` budget rights of `key` (the escrow transfer protocol). On a
    /// grant, the transfer is merged before this returns, so the rights are spendable here.
    pub async fn request_rights(
        &self,
        peer: SocketAddr,
        key: &crate::crdt::BudgetKey,
        amount: u64,
    ) -> Result<Option<crate::crdt::RightsGrant>, sync::SyncError> {
        rights::request(&self.shared, peer, key, amount).await
    }

    /// Runs one anti-entropy exchange with `peer` now (tests and operators).
    pub async fn sync_with(&self, peer: SocketAddr) -> Result<(), sync::SyncError> {
        sync::exchange(&self.shared, peer).await
    }

    /// Writes a snapshot of the whole replica and drops the logs it covers.
    pub async fn snapshot(&self) -> Result<(), ClusterError> {
        sync::snapshot(&self.shared).await
    }

    /// Leaves the cluster and stops every task. Everything acknowledged is already on disk.
    pub async fn shutdown(mut self) {
        if let Some(membership) = self.membership.take() {
            let _ = membership.shutdown().await;
        }
        for task in self.tasks.drain(..) {
            task.abort();
        }
        let _ = self.shared.store.sync().await;
        self.shared.endpoint.close();
        let wait = self.shared.endpoint.wait_idle();
        let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
    }

    /// Encodes the full state once, for callers that need bytes (admin dumps, tests).
    pub fn full_state_bytes(&self) -> Result<Bytes, CodecError> {
        self.read(|r| codec::encode(Kind::FullState, &r.full_state()))
    }
}

impl<V: CatalogValue> Shared<V> {
    /// See [`ClusterNode::mutate`]; pushes to `peers`.
    pub(crate) async fn mutate<R>(
        &self,
        peers: Vec<(String, SocketAddr)>,
        f: impl FnOnce(&mut Replica<V>) -> (Delta<V>, R),
    ) -> Result<R, ClusterError> {
        // Room first: once `f` has run, the record must be queued with no await in between.
        let room = self.store.room(0).await?;
        let (record, result) = self.apply_local(f)?;
        let Some(record) = record else {
            return Ok(result);
        };
        self.store
            .append_queued(room, record.clone())?
            .wait()
            .await?;
        sync::after_persist(self, record.len());
        sync::push_to_peers(self, peers, &record);
        Ok(result)
    }

    /// Runs `f` under the replica lock, mirrors its catalog changes and encodes its delta
    /// (`None` when the delta is empty: nothing to persist or ship).
    fn apply_local<R>(
        &self,
        f: impl FnOnce(&mut Replica<V>) -> (Delta<V>, R),
    ) -> Result<(Option<Bytes>, R), ClusterError> {
        // Nothing is applied that cannot be persisted: a write in memory only would be read
        // locally, and lost (or its dot reused) at the next start.
        if let Some(reason) = self.store.failure() {
            return Err(ClusterError::Store(StoreError::Closed(reason.to_owned())));
        }
        let mut replica = self.replica.lock().unwrap_or_else(|p| p.into_inner());
        let (delta, result) = f(&mut replica);
        if delta.is_empty() {
            return Ok((None, result));
        }
        let observer = self.observer();
        for (id, entry) in &delta.items.catalog {
            self.catalog_changed(observer.as_ref(), id, entry.value.as_ref());
        }
        Ok((Some(codec::encode(Kind::LogRecord, &delta)?), result))
    }
}

impl<V: Clone + Send + Sync> Shared<V> {
    /// Tells the observer of one catalog change (call under the replica lock, so that it sees
    /// changes in the order they are applied).
    pub(crate) fn catalog_changed(
        &self,
        observer: Option<&CatalogObserver<V>>,
        id: &str,
        value: Option<&V>,
    ) {
        if let Some(f) = observer {
            f(id, value);
        }
    }
}

impl<V: CatalogValue> Drop for ClusterNode<V> {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.shared.endpoint.close();
    }
}

/// Shared access for [`sync`].
impl<V> Shared<V> {
    /// Records that a peer was heard from just now.
    pub(crate) fn heard(&self) {
        self.become_member();
        let nanos = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.last_heard
            .fetch_max(nanos.saturating_add(1), Ordering::Relaxed);
    }

    /// Marks this node a member of a cluster of several nodes (unless configured alone).
    pub(crate) fn become_member(&self) {
        if !self.config.is_single_node() {
            self.clustered.store(true, Ordering::Relaxed);
        }
    }

    /// See [`ClusterNode::is_clustered`].
    pub(crate) fn is_clustered(&self) -> bool {
        self.clustered.load(Ordering::Relaxed)
    }

    /// See [`ClusterNode::last_heard`].
    pub(crate) fn last_heard(&self) -> Option<Instant> {
        match self.last_heard.load(Ordering::Relaxed) {
            0 => None,
            n => self.started.checked_add(Duration::from_nanos(n - 1)),
        }
    }

    /// The current catalog observer (call under the replica lock).
    pub(crate) fn observer(&self) -> Option<CatalogObserver<V>> {
        self.observer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn count_sent(&self, bytes: usize) {
        self.stats
            .bytes_sent
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn snapshot_flag(&self) -> Arc<AtomicBool> {
        self.snapshotting.clone()
    }

    pub(crate) fn count_received(&self, bytes: usize) {
        self.stats
            .bytes_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }
}
