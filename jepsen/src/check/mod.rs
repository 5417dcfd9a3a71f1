//! The checkers: each reads the evidence of a finished run and gives a verdict with figures.
//!
//! The evidence is the history (what clients saw), the mock's ledger (what the provider
//! really served and billed, the ground truth), the keys the harness made, the nemesis
//! timeline, and what the nodes report once everything is healed and quiet.

pub mod accounting;
pub mod budget;
pub mod convergence;
pub mod durability;
pub mod liveness;
pub mod rate;
pub mod revocation;
pub mod storage;
pub mod topology;

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use starling_bench::LedgerEntry;

use crate::history::Op;
use crate::keys::KeyInfo;
use crate::nemesis::FaultRecord;

/// One node's state at the end of the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeFinal {
    /// Host index.
    pub node: usize,
    /// Its state digest (None if it did not answer).
    pub digest: Option<String>,
    /// Its state dump rows, as canonical JSON text (None if it did not answer).
    pub rows: Option<Vec<String>>,
    /// Each key's recorded total spend (micro-dollars), by key id.
    pub spend: HashMap<String, u64>,
    /// Each key's record (`GET /admin/v1/keys/{id}`), by key id.
    pub key_records: HashMap<String, Value>,
}

/// Parameters the checkers hold the run to.
#[derive(Debug, Clone, Serialize)]
pub struct Bounds {
    /// `governance.stale_after_ms` of the nodes.
    pub stale_after_ms: u64,
    /// A revoked key is refused by nodes connected to the writer within this.
    pub revoke_ms: u64,
    /// After a fault ends, replication between the nodes it touched resumes within this: the
    /// longest reconnection back-off plus one anti-entropy round over every peer, plus
    /// `revoke_ms`.
    pub catchup_ms: u64,
    /// Relative over-admission allowed per rate window, on top of one request per node.
    pub rate_tolerance: f64,
    /// After the final heal, every node admits again within this.
    pub liveness_ms: u64,
    /// Replicas are identical within this after the later of the last fault's end and the
    /// last client operation (`--convergence-bound-ms`).
    pub convergence_ms: u64,
    /// The HLC forward bound: writes stamped further ahead wait on peers.
    pub hlc_forward_ms: u64,
    /// The staleness that bounds available-mode overspend (flush, replication, refresh).
    pub visibility_ms: u64,
    /// The largest reservation of one request, micro-dollars.
    pub max_reservation_micros: u64,
}

/// Everything the checkers look at.
#[derive(Debug)]
pub struct Evidence {
    /// Number of nodes.
    pub nodes: usize,
    /// Completed operations.
    pub ops: Vec<Op>,
    /// The ledger.
    pub ledger: Vec<LedgerEntry>,
    /// The keys.
    pub keys: Vec<KeyInfo>,
    /// The faults, as applied.
    pub timeline: Vec<FaultRecord>,
    /// When the final heal finished (epoch ms).
    pub healed_ms: u64,
    /// When the last client operation ended (epoch ms).
    pub traffic_end_ms: u64,
    /// When digests were first seen equal after traffic stopped (epoch ms), if ever.
    pub converged_ms: Option<u64>,
    /// Per node, after convergence.
    pub finals: Vec<NodeFinal>,
    /// Per node: how long after the final heal a probe was first admitted (ms).
    pub liveness: Vec<Option<u64>>,
    /// The bounds.
    pub bounds: Bounds,
}

impl Evidence {
    /// The operation behind each ledger entry (by the `user` tag).
    pub fn ops_by_id(&self) -> HashMap<u64, &Op> {
        self.ops.iter().map(|o| (o.id, o)).collect()
    }

    /// Ledger entries with the operation that caused them (entries without one are skipped:
    /// every harness request carries its tag).
    pub fn attributed(&self) -> Vec<(&LedgerEntry, &Op)> {
        let ops = self.ops_by_id();
        self.ledger
            .iter()
            .filter_map(|e| {
                let id = crate::history::Op::parse_user_tag(e.user.as_deref()?)?;
                Some((e, *ops.get(&id)?))
            })
            .collect()
    }

