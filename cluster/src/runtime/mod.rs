//! A running cluster member: the replica, its durable copy, membership, and replication.
//!
//! [`ClusterNode::start`] opens the data dir (identity and incarnation, snapshot and log),
//! rebuilds the replica, binds the QUIC endpoint, joins gossip, and starts two replication
//! paths over QUIC streams:
//!
//! * **eager push**: every local mutation's delta is sent at once to every live peer, so an
//!   update usually reaches the cluster within one network round trip;
//! * **anti-entropy**: every `sync_interval`, a pull from one random live peer (send our
//!   version vector, receive what we lack plus the peer's vector) followed by a push of what
//!   the peer lacks. This repairs anything eager push lost (partitions, restarts, drops) and
//!   doubles as the full state transfer for a node that joins or fell behind (its vector is
//!   empty or old, so the reply is everything).
//!
//! The replica sits behind a plain mutex that is never held across an `.await`: mutations and
//! merges are short and synchronous, and encoding happens under the lock only for the delta
//! being produced. Deltas are idempotent and commutative, so the order in which they reach
//! disk or peers does not matter for correctness.

mod config;
mod gc;
mod rights;
mod sync;
mod view;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

pub use config::ClusterConfig;
pub use view::CatalogView;

use crate::codec::{self, CodecError, Kind};
use crate::hlc::{HlcClock, NodeId, WriterId};
use crate::state::{Delta, Digest, Replica};
use crate::store::{Store, StoreError};
use crate::transport::membership::{Membership, MembershipConfig, spawn_membership};
use crate::transport::{ClusterEndpoint, MessageKind, TransportError};

/// Transport kind of a pull request (request/response stream).
pub const SYNC_PULL: MessageKind = MessageKind(10);
/// Transport kind of a pushed delta (one-way stream).
pub const SYNC_PUSH: MessageKind = MessageKind(11);
/// Transport kind of a budget-rights request (request/response stream).
pub const SYNC_RIGHTS: MessageKind = MessageKind(12);

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
    /// Deltas that failed to decode or were refused (clock skew); dropped.
    pub malformed: AtomicU64,
    /// Times the tombstone collector looked (every `tombstone_gc_interval`).
    pub gc_checks: AtomicU64,
    /// Tombstone collection rounds that ran (every member had acknowledged a version).
    pub gc_runs: AtomicU64,
    /// Tombstones collected.
    pub tombstones_collected: AtomicU64,
}

pub(crate) struct Shared<V> {
    pub replica: Mutex<Replica<V>>,
    /// Lock-free mirror of the live catalog, updated under the replica lock.
    pub view: Arc<CatalogView<V>>,
    pub store: Store,
    pub endpoint: ClusterEndpoint,
    pub stats: SyncStats,
    pub config: ClusterConfig,
    /// When each peer (by node id) last completed a sync exchange with us.
    pub last_sync: Mutex<BTreeMap<String, Instant>>,
    /// Records appended since the last snapshot.
    pub since_snapshot: AtomicU64,
    /// A snapshot is being written (one at a time).
    pub snapshotting: Arc<AtomicBool>,
    /// The newest version vector each peer (by address) has shown us: in its pull requests
    /// and its pull replies. Everything at or below it, the peer has.
    pub acked: Mutex<BTreeMap<SocketAddr, crate::crdt::VersionVector>>,
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
}

impl<V: CatalogValue> ClusterNode<V> {
    /// Opens the data dir, rebuilds the replica, binds QUIC and joins the cluster.
    pub async fn start(config: ClusterConfig) -> Result<Self, ClusterError> {
        let node = NodeId::new(&config.node_id).map_err(|e| ClusterError::NodeId(e.to_string()))?;
        let (store, identity, recovered) = Store::open(&config.data_dir, node.as_str())?;
        let writer = WriterId::new(node, identity.incarnation);
        let clock = HlcClock::system(writer.clone());
        let mut replica = match recovered.snapshot {
            Some(bytes) => {
                let state: Delta<V> = codec::decode_kind(&bytes, Kind::Snapshot, usize::MAX)?;
                Replica::restore(clock, state)
            }
            None => Replica::new(clock),
        };
        for record in &recovered.records {
            let delta: Delta<V> = sync::decode_delta(record, usize::MAX)?;
            if let Err(e) = replica.apply(delta) {
                tracing::warn!("skipping a persisted delta the clock refuses: {e}");
            }
        }
        let mut endpoint_config = config.endpoint.clone();
        endpoint_config.max_message_size =
            endpoint_config.max_message_size.max(config.max_sync_bytes);
        let endpoint = ClusterEndpoint::bind(config.listen, &config.credentials, endpoint_config)?;
        let view = Arc::new(CatalogView::new());
        for (id, value) in replica.catalog().iter() {
            view.set(id, Some(value.clone()));
        }
        let shared = Arc::new(Shared {
            replica: Mutex::new(replica),
            view,
            store,
            endpoint: endpoint.clone(),
            stats: SyncStats::default(),
            last_sync: Mutex::new(BTreeMap::new()),
            since_snapshot: AtomicU64::new(recovered.records.len() as u64),
            snapshotting: Arc::new(AtomicBool::new(false)),
            acked: Mutex::new(BTreeMap::new()),
            config,
        });
        let mut tasks = sync::spawn_handlers(&shared)?;
        tasks.push(rights::spawn_donor(&shared, shared.config.donor_policy)?);
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
        let peers = membership.chitchat().lock().await.live_nodes_watcher();
        tasks.push(tokio::spawn(sync::anti_entropy(
            shared.clone(),
            peers,
            writer.node.as_str().to_owned(),
        )));
        tasks.push(tokio::spawn(gc::collect_tombstones(
            Arc::downgrade(&shared),
            membership.chitchat(),
            advertise,
        )));
        Ok(Self {
            shared,
            membership: Some(membership),
            tasks,
            writer,
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

    /// Counters of one message kind (gossip, [`SYNC_PULL`], [`SYNC_PUSH`]).
    pub fn kind_stats(&self, kind: MessageKind) -> crate::transport::KindSnapshot {
        self.shared.endpoint.stats().kind(kind)
    }

    /// The lock-free view of the live catalog, for the request path.
    pub fn catalog_view(&self) -> Arc<CatalogView<V>> {
        self.shared.view.clone()
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
        let (record, result) = {
            let mut replica = self
                .shared
                .replica
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let (delta, result) = f(&mut replica);
            if delta.is_empty() {
                return Ok(result);
            }
            for (id, entry) in &delta.items.catalog {
                self.shared.view.set(id, entry.value.clone());
            }
            (codec::encode(Kind::LogRecord, &delta)?, result)
        };
        self.shared.store.append(record.clone()).await?;
        sync::after_persist(&self.shared);
        sync::push_to_peers(&self.shared, self.live_peers().await, &record);
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

    async fn live_peers(&self) -> Vec<(String, SocketAddr)> {
        let Some(membership) = &self.membership else {
            return Vec::new();
        };
        let chitchat = membership.chitchat();
        let chitchat = chitchat.lock().await;
        sync::peers_of(chitchat.live_nodes(), self.writer.node.as_str())
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
