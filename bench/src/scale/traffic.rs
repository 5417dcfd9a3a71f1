//! Replication bytes sent, by message kind, and bandwidth over a window.

use std::time::{Duration, Instant};

use serde::Serialize;
use starling_cluster::runtime::{SYNC_PULL, SYNC_PUSH};
use starling_cluster::transport::MessageKind;

use super::cluster::BenchCluster;

/// The kinds measured: gossip (chitchat membership), anti-entropy pulls (requests and their
/// replies, each counted by its sender) and pushes (eager deltas and the push half of an
/// anti-entropy exchange).
const KINDS: [MessageKind; 3] = [MessageKind::GOSSIP, SYNC_PULL, SYNC_PUSH];

/// Bytes sent per node per second over a window, averaged over the nodes. Bytes are the
/// transport's frames (header and payload) of each message kind; QUIC, TLS and UDP overhead,
/// handshakes and keep-alives are not included.
#[derive(Debug, Clone, Serialize)]
pub struct Bandwidth {
    /// Length of the window, in seconds.
    pub window_s: f64,
    /// Gossip bytes per node per second.
    pub gossip_bps: f64,
    /// Anti-entropy pull bytes (requests and replies) per node per second.
    pub sync_pull_bps: f64,
    /// Push bytes (eager deltas, anti-entropy push-backs) per node per second.
    pub sync_push_bps: f64,
    /// The three together, per node per second.
    pub total_bps: f64,
    /// The busiest node's total, per second.
    pub max_node_total_bps: f64,
    /// Connections opened and messages lost meanwhile, over all nodes.
    pub transport: TransportEvents,
}

/// Transport events that explain slow replication, summed over the nodes: a dropped push is
/// not lost for good (anti-entropy repairs it) but turns a round trip into up to a few
/// anti-entropy intervals, and a send to a peer without an open connection first pays a QUIC
/// and TLS handshake.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TransportEvents {
    /// Outbound connections established.
    pub connections_opened: u64,
    /// Fire-and-forget sends (eager pushes) dropped before trying: too many in flight, or no
    /// connection to the peer.
    pub sends_dropped: u64,
    /// Sends that failed once a connection was available.
    pub send_failures: u64,
    /// Inbound messages dropped because the receiving queue was full.
    pub queue_full: u64,
    /// Request/response exchanges (anti-entropy pulls) that failed.
    pub requests_failed: u64,
}

impl TransportEvents {
    fn read(stats: &starling_cluster::transport::StatsSnapshot) -> Self {
        Self {
            connections_opened: stats.connects_ok,
            sends_dropped: stats.sends_dropped,
            send_failures: stats.send_failures,
            queue_full: stats.queue_full,
            requests_failed: stats.requests_failed,
        }
    }

    fn add(&mut self, other: &TransportEvents) {
        self.connections_opened += other.connections_opened;
        self.sends_dropped += other.sends_dropped;
        self.send_failures += other.send_failures;
        self.queue_full += other.queue_full;
        self.requests_failed += other.requests_failed;
    }

    fn minus(&self, earlier: &TransportEvents) -> TransportEvents {
        TransportEvents {
            connections_opened: self
                .connections_opened
                .saturating_sub(earlier.connections_opened),
            sends_dropped: self.sends_dropped.saturating_sub(earlier.sends_dropped),
            send_failures: self.send_failures.saturating_sub(earlier.send_failures),
            queue_full: self.queue_full.saturating_sub(earlier.queue_full),
            requests_failed: self.requests_failed.saturating_sub(earlier.requests_failed),
        }
    }
}

/// Every node's bytes sent so far, by kind, and the cluster's transport events so far.
pub(crate) struct Traffic {
    at: Instant,
    per_node: Vec<[u64; KINDS.len()]>,
    events: TransportEvents,
}

impl Traffic {
    /// Reads the counters of every node now.
    pub(crate) fn take(cluster: &BenchCluster) -> Self {
        let per_node = cluster
            .nodes()
            .iter()
            .map(|node| KINDS.map(|kind| node.kind_stats(kind).bytes_sent))
            .collect();
        let mut events = TransportEvents::default();
        for node in cluster.nodes() {
            events.add(&TransportEvents::read(&node.transport_stats()));
        }
        Self {
            at: Instant::now(),
            per_node,
            events,
        }
    }

    /// Transport events between `earlier` and this reading.
    pub(crate) fn events_since(&self, earlier: &Traffic) -> TransportEvents {
        self.events.minus(&earlier.events)
    }

    /// Bandwidth between `earlier` and this reading (same cluster).
    pub(crate) fn since(&self, earlier: &Traffic) -> Bandwidth {
        let secs = self
            .at
            .saturating_duration_since(earlier.at)
            .max(Duration::from_micros(1))
            .as_secs_f64();
        let nodes = self.per_node.len().max(1) as f64;
        let mut by_kind = [0u64; KINDS.len()];
        let mut busiest = 0u64;
        for (now, before) in self.per_node.iter().zip(&earlier.per_node) {
            let mut node_total = 0;
            for (k, (n, b)) in now.iter().zip(before).enumerate() {
                let sent = n.saturating_sub(*b);
                by_kind[k] += sent;
                node_total += sent;
            }
            busiest = busiest.max(node_total);
        }
        let rate = |bytes: u64| bytes as f64 / secs / nodes;
        Bandwidth {
            window_s: secs,
            gossip_bps: rate(by_kind[0]),
            sync_pull_bps: rate(by_kind[1]),
            sync_push_bps: rate(by_kind[2]),
            total_bps: rate(by_kind.iter().sum()),
            max_node_total_bps: busiest as f64 / secs,
            transport: self.events_since(earlier),
        }
    }
}

/// Waits out `warmup`, then measures the traffic of a window in which the cluster is
/// left alone.
pub(crate) async fn idle_window(
    cluster: &BenchCluster,
    warmup: Duration,
    window: Duration,
) -> Bandwidth {
    tokio::time::sleep(warmup).await;
    let before = Traffic::take(cluster);
    tokio::time::sleep(window).await;
    Traffic::take(cluster).since(&before)
}
