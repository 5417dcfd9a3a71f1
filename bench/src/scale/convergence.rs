//! Scenario: replication latency, convergence and bandwidth as the cluster grows.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::cluster::{BenchCluster, Formation, Intervals};
use super::latency::{LatencySummary, ms};
use super::load::{catalog_value, put};
use super::pace::paced;
use super::probe::Arrivals;
use super::traffic::{Bandwidth, Traffic, TransportEvents, idle_window};
use super::{ScaleError, ScaleOptions};

/// Catalog ids the steady writes overwrite in turn: a catalog being edited, not growing.
const STEADY_IDS: u64 = 100;

/// Results for one cluster size.
#[derive(Debug, Clone, Serialize)]
pub struct SizeResult {
    /// Cluster size.
    pub nodes: usize,
    /// Seed nodes the others were given.
    pub seeds: usize,
    /// The replication intervals in force.
    pub intervals: Intervals,
    /// How long membership took to form.
    pub formation: Formation,
    /// K single catalog writes, each from the next node in turn: from the call on the writing
    /// node until the write was applied on every node (the writer's fsync included, since
    /// a write is pushed only once durable). In a fresh cluster a writer's first push to a
    /// peer that gossip has not connected it to yet pays a QUIC handshake first (counted in
    /// [`Self::write_transport`]); at 50 nodes that is most of the first writes.
    pub write_visible: LatencySummary,
    /// The same writes, until the writing node acknowledged them (the local fsync).
    pub write_ack: LatencySummary,
    /// Transport events during those writes.
    pub write_transport: TransportEvents,
    /// A burst of concurrent writes on random nodes.
    pub burst: BurstResult,
    /// Bandwidth with no writes at all.
    pub idle: Bandwidth,
    /// Bandwidth under a steady rate of catalog writes.
    pub steady: SteadyWrites,
}

/// A burst of catalog writes issued at once. All nodes share the caller's cores, and the
/// burst's fan-out (writes × (N − 1) pushes, each sent, received and merged) runs on them: at
/// large N this measures those cores' throughput more than the network's round trips.
#[derive(Debug, Clone, Serialize)]
pub struct BurstResult {
    /// Writes in the burst.
    pub writes: usize,
    /// From the burst's start until every write was acknowledged by its node, in ms.
    pub acked_ms: f64,
    /// From the burst's start until every write was applied on every node, in ms.
    pub visible_ms: f64,
    /// From the burst's start until every node's digest was equal, in ms (polled: up to a
    /// few ms later than the state was reached).
    pub digests_equal_ms: f64,
    /// Transport events from the burst's start until the digests were equal.
    pub transport: TransportEvents,
}

/// Bandwidth while catalog writes arrive at a steady rate.
#[derive(Debug, Clone, Serialize)]
pub struct SteadyWrites {
    /// Writes per second asked for (across the cluster).
    pub target_rate: u64,
    /// Writes per second issued.
    pub achieved_rate: f64,
    /// Bytes sent during the writes.
    pub bandwidth: Bandwidth,
}

/// For each size in `sizes`, starts that many nodes (the first [`ScaleOptions::seeds`] serve
/// as seeds), waits until every node sees all of them live, then measures:
///
/// * visibility: [`ScaleOptions::visibility_writes`] catalog writes, one at a time, from the
///   nodes in turn; each timed until applied on every node (see [`SizeResult::write_visible`]);
/// * a burst: [`ScaleOptions::burst_writes`] writes at once on random nodes, timed until every
///   digest is equal;
/// * bandwidth idle, over [`ScaleOptions::window`] after [`ScaleOptions::warmup`], and during
///   [`ScaleOptions::steady_write_rate`] catalog writes per second.
///
/// Nodes run the production replication intervals (`ClusterConfig::new`). The cluster is shut
/// down and its data dirs removed before the next size starts.
pub async fn convergence_vs_size(
    sizes: &[usize],
    opts: &ScaleOptions,
) -> Result<Vec<SizeResult>, ScaleError> {
    let mut results = Vec::with_capacity(sizes.len());
    for &nodes in sizes {
        results.push(BenchCluster::scoped(nodes, opts, async |c| measure(c, opts).await).await?);
    }
    Ok(results)
}

