//! One run: set up the hosts, start the nodes and the mock, run the workloads under the
//! nemesis, heal, collect the evidence, check it, and write the report.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;
use starling_bench::{MockConfig, MockServer};

use crate::check::{self, Bounds, Evidence, NodeFinal};
use crate::client::Clients;
use crate::history::{History, Outcome, now_ms};
use crate::keys::KeyBook;
use crate::nemesis::{self, Cluster, Nemesis};
use crate::net::Net;
use crate::nodes::{Node, NodeSetup};
use crate::report;
use crate::workload::{self, Ctx, Spread, Workload, WorkloadConfig};

/// What to run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Number of nodes.
    pub nodes: usize,
    /// How long the workloads run under the nemesis.
    pub time_limit: Duration,
    /// Seed of every random choice.
    pub seed: u64,
    /// Nemeses to draw from.
    pub nemeses: Vec<Nemesis>,
    /// Run two faults of different classes at once.
    pub combine: bool,
    /// Workloads.
    pub workloads: Vec<Workload>,
    /// How clients spread over nodes.
    pub spread: Spread,
    /// Where the report goes.
    pub report_dir: PathBuf,
    /// The `starling` binary.
    pub binary: PathBuf,
    /// Start the nodes with `governance.unsafe_skip_rights_check` (checkers must fail).
    pub unsafe_skip_rights: bool,
    /// Each budget-workload key's amount, micro-dollars.
    pub budget_micros: u64,
    /// Replicas must be identical within this after the heal and the last write, ms.
    pub convergence_bound_ms: u64,
    /// End the schedule with this fault (healed at the end of the time limit).
    pub end_with: Option<Nemesis>,
}

/// The nodes' `governance.stale_after_ms` in runs: short, so fail-closed shows in a short run.
const STALE_AFTER_MS: u64 = 3_000;
/// `cluster.snapshot_every` of the nodes when `truncate-snapshot` runs: small, so that nodes
/// have a snapshot to damage within seconds rather than after 10 000 deltas (the default), and
/// restarts recover from snapshots more often.
const SNAPSHOT_EVERY: u64 = 500;
/// How long the final phase waits for digests to agree.
const CONVERGENCE_DEADLINE: Duration = Duration::from_secs(90);
/// gpt-4o prices, micro-dollars per million tokens (the gateway's and the mock's table).
const INPUT_PRICE: u64 = 2_500_000;
const OUTPUT_PRICE: u64 = 10_000_000;

