//! Scenario: idle replication bandwidth against the number of catalog entries held.

use std::time::Instant;

use serde::Serialize;

use super::cluster::{BenchCluster, Intervals};
use super::latency::ms;
use super::load::load_catalog;
use super::traffic::{Bandwidth, idle_window};
use super::{ScaleError, ScaleOptions};

/// Idle bandwidth of a cluster holding a number of catalog entries.
#[derive(Debug, Clone, Serialize)]
pub struct IdleKeysResult {
    /// Catalog entries held (by every node).
    pub keys: usize,
    /// Cluster size.
    pub nodes: usize,
    /// The replication intervals in force.
    pub intervals: Intervals,
    /// Time to write the entries (batched, see [`ScaleOptions::load_batch`]), in ms.
    pub load_ms: f64,
    /// From the end of the load until every node's digest was equal, in ms.
    pub converge_ms: f64,
    /// Size of one node's full encoded state (what a joining node is sent), in bytes.
    pub state_bytes: usize,
    /// Bytes sent once converged, with no writes.
    pub idle: Bandwidth,
}

/// For each count in `key_counts`, starts a fresh cluster of `nodes`, writes that many catalog
/// entries (in batches of [`ScaleOptions::load_batch`], the nodes in turn), waits until every
/// digest agrees, then measures idle bandwidth over [`ScaleOptions::window`] after
/// [`ScaleOptions::warmup`]. Anti-entropy exchanges version vectors and ships only what a
/// peer lacks, so the idle figure should not grow with the number of entries.
///
/// Nodes run the production replication intervals (`ClusterConfig::new`).
pub async fn bandwidth_vs_idle_keys(
    key_counts: &[usize],
    nodes: usize,
    opts: &ScaleOptions,
) -> Result<Vec<IdleKeysResult>, ScaleError> {
    let mut results = Vec::with_capacity(key_counts.len());
    for &keys in key_counts {
        let result = BenchCluster::scoped(nodes, opts, async |c| {
            let started = Instant::now();
            load_catalog(c, keys, opts.load_batch, opts.value_bytes).await?;
            let loaded = Instant::now();
            // The view count is cheap to poll; the digests of a large catalog are not.
            c.wait_catalog_len(keys, opts.deadline).await?;
            let converged = c.wait_converged(opts.deadline).await?;
            let state_bytes = c.node(0).full_state_bytes()?.len();
            let idle = idle_window(c, opts.warmup, opts.window).await;
            Ok(IdleKeysResult {
                keys,
                nodes: c.len(),
                intervals: c.intervals(),
                load_ms: ms(loaded.saturating_duration_since(started)),
                converge_ms: ms(converged.saturating_duration_since(loaded)),
                state_bytes,
                idle,
            })
        })
        .await?;
        results.push(result);
    }
    Ok(results)
}