async fn measure(cluster: &BenchCluster, opts: &ScaleOptions) -> Result<SizeResult, ScaleError> {
    let arrivals = Arrivals::install(cluster);
    let before = Traffic::take(cluster);
    let (write_visible, write_ack) = visibility(cluster, &arrivals, opts).await?;
    let write_transport = Traffic::take(cluster).events_since(&before);
    let burst = burst(cluster, &arrivals, opts).await?;
    let idle = idle_window(cluster, opts.warmup, opts.window).await;
    let steady = steady_writes(cluster, opts).await?;
    Ok(SizeResult {
        nodes: cluster.len(),
        seeds: opts.seeds.clamp(1, cluster.len()),
        intervals: cluster.intervals(),
        formation: cluster.formation(),
        write_visible,
        write_ack,
        write_transport,
        burst,
        idle,
        steady,
    })
}

/// Single writes from the nodes in turn, each awaited everywhere before the next.
async fn visibility(
    cluster: &BenchCluster,
    arrivals: &Arrivals,
    opts: &ScaleOptions,
) -> Result<(LatencySummary, LatencySummary), ScaleError> {
    let mut visible = Vec::with_capacity(opts.visibility_writes);
    let mut acked = Vec::with_capacity(opts.visibility_writes);
    for k in 0..opts.visibility_writes {
        let id = format!("visible-{k}");
        arrivals.track(&id);
        let started = Instant::now();
        put(cluster.node(k), &id, catalog_value(k, opts.value_bytes)).await?;
        acked.push(started.elapsed());
        let last = arrivals.wait_everywhere(&[id], opts.deadline).await?;
        visible.push(last.saturating_duration_since(started));
    }
    Ok((LatencySummary::of(&visible), LatencySummary::of(&acked)))
}

/// Concurrent writes on random nodes, until applied everywhere and until digests agree.
async fn burst(
    cluster: &BenchCluster,
    arrivals: &Arrivals,
    opts: &ScaleOptions,
) -> Result<BurstResult, ScaleError> {
    let mut rng = StdRng::seed_from_u64(opts.rng_seed ^ cluster.len() as u64);
    let ids: Vec<String> = (0..opts.burst_writes)
        .map(|j| format!("burst-{j}"))
        .collect();
    for id in &ids {
        arrivals.track(id);
    }
    let before = Traffic::take(cluster);
    let started = Instant::now();
    let writes = ids.iter().enumerate().map(|(j, id)| {
        let node = cluster.node(rng.random_range(0..cluster.len()));
        put(node, id, catalog_value(j, opts.value_bytes))
    });
    for result in futures::future::join_all(writes).await {
        result?;
    }
    let acked = started.elapsed();
    let visible = if ids.is_empty() {
        Duration::ZERO
    } else {
        let last = arrivals.wait_everywhere(&ids, opts.deadline).await?;
        last.saturating_duration_since(started)
    };
    let equal = cluster.wait_converged(opts.deadline).await?;
    Ok(BurstResult {
        writes: ids.len(),
        acked_ms: ms(acked),
        visible_ms: ms(visible),
        digests_equal_ms: ms(equal.saturating_duration_since(started)),
        transport: Traffic::take(cluster).events_since(&before),
    })
}

/// Catalog overwrites at a steady rate from the nodes in turn, over one window; then waits
/// for the cluster to agree again, so the writes are known to have gone through.
async fn steady_writes(
    cluster: &BenchCluster,
    opts: &ScaleOptions,
) -> Result<SteadyWrites, ScaleError> {
    let before = Traffic::take(cluster);
    let run = paced(opts.steady_write_rate, opts.window, async |i| {
        let id = format!("steady-{}", i % STEADY_IDS);
        put(
            cluster.node(i as usize),
            &id,
            catalog_value(i as usize, opts.value_bytes),
        )
        .await
    })
    .await?;
    let bandwidth = Traffic::take(cluster).since(&before);
    cluster.wait_converged(opts.deadline).await?;
    Ok(SteadyWrites {
        target_rate: opts.steady_write_rate,
        achieved_rate: run.rate(),
        bandwidth,
    })
}