/// Runs and reports; `Ok(true)` when every checker passed.
pub async fn run(spec: RunSpec, stop: Arc<AtomicBool>) -> anyhow::Result<bool> {
    std::fs::create_dir_all(&spec.report_dir)
        .with_context(|| format!("creating {}", spec.report_dir.display()))?;
    let binary = std::fs::canonicalize(&spec.binary)
        .with_context(|| format!("the starling binary {}", spec.binary.display()))?;
    let nodes = spec.nodes;
    let net = tokio::task::spawn_blocking(move || Net::create(nodes))
        .await?
        .context("creating the test network (this needs root, iproute2 and nftables)")?;
    tracing::info!(slot = net.slot(), work = %net.work_dir().display(), "network ready");
    let listener = tokio::net::TcpListener::bind((net.bridge_ip(), 0))
        .await
        .context("binding the mock provider on the bridge")?;
    let mock = MockServer::start(
        listener,
        MockConfig {
            latency_ms: 20,
            default_output_tokens: 16,
            ..MockConfig::default()
        },
    )
    .await;
    let setup = write_node_files(&net, &spec, &binary, mock.addr())?;
    let mut members: Vec<Node> = net
        .hosts()
        .iter()
        .map(|h| Node::new(h.index, h.ip, net.work_dir()))
        .collect();
    if setup.tmpfs {
        // A disk that can fill up: each data dir on a small file system of its own.
        for node in &members {
            crate::net::mount_tmpfs(node.data_dir(), crate::storage::TMPFS_BYTES)?;
        }
    }
    let seeds: Vec<String> = members.iter().map(Node::gossip).collect();
    for node in &mut members {
        let own = node.gossip();
        let others: Vec<String> = seeds.iter().filter(|s| **s != own).cloned().collect();
        node.start(&net, &setup, &others)?;
    }
    let urls: Vec<String> = members.iter().map(Node::url).collect();
    let cluster = Arc::new(Mutex::new(Cluster {
        net,
        nodes: members,
        setup,
        timeline: Vec::new(),
        watches: std::collections::HashMap::new(),
    }));
    let guard = Teardown(cluster.clone());
    let history = Arc::new(History::create(&spec.report_dir.join("history.jsonl"))?);
    let clients = Arc::new(Clients::new(urls, history.clone()));
    wait_for_members(&clients, nodes).await?;
    let workload_stop = Arc::new(AtomicBool::new(false));
    let ctx = Arc::new(Ctx {
        clients: clients.clone(),
        keys: Arc::new(KeyBook::default()),
        stop: workload_stop.clone(),
        config: WorkloadConfig {
            budget_micros: spec.budget_micros,
            rpm: 300,
            tpm: 15_000,
            overload: 4.0,
            budget_clients: 12,
            spread: spec.spread,
            periodic_budget: spec.nemeses.contains(&Nemesis::Clock),
        },
        seed: spec.seed,
    });
    let probe = workload::probe_key(&ctx)
        .await
        .context("creating the liveness probe key")?;
    let started_ms = now_ms();
    let mut tasks = workload::spawn(&ctx, &spec.workloads);
    let caps = lock(&cluster).capabilities();
    if !caps.netem {
        tracing::warn!(
            "this kernel has no sch_netem: the netem nemesis drops packets with nftables only (no delay, reordering or duplication)"
        );
    }
    let steps = nemesis::plan(
        &spec.nemeses,
        spec.end_with,
        nodes,
        spec.time_limit,
        spec.combine,
        caps,
        &mut StdRng::seed_from_u64(spec.seed),
    );
    let nemesis_cluster = cluster.clone();
    let nemesis_stop = stop.clone();
    let nemesis = std::thread::spawn(move || nemesis::run(&nemesis_cluster, &steps, &nemesis_stop));
    // The fault phase lasts the time limit; the schedule ends within it.
    let deadline = tokio::time::Instant::now() + spec.time_limit;
    while tokio::time::Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let nemesis_result = tokio::task::spawn_blocking(move || nemesis.join()).await?;
    if stop.load(Ordering::Relaxed) {
        workload_stop.store(true, Ordering::Relaxed);
        bail!("interrupted");
    }
    match nemesis_result {
        Ok(r) => r.context("the nemesis failed")?,
        Err(_) => bail!("the nemesis thread panicked"),
    }
    let heal_cluster = cluster.clone();
    tokio::task::spawn_blocking(move || lock(&heal_cluster).heal_all())
        .await?
        .context("the final heal")?;
    let healed_ms = now_ms();
    tracing::info!("healed; probing liveness");
    let liveness = probe_liveness(&clients, &probe, healed_ms).await;
    workload_stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    let traffic_end_ms = now_ms();
    tracing::info!("traffic stopped; waiting for convergence");
    let keys = ctx.keys.all();
    // Nodes keep writing for a while after the traffic stops (idle refunds of budget rights,
    // `idle_refund_ms` after each pool's last use): read the finals until they were taken from
    // one state everywhere. The convergence figure is when the digests first agreed: the
    // replicas were identical then. What the housekeeping writes afterwards is new state, whose
    // convergence each later round checks (and never agreeing again is a violation); timing
    // those rounds would time the idle refunds, not replication.
    let mut converged_ms = None;
    let mut finals = Vec::new();
    for round in 0..10 {
        let agreed = wait_for_convergence(&clients, nodes, &spec.report_dir).await;
        converged_ms = if round == 0 {
            agreed
        } else {
            agreed.and(converged_ms)
        };
        finals = collect_finals(&clients, nodes, &keys).await;
        let first = finals.first().and_then(|f| f.digest.clone());
        if converged_ms.is_none() || finals.iter().all(|f| f.digest == first) {
            if let Some(at) = agreed {
                tracing::info!(
                    first_agreed_ms = converged_ms.map(|c| c.saturating_sub(traffic_end_ms)),
                    settled_ms = at.saturating_sub(traffic_end_ms),
                    "digests agree (times after the last client operation)"
                );
            }
            break;
        }
        tracing::info!("the state changed while it was read; reading again");
    }
    let ops = history.finish()?;
    let timeline = lock(&cluster).timeline.clone();
    let evidence = Evidence {
        nodes,
        ops,
        ledger: mock.ledger(),
        keys,
        timeline,
        healed_ms,
        traffic_end_ms,
        converged_ms,
        finals,
        liveness,
        bounds: Bounds {
            stale_after_ms: STALE_AFTER_MS,
            revoke_ms: 1_000,
            // Reconnection back-off (2 s), an anti-entropy round over every peer (500 ms
            // each), and the revocation bound.
            catchup_ms: 2_000 + (nodes as u64 - 1) * 500 + 1_000,
            rate_tolerance: 0.02,
            liveness_ms: 20_000,
            convergence_ms: spec.convergence_bound_ms,
            hlc_forward_ms: 30_000,
            visibility_ms: 1_000,
            max_reservation_micros: (200 * INPUT_PRICE + workload::MAX_TOKENS * OUTPUT_PRICE)
                .div_ceil(1_000_000),
        },
    };
    let verdicts = check::check_all(&evidence);
    let logs: Vec<PathBuf> = lock(&cluster)
        .nodes
        .iter()
        .map(|n| n.log_path().to_owned())
        .collect();
    // The logs live in the work dir, which the teardown removes.
    report::copy_logs(&spec.report_dir, &logs)?;
    save_metrics(&clients, &spec.report_dir.join("logs")).await;
    drop(guard);
    report::write(&spec, &evidence, &verdicts, started_ms)?;
    Ok(verdicts.iter().all(|v| v.ok))
}

