//! Replication figures for docs/cluster.md. Ignored in the suite (they take a while and print
//! figures rather than assert them): `cargo test --release -p starling-cluster --test
//! runtime_measure -- --ignored --nocapture --test-threads=1`.

mod runtime_support;

use std::time::{Duration, Instant};

use runtime_support::{TestCluster, wait_until};
use starling_cluster::crdt::{CounterKey, Period, PeriodUnit, Usage};
use starling_cluster::runtime::{ClusterNode, SYNC_PULL, SYNC_PUSH};
use starling_cluster::transport::MessageKind;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Replication bytes (sync pull, sync push, gossip) sent by every node so far.
fn bytes_sent(c: &TestCluster) -> u64 {
    c.running()
        .map(|n| {
            [MessageKind::GOSSIP, SYNC_PULL, SYNC_PUSH]
                .iter()
                .map(|k| n.kind_stats(*k).bytes_sent)
                .sum::<u64>()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn write_visibility_on_five_nodes() {
    let c = TestCluster::start(5).await;
    let mut samples = Vec::new();
    for i in 0..100 {
        let id = format!("k{i}");
        let started = Instant::now();
        c.node(i % 5)
            .catalog_put(&id, "v".to_owned())
            .await
            .expect("put");
        let nodes: Vec<&ClusterNode<String>> = c.running().collect();
        loop {
            if nodes
                .iter()
                .all(|n| n.read(|r| r.catalog().get(&id).is_some()))
            {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        samples.push(started.elapsed());
    }
    samples.sort();
    println!(
        "write visible on all 5 nodes: p50 {:?}, p99 {:?}, max {:?} (100 writes)",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples.last().copied().unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn sync_bandwidth_idle_with_10k_keys_and_under_counter_load() {
    let c = TestCluster::start(5).await;
    let window = Duration::from_secs(10);
    let before = bytes_sent(&c);
    tokio::time::sleep(window).await;
    let empty = (bytes_sent(&c) - before) as f64 / window.as_secs_f64() / 5.0;
    println!("idle with 0 keys: {empty:.0} B/s per node");
    // 10,000 catalog entries, written through node 0.
    for i in 0..10_000 {
        c.node(0)
            .catalog_put(&format!("key-{i:05}"), format!("{{\"i\":{i}}}"))
            .await
            .expect("put");
    }
    c.wait_converged().await;
    let before = bytes_sent(&c);
    tokio::time::sleep(window).await;
    let idle = (bytes_sent(&c) - before) as f64 / window.as_secs_f64() / 5.0;
    println!(
        "idle with 10k keys: {idle:.0} B/s per node (gossip + sync; test settings: 50 ms gossip, 100 ms anti-entropy)"
    );

    // 1,000 counter updates per second across the cluster for 10 s.
    let key = CounterKey::new("key:load", Period::new(PeriodUnit::Lifetime, 0));
    let before = bytes_sent(&c);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while started.elapsed() < window {
        tick.tick().await;
        for _ in 0..10 {
            let node = c.node((sent % 5) as usize);
            node.mutate(|r| {
                (
                    r.add_usage(
                        &key,
                        Usage {
                            spend_micros: 1,
                            tokens: 1,
                            requests: 1,
                        },
                    )
                    .expect("open"),
                    (),
                )
            })
            .await
            .expect("persisted");
            sent += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let loaded = (bytes_sent(&c) - before) as f64 / elapsed / 5.0;
    println!(
        "under {:.0} counter updates/s: {loaded:.0} B/s per node",
        sent as f64 / elapsed
    );
    wait_until("the counter everywhere", || async {
        c.running()
            .all(|n| n.read(|r| r.counters().total(&key).requests) == sent)
    })
    .await;
}
