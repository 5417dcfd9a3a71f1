//! Shared helpers for the transport tests: nodes on 127.0.0.1 with OS-assigned ports, waiting
//! on conditions with deadlines, and temporary directories.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chitchat::ChitchatMessage;
use chitchat::transport::{Socket, Transport};
use starling_cluster::tls::{ClusterCredentials, ClusterSecret, generate_secret};
use starling_cluster::transport::{
    ClusterEndpoint, EndpointConfig, Inbound, Membership, MembershipConfig, MessageKind,
    PartitionTable, QuicTransport, spawn_membership,
};
use tokio::sync::mpsc;

/// Cluster id used by every test cluster.
pub const CLUSTER_ID: &str = "starling-test";

/// A fresh random secret.
pub fn secret() -> ClusterSecret {
    ClusterSecret::parse(&generate_secret().unwrap()).unwrap()
}

/// `127.0.0.1:0`.
pub fn any_local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// An endpoint on 127.0.0.1 with an OS-assigned port.
pub fn endpoint(creds: &ClusterCredentials, config: EndpointConfig) -> ClusterEndpoint {
    ClusterEndpoint::bind(any_local(), creds, config).unwrap()
}

/// Endpoint config for tests: short timeouts, optional partition table.
pub fn test_config(partition: Option<Arc<PartitionTable>>) -> EndpointConfig {
    EndpointConfig {
        read_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_secs(1),
        reconnect_backoff_min: Duration::from_millis(20),
        reconnect_backoff_max: Duration::from_millis(200),
        partition,
        ..EndpointConfig::default()
    }
}

/// A shared-secret node: credentials and a bound endpoint.
pub fn secret_node(
    secret: &ClusterSecret,
    node_id: &str,
    config: EndpointConfig,
) -> ClusterEndpoint {
    let creds = ClusterCredentials::from_secret(secret, node_id).unwrap();
    endpoint(&creds, config)
}

/// Starts chitchat on `ep` at a 100 ms gossip interval.
pub async fn member(ep: &ClusterEndpoint, node_id: &str, seeds: &[SocketAddr]) -> Membership {
    let mut config = MembershipConfig::new(node_id, 1, ep.local_addr(), CLUSTER_ID);
    config.seeds = seeds.iter().map(ToString::to_string).collect();
    config.gossip_interval = Duration::from_millis(100);
    spawn_membership(ep, config, vec![("role".into(), "test".into())])
        .await
        .unwrap()
}

/// Polls `cond` every 10 ms until it holds; panics with `what` after `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Number of live nodes (self included) a member sees.
pub async fn live_count(m: &Membership) -> usize {
    m.chitchat().lock().await.live_nodes().count()
}

/// Whether `m` sees exactly `n` live nodes.
pub async fn live_count_is(m: &Membership, n: usize) -> bool {
    live_count(m).await == n
}

/// The value of `key` published by `node_id`, as `m` sees it.
pub async fn value_of(m: &Membership, node_id: &str, key: &str) -> Option<String> {
    let chitchat = m.chitchat();
    let guard = chitchat.lock().await;
    guard
        .node_states()
        .iter()
        .find(|(id, _)| &*id.node_id == node_id)
        .and_then(|(_, state)| state.get(key).map(str::to_string))
}

/// Node ids `m` knows about (live or not), self included.
pub async fn known_ids(m: &Membership) -> Vec<String> {
    let chitchat = m.chitchat();
    let guard = chitchat.lock().await;
    guard
        .node_states()
        .keys()
        .map(|id| id.node_id.to_string())
        .collect()
}

/// Sets `key` on `m`'s own state.
pub async fn set(m: &Membership, key: &str, value: &str) {
    m.chitchat().lock().await.self_node_state().set(key, value);
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "starling-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How long a message may take to arrive on loopback before a test gives up on it.
pub const DELIVERY_LIMIT: Duration = Duration::from_secs(10);

/// Sends `payload` of `kind` from `from` to `to`, and returns the message that arrives next in
/// `inbox` (the receiver's subscription), failing the test if none does within
/// [`DELIVERY_LIMIT`].
pub async fn deliver(
    from: &ClusterEndpoint,
    to: SocketAddr,
    kind: MessageKind,
    payload: Bytes,
    inbox: &mut mpsc::Receiver<Inbound>,
) -> Inbound {
    from.send(to, kind, payload).await.expect("sent");
    tokio::time::timeout(DELIVERY_LIMIT, inbox.recv())
        .await
        .expect("delivered in time")
        .expect("inbox open")
}

/// Sends a valid gossip message from `peer`'s own chitchat socket to `to`, and returns what
/// `socket` (the receiver's) yields next, within [`DELIVERY_LIMIT`]: the check that a gossip
/// receiver still works after whatever a test threw at it.
pub async fn gossip_still_flows(
    peer: &ClusterEndpoint,
    to: SocketAddr,
    socket: &mut Box<dyn Socket>,
) -> (SocketAddr, ChitchatMessage) {
    let transport = QuicTransport::new(peer.clone());
    let mut peer_socket = transport.open(peer.local_addr()).await.expect("socket");
    peer_socket
        .send(to, ChitchatMessage::BadCluster)
        .await
        .expect("sent");
    let (from, msg) = tokio::time::timeout(DELIVERY_LIMIT, socket.recv())
        .await
        .expect("delivered in time")
        .expect("socket open");
    assert_eq!(msg, ChitchatMessage::BadCluster);
    (from, msg)
}
