//! Scenario: replication bandwidth against the rate of usage counter updates.

use serde::Serialize;

use super::cluster::{BenchCluster, Intervals};
use super::latency::ms;
use super::load::{add_usage, counter_keys};
use super::pace::paced;
use super::traffic::{Bandwidth, Traffic};
use super::wait::{Check, wait_until};
use super::{ScaleError, ScaleOptions};

/// Bandwidth under one rate of counter updates.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateRateResult {
    /// Updates per second asked for (across the cluster).
    pub target_rate: u64,
    /// Updates per second issued.
    pub achieved_rate: f64,
    /// Updates issued in the window.
    pub updates: u64,
    /// Cluster size.
    pub nodes: usize,
    /// The replication intervals in force.
    pub intervals: Intervals,
    /// From the end of the window until every node counted every update and every digest was
    /// equal, in ms.
    pub converge_ms: f64,
    /// Bytes sent during the updates.
    pub bandwidth: Bandwidth,
}

/// For each rate in `rates`, starts a fresh cluster of `nodes`, waits out
/// [`ScaleOptions::warmup`], then for [`ScaleOptions::window`] makes that many usage updates
/// per second, the nodes in turn, spread over [`ScaleOptions::counter_keys`] counter keys;
/// each update is its own delta (the unbatched case: the gateway merges the updates of one
/// flush into a single delta). Measures the bytes sent meanwhile, then waits until every
/// node counts every update. Bandwidth should grow with the rate, not with the state.
///
/// Nodes run the production replication intervals (`ClusterConfig::new`).
pub async fn bandwidth_vs_update_rate(
    rates: &[u64],
    nodes: usize,
    opts: &ScaleOptions,
) -> Result<Vec<UpdateRateResult>, ScaleError> {
    let keys = counter_keys(opts.counter_keys);
    let mut results = Vec::with_capacity(rates.len());
    for &rate in rates {
        let result = BenchCluster::scoped(nodes, opts, async |c| {
            tokio::time::sleep(opts.warmup).await;
            let before = Traffic::take(c);
            let run = paced(rate, opts.window, async |i| {
                add_usage(c.node(i as usize), &keys[i as usize % keys.len()]).await
            })
            .await?;
            let bandwidth = Traffic::take(c).since(&before);
            let window_end = std::time::Instant::now();
            wait_until("every node to count every update", opts.deadline, || {
                let fewest = c
                    .nodes()
                    .iter()
                    .map(|n| {
                        n.read(|r| {
                            keys.iter()
                                .map(|k| r.counters().total(k).requests)
                                .sum::<u64>()
                        })
                    })
                    .min()
                    .unwrap_or(0);
                Ok(if fewest == run.issued {
                    Check::Done
                } else {
                    Check::Waiting(format!(
                        "the node counting fewest has {fewest} of {}",
                        run.issued
                    ))
                })
            })
            .await?;
            let converged = c.wait_converged(opts.deadline).await?;
            Ok(UpdateRateResult {
                target_rate: rate,
                achieved_rate: run.rate(),
                updates: run.issued,
                nodes: c.len(),
                intervals: c.intervals(),
                converge_ms: ms(converged.saturating_duration_since(window_end)),
                bandwidth,
            })
        })
        .await?;
        results.push(result);
    }
    Ok(results)
}
