//! The rate-limit share exchange: every `rate_report_interval_ms`, each node sends every live
//! peer one message with the report (demand, share, intent) of each limiter in use here, and
//! recomputes its own shares from the latest reports it received.
//!
//! Reports are ephemeral, not replicated state: a lost report only delays a share change, and
//! the demarcation rule in [`super::ratelimit`] treats a stale report conservatively.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use starling_cluster::codec::{self, Kind};
use starling_cluster::runtime::RATE_REPORT;

use super::Governance;
use super::model::LimitName;
use super::ratelimit::{PeerReport, ShareReport};

/// Reports of a peer, and a limiter's own use, count this long: a limiter unused here and
/// not reported by anyone for this long is left out of the exchange, and a departed peer's
/// last reports are kept this long (it may still be admitting).
const FORGET_AFTER_MS: u64 = 30_000;

/// Largest report message accepted from a peer.
const MAX_REPORT_BYTES: usize = 1024 * 1024;

/// Report messages dropped because they spoke for another node than the sender's certificate
/// names (exported as `starling_cluster_impersonations_total{channel="rate_report"}`).
static SPOOFED_REPORTS: AtomicU64 = AtomicU64::new(0);

/// How many rate-limit report messages were dropped as impersonation, since start.
pub fn spoofed_reports() -> u64 {
    SPOOFED_REPORTS.load(Ordering::Relaxed)
}

/// Peers whose reports are held (exported as `starling_cluster_peer_state_entries{map=
/// "rate_reports"}`). Bounded without further pruning: one entry per node id, replaced
/// whole when that node restarts (a new generation), and dropped once none of its reports
/// is younger than [`FORGET_AFTER_MS`].
static REPORTING_PEERS: AtomicU64 = AtomicU64::new(0);

/// How many peers' rate-limit reports this node holds, as of the last exchange round.
pub fn reporting_peers() -> u64 {
    REPORTING_PEERS.load(Ordering::Relaxed)
}

/// One node's reports, as sent.
#[derive(Debug, Serialize, Deserialize)]
struct Reports {
    node: String,
    /// When the sending process started: a restarted peer numbers its reports from 1 again,
    /// and its new reports must replace the old process's at once.
    generation: u64,
    limits: Vec<(String, LimitName, WireReport)>,
}

/// A [`ShareReport`] on the wire: demand, share, intent, seq, tiebreak.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct WireReport(f64, f64, f64, u64, u64);

impl From<ShareReport> for WireReport {
    fn from(r: ShareReport) -> Self {
        Self(r.demand, r.share, r.intent, r.seq, r.tiebreak)
    }
}

impl WireReport {
    /// The report, if its numbers are sane: a peer's garbage must not poison our shares.
    fn checked(self) -> Option<ShareReport> {
        let Self(demand, share, intent, seq, tiebreak) = self;
        [demand, share, intent]
            .iter()
            .all(|v| v.is_finite() && *v >= 0.0)
            .then_some(ShareReport {
                demand,
                share,
                intent,
                seq,
                tiebreak,
            })
    }
}

/// The latest reports of each peer: node → (scope, limit) → report.
type Received = HashMap<String, PeerTable>;

/// One peer's latest reports, from its latest process.
#[derive(Debug, Default)]
struct PeerTable {
    generation: u64,
    reports: HashMap<(String, LimitName), PeerReport>,
}

/// Starts the sender and the receiver.
pub(super) fn spawn(gov: &Arc<Governance>) {
    let received: Arc<Mutex<Received>> = Arc::default();
    let inbox = gov.cluster.subscribe(RATE_REPORT, MAX_REPORT_BYTES);
    tokio::spawn(receive(inbox, received.clone()));
    tokio::spawn(send(Arc::downgrade(gov), received));
}

