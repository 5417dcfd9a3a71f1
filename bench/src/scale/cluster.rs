//! An in-process cluster for one measurement: N real nodes on loopback in the caller's tokio
//! runtime, one shared cluster secret, one temp data dir per node.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde::Serialize;
use starling_cluster::runtime::{ClusterConfig, ClusterNode};
use starling_cluster::tls::{ClusterCredentials, ClusterSecret, generate_secret};
use tempfile::TempDir;

use super::latency::ms;
use super::wait::{Check, wait_until};
use super::{ScaleError, ScaleOptions};

/// The catalog value the scenarios store (the gateway stores its own structs; the cluster
/// layer only sees their encoding).
pub(crate) type Value = String;

/// How long the cluster took to form.
#[derive(Debug, Clone, Serialize)]
pub struct Formation {
    /// Time to start every node one after the other (open the data dir, bind QUIC, join
    /// gossip), in ms.
    pub start_ms: f64,
    /// From the moment the last node was started until every node saw all N live, in ms.
    pub membership_ms: f64,
}

/// The replication intervals the nodes ran with (the production defaults of
/// `ClusterConfig::new`), reported with every result so figures can be read against them.
#[derive(Debug, Clone, Serialize)]
pub struct Intervals {
    /// Gossip round interval, in ms.
    pub gossip_ms: f64,
    /// Anti-entropy interval (one pull-push exchange per tick), in ms.
    pub sync_ms: f64,
}

/// N running nodes and their data dirs.
pub(crate) struct BenchCluster {
    nodes: Vec<ClusterNode<Value>>,
    /// Removed on shutdown; dropped (and removed) on early exits too.
    dirs: Vec<TempDir>,
    formation: Formation,
    intervals: Intervals,
}

impl BenchCluster {
    /// Starts `n` nodes, runs `body` on them once every node sees all of them live, then shuts
    /// them down and removes their data dirs, whether `body` succeeded or not.
    pub(crate) async fn scoped<T>(
        n: usize,
        opts: &ScaleOptions,
        body: impl AsyncFnOnce(&BenchCluster) -> Result<T, ScaleError>,
    ) -> Result<T, ScaleError> {
        let cluster = Self::start(n, opts).await?;
        let result = body(&cluster).await;
        let closed = cluster.shutdown().await;
        let value = result?;
        closed?;
        Ok(value)
    }

    /// Starts `n` nodes and waits until every one sees all `n` live.
    async fn start(n: usize, opts: &ScaleOptions) -> Result<Self, ScaleError> {
        if n == 0 {
            return Err(ScaleError::Invalid(
                "a cluster needs at least one node".into(),
            ));
        }
        let mut cluster = Self {
            nodes: Vec::with_capacity(n),
            dirs: Vec::with_capacity(n),
            formation: Formation {
                start_ms: 0.0,
                membership_ms: 0.0,
            },
            intervals: Intervals {
                gossip_ms: 0.0,
                sync_ms: 0.0,
            },
        };
        match cluster.launch(n, opts).await {
            Ok(()) => Ok(cluster),
            Err(e) => {
                // The nodes already up must not linger (and keep gossiping) into the next run.
                if let Err(cleanup) = cluster.shutdown().await {
                    tracing::warn!("cleaning up after a failed start: {cleanup}");
                }
                Err(e)
            }
        }
    }