/// Tears the cluster down when the run ends, however it ends.
struct Teardown(Arc<Mutex<Cluster>>);

impl Drop for Teardown {
    fn drop(&mut self) {
        let mut c = lock(&self.0);
        for node in &mut c.nodes {
            node.resume();
            node.kill();
        }
        if let Err(e) = c.net.teardown() {
            tracing::warn!("tearing the test network down: {e}");
        }
    }
}

fn lock(cluster: &Mutex<Cluster>) -> std::sync::MutexGuard<'_, Cluster> {
    cluster.lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes the provider key and the node configuration into the work dir.
fn write_node_files(
    net: &Net,
    spec: &RunSpec,
    binary: &Path,
    mock: std::net::SocketAddr,
) -> anyhow::Result<NodeSetup> {
    let dir = net.work_dir();
    let key_file = dir.join("provider.key");
    std::fs::write(&key_file, "sk-jepsen-upstream\n")?;
    let config = dir.join("starling.toml");
    let mut text = format!(
        "[[providers]]\nname = \"mock\"\nkind = \"openai\"\nbase_url = \"http://{mock}/v1\"\napi_key_file = \"{}\"\nmodels = [\"gpt-*\"]\n\n\
         [governance]\nstale_after_ms = {STALE_AFTER_MS}\nmin_chunk_micros = 1000\nidle_refund_ms = 5000\nunsafe_skip_rights_check = {}\n",
        key_file.display(),
        spec.unsafe_skip_rights
    );
    if spec.nemeses.contains(&Nemesis::TruncateSnapshot) {
        text.push_str(&format!("\n[cluster]\nsnapshot_every = {SNAPSHOT_EVERY}\n"));
    }
    std::fs::write(&config, text)?;
    Ok(NodeSetup {
        binary: binary.to_owned(),
        config,
        // A node that skips the rights check starts only with a test secret.
        secret: if spec.unsafe_skip_rights {
            starling_cluster::tls::generate_test_secret()?
        } else {
            starling_cluster::tls::generate_secret()?
        },
        faketime: spec.nemeses.contains(&Nemesis::Clock),
        tmpfs: spec.nemeses.contains(&Nemesis::DiskFull),
    })
}

