//! Governance: virtual keys, teams and customers, their budgets and rate limits, enforced on
//! the replicated state (see docs/governance.md and docs/guarantees.md).
//!
//! * [`model`]: what is stored in the catalog; [`secret`]: key secrets and their hashes.
//! * [`index`]: the request path's lock-free view, kept current by the replica's observer.
//! * [`admit`]: the admission cascade; [`permit`]: what a request holds until it settles.
//! * [`budget`]: one budget's pools and figures; [`escrow`]: minting, debits, transfers and
//!   refunds of strict-budget rights.
//! * [`ratelimit`]: node-local buckets whose shares follow gossiped demand; [`exchange`]:
//!   the share reports between nodes.
//! * [`estimate`]: upper bounds of a request's tokens; [`usage`]: usage counters.
//! * [`pricing`]: model prices; [`config`]: the `[governance]` section of the config file.

pub mod admit;
pub mod budget;
pub mod config;
mod escrow;
pub mod estimate;
mod exchange;
pub mod index;
mod metrics;

pub use metrics::describe as describe_metrics;
pub mod model;
pub mod permit;
pub mod pricing;
pub mod ratelimit;
pub mod secret;
pub mod usage;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use starling_cluster::runtime::ClusterNode;

use crate::config::{FailClosed, GovernanceConfig, UsageDurability};

pub use admit::{AdmitRequest, Admitted, ReservePrice};

/// The replicated catalog's value: governance entities and generic documents.
pub type CatalogDoc = model::Entry;

/// A running cluster member, replicating the catalog.
pub type Cluster = Arc<ClusterNode<CatalogDoc>>;

pub use exchange::reporting_peers as rate_reporting_peers;
pub use exchange::spoofed_reports as spoofed_rate_reports;
pub use index::KeyEntry;
pub use permit::GovPermit;

/// The node's governance engine.
pub struct Governance {
    index: Arc<index::Index>,
    cluster: Cluster,
    config: GovernanceConfig,
    usage: Arc<usage::UsageSink>,
    /// The staleness last logged and exported.
    stale: AtomicBool,
}

impl std::fmt::Debug for Governance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governance").finish_non_exhaustive()
    }
}

/// Wall-clock milliseconds since the Unix epoch: budget periods and key expiry are calendar
/// facts, so they follow the system clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Governance {
    /// Starts governance on a running cluster member: mirrors the catalog into the index and
    /// spawns the background tasks (minting, pool refills and refunds, usage flushes, the
    /// staleness watch, the rate-limit share exchange).
    pub fn start(cluster: Cluster, config: GovernanceConfig, has_seeds: bool) -> Arc<Self> {
        // Any rank that differs between nodes will do; a random one is stable for the process.
        let index = Arc::new(index::Index::new(rand::random()));
        index.set_live_nodes(cluster.member_count_live());
        let observer_index = index.clone();
        // A node joining a running cluster (it has seeds) starts its limiters at the floor:
        // its peers may hold most of each limit already, and it does not know them yet.
        index.set_joining(has_seeds);
        cluster.set_catalog_observer(Arc::new(move |id, entry| {
            observer_index.apply(id, entry, now_ms());
        }));
        index.set_joining(false);
        if config.unsafe_skip_rights_check {
            tracing::error!(
                "governance.unsafe_skip_rights_check is set: strict budgets are NOT enforced on this node (fault tests only)"
            );
        }
        let stale = AtomicBool::new(cluster.is_clustered());
        let gov = Arc::new(Self {
            index,
            cluster,
            config,
            usage: Arc::default(),
            stale,
        });
        tokio::spawn(housekeeping(Arc::downgrade(&gov)));
        if gov.config.usage_durability == UsageDurability::Acknowledged {
            tokio::spawn(usage_flusher(Arc::downgrade(&gov), gov.usage.clone()));
        }
        exchange::spawn(&gov);
        gov
    }

    /// The key presented as `secret`, if it is a virtual key.
    pub fn lookup(&self, secret: &str) -> Option<Arc<KeyEntry>> {
        self.index.key(&secret::hash(secret))
    }

    /// Whether this node, a member of a cluster, has heard from no peer within the bound, or
    /// not yet since it started: it starts stale, so a node restarted into a partition never
    /// admits on what it knew before. Read per request (an atomic and a clock read), so it
    /// turns fresh on the first contact, not at the next housekeeping tick.
    pub fn is_stale(&self) -> bool {
        if !self.cluster.is_clustered() {
            return false;
        }
        let bound = Duration::from_millis(self.config.stale_after_ms);
        self.cluster
            .last_heard()
            .is_none_or(|at| at.elapsed() > bound)
    }

    /// Whether a key with (`strict`) or without a strict budget is refused because this node
    /// is stale (see [`FailClosed`]).
    pub(crate) fn fails_closed(&self, strict: bool) -> bool {
        (strict || self.config.fail_closed == FailClosed::All) && self.is_stale()
    }

    /// The index (tests and the admin API).
    pub fn index(&self) -> &index::Index {
        &self.index
    }

    /// Logs and exports changes of [`Self::is_stale`].
    fn check_staleness(&self) {
        let stale = self.is_stale();
        let was = self.stale.swap(stale, Ordering::Relaxed);
        if stale != was {
            if stale {
                tracing::warn!(
                    bound_ms = self.config.stale_after_ms,
                    refused = ?self.config.fail_closed,
                    "no word from the cluster: refusing keys (fail-closed)"
                );
            } else {
                tracing::info!("in contact with the cluster: keys admitted");
            }
        }
        metrics::fail_closed(stale);
    }

    /// Flushes queued usage into the replica: durably (waiting for the fsync) when responses
    /// wait for it, else as a queued append.
    async fn flush_usage(&self) {
        let (cells, through) = self.usage.drain();
        if cells.is_empty() {
            self.usage.mark_durable(through);
            return;
        }
        let add =
            |r: &mut starling_cluster::state::Replica<crate::CatalogDoc>| r.add_usage_many(&cells);
        let result = match self.config.usage_durability {
            UsageDurability::Acknowledged => self.cluster.mutate(add).await,
            UsageDurability::Batched => self.cluster.mutate_nowait(add).await,
        };
        if let Err(e) = result {
            // The node cannot write its disk; holding responses forever would not help.
            tracing::error!("cannot record usage: {e}");
        }
        self.usage.mark_durable(through);
    }
}

/// Group commit of usage for acknowledged durability: a flush starts as soon as a record
/// waits; records settled during a flush go into the next one.
async fn usage_flusher(gov: std::sync::Weak<Governance>, sink: Arc<usage::UsageSink>) {
    loop {
        sink.wait_for_records().await;
        let Some(gov) = gov.upgrade() else {
            return;
        };
        gov.flush_usage().await;
    }
}

/// The periodic work: usage flushes and the staleness watch every `usage_flush_ms`; budget
/// upkeep and mints every fourth round.
async fn housekeeping(gov: std::sync::Weak<Governance>) {
    let Some(interval) = gov.upgrade().map(|g| g.config.usage_flush_ms) else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_millis(interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut round: u64 = 0;
    loop {
        tick.tick().await;
        let Some(gov) = gov.upgrade() else {
            return;
        };
        gov.check_staleness();
        if gov.config.usage_durability == UsageDurability::Batched {
            gov.flush_usage().await;
        }
        gov.refresh_available(now_ms());
        if round % 4 == 0 {
            let now = now_ms();
            gov.mint_due(now).await;
            gov.maintain_budgets(now).await;
            metrics::export_budgets(&gov, now);
        }
        round = round.wrapping_add(1);
    }
}