    async fn launch(&mut self, n: usize, opts: &ScaleOptions) -> Result<(), ScaleError> {
        let secret = ClusterSecret::parse(&generate_secret()?)?;
        let seeds = opts.seeds.clamp(1, n);
        let started = Instant::now();
        let mut seed_addrs: Vec<String> = Vec::with_capacity(seeds);
        for i in 0..n {
            let id = format!("n{i}");
            let dir = tempfile::Builder::new()
                .prefix("starling-scale-")
                .tempdir()?;
            let config = node_config(&id, &dir, &secret, seed_addrs.clone())?;
            if i == 0 {
                self.intervals = Intervals {
                    gossip_ms: ms(config.gossip_interval),
                    sync_ms: ms(config.sync_interval),
                };
            }
            self.dirs.push(dir);
            let node = ClusterNode::start(config)
                .await
                .map_err(|source| ScaleError::Start { node: id, source })?;
            if i < seeds {
                seed_addrs.push(node.local_addr().to_string());
            }
            self.nodes.push(node);
        }
        let all_started = Instant::now();
        let formed = wait_until("every node to see all nodes live", opts.deadline, || {
            let fewest = self
                .nodes
                .iter()
                .map(ClusterNode::member_count_live)
                .min()
                .unwrap_or(0);
            Ok(if fewest == n {
                Check::Done
            } else {
                Check::Waiting(format!("the node seeing fewest sees {fewest} of {n} live"))
            })
        })
        .await?;
        self.formation = Formation {
            start_ms: ms(all_started - started),
            membership_ms: ms(formed - all_started),
        };
        Ok(())
    }

    /// The running nodes, in start order (node `i` is `n{i}`).
    pub(crate) fn nodes(&self) -> &[ClusterNode<Value>] {
        &self.nodes
    }

    /// Node `i` modulo the cluster size, for round-robin choices.
    pub(crate) fn node(&self, i: usize) -> &ClusterNode<Value> {
        &self.nodes[i % self.nodes.len()]
    }

    /// Number of nodes.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// How long the cluster took to form.
    pub(crate) fn formation(&self) -> Formation {
        self.formation.clone()
    }

    /// The intervals the nodes run with.
    pub(crate) fn intervals(&self) -> Intervals {
        self.intervals.clone()
    }

    /// Waits until every node's replica digest equals node 0's; returns the instant it did.
    pub(crate) async fn wait_converged(&self, deadline: Duration) -> Result<Instant, ScaleError> {
        wait_until("equal digests on every node", deadline, || {
            let mut digests = Vec::with_capacity(self.nodes.len());
            for node in &self.nodes {
                digests.push(node.digest()?);
            }
            let agreeing = digests.iter().filter(|d| **d == digests[0]).count();
            Ok(if agreeing == digests.len() {
                Check::Done
            } else {
                Check::Waiting(format!(
                    "{agreeing} of {} nodes have node n0's digest",
                    digests.len()
                ))
            })
        })
        .await
    }

    /// Waits until every node's live catalog holds `entries` entries (cheap: a counter read
    /// under the replica lock), e.g. before comparing digests of a large load.
    pub(crate) async fn wait_catalog_len(
        &self,
        entries: usize,
        deadline: Duration,
    ) -> Result<Instant, ScaleError> {
        wait_until("every node to hold the whole catalog", deadline, || {
            let fewest = self
                .nodes
                .iter()
                .map(|n| n.read(|r| r.catalog().len()))
                .min()
                .unwrap_or(0);
            Ok(if fewest == entries {
                Check::Done
            } else {
                Check::Waiting(format!("the node holding fewest has {fewest} of {entries}"))
            })
        })
        .await
    }

    /// Stops every node (concurrently: each may wait up to 2 s for its connections to
    /// drain) and removes the data dirs.
    async fn shutdown(mut self) -> Result<(), ScaleError> {
        futures::future::join_all(self.nodes.drain(..).map(ClusterNode::shutdown)).await;
        let mut first_error = None;
        for dir in self.dirs.drain(..) {
            if let Err(e) = dir.close() {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), |e| Err(e.into()))
    }
}

/// A node's config: production defaults (`ClusterConfig::new`: 100 ms gossip, 500 ms
/// anti-entropy, the default endpoint limits), with only what an in-process cluster must
/// change: a loopback address on a free port, its own data dir, and the seeds.
fn node_config(
    id: &str,
    dir: &TempDir,
    secret: &ClusterSecret,
    seeds: Vec<String>,
) -> Result<ClusterConfig, ScaleError> {
    let credentials = ClusterCredentials::from_secret(secret, id)?;
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut config = ClusterConfig::new(id, listen, dir.path().to_owned(), credentials);
    config.seeds = seeds;
    Ok(config)
}
