//! In-process clusters for the runtime tests: N nodes on loopback, one shared secret, one
//! partition table, each with its own data dir.

#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use starling_cluster::runtime::{ClusterConfig, ClusterNode};
use starling_cluster::tls::{ClusterCredentials, ClusterSecret, generate_secret};
use starling_cluster::transport::{EndpointConfig, PartitionTable};

/// The catalog value the tests store.
pub type Doc = String;

/// Clusters in one test binary run one at a time: several 5-node clusters gossiping at once on
/// 2 cores starve the failure detectors and make membership flap.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct TestCluster {
    pub nodes: Vec<Option<ClusterNode<Doc>>>,
    pub dirs: Vec<tempfile::TempDir>,
    pub secret: ClusterSecret,
    pub partition: Arc<PartitionTable>,
    pub seed: String,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

pub fn config(
    id: &str,
    dir: PathBuf,
    secret: &ClusterSecret,
    seeds: Vec<String>,
    partition: &Arc<PartitionTable>,
) -> ClusterConfig {
    let credentials = ClusterCredentials::from_secret(secret, id).expect("credentials");
    let mut c = ClusterConfig::new(id, "127.0.0.1:0".parse().expect("addr"), dir, credentials);
    c.seeds = seeds;
    c.gossip_interval = Duration::from_millis(50);
    c.sync_interval = Duration::from_millis(100);
    c.endpoint = EndpointConfig {
        partition: Some(partition.clone()),
        ..EndpointConfig::default()
    };
    c.dead_node_grace = Duration::from_secs(2);
    c.tombstone_gc_interval = Duration::from_millis(100);
    c.tombstone_min_age = Duration::ZERO;
    c
}

impl TestCluster {
    pub async fn start(n: usize) -> Self {
        Self::start_with(n, |_| {}).await
    }

    /// Like [`Self::start`], with `tweak` applied to every node's config.
    pub async fn start_with(n: usize, tweak: impl Fn(&mut ClusterConfig)) -> Self {
        Self::start_on(n, PartitionTable::new(), tweak).await
    }

    /// Like [`Self::start_with`], with `partition` as the cluster's partition table (for
    /// example [`PartitionTable::packets`], which drops datagrams rather than messages).
    pub async fn start_on(
        n: usize,
        partition: PartitionTable,
        tweak: impl Fn(&mut ClusterConfig),
    ) -> Self {
        let serial = SERIAL.lock().await;
        let secret = ClusterSecret::parse(&generate_secret().expect("secret")).expect("parse");
        let partition = Arc::new(partition);
        let mut nodes = Vec::new();
        let mut dirs = Vec::new();
        let mut seed = String::new();
        for i in 0..n {
            let dir = tempfile::tempdir().expect("tempdir");
            let seeds = if i == 0 {
                Vec::new()
            } else {
                vec![seed.clone()]
            };
            let mut node_config = config(
                &format!("n{i}"),
                dir.path().to_owned(),
                &secret,
                seeds,
                &partition,
            );
            tweak(&mut node_config);
            let node = ClusterNode::start(node_config).await.expect("node starts");
            if i == 0 {
                seed = node.local_addr().to_string();
            }
            nodes.push(Some(node));
            dirs.push(dir);
        }
        let cluster = Self {
            nodes,
            dirs,
            secret,
            partition,
            seed,
            _serial: serial,
        };
        cluster.wait_members(n).await;
        cluster
    }

    /// Starts (or restarts) node `id` on `dir` with this cluster's secret and partition table.
    pub async fn start_node(
        &self,
        id: &str,
        dir: &std::path::Path,
        seeds: Vec<String>,
    ) -> ClusterNode<Doc> {
        self.start_node_with(id, dir, seeds, |_| {}).await
    }

    /// Like [`Self::start_node`], with `tweak` applied to the node's config.
    pub async fn start_node_with(
        &self,
        id: &str,
        dir: &std::path::Path,
        seeds: Vec<String>,
        tweak: impl Fn(&mut ClusterConfig),
    ) -> ClusterNode<Doc> {
        let mut node_config = config(id, dir.to_owned(), &self.secret, seeds, &self.partition);
        tweak(&mut node_config);
        ClusterNode::start(node_config).await.expect("node starts")
    }

    pub fn node(&self, i: usize) -> &ClusterNode<Doc> {
        self.nodes[i].as_ref().expect("node is running")
    }

    pub fn running(&self) -> impl Iterator<Item = &ClusterNode<Doc>> {
        self.nodes.iter().flatten()
    }

    /// Splits the running nodes into the first `cut` and the rest, then writes `left` on the
    /// first node and `right` on the last: an entry each side lacks until the partition heals.
    pub async fn split_and_write(&self, cut: usize) {
        let addrs: Vec<_> = self.running().map(ClusterNode::local_addr).collect();
        self.partition.split(&addrs[..cut], &addrs[cut..]);
        let (first, last) = (self.node(0), self.node(addrs.len() - 1));
        first
            .catalog_put("left", "L".to_owned())
            .await
            .expect("put");
        last.catalog_put("right", "R".to_owned())
            .await
            .expect("put");
    }

    /// Waits until every running node sees `n` live members.
    pub async fn wait_members(&self, n: usize) {
        wait_until("membership", || async {
            for node in self.running() {
                if node.members().await.iter().filter(|m| m.live).count() != n {
                    return false;
                }
            }
            true
        })
        .await;
    }

    /// Waits until every running node has the same digest.
    pub async fn wait_converged(&self) {
        wait_until("convergence", || async {
            let digests: Vec<_> = self
                .running()
                .map(|n| n.digest().expect("digest"))
                .collect();
            digests.windows(2).all(|w| w[0] == w[1])
        })
        .await;
    }
}

/// Polls `check` until it holds, failing after a deadline of 30 s.
pub async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_until_within(Duration::from_secs(30), what, check).await;
}

/// Polls `check` until it holds, failing after `limit`.
pub async fn wait_until_within<F, Fut>(limit: Duration, what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
