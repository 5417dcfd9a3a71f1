//! Settings of a cluster member.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::tls::ClusterCredentials;
use crate::transport::EndpointConfig;

/// How a node joins and replicates.
#[derive(Clone)]
pub struct ClusterConfig {
    /// This node's id, stable across restarts.
    pub node_id: String,
    /// Cluster name; gossip from another cluster is refused.
    pub cluster_id: String,
    /// QUIC listen address for gossip and replication.
    pub listen: SocketAddr,
    /// The address peers reach us at (defaults to the bound address).
    pub advertise: Option<SocketAddr>,
    /// Seed addresses, `ip:port` or `host:port` (re-resolved periodically).
    pub seeds: Vec<String>,
    /// Where the replica is kept.
    pub data_dir: PathBuf,
    /// Mutual TLS credentials (shared secret or operator CA).
    pub credentials: ClusterCredentials,
    /// QUIC endpoint settings (message caps, timeouts; tests add a partition table here).
    pub endpoint: EndpointConfig,
    /// Gossip round interval.
    pub gossip_interval: Duration,
    /// Anti-entropy interval: one pull-push exchange per tick with the live peer tried least
    /// recently; peers that have just become live, and failed exchanges one interval on, are
    /// taken at once (see the runtime's `sync` module).
    pub sync_interval: Duration,
    /// Largest replication frame accepted or sent, in bytes (default 8 MiB): a push, a pull
    /// request, one frame of a pull's answer, a rights exchange. A full state is never one
    /// frame: it travels in chunks of `sync_chunk_bytes`. A single catalog entry or budget key
    /// must encode within this (they are a few hundred bytes).
    pub max_sync_bytes: usize,
    /// Target size of one chunk of a pull's answer (default 4 MiB; at most half of
    /// `max_sync_bytes`). Each chunk is a delta that stands on its own: it is applied and
    /// persisted as it arrives, and the answer's last frame carries the context and version
    /// vector, so a transfer cut midway keeps what arrived and the next exchange resumes.
    pub sync_chunk_bytes: usize,
    /// Most anti-entropy pulls one peer (by address) may run against this node at once
    /// (default 2); further ones are refused at once with
    /// [`crate::transport::frame::codes::TOO_MANY_EXCHANGES`] and counted in
    /// [`super::SyncStats::pulls_refused`]. Each answer holds a copy of what the peer lacks
    /// (a whole state for a joiner) while it is sent, so this bounds what a peer can make us
    /// hold.
    pub max_sync_exchanges_per_peer: usize,
    /// Bound on the bytes of log records queued for the store's writer thread (default
    /// 64 MiB; each record counts 128 bytes more). A local write or a merge that finds the
    /// queue full waits for room before it is applied (see [`crate::store`]).
    pub store_queue_bytes: usize,
    /// Snapshot the replica after this many logged deltas, once the log has also grown to half
    /// the last snapshot's size (so that snapshot cost stays proportional to what is logged).
    pub snapshot_every: u64,
    /// Metadata gossiped for this node (HTTP address, version, readiness, load).
    pub metadata: BTreeMap<String, String>,
    /// How long gossip keeps a dead member before forgetting it. Its replicated counts and
    /// rights are kept regardless: they live in the replica, not in gossip.
    pub dead_node_grace: Duration,
    /// How often collectable tombstones are looked for.
    pub tombstone_gc_interval: Duration,
    /// A tombstone is collected only once every member has acknowledged it and it is at least
    /// this old (a delta older than this must never arrive; see docs/cluster.md).
    pub tombstone_min_age: Duration,
    /// How this node answers peers' requests for budget rights.
    pub donor_policy: crate::crdt::DonorPolicy,
    /// How many nodes the cluster is meant to have, if the operator said so. `Some(1)` is a
    /// one-node cluster (no seeds allowed): it has no peer to lose touch with, witness its
    /// debits or refill a damaged data dir. More than one makes the node a member from its
    /// first start, and its automatic reclaim also waits until it has caught up with at least
    /// that many other nodes. Unset, the node is a member once it has seeds, has heard from a
    /// peer, or holds another node's writes.
    pub expect_nodes: Option<usize>,
    /// How long a node waits after it starts before it judges itself caught up (see
    /// [`super::ClusterNode::caught_up`]): the time gossip takes to tell it of every member,
    /// live or dead, that it must first hear from.
    pub catch_up_grace: Duration,
}

impl ClusterConfig {
    /// Defaults for everything but identity, addresses and credentials.
    pub fn new(
        node_id: impl Into<String>,
        listen: SocketAddr,
        data_dir: PathBuf,
        credentials: ClusterCredentials,
    ) -> Self {
        Self {
            node_id: node_id.into(),
            cluster_id: "starling".to_owned(),
            listen,
            advertise: None,
            seeds: Vec::new(),
            data_dir,
            credentials,
            endpoint: EndpointConfig::default(),
            gossip_interval: Duration::from_millis(100),
            sync_interval: Duration::from_millis(500),
            max_sync_bytes: 8 << 20,
            sync_chunk_bytes: 4 << 20,
            max_sync_exchanges_per_peer: 2,
            store_queue_bytes: crate::store::DEFAULT_QUEUE_BYTES as usize,
            snapshot_every: 10_000,
            metadata: BTreeMap::new(),
            dead_node_grace: Duration::from_secs(3600),
            tombstone_gc_interval: Duration::from_secs(60),
            tombstone_min_age: Duration::from_secs(24 * 3600),
            donor_policy: crate::crdt::DonorPolicy::default(),
            expect_nodes: None,
            catch_up_grace: Duration::from_secs(2),
        }
    }
}

impl ClusterConfig {
    /// Checks the replication limits.
    ///
    /// # Errors
    /// A [`super::ClusterError::Config`] naming the field out of range.
    pub fn validate(&self) -> Result<(), super::ClusterError> {
        let bad = |field: &'static str, reason: &str| {
            Err(super::ClusterError::Config {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.max_sync_bytes < 64 << 10 || self.max_sync_bytes > u32::MAX as usize {
            return bad("max_sync_bytes", "must be between 64 KiB and 4 GiB");
        }
        if self.sync_chunk_bytes == 0 || self.sync_chunk_bytes > self.max_sync_bytes / 2 {
            return bad(
                "sync_chunk_bytes",
                "must be positive and at most half of max_sync_bytes",
            );
        }
        // A merged chunk must fit the queue without overdrawing it.
        if self.store_queue_bytes < self.sync_chunk_bytes.saturating_mul(2)
            || self.store_queue_bytes > u32::MAX as usize
        {
            return bad(
                "store_queue_bytes",
                "must be at least twice sync_chunk_bytes and at most 4 GiB",
            );
        }
        if self.max_sync_exchanges_per_peer == 0 {
            return bad("max_sync_exchanges_per_peer", "must be at least 1");
        }
        match self.expect_nodes {
            Some(0) => return bad("expect_nodes", "must be at least 1"),
            Some(1) if !self.seeds.is_empty() => {
                return bad("expect_nodes", "a one-node cluster takes no seeds");
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether the configuration alone makes this node a member of a cluster of several
    /// nodes (it has seeds, or expects other nodes).
    pub fn expects_peers(&self) -> bool {
        !self.seeds.is_empty() || self.expect_nodes.is_some_and(|n| n > 1)
    }

    /// Whether the configuration declares a one-node cluster.
    pub fn is_single_node(&self) -> bool {
        self.expect_nodes == Some(1)
    }
}