async fn receive(
    mut inbox: tokio::sync::mpsc::Receiver<starling_cluster::transport::Inbound>,
    received: Arc<Mutex<Received>>,
) {
    while let Some(message) = inbox.recv().await {
        let Ok(reports) =
            codec::decode_kind::<Reports>(&message.payload, Kind::RateReport, MAX_REPORT_BYTES)
        else {
            tracing::debug!(from = %message.from, "malformed rate-limit report dropped");
            continue;
        };
        // A peer reports only for itself: its certificate names the node it may speak for.
        if reports.node != message.peer.as_str() {
            SPOOFED_REPORTS.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                from = %message.from, node = %message.peer, claimed = %reports.node,
                "rate-limit report on behalf of another node dropped"
            );
            continue;
        }
        let now = super::now_ms();
        let mut received = received.lock().unwrap_or_else(|p| p.into_inner());
        let peer = received.entry(reports.node).or_default();
        if reports.generation < peer.generation {
            continue; // from a process that has since restarted
        }
        if reports.generation > peer.generation {
            *peer = PeerTable {
                generation: reports.generation,
                reports: HashMap::new(),
            };
        }
        let table = &mut peer.reports;
        for (scope, limit, report) in reports.limits {
            let Some(report) = report.checked() else {
                continue;
            };
            let fresh = PeerReport {
                report,
                received_ms: now,
            };
            // Messages can be reordered: keep the newest report.
            match table.get_mut(&(scope.clone(), limit)) {
                Some(old) if old.report.seq >= report.seq => {}
                Some(old) => *old = fresh,
                None => {
                    table.insert((scope, limit), fresh);
                }
            }
        }
    }
}

async fn send(gov: Weak<Governance>, received: Arc<Mutex<Received>>) {
    let Some(interval) = gov.upgrade().map(|g| g.config.rate_report_interval_ms) else {
        return;
    };
    let generation = super::now_ms();
    let mut tick = tokio::time::interval(Duration::from_millis(interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(gov) = gov.upgrade() else {
            return;
        };
        let now = super::now_ms();
        let peers: Vec<String> = gov
            .cluster
            .live_peers_info()
            .into_iter()
            .map(|(node, _)| node)
            .collect();
        let live_nodes = peers.len() + 1;
        gov.index.set_live_nodes(live_nodes);
        let mut out = Vec::new();
        {
            let mut table = received.lock().unwrap_or_else(|p| p.into_inner());
            // A peer that left keeps its last reports for a while: it may still be admitting
            // (cut off, not dead), and its share must not be handed out at once.
            for PeerTable { reports, .. } in table.values_mut() {
                reports.retain(|_, r| now.saturating_sub(r.received_ms) < FORGET_AFTER_MS);
            }
            table.retain(|_, peer| !peer.reports.is_empty());
            REPORTING_PEERS.store(table.len() as u64, Ordering::Relaxed);
            for (key, limiter) in gov.index.limiters() {
                let theirs: Vec<(&str, PeerReport)> = table
                    .iter()
                    .filter_map(|(node, peer)| peer.reports.get(&key).map(|r| (node.as_str(), *r)))
                    .collect();
                let recently_used = now.saturating_sub(limiter.last_arrival_ms()) < FORGET_AFTER_MS;
                // Only limits in use anywhere are reported, and every report made is sent:
                // a report records what peers were told, which later raises rely on.
                if !recently_used && theirs.is_empty() {
                    continue;
                }
                limiter.update_share(&theirs, live_nodes, now);
                let report = limiter.report(now);
                out.push((key.0, key.1, WireReport::from(report)));
            }
        }
        if out.is_empty() || peers.is_empty() {
            continue;
        }
        let message = Reports {
            node: gov.cluster.writer().node.as_str().to_owned(),
            generation,
            limits: out,
        };
        match codec::encode(Kind::RateReport, &message) {
            Ok(frame) => gov.cluster.broadcast(RATE_REPORT, frame),
            Err(e) => tracing::error!("cannot encode rate-limit reports: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_cluster::hlc::NodeId;
    use starling_cluster::transport::Inbound;

    fn message(peer: &str, claimed: &str) -> Inbound {
        let reports = Reports {
            node: claimed.to_owned(),
            generation: 1,
            limits: vec![(
                "key:a".to_owned(),
                LimitName::Rpm,
                WireReport(1.0, 1.0, 1.0, 1, 0),
            )],
        };
        Inbound {
            from: "127.0.0.1:7000".parse().expect("addr"),
            peer: NodeId::new(peer).expect("node id"),
            kind: RATE_REPORT,
            payload: codec::encode(Kind::RateReport, &reports).expect("encodes"),
        }
    }

    #[tokio::test]
    async fn a_peer_reports_only_for_itself() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let received: Arc<Mutex<Received>> = Arc::default();
        let before = spoofed_reports();
        tx.send(message("n1", "n2")).await.expect("queued");
        tx.send(message("n3", "n3")).await.expect("queued");
        drop(tx);
        receive(rx, received.clone()).await;
        let received = received.lock().expect("lock");
        assert!(!received.contains_key("n2"), "n1 may not report for n2");
        assert!(received.contains_key("n3"));
        assert!(spoofed_reports() > before);
    }
}
