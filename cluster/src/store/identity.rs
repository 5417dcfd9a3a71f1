//! Who wrote this data dir: the node id and its incarnation.
//!
//! The incarnation separates a node's lives. A node that restarts with its data dir keeps its
//! incarnation and continues its own counter slots. A node that restarts with an empty data dir
//! under its old id gets a new, larger incarnation and so a fresh slot: its new increments can
//! never hide behind the old slot's values, which stay in every sum.

use std::path::Path;

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

pub(super) fn load_or_create(dir: &Path, node_id: &str) -> Result<Identity, StoreError> {
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let identity: Identity =
                serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
            if identity.node_id != node_id {
                return Err(StoreError::WrongNode {
                    dir: dir.to_owned(),
                    found: identity.node_id,
                    expected: node_id.to_owned(),
                });
            }
            Ok(identity)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let millis = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| {
                    u64::try_from(d.as_millis()).unwrap_or(u64::MAX >> 16)
                });
            let identity = Identity {
                node_id: node_id.to_owned(),
                incarnation: (millis << 16) | u64::from(rand::random::<u16>()),
            };
            let bytes = serde_json::to_vec_pretty(&identity).map_err(|e| StoreError::Corrupt {
                path: path.clone(),
                detail: e.to_string(),
            })?;
            write_atomically(dir, &path, &bytes)?;
            Ok(identity)
        }
        Err(e) => Err(StoreError::io("read", &path, &e)),
    }
}
