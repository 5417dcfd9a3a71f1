//! Real `starling` processes on loopback, for the tests that run a cluster of them: start one
//! (with its data dir kept across restarts), wait for membership, read its memory.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{ADMIN, wait_for};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_starling");

/// A running node; killed (SIGKILL) and reaped when dropped.
pub struct Node {
    pub child: Child,
    /// `http://ip:port` of its API (and admin API, and `/metrics`).
    pub http: String,
    /// Its gossip and sync address, for seeds.
    pub gossip: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// The node's `/metrics` text, if it answers.
    pub async fn metrics(&self, client: &reqwest::Client) -> Option<String> {
        let response = client.get(format!("{}/metrics", self.http)).send().await;
        response.ok()?.text().await.ok()
    }

    /// Resident memory of the process, in KiB (`VmRSS` in `/proc/PID/status`), if it runs.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

/// Starts node `id` with its data dir under `dir`, without a config file.
pub fn start(dir: &Path, id: &str, secret: &str, seeds: &[&str]) -> Node {
    start_with_config(dir, id, secret, seeds, None)
}

/// Starts node `id` with its data dir under `dir` (kept across restarts), its log in
/// `dir/ID.log`, and an optional config file. Every start binds new ports, so a restarted
/// node has a new gossip address. Waits until it is ready.
pub fn start_with_config(
    dir: &Path,
    id: &str,
    secret: &str,
    seeds: &[&str],
    config: Option<&Path>,
) -> Node {
    let ready = dir.join(format!("{id}.ready"));
    // A restarted node must not be mistaken for ready by its predecessor's file.
    let _ = std::fs::remove_file(&ready);
    let mut cmd = Command::new(BIN);
    if let Some(config) = config {
        cmd.arg("serve").arg("--config").arg(config);
    } else {
        cmd.arg("serve");
    }
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--node-id",
        id,
        "--gossip-listen",
        "127.0.0.1:0",
    ])
    .arg("--data-dir")
    .arg(dir.join(id))
    .arg("--ready-file")
    .arg(&ready)
    .env("STARLING_CLUSTER_SECRET", secret)
    .env("STARLING_ADMIN_TOKEN", ADMIN)
    .env("RUST_LOG", "warn")
    .stdout(Stdio::null())
    .stderr(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{id}.log")))
            .expect("log"),
    );
    if !seeds.is_empty() {
        cmd.arg("--seeds").arg(seeds.join(","));
    }
    let mut child = cmd.spawn().expect("spawns");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&ready)
            && let Ok(v) = serde_json::from_str::<Value>(&text)
        {
            return Node {
                http: format!("http://{}", v["http"].as_str().expect("http")),
                gossip: v["gossip"].as_str().expect("gossip").to_owned(),
                child,
            };
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.join(format!("{id}.log"))).unwrap_or_default();
            panic!("{id} exited early ({status}): {log}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} never became ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Three nodes of one cluster, seeded from the first.
pub fn start_three(dir: &Path) -> [Node; 3] {
    starling_providers::ensure_crypto_provider();
    let secret = starling_cluster::tls::generate_secret().expect("secret");
    let n1 = start(dir, "n1", &secret, &[]);
    let n2 = start(dir, "n2", &secret, &[&n1.gossip]);
    let n3 = start(dir, "n3", &secret, &[&n1.gossip]);
    [n1, n2, n3]
}

/// Waits until `node` sees `n` live members.
pub async fn wait_for_live_members(node: &Node, n: usize) {
    let client = reqwest::Client::new();
    wait_for("live members", async || {
        let body: Value = client
            .get(format!("{}/admin/v1/cluster", node.http))
            .bearer_auth(ADMIN)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let live = body["members"]
            .as_array()?
            .iter()
            .filter(|m| m["live"] == true)
            .count();
        (live == n).then_some(())
    })
    .await;
}
