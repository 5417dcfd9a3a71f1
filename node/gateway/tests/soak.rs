//! Bounded memory over weeks, in miniature: three real `starling` processes under steady load,
//! one of them killed (SIGKILL) and restarted on its data dir every restart interval, on new
//! ports each time, so that its peers see a new process at a new address at every restart.
//!
//! Every second it samples each process's resident memory (`VmRSS`) and the gauges of the
//! per-peer maps (`starling_cluster_peer_state_entries`), the connections and the store's
//! queue. What it asserts, none of it a timing:
//!
//! * while it runs, no per-peer map of any node holds more than a few entries per node (the
//!   bound does not grow with the number of restarts);
//! * after the last restart, every node's per-peer maps come back to its live peers only
//!   (waited for, with a generous deadline): the entries of the dead processes are gone;
//! * the two nodes that ran throughout did not grow their resident memory in the second half
//!   beyond the first half's peak by more than a wide margin (a leak per request or per restart
//!   of the size that matters over weeks shows in the long run; the margin keeps a loaded CI
//!   machine's allocator noise from failing the suite).
//!
//! In the suite it runs 60 s with a restart every 15 s. `STARLING_SOAK_SECS=600` runs it for
//! 10 minutes with a restart every 30 s (any run of 120 s or more restarts every 30 s):
//! `STARLING_SOAK_SECS=600 cargo test -p starling --test soak -- --nocapture`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

mod common;
use common::processes::{Node, start_with_config, wait_for_live_members};
use common::{ADMIN, admin_post, metric_value, wait_for};

const NODES: usize = 3;

/// The per-peer maps, as labelled in `starling_cluster_peer_state_entries`.
const MAPS: [&str; 5] = [
    "acked_versions",
    "last_sync",
    "pulls_in_flight",
    "endpoint_peers",
    "rate_reports",
];

/// Most entries a per-peer map may hold at any time while peers restart: a few per node,
/// whatever the number of restarts (a restarted peer's old entries stay until gossip forgets
/// its dead process and the connection cache its idle address).
const RUNNING_BOUND: f64 = (3 * NODES) as f64;

/// Entries each per-peer map comes back to once the restarts stop: one per live peer.
const SETTLED_BOUND: f64 = (NODES - 1) as f64;

/// One sample of one process.
#[derive(Debug, Clone)]
struct Sample {
    secs: f64,
    node: usize,
    rss_kib: u64,
    gauges: BTreeMap<String, f64>,
}

/// The figures a sample reads from `/metrics`.
fn gauges(metrics: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for map in MAPS {
        out.insert(
            map.to_owned(),
            metric_value(
                metrics,
                "starling_cluster_peer_state_entries",
                &[("map", map)],
            ),
        );
    }
    for (name, metric, labels) in [
        (
            "members_live",
            "starling_cluster_members",
            &[("state", "live")][..],
        ),
        (
            "members_dead",
            "starling_cluster_members",
            &[("state", "dead")][..],
        ),
        ("connections", "starling_cluster_connections_open", &[][..]),
        (
            "queue_records",
            "starling_cluster_store_queue_records",
            &[][..],
        ),
        ("queue_bytes", "starling_cluster_store_queue_bytes", &[][..]),
    ] {
        out.insert(name.to_owned(), metric_value(metrics, metric, labels));
    }
    out
}

async fn scrape(client: &reqwest::Client, node: &Node) -> Option<BTreeMap<String, f64>> {
    let text = node.metrics(client).await?;
    text.contains("starling_cluster_peer_state_entries")
        .then(|| gauges(&text))
}

/// Requests sent, answered 200, and otherwise (refused or failed: the restarted node is down
/// for a moment), per half of the run.
#[derive(Default)]
struct Load {
    ok: [AtomicU64; 2],
    failed: [AtomicU64; 2],
}

