//! Starting chitchat (membership, liveness, small per-node metadata) on the QUIC transport.
//!
//! # Seeds and DNS
//! Seeds are strings, `ip:port` or `host:port`. What chitchat 0.11.2 does with them
//! (`server.rs`, `spawn_dns_refresh_loop`): a seed that parses as a socket address is used
//! as is; any other seed is resolved with `tokio::net::lookup_host` once at start, then again
//! every 60 seconds (its `DNS_POLLING_DURATION`, not configurable), and each refresh replaces
//! the resolved part of the seed set, so addresses that left the DNS record are dropped. So a
//! Kubernetes headless service does work with chitchat alone — but a StatefulSet that starts
//! all its pods at once sees an empty or partial record at first, and would then wait up to a
//! minute to find its peers.
//!
//! [`spawn_membership`] therefore adds its own, faster re-resolution of the host seeds
//! ([`MembershipConfig::seed_refresh_interval`], 5 s by default): every address it resolves
//! that is not a live member yet gets a gossip round at once (`ChitchatHandle::gossip`).
//! chitchat's 60-second loop still maintains the seed set it gossips with periodically.
//! A seed without a port is refused up front, rather than failing every lookup quietly.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::{Arc, Weak};
use std::time::Duration;

use chitchat::{
    Chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, spawn_chitchat,
};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::debug;

use super::endpoint::ClusterEndpoint;
use super::gossip::QuicTransport;

/// Settings for [`spawn_membership`].
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// This node's id (stable across restarts).
    pub node_id: String,
    /// Incarnation of this node id; raise it on every restart (for example the start time in
    /// seconds) so peers tell the new process from the old one.
    pub generation: u64,
    /// The address peers gossip to: the endpoint's address as peers can reach it.
    pub gossip_advertise_addr: SocketAddr,
    /// Seed nodes, `ip:port` or `host:port` (see the module docs for resolution).
    pub seeds: Vec<String>,
    /// Cluster name; chitchat answers gossip from another cluster id with `BadCluster`.
    pub cluster_id: String,
    /// Gossip round interval (default 100 ms).
    pub gossip_interval: Duration,
    /// chitchat's phi-accrual failure detector settings (chitchat's defaults).
    pub failure_detector: FailureDetectorConfig,
    /// How long deleted keys are kept as tombstones (default 1 hour).
    pub marked_for_deletion_grace_period: Duration,
    /// How often host seeds are re-resolved by Starling itself (default 5 s; zero leaves it
    /// to chitchat's 60-second loop).
    pub seed_refresh_interval: Duration,
}

impl MembershipConfig {
    /// A config with the defaults above and no seeds.
    pub fn new(
        node_id: impl Into<String>,
        generation: u64,
        gossip_advertise_addr: SocketAddr,
        cluster_id: impl Into<String>,
    ) -> Self {
        Self {
            node_id: node_id.into(),
            generation,
            gossip_advertise_addr,
            seeds: Vec::new(),
            cluster_id: cluster_id.into(),
            gossip_interval: Duration::from_millis(100),
            failure_detector: FailureDetectorConfig::default(),
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            seed_refresh_interval: Duration::from_secs(5),
        }
    }
}

/// Errors from [`spawn_membership`].
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// A seed is neither `ip:port` nor `host:port`.
    #[error("seed {seed:?}: {reason}")]
    BadSeed {
        /// The seed as given.
        seed: String,
        /// Why.
        reason: &'static str,
    },
    /// chitchat failed to start or to shut down.
    #[error("chitchat: {0:#}")]
    Chitchat(anyhow::Error),
}

/// A running chitchat instance on the QUIC transport, plus the seed re-resolution task.
/// Derefs to chitchat's [`ChitchatHandle`]. Dropping it stops gossip; prefer
/// [`Membership::shutdown`].
pub struct Membership {
    handle: Arc<ChitchatHandle>,
    refresh: Option<JoinHandle<()>>,
}

impl Membership {
    /// chitchat's handle.
    pub fn handle(&self) -> &ChitchatHandle {
        &self.handle
    }

    /// The shared chitchat state (one async mutex; never lock it on the request path).
    pub fn chitchat(&self) -> Arc<Mutex<Chitchat>> {
        self.handle.chitchat()
    }

    /// Stops seed re-resolution and chitchat, and waits for chitchat's loop to end.
    ///
    /// # Errors
    /// [`MembershipError::Chitchat`] if chitchat's loop had failed.
    pub async fn shutdown(mut self) -> Result<(), MembershipError> {
        if let Some(refresh) = self.refresh.take() {
            refresh.abort();
            let _ = refresh.await;
        }
        match Arc::try_unwrap(self.handle) {
            Ok(handle) => handle.shutdown().await.map_err(MembershipError::Chitchat),
            // Unreachable once the refresh task has ended; stop chitchat anyway.
            Err(handle) => handle
                .initiate_shutdown()
                .map_err(MembershipError::Chitchat),
        }
    }
}

