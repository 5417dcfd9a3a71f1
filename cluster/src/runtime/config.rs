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
    /// Anti-entropy interval: one pull-push exchange with a random live peer per tick.
    pub sync_interval: Duration,
    /// Largest replication message accepted, in bytes (full states included).
    pub max_sync_bytes: usize,
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
            max_sync_bytes: 256 * 1024 * 1024,
            snapshot_every: 10_000,
            metadata: BTreeMap::new(),
            dead_node_grace: Duration::from_secs(3600),
            tombstone_gc_interval: Duration::from_secs(60),
            tombstone_min_age: Duration::from_secs(24 * 3600),
            donor_policy: crate::crdt::DonorPolicy::default(),
        }
    }
}