fn env_secs(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_and_per_peer_maps_stay_bounded_while_a_node_restarts() {
    let total = Duration::from_secs(env_secs("STARLING_SOAK_SECS").unwrap_or(60).max(20));
    let restart_every = Duration::from_secs(if total >= Duration::from_secs(120) {
        30
    } else {
        15
    });
    starling_providers::ensure_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    // Gossip forgets a dead process 5 s after judging it dead (1 h by default), so that the
    // maps can be seen to shrink back within the test.
    let config = dir.path().join("starling.toml");
    std::fs::write(
        &config,
        "[cluster]\ndead_node_grace_secs = 5\n\n\
         [[providers]]\nname = \"demo\"\nkind = \"demo\"\nmodels = [\"demo\"]\n",
    )
    .expect("config");
    let secret = starling_cluster::tls::generate_secret().expect("secret");
    let start = |id: &str, seeds: &[&str]| {
        tokio::task::block_in_place(|| {
            start_with_config(dir.path(), id, &secret, seeds, Some(&config))
        })
    };
    let n1 = start("n1", &[]);
    let n2 = start("n2", &[&n1.gossip]);
    let mut nodes = vec![n1, n2];
    nodes.push(start("n3", &[&nodes[0].gossip]));
    wait_for_live_members(&nodes[0], NODES).await;

    let client = reqwest::Client::new();
    let created = admin_post(
        &client,
        format!("{}/admin/v1/keys", nodes[0].http),
        ADMIN,
        json!({"name": "soak", "rpm": 1_000_000, "tpm": 1_000_000_000}),
    )
    .await;
    let key = created["key"].as_str().expect("secret").to_owned();
    let chat = json!({"model": "demo", "messages": [{"role": "user", "content": "soak"}]});
    for node in &nodes {
        wait_for("the key works on every node", async || {
            let r = client
                .post(format!("{}/v1/chat/completions", node.http))
                .bearer_auth(&key)
                .json(&chat)
                .send()
                .await
                .ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
    }

    // Steady load: four clients, each a request every 50 ms, over the three nodes in turn.
    let urls = Arc::new(std::sync::RwLock::new(
        nodes.iter().map(|n| n.http.clone()).collect::<Vec<_>>(),
    ));
    let load = Arc::new(Load::default());
    let began = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..4usize {
        let (urls, load, client, key, chat) = (
            urls.clone(),
            load.clone(),
            client.clone(),
            key.clone(),
            chat.clone(),
        );
        clients.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for turn in 0usize.. {
                tick.tick().await;
                let Some(url) = urls.read().ok().map(|u| u[(i + turn) % NODES].clone()) else {
                    return;
                };
                let ok = client
                    .post(format!("{url}/v1/chat/completions"))
                    .bearer_auth(&key)
                    .json(&chat)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                let half = usize::from(began.elapsed() >= total / 2);
                let counter = if ok { &load.ok } else { &load.failed };
                counter[half].fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    let mut samples: Vec<Sample> = Vec::new();
    let sample_all = async |nodes: &[Node], samples: &mut Vec<Sample>| {
        let secs = began.elapsed().as_secs_f64();
        for (i, node) in nodes.iter().enumerate() {
            if let (Some(rss_kib), Some(gauges)) = (node.rss_kib(), scrape(&client, node).await) {
                samples.push(Sample {
                    secs,
                    node: i,
                    rss_kib,
                    gauges,
                });
            }
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_restart = restart_every;
    let mut restarts = 0;
    while began.elapsed() < total {
        tick.tick().await;
        if began.elapsed() >= next_restart && began.elapsed() + Duration::from_secs(5) < total {
            next_restart += restart_every;
            restarts += 1;
            drop(nodes.pop());
            let seeds = [nodes[0].gossip.clone(), nodes[1].gossip.clone()];
            let seeds: Vec<&str> = seeds.iter().map(String::as_str).collect();
            let n3 = start("n3", &seeds);
            if let Ok(mut u) = urls.write() {
                u[2] = n3.http.clone();
            }
            nodes.push(n3);
        }
        sample_all(&nodes, &mut samples).await;
    }
    clients.abort_all();
    let load_secs = began.elapsed().as_secs_f64();

    // The restarts are over: every node's maps come back to its live peers.
    let settle = Instant::now();
    let settled = wait_for_settled(&client, &nodes).await;
    let settle_secs = settle.elapsed().as_secs_f64();
    sample_all(&nodes, &mut samples).await;

    report(
        &samples,
        &load,
        restarts,
        restart_every,
        load_secs,
        settle_secs,
    );
    if let Err(unsettled) = settled {
        panic!("per-peer maps did not come back to the live peers: {unsettled:?}");
    }
    for s in &samples {
        for map in MAPS {
            assert!(
                s.gauges[map] <= RUNNING_BOUND,
                "node {} held {} entries in {map} at {:.0} s (bound {RUNNING_BOUND})",
                s.node + 1,
                s.gauges[map],
                s.secs
            );
        }
    }
    for half in 0..2 {
        assert!(
            load.ok[half].load(Ordering::Relaxed) > 0,
            "no request was served in half {half} of the run"
        );
    }
    // The two nodes that ran throughout: their peak in the second half of the load against
    // their peak in the first.
    let half = load_secs / 2.0;
    for node in 0..2 {
        let peak = |second: bool| {
            samples
                .iter()
                .filter(|s| s.node == node && s.secs < load_secs && (s.secs >= half) == second)
                .map(|s| s.rss_kib)
                .max()
                .unwrap_or(0)
        };
        let (first, second) = (peak(false), peak(true));
        let margin = (first / 2).max(32 << 10);
        assert!(
            second <= first + margin,
            "node {} grew from a peak of {first} KiB in the first half to {second} KiB in the second",
            node + 1
        );
    }
}

/// Waits until every node's per-peer maps hold at most one entry per live peer and gossip has
/// forgotten every dead process, with a deadline long enough for that to happen after the last
/// restart (judging the process dead, 5 s of grace, the connection cache's 30 s idle time);
/// the last gauges read if it never happens.
async fn wait_for_settled(
    client: &reqwest::Client,
    nodes: &[Node],
) -> Result<(), Vec<BTreeMap<String, f64>>> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut last = Vec::new();
        for node in nodes {
            last.extend(scrape(client, node).await);
        }
        let settled = last.len() == nodes.len()
            && last
                .iter()
                .all(|g| MAPS.iter().all(|m| g[*m] <= SETTLED_BOUND) && g["members_dead"] == 0.0);
        if settled {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(last);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Prints the run's figures (for docs/benchmarks.md).
fn report(
    samples: &[Sample],
    load: &Load,
    restarts: usize,
    restart_every: Duration,
    load_secs: f64,
    settle_secs: f64,
) {
    let sum = |c: &[AtomicU64; 2]| c.iter().map(|c| c.load(Ordering::Relaxed)).sum::<u64>();
    eprintln!(
        "soak: {load_secs:.0} s of load, {restarts} restarts of n3 (every {} s), {} requests \
         answered 200, {} not; maps settled {settle_secs:.0} s after the load stopped",
        restart_every.as_secs(),
        sum(&load.ok),
        sum(&load.failed)
    );
    let half = load_secs / 2.0;
    eprintln!(
        "| node | phase | RSS min–max (MiB) | acked | last_sync | pulls | endpoint peers | rate reports | connections | members live/dead | queue records (max) |"
    );
    eprintln!("|---|---|---|---|---|---|---|---|---|---|---|");
    for node in 0..NODES {
        for (phase, range) in [
            ("first half", 0.0..half),
            ("second half", half..load_secs),
            ("settled", load_secs..f64::MAX),
        ] {
            let of: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.node == node && range.contains(&s.secs))
                .collect();
            if of.is_empty() {
                continue;
            }
            let max = |g: &str| {
                of.iter()
                    .map(|s| s.gauges.get(g).copied().unwrap_or(0.0))
                    .fold(0.0, f64::max)
            };
            let rss = |f: fn(u64, u64) -> u64| {
                of.iter().map(|s| s.rss_kib).reduce(f).unwrap_or(0) as f64 / 1024.0
            };
            eprintln!(
                "| n{} | {phase} | {:.1}–{:.1} | {} | {} | {} | {} | {} | {} | {}/{} | {} |",
                node + 1,
                rss(u64::min),
                rss(u64::max),
                max("acked_versions"),
                max("last_sync"),
                max("pulls_in_flight"),
                max("endpoint_peers"),
                max("rate_reports"),
                max("connections"),
                max("members_live"),
                max("members_dead"),
                max("queue_records"),
            );
        }
    }
}
