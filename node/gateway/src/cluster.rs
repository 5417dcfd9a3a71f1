//! The node's cluster membership: starting the replica from the config, publishing this
//! node's metadata, and exporting replication metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics::{counter, gauge};
use starling_cluster::runtime::{ClusterConfig, ClusterNode, SYNC_PULL, SYNC_PUSH, SYNC_RELAY};
use starling_cluster::store::IncarnationStart;
use starling_cluster::tls::{ClusterCredentials, ClusterSecret};
use starling_cluster::transport::MessageKind;

use crate::config::secrets::{secret_from_env, secret_from_file};
use crate::config::{Config, ConfigError};

pub use starling_governance::{CatalogDoc, Cluster};

/// The environment variable read for the cluster secret when the config names no source.
pub const DEFAULT_SECRET_ENV: &str = "STARLING_CLUSTER_SECRET";

/// Errors starting the cluster member.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The cluster section is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The member could not start.
    #[error("cluster: {0}")]
    Cluster(#[from] starling_cluster::runtime::ClusterError),
}

/// The error of a node asked to skip the rights check with credentials a production cluster
/// could hold.
fn not_a_test_cluster(credentials: &str) -> ConfigError {
    ConfigError::invalid(
        "governance.unsafe_skip_rights_check",
        format!(
            "this mode breaks strict budgets and exists for the fault tests only: it runs only \
             with a test cluster secret (`starling cluster keygen --test`), never with {credentials}"
        ),
    )
}

