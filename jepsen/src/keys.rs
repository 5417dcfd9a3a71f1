//! What the harness knows of the virtual keys it created: secrets, budgets, limits, and when
//! each change was acknowledged and by which node. The checkers compare the ledger with this.

use std::sync::RwLock;

use serde::{Deserialize, Serialize};

/// A budget the harness gave a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetSpec {
    /// The amount in micro-dollars.
    pub amount_micros: u64,
    /// `strict` or `available`.
    pub mode: String,
    /// `total`, or a duration such as `1m`.
    pub period: String,
}

/// A secret stopped working: the key was rotated or revoked, acknowledged at `ack_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invalidation {
    /// Secrets of generations below this one are invalid from now on (`u32::MAX` for a
    /// revocation: every generation).
    pub below_generation: u32,
    /// When the admin API acknowledged it (harness clock, epoch ms).
    pub ack_ms: u64,
    /// The node that acknowledged it.
    pub node: usize,
}

/// A catalog change acknowledged by a node, for the durability checker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckedWrite {
    /// `create`, `update`, `rotate` or `revoke`.
    pub action: String,
    /// The node that acknowledged it.
    pub node: usize,
    /// When.
    pub ack_ms: u64,
    /// The `rpm` the key has after the write, if the write set it.
    pub rpm: Option<u64>,
}

/// One virtual key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyInfo {
    /// The key id (`vk_...`).
    pub id: String,
    /// The workload that uses it (`budget`, `rate`, `catalog`, `probe`).
    pub workload: String,
    /// A label within the workload (e.g. `strict-3`, `rpm`).
    pub label: String,
    /// Every secret it had, by generation.
    pub secrets: Vec<String>,
    /// Its budget, if any.
    pub budget: Option<BudgetSpec>,
    /// Its requests-per-minute limit, if any.
    pub rpm: Option<u64>,
    /// Its tokens-per-minute limit, if any.
    pub tpm: Option<u64>,
    /// The node that created it (its budget's mint node).
    pub writer: usize,
    /// Secrets that stopped working, in order.
    pub invalidations: Vec<Invalidation>,
    /// Every acknowledged write.
    pub writes: Vec<AckedWrite>,
}

impl KeyInfo {
    /// Whether the key was revoked (acknowledged).
    pub fn revoked(&self) -> bool {
        self.invalidations
            .iter()
            .any(|i| i.below_generation == u32::MAX)
    }

    /// When the secret of `generation` stopped working, if it did.
    pub fn invalidated_at(&self, generation: u32) -> Option<&Invalidation> {
        self.invalidations
            .iter()
            .find(|i| generation < i.below_generation)
    }
}

/// Every key of the run.
#[derive(Debug, Default)]
pub struct KeyBook {
    keys: RwLock<Vec<KeyInfo>>,
}

impl KeyBook {
    /// Adds a created key.
    pub fn add(&self, key: KeyInfo) {
        self.keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(key);
    }

    /// Changes a key, if it exists.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut KeyInfo)) {
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = keys.iter_mut().find(|k| k.id == id) {
            f(k);
        }
    }

    /// The keys matching `filter`, cloned (never held across an await).
    pub fn select(&self, filter: impl Fn(&KeyInfo) -> bool) -> Vec<KeyInfo> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|k| filter(k))
            .cloned()
            .collect()
    }

    /// Every key.
    pub fn all(&self) -> Vec<KeyInfo> {
        self.select(|_| true)
    }
}
