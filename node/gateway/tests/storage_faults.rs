//! A node whose data dir fills up: its store fails, and from then on it takes no writes
//! (nothing is applied in memory that is not on disk), answers 503 on `/readyz` saying why,
//! and shows it in `/metrics`; restarted once the disk has room, it begins a fresh incarnation
//! with what was on disk. The data dir is a small tmpfs, so the test needs root (as
//! `scripts/test.sh` runs in CI); as another user it says it is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use reqwest::Method;
use starling::admin::AdminState;
use starling::cluster::Cluster;
use starling::config::Config;
use starling::config::secrets::Secret;
use starling::proxy::Gateway;
use starling::server::RunningServer;
use starling_cluster::runtime::{ClusterConfig, ClusterNode};
use starling_cluster::store::IncarnationStart;
use starling_cluster::tls::{ClusterCredentials, ClusterSecret, generate_secret};
use starling_governance::model::Entry;
use tokio::net::TcpListener;

mod common;
use common::{ADMIN, is_root};

/// A tmpfs mounted for the test's lifetime.
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}")])
            .arg("starling-test")
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mount a tmpfs at {}",
            dir.path().display()
        );
        Self {
            path: dir.path().to_owned(),
            _dir: dir,
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Remounts the tmpfs with room for `bytes`: the disk is fixed.
    fn grow(&self, bytes: usize) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={bytes}")])
            .arg(&self.path)
            .status()
            .expect("mount runs");
        assert!(status.success(), "remount {}", self.path.display());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A lone node whose data dir is on `disk`.
fn solo_config(disk: &SmallDisk, secret: &ClusterSecret) -> ClusterConfig {
    let credentials = ClusterCredentials::from_secret(secret, "solo").expect("credentials");
    ClusterConfig::new(
        "solo",
        "127.0.0.1:0".parse().expect("addr"),
        disk.path().join("data"),
        credentials,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_writes_and_takes_the_node_out_of_rotation() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a tmpfs needs root (scripts/test.sh runs as root in CI)");
        return;
    }
    starling_providers::ensure_crypto_provider();
    let disk = SmallDisk::mount(4 << 20);
    let secret = ClusterSecret::parse(&generate_secret().expect("secret")).expect("parse");
    let cluster: Cluster = Arc::new(
        ClusterNode::start(solo_config(&disk, &secret))
            .await
            .expect("cluster"),
    );
    let gateway =
        Arc::new(Gateway::from_config(Config::embedded_default().expect("default")).expect("gw"));
    let admin = AdminState {
        token: Some(Secret::new(ADMIN)),
        cluster: Some(cluster.clone()),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let server = RunningServer::start_with_admin(gateway, listener, None, admin).expect("starts");
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::new();
    let put = |id: String, body: String| {
        client
            .request(Method::PUT, format!("{base}/admin/v1/catalog/{id}"))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let ready = async || {
        let r = client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .expect("answer");
        (r.status().as_u16(), r.text().await.expect("text"))
    };
    assert_eq!(ready().await.0, 200);
    let created: serde_json::Value = common::admin_post(
        &client,
        format!("{base}/admin/v1/keys"),
        ADMIN,
        serde_json::json!({"name": "on a full disk"}),
    )
    .await;
    let key = created["key"].as_str().expect("secret").to_owned();
    let chat = async || {
        client
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&serde_json::json!({"model": "starling-demo", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .expect("answer")
    };
    assert_eq!(chat().await.status(), 200);

    // 256 KiB documents until the disk is full: a 4 MiB tmpfs holds at most a few of them
    // (each is logged, and snapshots copy the state).
    let doc = format!("\"{}\"", "x".repeat(256 << 10));
    let mut written = 0;
    let refused = loop {
        assert!(
            written < 64,
            "a 4 MiB disk took {written} documents of 256 KiB"
        );
        let r = put(format!("doc-{written}"), doc.clone())
            .await
            .expect("answer");
        if !r.status().is_success() {
            break r;
        }
        written += 1;
    };
    assert_eq!(refused.status(), 503);
    let body: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["type"], "storage_error", "{body}");
    let reason = cluster.store_failure().expect("the store says it failed");

    // Out of rotation, saying why, and visible in the metrics.
    let (status, text) = ready().await;
    assert_eq!(status, 503);
    assert!(text.contains("store failed"), "{text}");
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("text");
    assert_eq!(
        common::metric_value(&metrics, "starling_cluster_store_failed", &[]),
        1.0,
        "{reason}"
    );

    // Requests are refused too: their usage could be neither recorded nor replicated.
    let r = chat().await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.headers()
            .get("x-starling-error-code")
            .and_then(|v| v.to_str().ok()),
        Some("store_failed")
    );

    // A small write now is refused before it is applied: nothing lives in memory only.
    let r = put("after".into(), "{}".into()).await.expect("answer");
    assert_eq!(r.status(), 503);
    assert!(
        !matches!(cluster.catalog_get("after"), Some(Entry::Doc(_))),
        "a write the disk refused was applied in memory"
    );
    server.shutdown(std::time::Duration::from_millis(200)).await;

    // The disk is fixed (grown) and the node restarted on its data dir: rows it applied while
    // its store was failing may have reached a peer but not its disk, so it begins a fresh
    // incarnation, with everything that was on disk read back and its old files set aside.
    let first_life = cluster.writer().clone();
    disk.grow(64 << 20);
    let restarted: ClusterNode<starling::cluster::CatalogDoc> =
        ClusterNode::start(solo_config(&disk, &secret))
            .await
            .expect("restarts");
    assert_eq!(restarted.incarnation_start(), IncarnationStart::StoreFailed);
    assert_ne!(restarted.writer(), &first_life);
    assert!(restarted.store_failure().is_none());
    for i in 0..written {
        assert!(
            restarted.catalog_get(&format!("doc-{i}")).is_some(),
            "acknowledged doc-{i} was lost"
        );
    }
    restarted
        .catalog_put("after-restart", Entry::Doc("{\"ok\":true}".into()))
        .await
        .expect("writes again");
    let set_aside = std::fs::read_dir(disk.path().join("data"))
        .expect("data dir")
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().starts_with("failed-"));
    assert!(set_aside, "the failed life's files are kept aside");
    restarted.shutdown().await;
}