fn credentials(config: &Config, node_id: &str) -> Result<ClusterCredentials, ConfigError> {
    let section = &config.cluster;
    let skip_rights_check = config.governance.unsafe_skip_rights_check;
    if let Some(dir) = &section.ca_dir {
        if skip_rights_check {
            return Err(not_a_test_cluster("an operator CA"));
        }
        return ClusterCredentials::from_dir(dir)
            .map_err(|e| ConfigError::invalid("cluster.ca_dir", e.to_string()));
    }
    let (field, source, secret) = match &section.secret_file {
        Some(path) => (
            "cluster.secret_file",
            format!("file {}", path.display()),
            secret_from_file(path).map_err(|e| {
                ConfigError::invalid(
                    "cluster.secret_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?,
        ),
        None => {
            let var = section.secret_env.as_deref().unwrap_or(DEFAULT_SECRET_ENV);
            (
                "cluster.secret_env",
                format!("environment variable {var}"),
                secret_from_env(var),
            )
        }
    };
    let secret = secret.ok_or_else(|| {
        ConfigError::invalid(
            field,
            format!("{source} is empty or not set; make a secret with `starling cluster keygen`"),
        )
    })?;
    let secret = ClusterSecret::parse(secret.expose())
        .map_err(|e| ConfigError::invalid(field, e.to_string()))?;
    if skip_rights_check && !secret.is_test() {
        return Err(not_a_test_cluster("a production secret"));
    }
    ClusterCredentials::from_secret(&secret, node_id)
        .map_err(|e| ConfigError::invalid(field, e.to_string()))
}

/// Starts the member if the config names a node id.
pub async fn start(config: &Config, http_addr: SocketAddr) -> Result<Option<Cluster>, StartError> {
    let section = &config.cluster;
    let Some(node_id) = section.node_id.clone() else {
        return Ok(None);
    };
    let credentials = credentials(config, &node_id)?;
    let mut config = ClusterConfig::new(
        node_id,
        section.gossip_listen,
        section.data_dir.clone(),
        credentials,
    );
    config.cluster_id = section.cluster_id.clone();
    config.advertise = section.gossip_advertise;
    config.seeds = section.seeds.clone();
    config.expect_nodes = section.expect_nodes;
    config.gossip_interval = Duration::from_millis(section.gossip_interval_ms);
    config.sync_interval = Duration::from_millis(section.sync_interval_ms);
    config.snapshot_every = section.snapshot_every;
    config.dead_node_grace = Duration::from_secs(section.dead_node_grace_secs);
    config.tombstone_min_age = Duration::from_secs(section.tombstone_min_age_secs);
    // Validated with the config; an invalid id here could not be revoked anyway.
    config.endpoint.revoked_nodes = section
        .revoked_nodes
        .iter()
        .filter_map(|id| starling_cluster::hlc::NodeId::new(id).ok())
        .collect();
    config
        .metadata
        .insert("http".to_owned(), http_addr.to_string());
    config
        .metadata
        .insert("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned());
    config
        .metadata
        .insert("ready".to_owned(), "true".to_owned());
    let node = Arc::new(ClusterNode::start(config).await?);
    tokio::spawn(publish_metadata(Arc::downgrade(&node)));
    Ok(Some(node))
}

/// How many times the last digest's own duration to wait before the next one: a digest
/// encodes and hashes the whole replica under its lock, so on a large state (hundreds of
/// thousands of keys) a digest every second would take the whole CPU and hold back local
/// writes. Spacing them by ten times their cost keeps them under a tenth of a core.
const DIGEST_SPACING: u32 = 10;

/// Gossips this node's state digest and load (requests in flight) once a second (the digest
/// less often on a large state, see [`DIGEST_SPACING`]), so `/admin/v1/cluster` shows every
/// node's digest and operators can see replicas converge.
async fn publish_metadata(node: std::sync::Weak<ClusterNode<CatalogDoc>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last = None;
    let mut last_load = None;
    let mut next_digest = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let Some(node) = node.upgrade() else {
            return;
        };
        let load = crate::capacity::requests_in_flight();
        if last_load != Some(load) {
            node.set_metadata("load", &load.to_string()).await;
            last_load = Some(load);
        }
        let started = tokio::time::Instant::now();
        if started < next_digest {
            continue;
        }
        let digest = match node.digest() {
            Ok(d) => d.to_string(),
            Err(e) => {
                tracing::warn!("cannot digest the replica: {e}");
                continue;
            }
        };
        next_digest = started + started.elapsed() * DIGEST_SPACING;
        if last.as_ref() != Some(&digest) {
            node.set_metadata("digest", &digest).await;
            last = Some(digest);
        }
    }
}

/// Copies replication figures into the metrics registry; called before each scrape.
pub async fn export_metrics(node: &ClusterNode<CatalogDoc>) {
    let members = node.members().await;
    let live = members.iter().filter(|m| m.live).count();
    gauge!("starling_cluster_members", "state" => "live").set(live as f64);
    gauge!("starling_cluster_members", "state" => "dead").set((members.len() - live) as f64);
    let lag = members
        .iter()
        .filter(|m| m.live && m.node_id != node.writer().node.as_str())
        .filter_map(|m| m.last_sync_ms_ago)
        .max()
        .unwrap_or(0);
    gauge!("starling_cluster_replication_lag_seconds").set(lag as f64 / 1_000.0);
    gauge!("starling_cluster_store_failed").set(if node.store_failure().is_some() {
        1.0
    } else {
        0.0
    });
    let start = node.incarnation_start();
    for reason in IncarnationStart::ALL {
        gauge!("starling_cluster_incarnation_start", "reason" => reason.as_str())
            .set(if reason == start { 1.0 } else { 0.0 });
    }
    let stats = node.stats();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    counter!("starling_cluster_debits_witnessed_for_peers_total")
        .absolute(load(&stats.witnessed_for_peers));
    counter!("starling_budget_rights_reclaimed_microdollars_total", "from" => "earlier_incarnation")
        .absolute(load(&stats.earlier_lives_reclaimed));
    counter!("starling_cluster_sync_rounds_total", "result" => "ok").absolute(load(&stats.rounds));
    counter!("starling_cluster_sync_rounds_total", "result" => "failed")
        .absolute(load(&stats.round_failures));
    for (name, kind) in [
        ("gossip", MessageKind::GOSSIP),
        ("sync_pull", SYNC_PULL),
        ("sync_push", SYNC_PUSH),
        ("sync_relay", SYNC_RELAY),
    ] {
        let k = node.kind_stats(kind);
        counter!("starling_cluster_bytes_sent_total", "channel" => name).absolute(k.bytes_sent);
        counter!("starling_cluster_bytes_received_total", "channel" => name)
            .absolute(k.bytes_received);
    }
    let transport = node.transport_stats();
    counter!("starling_cluster_rejected_peers_total").absolute(transport.handshakes_rejected);
    counter!("starling_cluster_quic_retries_total").absolute(transport.retries_sent);
    counter!("starling_cluster_sync_pulls_refused_total").absolute(load(&stats.pulls_refused));
    counter!("starling_cluster_gossip_inflation_refused_total")
        .absolute(transport.gossip_inflation_refused);
    for (reason, value) in [
        ("unidentified", transport.peers_unidentified),
        ("revoked", transport.peers_revoked),
    ] {
        counter!("starling_cluster_refused_identities_total", "reason" => reason).absolute(value);
    }
    for (channel, value) in [
        ("gossip", transport.gossip_spoofed),
        ("sync_push", load(&stats.spoofed_pushes)),
        ("rights_request", load(&stats.spoofed_rights_requests)),
        ("rate_report", starling_governance::spoofed_rate_reports()),
    ] {
        counter!("starling_cluster_impersonations_total", "channel" => channel).absolute(value);
    }
    for (reason, value) in [
        ("future_own_seq", load(&stats.rejected_future_seq)),
        ("negative_rights", load(&stats.rejected_negative_rights)),
        ("malformed_dot", load(&stats.rejected_malformed_dots)),
    ] {
        counter!("starling_cluster_rejected_deltas_total", "reason" => reason).absolute(value);
    }
    counter!("starling_cluster_tombstones_collected_total")
        .absolute(load(&stats.tombstones_collected));
    counter!("starling_cluster_malformed_messages_total")
        .absolute(transport.malformed + load(&stats.malformed));
    // Two stored lengths: the scrape holds the replica lock for as long as a read of two
    // fields, whatever the state's size (counting the keys here held it 26 ms at a million).
    let (entries, counters) = node.read(|r| (r.catalog().len(), r.counters().len()));
    gauge!("starling_cluster_state_entries", "kind" => "catalog").set(entries as f64);
    gauge!("starling_cluster_state_entries", "kind" => "counters").set(counters as f64);
    let queue = node.store_queue();
    gauge!("starling_cluster_store_queue_bytes").set(queue.bytes as f64);
    gauge!("starling_cluster_store_queue_records").set(queue.records as f64);
    gauge!("starling_cluster_store_queue_limit_bytes").set(queue.limit as f64);
    counter!("starling_cluster_store_queue_waits_total").absolute(queue.waits);
    let peers = node.peer_state_sizes();
    for (map, size) in [
        ("acked_versions", peers.acked),
        ("last_sync", peers.last_sync),
        ("pulls_in_flight", peers.pulls_in_flight),
        ("endpoint_peers", peers.endpoint_peers),
        (
            "rate_reports",
            usize::try_from(starling_governance::rate_reporting_peers()).unwrap_or(usize::MAX),
        ),
    ] {
        gauge!("starling_cluster_peer_state_entries", "map" => map).set(size as f64);
    }
    gauge!("starling_cluster_connections_open").set(peers.connections as f64);
}

/// HELP lines for the cluster metrics [`export_metrics`] records.
pub(crate) fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_gauge!("starling_cluster_members", "Members known, by state.");
    describe_gauge!(
        "starling_cluster_store_failed",
        "1 once the data dir's store failed (full or failing disk): no writes, no replication, /readyz 503."
    );
    describe_gauge!(
        "starling_cluster_incarnation_start",
        "1 for why this node's incarnation began at its last start: new (empty data dir), resumed, damaged_data or store_failed (files set aside, fresh incarnation)."
    );
    describe_counter!(
        "starling_cluster_debits_witnessed_for_peers_total",
        "Peers' budget debits this node held on disk before they used them."
    );
    describe_counter!(
        "starling_budget_rights_reclaimed_microdollars_total",
        "Budget rights taken back automatically, in micro-dollars, by source (earlier_incarnation: this node's lives that lost their data dir)."
    );
    describe_gauge!(
        "starling_cluster_replication_lag_seconds",
        Unit::Seconds,
        "Longest time since a live peer last completed an anti-entropy exchange."
    );
    describe_counter!(
        "starling_cluster_sync_rounds_total",
        "Anti-entropy exchanges, by result."
    );
    describe_counter!(
        "starling_cluster_bytes_sent_total",
        Unit::Bytes,
        "Cluster bytes sent, by channel."
    );
    describe_counter!(
        "starling_cluster_bytes_received_total",
        Unit::Bytes,
        "Cluster bytes received, by channel."
    );
    describe_counter!(
        "starling_cluster_rejected_peers_total",
        "Inbound cluster handshakes refused."
    );
    describe_counter!(
        "starling_cluster_quic_retries_total",
        "QUIC Retry packets sent to validate a new peer's address before its handshake."
    );
    describe_counter!(
        "starling_cluster_sync_pulls_refused_total",
        "Anti-entropy pulls refused because the peer already ran its limit of concurrent pulls."
    );
    describe_counter!(
        "starling_cluster_gossip_inflation_refused_total",
        "Gossip messages refused because their compressed blocks would inflate beyond 2 MiB."
    );
    describe_counter!(
        "starling_cluster_malformed_messages_total",
        "Peer messages dropped as malformed or refused."
    );
    describe_counter!(
        "starling_cluster_tombstones_collected_total",
        "Deleted catalog entries forgotten after every member acknowledged them."
    );
    describe_gauge!("starling_cluster_state_entries", "Replica size, by kind.");
    describe_gauge!(
        "starling_cluster_store_queue_bytes",
        Unit::Bytes,
        "Bytes of log records waiting to be written and fsynced (each counted with 128 bytes more)."
    );
    describe_gauge!(
        "starling_cluster_store_queue_records",
        "Log records waiting to be written and fsynced."
    );
    describe_gauge!(
        "starling_cluster_store_queue_limit_bytes",
        Unit::Bytes,
        "Bound on starling_cluster_store_queue_bytes; writers wait for room beyond it."
    );
    describe_counter!(
        "starling_cluster_store_queue_waits_total",
        "Local writes and merges that waited for room in a full store queue."
    );
    describe_gauge!(
        "starling_cluster_peer_state_entries",
        "Entries of the per-peer maps a node keeps, by map: bounded by the members gossip knows, not by restarts."
    );
    describe_gauge!(
        "starling_cluster_connections_open",
        "QUIC connections to and from peers open now."
    );
    describe_counter!(
        "starling_cluster_refused_identities_total",
        "Cluster connections closed after the handshake: the peer's certificate names no node id (unidentified) or a revoked one."
    );
    describe_counter!(
        "starling_cluster_impersonations_total",
        "Peer messages dropped because they spoke for another node than the sender's certificate names, by channel."
    );
    describe_counter!(
        "starling_cluster_rejected_deltas_total",
        "Peer deltas refused whole: dots of this node's writer it never issued (future_own_seq), rights rows that would go negative (negative_rights), or items without a dot of their own (malformed_dot)."
    );
}
