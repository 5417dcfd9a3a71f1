//! A lock-free mirror of the live catalog, for the request path.
//!
//! The replica sits behind a mutex that writers and merges take; the request path must never
//! wait on it. The view is a concurrent hash map (papaya: lock-free reads) kept in step with
//! the replica: every local mutation and every merge updates the ids it changed, while still
//! holding the replica lock, so the view never runs behind the replica by more than the change
//! being applied.

/// Live catalog entries by id, readable without locks.
pub struct CatalogView<V> {
    map: papaya::HashMap<Box<str>, V>,
}

impl<V: Clone + Send + Sync> CatalogView<V> {
    pub(crate) fn new() -> Self {
        Self {
            map: papaya::HashMap::new(),
        }
    }

    /// Calls `f` with the entry for `id`, if live.
    pub fn with<R>(&self, id: &str, f: impl FnOnce(&V) -> R) -> Option<R> {
        self.map.pin().get(id).map(f)
    }

    /// A copy of the entry for `id`, if live.
    pub fn get(&self, id: &str) -> Option<V> {
        self.with(id, V::clone)
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no live entries.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Sets `id` to `value`, or removes it when `None` (a tombstone).
    pub(crate) fn set(&self, id: &str, value: Option<V>) {
        let map = self.map.pin();
        match value {
            Some(v) => {
                map.insert(Box::from(id), v);
            }
            None => {
                map.remove(id);
            }
        }
    }
}
