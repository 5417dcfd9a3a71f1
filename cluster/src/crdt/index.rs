//! A bounded index of recent writes by dot, so `delta_since` does not scan the whole state.
//!
//! Anti-entropy asks "what do you have above my version vector?" many times a second. With a
//! million catalog entries, or counters for every active key, a scan per question would cost
//! milliseconds of CPU even when only a handful of items changed. The index keeps, per writer,
//! the keys of its most recent writes ordered by sequence number — at most [`RECENT_PER_WRITER`]
//! of them — plus a `floor`: every held item of that writer with a seq above the floor is in the
//! index. A peer whose vector is at or above every floor is answered from the index in
//! `O(changes · log n)`; a peer further behind (or a joiner) falls back to the scan.
//!
//! The index is local, derived data: it is not replicated, digested or persisted.

use std::collections::BTreeMap;

use super::version::{Dot, VersionVector};
use crate::hlc::WriterId;

/// How many recent writes are indexed per writer.
pub const RECENT_PER_WRITER: usize = 4_096;

#[derive(Clone, Debug)]
struct Log<K> {
    by_seq: BTreeMap<u64, K>,
    floor: u64,
}

impl<K> Default for Log<K> {
    fn default() -> Self {
        Self {
            by_seq: BTreeMap::new(),
            floor: 0,
        }
    }
}

/// Per writer: the keys of its recent writes by seq, and the floor below which it is partial.
#[derive(Clone, Debug)]
pub(crate) struct DotIndex<K> {
    logs: BTreeMap<WriterId, Log<K>>,
}

impl<K> Default for DotIndex<K> {
    fn default() -> Self {
        Self {
            logs: BTreeMap::new(),
        }
    }
}

impl<K: Clone> DotIndex<K> {
    /// Records that the item `key` now has dot `new`, replacing the item's previous dot `old`.
    pub(crate) fn record(&mut self, old: Option<&Dot>, new: &Dot, key: K) {
        if let Some(old) = old {
            self.forget(old);
        }
        let log = match self.logs.get_mut(&new.writer) {
            Some(log) => log,
            None => self.logs.entry(new.writer.clone()).or_default(),
        };
        if new.seq <= log.floor {
            return;
        }
        log.by_seq.insert(new.seq, key);
        if log.by_seq.len() > RECENT_PER_WRITER
            && let Some((seq, _)) = log.by_seq.pop_first()
        {
            log.floor = log.floor.max(seq);
        }
    }

    /// Forgets an item that is no longer held (superseded, collected, dropped).
    pub(crate) fn forget(&mut self, dot: &Dot) {
        if let Some(log) = self.logs.get_mut(&dot.writer) {
            log.by_seq.remove(&dot.seq);
        }
    }

    /// Keeps only the indexed keys for which `keep` holds.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        for log in self.logs.values_mut() {
            log.by_seq.retain(|_, k| keep(k));
        }
    }

    /// The keys of items whose dot `vv` does not cover, or `None` when some writer's index is
    /// truncated above `vv` and the caller must scan.
    pub(crate) fn since(&self, vv: &VersionVector) -> Option<Vec<K>> {
        let mut out = Vec::new();
        for (w, log) in &self.logs {
            let seen = vv.get(w);
            if seen < log.floor {
                return None;
            }
            out.extend(
                log.by_seq
                    .range(seen.saturating_add(1)..)
                    .map(|(_, k)| k.clone()),
            );
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::NodeId;

    fn dot(seq: u64) -> Dot {
        Dot {
            writer: WriterId::new(NodeId::new("a").unwrap(), 1),
            seq,
        }
    }

    #[test]
    fn answers_until_truncated() {
        let mut idx = DotIndex::default();
        for seq in 1..=(RECENT_PER_WRITER as u64 + 10) {
            idx.record(None, &dot(seq), seq);
        }
        let mut vv = VersionVector::new();
        assert!(idx.since(&vv).is_none(), "the oldest writes were evicted");
        vv.raise(&dot(1).writer, RECENT_PER_WRITER as u64 + 8);
        assert_eq!(idx.since(&vv), Some(vec![4_105, 4_106]));
        idx.record(Some(&dot(4_105)), &dot(4_107), 7);
        assert_eq!(idx.since(&vv), Some(vec![4_106, 7]));
    }
}