impl Deref for Membership {
    type Target = ChitchatHandle;

    fn deref(&self) -> &ChitchatHandle {
        &self.handle
    }
}

/// Starts chitchat for this node on `endpoint` (which must be bound; its address is the
/// gossip listen address) with `key_values` as the node's initial state.
///
/// # Errors
/// [`MembershipError::BadSeed`] for a seed without a port, [`MembershipError::Chitchat`] if
/// chitchat cannot open the transport (e.g. gossip already subscribed on this endpoint).
pub async fn spawn_membership(
    endpoint: &ClusterEndpoint,
    config: MembershipConfig,
    key_values: Vec<(String, String)>,
) -> Result<Membership, MembershipError> {
    let mut host_seeds = Vec::new();
    for seed in &config.seeds {
        if seed.parse::<SocketAddr>().is_ok() {
            continue;
        }
        let port_ok = seed
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(MembershipError::BadSeed {
                seed: seed.clone(),
                reason: "expected ip:port or host:port",
            });
        }
        host_seeds.push(seed.clone());
    }
    let advertise = config.gossip_advertise_addr;
    let chitchat_config = ChitchatConfig {
        chitchat_id: ChitchatId::new(config.node_id, config.generation, advertise),
        cluster_id: config.cluster_id,
        gossip_interval: config.gossip_interval,
        listen_addr: endpoint.local_addr(),
        seed_nodes: config.seeds,
        failure_detector_config: config.failure_detector,
        marked_for_deletion_grace_period: config.marked_for_deletion_grace_period,
        catchup_callback: None,
        extra_liveness_predicate: None,
    };
    let transport = QuicTransport::new(endpoint.clone());
    let handle = spawn_chitchat(chitchat_config, key_values, &transport)
        .await
        .map_err(MembershipError::Chitchat)?;
    let handle = Arc::new(handle);
    let refresh = (!host_seeds.is_empty() && !config.seed_refresh_interval.is_zero()).then(|| {
        tokio::spawn(refresh_seeds(
            Arc::downgrade(&handle),
            host_seeds,
            config.seed_refresh_interval,
            advertise,
        ))
    });
    Ok(Membership { handle, refresh })
}

/// Logs every change of the live set `live` (self excluded): which member (node id and
/// gossip generation) the failure detector now calls live, or no longer does. How long a
/// healed or restarted peer takes to be judged live decides how soon anti-entropy, which
/// picks live peers only, reaches it. Ends when the watch's sender is gone.
pub async fn log_liveness_changes(
    mut live: tokio::sync::watch::Receiver<
        std::collections::BTreeMap<ChitchatId, chitchat::NodeState>,
    >,
    self_id: String,
) {
    let members = |live: &tokio::sync::watch::Receiver<_>| -> HashSet<ChitchatId> {
        let map: &std::collections::BTreeMap<ChitchatId, chitchat::NodeState> = &live.borrow();
        map.keys()
            .filter(|id| *id.node_id != *self_id)
            .cloned()
            .collect()
    };
    let mut known = members(&live);
    while live.changed().await.is_ok() {
        let now = members(&live);
        for id in now.difference(&known) {
            tracing::info!(peer = %id.node_id, generation = id.generation_id, addr = %id.gossip_advertise_addr, "peer is live");
        }
        for id in known.difference(&now) {
            tracing::info!(peer = %id.node_id, generation = id.generation_id, addr = %id.gossip_advertise_addr, "peer is no longer live");
        }
        known = now;
    }
}

/// Re-resolves `hosts` every `interval` and gossips at once with every resolved address that
/// is not a live member. Ends when the handle is gone.
async fn refresh_seeds(
    handle: Weak<ChitchatHandle>,
    hosts: Vec<String>,
    interval: Duration,
    advertise: SocketAddr,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // chitchat resolved the seeds at start; the first tick fires at once, skip it.
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let mut resolved = HashSet::new();
        for host in &hosts {
            match tokio::net::lookup_host(host.as_str()).await {
                Ok(addrs) => resolved.extend(addrs),
                Err(e) => debug!(seed = %host, error = %e, "seed did not resolve"),
            }
        }
        resolved.remove(&advertise);
        if resolved.is_empty() {
            continue;
        }
        let Some(chitchat) = handle.upgrade().map(|h| h.chitchat()) else {
            return;
        };
        let live: HashSet<SocketAddr> = chitchat
            .lock()
            .await
            .live_nodes()
            .map(|id| id.gossip_advertise_addr)
            .collect();
        drop(chitchat);
        let Some(handle) = handle.upgrade() else {
            return;
        };
        for addr in resolved.difference(&live) {
            debug!(seed = %addr, "gossiping with a newly resolved seed address");
            let _ = handle.gossip(*addr);
        }
    }
}
