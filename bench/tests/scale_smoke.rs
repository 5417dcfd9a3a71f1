//! The cluster-scale scenarios run end to end at a tiny size: the harness starts clusters,
//! sees writes converge, counts traffic and shuts down. Nothing here asserts a timing or a
//! speed; the figures come from `starling-bench run --scenario scale` (docs/benchmarks.md).

use std::time::Duration;

use starling_bench::scale::{
    ScaleOptions, bandwidth_vs_idle_keys, bandwidth_vs_update_rate, convergence_vs_size,
};

/// Clusters in this binary run one at a time: two at once on 2 cores would starve each
/// other's failure detectors.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn tiny() -> ScaleOptions {
    ScaleOptions {
        visibility_writes: 5,
        burst_writes: 20,
        window: Duration::from_secs(1),
        warmup: Duration::from_millis(200),
        steady_write_rate: 20,
        seeds: 1,
        deadline: Duration::from_secs(30),
        load_batch: 40,
        ..ScaleOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convergence_harness_runs() {
    let _serial = SERIAL.lock().await;
    let results = convergence_vs_size(&[3], &tiny())
        .await
        .expect("scenario runs");
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(r.nodes, 3);
    assert_eq!(r.write_visible.samples, 5);
    assert_eq!(r.write_ack.samples, 5);
    assert_eq!(r.burst.writes, 20);
    // Gossip flows whenever nodes are up; steady writes are pushed.
    assert!(r.idle.gossip_bps > 0.0 && r.idle.total_bps > 0.0, "{r:?}");
    assert!(r.steady.achieved_rate > 0.0, "{r:?}");
    assert!(r.steady.bandwidth.sync_push_bps > 0.0, "{r:?}");
    serde_json::to_string(&results).expect("results serialise");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keys_harness_runs() {
    let _serial = SERIAL.lock().await;
    let results = bandwidth_vs_idle_keys(&[0, 100], 3, &tiny())
        .await
        .expect("scenario runs");
    assert_eq!(results.iter().map(|r| r.keys).collect::<Vec<_>>(), [0, 100]);
    assert!(
        results
            .iter()
            .all(|r| r.nodes == 3 && r.idle.total_bps > 0.0)
    );
    // The 100 entries are in the converged state.
    assert!(
        results[1].state_bytes > results[0].state_bytes,
        "{results:?}"
    );
    serde_json::to_string(&results).expect("results serialise");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_rate_harness_runs() {
    let _serial = SERIAL.lock().await;
    let results = bandwidth_vs_update_rate(&[0, 50], 3, &tiny())
        .await
        .expect("scenario runs");
    assert_eq!(
        results.iter().map(|r| r.target_rate).collect::<Vec<_>>(),
        [0, 50]
    );
    assert_eq!(results[0].updates, 0);
    assert!(results[1].updates > 0, "{results:?}");
    assert!(results[1].bandwidth.sync_push_bps > 0.0, "{results:?}");
    serde_json::to_string(&results).expect("results serialise");
}
