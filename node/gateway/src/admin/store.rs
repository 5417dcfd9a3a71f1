//! Governance reads and writes on the replica.
//!
//! A write checks and changes an entry under the replica lock ([`change`]), so that two admin
//! requests to the same node cannot interleave between the check and the write (a key created
//! for a team being deleted, two updates losing one another). Requests to different nodes
//! still race, as any last-writer-wins register does; the newest write wins everywhere.

use starling_cluster::state::{Delta, Replica};

use super::error::AdminError;
use crate::cluster::Cluster;
use starling_governance::model::{
    Account, EntityKind, Entry, KEY_REVOKED_PREFIX, KEY_SECRET_PREFIX, VirtualKey,
};

/// What a checked write does to the catalog.
pub(crate) enum Change {
    /// Writes the entry under its id (boxed: an entry is large, the other variants small).
    Put(String, Box<Entry>),
    /// Deletes the entry (a tombstone).
    Delete(String),
    /// Nothing (an idempotent repeat).
    Nothing,
}

/// Runs `f` under the replica lock and applies the change it returns, durably and replicated.
/// An error from `f` writes nothing.
pub(crate) async fn change<R>(
    cluster: &Cluster,
    f: impl FnOnce(&Replica<Entry>) -> Result<(Change, R), AdminError>,
) -> Result<R, AdminError> {
    cluster
        .mutate(|r| match f(r) {
            Ok((Change::Put(id, entry), out)) => (r.put(&id, *entry), Ok(out)),
            Ok((Change::Delete(id), out)) => (r.delete(&id), Ok(out)),
            Ok((Change::Nothing, out)) => (Delta::default(), Ok(out)),
            Err(e) => (Delta::default(), Err(e)),
        })
        .await
        .map_err(AdminError::storage)?
}

/// The key `id` as in force (with its latest rotation and its revocation), if the catalog
/// has it.
pub(crate) fn key(r: &Replica<Entry>, id: &str) -> Option<VirtualKey> {
    match r.catalog().get(&EntityKind::Key.catalog_id(id)) {
        Some(Entry::Key(k)) => Some(in_force(r, k)),
        _ => None,
    }
}

/// `record` with its rotated secret and revocation applied.
pub(crate) fn in_force(r: &Replica<Entry>, record: &VirtualKey) -> VirtualKey {
    let secret = match r
        .catalog()
        .get(&format!("{KEY_SECRET_PREFIX}{}", record.id))
    {
        Some(Entry::KeySecret(s)) => Some(s),
        _ => None,
    };
    let revoked = match r
        .catalog()
        .get(&format!("{KEY_REVOKED_PREFIX}{}", record.id))
    {
        Some(Entry::KeyRevoked(v)) => Some(v),
        _ => None,
    };
    record.in_force(secret, revoked)
}

/// The team or customer `id`, if the catalog has it.
pub(crate) fn account<'a>(
    r: &'a Replica<Entry>,
    kind: EntityKind,
    id: &str,
) -> Option<&'a Account> {
    match (kind, r.catalog().get(&kind.catalog_id(id))) {
        (EntityKind::Team, Some(Entry::Team(a)))
        | (EntityKind::Customer, Some(Entry::Customer(a))) => Some(a),
        _ => None,
    }
}

/// The entry of an account of `kind`.
pub(crate) fn account_entry(kind: EntityKind, account: Account) -> Entry {
    match kind {
        EntityKind::Customer => Entry::Customer(account),
        EntityKind::Team | EntityKind::Key => Entry::Team(account),
    }
}

/// Whether the catalog has ever held `catalog_id`, live or deleted: a new entity never reuses
/// an id, so that a stale replica cannot confuse the new entity with the old one.
pub(crate) fn taken(r: &Replica<Entry>, catalog_id: &str) -> bool {
    r.catalog().entry(catalog_id).is_some()
}

/// A new random id: `prefix` and 20 hex characters (80 bits).
pub(crate) fn new_id(prefix: &str) -> String {
    let bytes: [u8; 10] = rand::random();
    let mut id = String::with_capacity(prefix.len() + 20);
    id.push_str(prefix);
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// A new id of `prefix` that the catalog has never held under `kind`.
pub(crate) fn fresh_id(r: &Replica<Entry>, kind: EntityKind, prefix: &str) -> String {
    loop {
        let id = new_id(prefix);
        if !taken(r, &kind.catalog_id(&id)) {
            return id;
        }
    }
}

/// Keys of `kind` account `id` that are not revoked.
pub(crate) fn live_keys_of(r: &Replica<Entry>, kind: EntityKind, id: &str) -> usize {
    r.catalog()
        .iter()
        .filter(|(cid, _)| cid.starts_with("key/"))
        .filter(|(_, e)| match e {
            Entry::Key(k) if in_force(r, k).revoked_at_ms.is_none() => match kind {
                EntityKind::Team => k.team.as_deref() == Some(id),
                EntityKind::Customer => k.customer.as_deref() == Some(id),
                EntityKind::Key => false,
            },
            _ => false,
        })
        .count()
}
