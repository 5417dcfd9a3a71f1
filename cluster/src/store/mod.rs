//! The node's durable copy of its replica: a snapshot plus a write-ahead log of deltas, in the
//! `--data-dir`.
//!
//! Why this shape: the replica changes by small deltas and is rebuilt by replaying them, so an
//! append-only log is the natural durable form, and a periodic snapshot bounds replay time.
//! All file I/O happens on one dedicated writer thread. Appends are queued without waiting and
//! fsynced in batches (group commit); callers that must not acknowledge before the data is on
//! disk await the batch's fsync (`append`), everyone else enqueues and moves on
//! (`append_nowait`), so the request hot path never touches the disk.
//!
//! Files: `identity.json` (node id and incarnation), `wal-GEN.log` (records framed as length,
//! CRC-32, payload, in a file zero-filled ahead of them so that a sync never has to grow it; the
//! first all-zero header ends the log), `snapshot-GEN.bin` (one framed payload). A snapshot of generation G holds
//! everything in logs before G; recovery loads the newest snapshot and replays the logs from its
//! generation on. A torn record at the end of a log (a crash mid-write) ends that log's replay;
//! logs are never appended to after a restart, so a torn tail is never followed by new data.

mod files;
mod identity;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

pub use identity::Identity;

use writer::Command;

/// Largest record or snapshot accepted when reading; a corrupted length cannot make the node
/// allocate more than this.
pub const MAX_RECORD_BYTES: usize = 256 * 1024 * 1024;

/// A storage failure. After a write or fsync failure the store refuses further writes.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// An I/O operation failed.
    #[error("{op} {path}: {detail}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        detail: String,
    },
    /// A file's contents are not what this version writes.
    #[error("{path} is corrupt: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The data dir belongs to another node.
    #[error("data dir {dir} belongs to node {found:?}, not {expected:?}")]
    WrongNode {
        /// The data dir.
        dir: PathBuf,
        /// The node id on disk.
        found: String,
        /// The node id given.
        expected: String,
    },
    /// The writer stopped after an earlier failure, or the store was closed.
    #[error("the store is closed: {0}")]
    Closed(String),
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: &Path, e: &std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.to_owned(),
            detail: e.to_string(),
        }
    }
}

/// What was on disk at open.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The newest snapshot, if any.
    pub snapshot: Option<Bytes>,
    /// Log records written after that snapshot, in order.
    pub records: Vec<Bytes>,
}

/// The outcome of a queued snapshot.
#[derive(Debug)]
pub struct SnapshotDone(oneshot::Receiver<Result<(), StoreError>>);

impl SnapshotDone {
    /// Waits until the snapshot is durable and the logs it covers are removed.
    pub async fn wait(self) -> Result<(), StoreError> {
        Store::wait(self.0).await
    }
}

/// The outcome of a queued append.
#[derive(Debug)]
pub struct AppendDone(oneshot::Receiver<Result<(), StoreError>>);

impl AppendDone {
    /// Waits until the batch holding the record is fsynced.
    pub async fn wait(self) -> Result<(), StoreError> {
        Store::wait(self.0).await
    }
}

/// Handle to the store's writer thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    tx: mpsc::UnboundedSender<Command>,
    failure: Arc<OnceLock<String>>,
}

impl Store {
    /// Opens (or creates) the data dir for `node_id`, recovers its contents, and starts the
    /// writer thread. A fresh dir gets a new incarnation; an existing one keeps its own.
    pub fn open(dir: &Path, node_id: &str) -> Result<(Self, Identity, Recovered), StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create", dir, &e))?;
        let identity = identity::load_or_create(dir, node_id)?;
        let (recovered, next_generation) = files::recover(dir)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let failure = Arc::new(OnceLock::new());
        writer::spawn(dir.to_owned(), next_generation, rx, failure.clone())?;
        Ok((
            Self {
                dir: dir.to_owned(),
                tx,
                failure,
            },
            identity,
            recovered,
        ))
    }

    /// Why the store stopped, once a write or fsync failed (a full or failing disk): from then
    /// on it refuses every write, and the node must stop taking writes and shipping its rows.
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    /// The data dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Queues `record`; it reaches disk with the next batch. Never blocks.
    pub fn append_nowait(&self, record: Bytes) -> Result<(), StoreError> {
        self.tx
            .send(Command::Append { record, ack: None })
            .map_err(|_| StoreError::Closed("the writer thread has stopped".to_owned()))
    }

    /// Appends `record` and waits until the batch holding it is fsynced.
    pub async fn append(&self, record: Bytes) -> Result<(), StoreError> {
        self.append_queued(record)?.wait().await
    }

    /// Queues `record` now (never blocks) and returns a handle that resolves once the batch
    /// holding it is fsynced: for callers that must not wait but must know when the record is
    /// durable (to ship it only then).
    pub fn append_queued(&self, record: Bytes) -> Result<AppendDone, StoreError> {
        let (ack, done) = oneshot::channel();
        self.send(Command::Append {
            record,
            ack: Some(ack),
        })?;
        Ok(AppendDone(done))
    }

    /// Waits until everything queued so far is fsynced.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let (ack, done) = oneshot::channel();
        self.send(Command::Sync { ack })?;
        Self::wait(done).await
    }

    /// Writes `state` as the new snapshot and drops the logs it covers. `state` must include
    /// every record appended before this call (records appended after may be included too:
    /// replaying them is harmless for idempotent deltas).
    pub async fn snapshot(&self, state: Bytes) -> Result<(), StoreError> {
        self.queue_snapshot(state)?.wait().await
    }

    /// Queues a snapshot without waiting, for callers that must order it against appends
    /// under their own lock; await the returned receiver for the outcome.
    pub fn queue_snapshot(&self, state: Bytes) -> Result<SnapshotDone, StoreError> {
        let (ack, done) = oneshot::channel();
        self.send(Command::Snapshot { state, ack })?;
        Ok(SnapshotDone(done))
    }

    fn send(&self, command: Command) -> Result<(), StoreError> {
        self.tx
            .send(command)
            .map_err(|_| StoreError::Closed("the writer thread has stopped".to_owned()))
    }

    async fn wait(done: oneshot::Receiver<Result<(), StoreError>>) -> Result<(), StoreError> {
        done.await.map_err(|_| {
            StoreError::Closed("the writer thread stopped before answering".to_owned())
        })?
    }
}

#[cfg(test)]
mod tests;
