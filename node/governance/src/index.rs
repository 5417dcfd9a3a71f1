//! The request path's view of governance: keys by secret hash, teams and customers by id, each
//! with its live budget and limiter state, readable without locks.
//!
//! The replica calls [`Index::apply`] for every catalog change, local or replicated, under its
//! lock and in order; here each change rebuilds one small entry. Budget and limiter state is
//! kept in registries keyed by scope, so an entry rebuilt by an update (a new name, a raised
//! limit) keeps the pools and buckets of the old one.

use std::sync::Arc;

use papaya::HashMap;

use super::budget::BudgetState;
use super::model::{
    Account, Budget, EntityKind, Entry, GovernedId, KeyRevoked, KeySecret, LimitName, Limits,
    VirtualKey, budget_scope, scope,
};
use super::ratelimit::{LimitKind, SharedLimit};
use super::secret::{self, SecretHash};

/// One budget of an entity, with its cluster-wide state.
#[derive(Debug, Clone)]
pub struct BudgetRef {
    /// The budget as configured.
    pub budget: Budget,
    /// Pools, reservations and figures.
    pub state: Arc<BudgetState>,
}

/// The rate limiters of one entity; `None` where no limit is set.
#[derive(Debug, Clone, Default)]
pub struct Limiters {
    /// Requests per minute.
    pub rpm: Option<Arc<SharedLimit>>,
    /// Tokens per minute.
    pub tpm: Option<Arc<SharedLimit>>,
    /// Requests in flight.
    pub concurrency: Option<Arc<SharedLimit>>,
}

/// What admission needs of a key, a team or a customer.
#[derive(Debug)]
pub struct Governed {
    /// Which kind of entity.
    pub kind: EntityKind,
    /// Its id.
    pub id: String,
    /// Its usage scope (`key/<id>`, ...).
    pub scope: Arc<str>,
    /// Allowed models (empty: all).
    pub models: Vec<String>,
    /// Enabled flag.
    pub enabled: bool,
    /// Budgets with their state.
    pub budgets: Vec<BudgetRef>,
    /// Rate limiters.
    pub limiters: Limiters,
}

/// A virtual key as the request path sees it.
#[derive(Debug)]
pub struct KeyEntry {
    /// The key in force (shared with the replica's record unless rotated or revoked).
    pub key: Arc<VirtualKey>,
    /// Budgets and limits of the key itself.
    pub governed: Governed,
}

/// Lock-free lookups for the request path, plus the registries behind them.
#[derive(Debug, Default)]
pub struct Index {
    /// This node's rank for splitting whole concurrency slots (stable per node).
    tiebreak: u64,
    /// Live nodes as last counted: new limiters start at an even split among them.
    live_nodes: std::sync::atomic::AtomicUsize,
    /// Set while a node that joins a running cluster loads its catalog: its limiters start at
    /// the floor, since peers may already hold most of each limit.
    joining: std::sync::atomic::AtomicBool,
    keys_by_hash: HashMap<SecretHash, Arc<KeyEntry>>,
    hash_by_key_id: HashMap<String, SecretHash>,
    teams: HashMap<String, Arc<Governed>>,
    customers: HashMap<String, Arc<Governed>>,
    budgets: HashMap<String, Arc<BudgetState>>,
    limiters: HashMap<(String, LimitName), Arc<SharedLimit>>,
    /// Each key's catalog entries (record, rotated secret, revocation), which may arrive in
    /// any order; the key in force is built from all three. Written only by the catalog
    /// observer, never on the request path.
    key_parts: std::sync::Mutex<std::collections::HashMap<String, KeyParts>>,
}

/// A key's catalog entries as last seen.
#[derive(Debug, Default)]
struct KeyParts {
    record: Option<Arc<VirtualKey>>,
    secret: Option<KeySecret>,
    revoked: Option<KeyRevoked>,
}

impl Index {
    /// An empty index for the node ranked `tiebreak`.
    pub fn new(tiebreak: u64) -> Self {
        Self {
            tiebreak,
            ..Self::default()
        }
    }

    /// Marks the catalog load of a node joining a running cluster (see `joining`).
    pub fn set_joining(&self, joining: bool) {
        self.joining
            .store(joining, std::sync::atomic::Ordering::Relaxed);
    }

