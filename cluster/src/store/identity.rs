//! Who wrote this data dir: the node id and its incarnation.
//!
//! The incarnation separates a node's lives. A node that restarts with its data dir keeps its
//! incarnation and continues its own counter slots. A node that restarts with an empty data dir
//! under its old id gets a new, larger incarnation and so a fresh slot: its new increments can
//! never hide behind the old slot's values, which stay in every sum.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::StoreError;
use super::files::write_atomically;

const FILE: &str = "identity.json";

/// A node's identity in its data dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The node id it was created for.
    pub node_id: String,
    /// This data dir's incarnation: wall-clock milliseconds at creation, shifted left 16 bits,
    /// with 16 random low bits, so later lives compare larger and two lives never collide.
    pub incarnation: u64,
}

/// Where a failed store moves its identity: the next start sees that its previous life ended
/// in a store failure, and which incarnation that was.
const FAILED_FILE: &str = "identity.failed.json";

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The identity recorded in `dir`, if there is one.
pub(super) fn load(dir: &Path, node_id: &str) -> Result<Option<Identity>, StoreError> {
    read(dir, &path(dir), node_id)
}

/// The identity of a life whose store failed ([`mark_failed`]), if `dir` holds one.
pub(super) fn load_failed(dir: &Path, node_id: &str) -> Result<Option<Identity>, StoreError> {
    read(dir, &dir.join(FAILED_FILE), node_id)
}

/// Marks this life's store as failed by moving its identity aside, so the next start takes a
/// fresh incarnation: rows applied but not persisted may have reached peers (an anti-entropy
/// answer carries the replica as it is), and their dots must never be issued again. A rename
/// and, failing that, an unlink: both work on a full disk, which cannot take a new file.
pub(super) fn mark_failed(dir: &Path) -> std::io::Result<()> {
    let identity = path(dir);
    std::fs::rename(&identity, dir.join(FAILED_FILE))
        .or_else(|_| std::fs::remove_file(&identity))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all())
}

fn read(dir: &Path, path: &Path, node_id: &str) -> Result<Option<Identity>, StoreError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("read", path, &e)),
    };
    let identity: Identity = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    if identity.node_id != node_id {
        return Err(StoreError::WrongNode {
            dir: dir.to_owned(),
            found: identity.node_id,
            expected: node_id.to_owned(),
        });
    }
    Ok(Some(identity))
}

/// Creates and records a new incarnation for `node_id`, above `previous` (the life this one
/// replaces, when known): a clock set back since then cannot make the new life compare lower.
pub(super) fn create(
    dir: &Path,
    node_id: &str,
    previous: Option<u64>,
) -> Result<Identity, StoreError> {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX >> 16)
        });
    let fresh = (millis << 16) | u64::from(rand::random::<u16>());
    let identity = Identity {
        node_id: node_id.to_owned(),
        incarnation: previous.map_or(fresh, |p| fresh.max(p.saturating_add(1))),
    };
    let path = path(dir);
    let bytes = serde_json::to_vec_pretty(&identity).map_err(|e| StoreError::Corrupt {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    write_atomically(dir, &path, &bytes)?;
    Ok(identity)
}