/// Waits until every node sees every other as live.
async fn wait_for_members(clients: &Clients, nodes: usize) -> anyhow::Result<()> {
    let http = Clients::http();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut all = true;
        for node in 0..nodes {
            let live = clients
                .admin_get(&http, node, "/admin/v1/cluster")
                .await
                .map_or(0, |v| starling_bench::targets::live_members(&v));
            all &= live == nodes;
        }
        if all {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the nodes did not all see each other within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends probe requests to every node until each admits one; the time since the heal.
async fn probe_liveness(
    clients: &Clients,
    probe: &crate::keys::KeyInfo,
    healed_ms: u64,
) -> Vec<Option<u64>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let probes = (0..clients.urls.len()).map(|node| async move {
        let http = Clients::http();
        while tokio::time::Instant::now() < deadline {
            let op = clients
                .chat(
                    &http,
                    "probe",
                    900,
                    node,
                    &probe.id,
                    &probe.secrets[0],
                    0,
                    workload::MAX_TOKENS,
                )
                .await;
            if op.outcome == Outcome::Ok {
                return Some(op.complete_ms.saturating_sub(healed_ms));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    });
    futures::future::join_all(probes).await
}

/// Polls digests until every node reports the same one; when that was first seen. (Nodes
/// keep some housekeeping writes going when idle, such as refunds of idle budget pools, so
/// the state is not required to stay put: the finals are re-read if it moved meanwhile.)
async fn wait_for_convergence(clients: &Clients, nodes: usize, report: &Path) -> Option<u64> {
    let http = Clients::http();
    let deadline = tokio::time::Instant::now() + CONVERGENCE_DEADLINE;
    while tokio::time::Instant::now() < deadline {
        let mut digests = Vec::new();
        for node in 0..nodes {
            digests.push(
                clients
                    .admin_get(&http, node, "/admin/v1/state/digest")
                    .await
                    .and_then(|v| v["digest"].as_str().map(str::to_owned)),
            );
        }
        let first = digests.first().cloned().flatten();
        if first.is_some() && digests.iter().all(|d| *d == first) {
            return Some(now_ms());
        }
        tracing::debug!(?digests, "digests differ");
        if tracing::enabled!(tracing::Level::TRACE) {
            save_dumps(clients, &http, nodes, report).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Saves every node's dump under `convergence-dumps/` in the report (at trace level: for
/// finding what holds replicas apart when digests take long to agree).
async fn save_dumps(clients: &Clients, http: &reqwest::Client, nodes: usize, report: &Path) {
    let dir = report.join("convergence-dumps");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::warn!("cannot create {}: {e}", dir.display());
        return;
    }
    for node in 0..nodes {
        if let Some(dump) = clients.admin_get(http, node, "/admin/v1/state/dump").await {
            let file = dir.join(format!("{}-n{}.json", now_ms(), node + 1));
            if let Err(e) = std::fs::write(&file, dump.to_string()) {
                tracing::warn!("cannot write {}: {e}", file.display());
            }
        }
    }
}

/// Every node's dump, usage figures and key records.
async fn collect_finals(
    clients: &Clients,
    nodes: usize,
    keys: &[crate::keys::KeyInfo],
) -> Vec<NodeFinal> {
    let http = Clients::http();
    let mut finals = Vec::new();
    for node in 0..nodes {
        let mut f = NodeFinal {
            node,
            ..NodeFinal::default()
        };
        if let Some(dump) = clients.admin_get(&http, node, "/admin/v1/state/dump").await {
            f.digest = dump["digest"].as_str().map(str::to_owned);
            f.rows = dump["rows"]
                .as_array()
                .map(|rows| rows.iter().map(|r| r.to_string()).collect());
        }
        for key in keys {
            let path = format!("/admin/v1/usage?scope=key:{}&period=total", key.id);
            if let Some(spend) = clients
                .admin_get(&http, node, &path)
                .await
                .and_then(|u| workload::usd_to_micros(&u["periods"]["total"]["spend_usd"]))
            {
                f.spend.insert(key.id.clone(), spend);
            }
            if let Some(record) = clients
                .admin_get(&http, node, &format!("/admin/v1/keys/{}", key.id))
                .await
            {
                f.key_records.insert(key.id.clone(), record);
            }
        }
        finals.push(f);
    }
    finals
}

/// Saves every node's `/metrics` beside its log (replication rounds and failures, fail-closed
/// state, ...), for digging into a violation.
async fn save_metrics(clients: &Clients, dir: &Path) {
    let http = Clients::http();
    for (node, url) in clients.urls.iter().enumerate() {
        let text = match http.get(format!("{url}/metrics")).send().await {
            Ok(resp) => resp.text().await.unwrap_or_default(),
            Err(e) => format!("# unavailable: {e}\n"),
        };
        // A missing metrics file only makes a report less complete.
        let _ = std::fs::write(dir.join(format!("n{}.metrics", node + 1)), text);
    }
}

/// The JSON summary of a run's parameters.
pub fn describe(spec: &RunSpec) -> serde_json::Value {
    json!({
        "nodes": spec.nodes,
        "time_limit_s": spec.time_limit.as_secs(),
        "seed": spec.seed,
        "nemeses": spec.nemeses,
        "combine": spec.combine,
        "workloads": spec.workloads,
        "spread": spec.spread,
        "unsafe_skip_rights": spec.unsafe_skip_rights,
        "budget_micros": spec.budget_micros,
        "convergence_bound_ms": spec.convergence_bound_ms,
    })
}