    /// Records how many nodes are live (this one included).
    pub fn set_live_nodes(&self, n: usize) {
        self.live_nodes
            .store(n.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// The key whose secret hashes to `hash`.
    pub fn key(&self, hash: &SecretHash) -> Option<Arc<KeyEntry>> {
        self.keys_by_hash.pin().get(hash).cloned()
    }

    /// A team or customer (without allocating: this is on the request path).
    pub fn account(&self, kind: EntityKind, id: &str) -> Option<Arc<Governed>> {
        self.accounts_of(kind)?.pin().get(id).cloned()
    }

    /// The map of teams or of customers; `None` for keys.
    fn accounts_of(&self, kind: EntityKind) -> Option<&HashMap<String, Arc<Governed>>> {
        match kind {
            EntityKind::Team => Some(&self.teams),
            EntityKind::Customer => Some(&self.customers),
            EntityKind::Key => None,
        }
    }

    /// Every budget state known, for the background tasks.
    pub fn budget_states(&self) -> Vec<Arc<BudgetState>> {
        self.budgets.pin().values().cloned().collect()
    }

    /// Every limiter with its scope, for the background share exchange.
    pub fn limiters(&self) -> Vec<((String, LimitName), Arc<SharedLimit>)> {
        self.limiters
            .pin()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The limiter of `scope` and `name`, if any entity has one.
    pub fn limiter(&self, scope: &str, name: LimitName) -> Option<Arc<SharedLimit>> {
        self.limiters.pin().get(&(scope.to_owned(), name)).cloned()
    }

    /// Applies one catalog change (the replica's observer).
    pub fn apply(&self, catalog_id: &str, entry: Option<&Entry>, now_ms: u64) {
        let Some(governed) = GovernedId::parse(catalog_id) else {
            return;
        };
        match (governed, entry) {
            (GovernedId::KeySecret(id), entry) => {
                let secret = match entry {
                    Some(Entry::KeySecret(s)) => Some(s.clone()),
                    _ => None,
                };
                self.update_key(id, now_ms, |p| p.secret = secret);
            }
            (GovernedId::KeyRevoked(id), entry) => {
                let revoked = match entry {
                    Some(Entry::KeyRevoked(r)) => Some(r.clone()),
                    _ => None,
                };
                self.update_key(id, now_ms, |p| p.revoked = revoked);
            }
            (GovernedId::Entity(EntityKind::Key, id), Some(Entry::Key(key))) => {
                let key = key.clone();
                self.update_key(id, now_ms, |p| p.record = Some(key));
            }
            (GovernedId::Entity(EntityKind::Key, id), _) => {
                self.update_key(id, now_ms, |p| p.record = None)
            }
            (GovernedId::Entity(kind @ EntityKind::Team, _), Some(Entry::Team(account)))
            | (
                GovernedId::Entity(kind @ EntityKind::Customer, _),
                Some(Entry::Customer(account)),
            ) => {
                let governed = self.governed(kind, &account.id, account, now_ms);
                if let Some(map) = self.accounts_of(kind) {
                    map.pin().insert(account.id.clone(), Arc::new(governed));
                }
            }
            (GovernedId::Entity(kind, id), _) => {
                if let Some(map) = self.accounts_of(kind) {
                    map.pin().remove(id);
                }
            }
        }
    }

    /// Changes one of a key's parts and indexes the key in force (or removes it, without a
    /// record).
    fn update_key(&self, id: &str, now_ms: u64, change: impl FnOnce(&mut KeyParts)) {
        let in_force = {
            let mut parts = self.key_parts.lock().unwrap_or_else(|p| p.into_inner());
            let p = parts.entry(id.to_owned()).or_default();
            change(p);
            p.record
                .as_ref()
                .map(|r| VirtualKey::in_force_shared(r, p.secret.as_ref(), p.revoked.as_ref()))
        };
        match in_force {
            Some(key) => self.put_key(key, now_ms),
            None => self.remove_key(id),
        }
    }

    fn put_key(&self, key: Arc<VirtualKey>, now_ms: u64) {
        let Some(hash) = secret::from_hex(&key.secret_sha256) else {
            tracing::warn!(key = %key.id, "virtual key with a malformed hash ignored");
            return;
        };
        let governed = Governed {
            kind: EntityKind::Key,
            id: key.id.clone(),
            scope: Arc::from(scope(EntityKind::Key, &key.id)),
            models: key.models.clone(),
            enabled: key.enabled,
            budgets: self.budget_refs(EntityKind::Key, &key.id, &key.limits, &key.mint_node),
            limiters: self.limiters_for(EntityKind::Key, &key.id, &key.limits, now_ms),
        };
        let id = key.id.clone();
        let entry = Arc::new(KeyEntry { key, governed });
        // A rotation changes the hash: the old secret must stop working with this change.
        if let Some(old) = self.hash_by_key_id.pin().insert(id, hash)
            && *old != hash
        {
            self.keys_by_hash.pin().remove(old);
        }
        self.keys_by_hash.pin().insert(hash, entry);
    }

    fn remove_key(&self, id: &str) {
        if let Some(hash) = self.hash_by_key_id.pin().remove(id) {
            self.keys_by_hash.pin().remove(hash);
        }
    }

    fn governed(&self, kind: EntityKind, id: &str, account: &Account, now_ms: u64) -> Governed {
        Governed {
            kind,
            id: id.to_owned(),
            scope: Arc::from(scope(kind, id)),
            models: account.models.clone(),
            enabled: account.enabled,
            budgets: self.budget_refs(kind, id, &account.limits, &account.mint_node),
            limiters: self.limiters_for(kind, id, &account.limits, now_ms),
        }
    }

    fn budget_refs(
        &self,
        kind: EntityKind,
        id: &str,
        limits: &Limits,
        mint_node: &str,
    ) -> Vec<BudgetRef> {
        let budgets = self.budgets.pin();
        limits
            .budgets
            .iter()
            .map(|budget| {
                let rights_scope = budget_scope(kind, id, &budget.period);
                let state = budgets
                    .get_or_insert_with(rights_scope.clone(), || {
                        Arc::new(BudgetState::new(rights_scope, scope(kind, id)))
                    })
                    .clone();
                state.set_budget(budget.clone(), mint_node);
                BudgetRef {
                    budget: budget.clone(),
                    state,
                }
            })
            .collect()
    }

    /// How many nodes this node counts as live (itself included), as the rate-limit exchange
    /// last saw them: new limiters start at an even split among these.
    pub fn live_nodes(&self) -> usize {
        self.live_nodes
            .load(std::sync::atomic::Ordering::Relaxed)
            .max(1)
    }

    fn limiters_for(&self, kind: EntityKind, id: &str, limits: &Limits, now_ms: u64) -> Limiters {
        let entity = scope(kind, id);
        let make = |name: LimitName, limit: Option<u64>, limit_kind: LimitKind| {
            let map = self.limiters.pin();
            let key = (entity.clone(), name);
            match limit {
                None => {
                    map.remove(&key);
                    None
                }
                Some(limit) => {
                    let limiter = map
                        .get_or_insert_with(key, || {
                            let limiter =
                                SharedLimit::new(limit_kind, limit, self.live_nodes(), now_ms)
                                    .with_tiebreak(self.tiebreak);
                            if self.joining.load(std::sync::atomic::Ordering::Relaxed) {
                                limiter.lower_to_floor(self.live_nodes(), now_ms);
                            }
                            Arc::new(limiter)
                        })
                        .clone();
                    if limiter.limit() != limit {
                        limiter.set_limit(limit, now_ms);
                    }
                    Some(limiter)
                }
            }
        };
        let minute = LimitKind::Rate { window_ms: 60_000 };
        Limiters {
            rpm: make(LimitName::Rpm, limits.rpm, minute),
            tpm: make(LimitName::Tpm, limits.tpm, minute),
            concurrency: make(
                LimitName::Concurrency,
                limits.max_concurrent,
                LimitKind::Concurrency,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret_text: &str) -> VirtualKey {
        VirtualKey::new(
            "vk_1".into(),
            secret::to_hex(&secret::hash(secret_text)),
            secret::hint(secret_text),
            "n1".into(),
            0,
        )
    }

    /// The index holds the replica's record, not copies of it, until a revocation (or a
    /// rotation) makes the key in force differ from the record.
    #[test]
    fn a_key_in_force_shares_the_catalog_record_until_revoked() {
        let index = Index::new(1);
        let record = Entry::Key(Arc::new(key("sk-one")));
        let Entry::Key(stored) = &record else {
            unreachable!()
        };
        index.apply("key/vk_1", Some(&record), 0);
        let hash = secret::hash("sk-one");
        let entry = index.key(&hash).expect("indexed");
        assert!(Arc::ptr_eq(&entry.key, stored), "no copy of the record");

        let revoked = Entry::KeyRevoked(KeyRevoked { revoked_at_ms: 5 });
        index.apply("key-revoked/vk_1", Some(&revoked), 5);
        let entry = index.key(&hash).expect("still indexed, as revoked");
        assert!(!Arc::ptr_eq(&entry.key, stored));
        assert_eq!(entry.key.revoked_at_ms, Some(5));
        assert_eq!(stored.revoked_at_ms, None, "the record itself is untouched");
    }
}