    /// The key with this id.
    pub fn key(&self, id: &str) -> Option<&KeyInfo> {
        self.keys.iter().find(|k| k.id == id)
    }
}

/// A checker's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The checker.
    pub name: &'static str,
    /// Whether the guarantee held.
    pub ok: bool,
    /// Figures worth reading whatever the outcome.
    pub figures: Vec<String>,
    /// What broke the guarantee (empty when `ok`).
    pub violations: Vec<String>,
}

impl Verdict {
    /// A verdict that holds unless violations are added.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            ok: true,
            figures: Vec::new(),
            violations: Vec::new(),
        }
    }

    /// Adds a figure.
    pub fn figure(&mut self, text: impl Into<String>) {
        self.figures.push(text.into());
    }

    /// Adds a violation (the verdict fails). Only the first 50 are kept, with a count.
    pub fn violation(&mut self, text: impl Into<String>) {
        self.ok = false;
        if self.violations.len() < 50 {
            self.violations.push(text.into());
        } else if self.violations.len() == 50 {
            self.violations.push("… more violations not listed".into());
        }
    }

    /// The plain-text form written to the report.
    pub fn render(&self) -> String {
        let mut out = format!("{}: {}\n", self.name, if self.ok { "PASS" } else { "FAIL" });
        for f in &self.figures {
            out.push_str(&format!("  {f}\n"));
        }
        for v in &self.violations {
            out.push_str(&format!("  VIOLATION: {v}\n"));
        }
        out
    }
}

/// Runs every checker.
pub fn check_all(evidence: &Evidence) -> Vec<Verdict> {
    vec![
        convergence::check(evidence),
        budget::check(evidence),
        accounting::check(evidence),
        rate::check(evidence),
        revocation::check(evidence),
        durability::check(evidence),
        liveness::check(evidence),
        storage::check(evidence),
    ]
}

/// Micro-dollars as dollars for people.
pub fn usd(micros: u64) -> String {
    format!("${:.6}", micros as f64 / 1e6)
}

#[cfg(test)]
pub(crate) mod tests {
    //! Builders of synthetic evidence for the checkers' unit tests.

    use super::*;
    use crate::history::{OpKind, Outcome};
    use crate::nemesis::Fault;

    /// Evidence of a run of `nodes` nodes with nothing in it, held to the default bounds.
    pub(crate) fn evidence(nodes: usize) -> Evidence {
        Evidence {
            nodes,
            ops: Vec::new(),
            ledger: Vec::new(),
            keys: Vec::new(),
            timeline: Vec::new(),
            healed_ms: 0,
            traffic_end_ms: 0,
            converged_ms: None,
            finals: Vec::new(),
            liveness: vec![Some(0); nodes],
            bounds: Bounds {
                stale_after_ms: 3_000,
                revoke_ms: 1_000,
                catchup_ms: 5_000,
                rate_tolerance: 0.02,
                liveness_ms: 20_000,
                convergence_ms: convergence::DEFAULT_BOUND_MS,
                hlc_forward_ms: 30_000,
                visibility_ms: 1_000,
                max_reservation_micros: 10_000,
            },
        }
    }

    /// A fault applied from `start_ms` to `end_ms`.
    pub(crate) fn fault(fault: Fault, start_ms: u64, end_ms: u64) -> FaultRecord {
        FaultRecord {
            label: fault.label(),
            fault,
            start_ms,
            end_ms,
            storage: None,
        }
    }

    /// An acknowledged chat operation on `node`.
    pub(crate) fn op(id: u64, node: usize, invoke_ms: u64, complete_ms: u64) -> Op {
        Op {
            id,
            workload: "budget".into(),
            client: 0,
            node,
            key: "vk_test".into(),
            kind: OpKind::Chat {
                secret_generation: 0,
                max_tokens: 16,
            },
            invoke_ms,
            complete_ms,
            outcome: Outcome::Ok,
            status: Some(200),
            error: None,
        }
    }
}
