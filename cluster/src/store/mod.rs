//! The node's durable copy of its replica: a snapshot plus a write-ahead log of deltas, in the
//! `--data-dir`.
//!
//! Why this shape: the replica changes by small deltas and is rebuilt by replaying them, so an
//! append-only log is the natural durable form, and a periodic snapshot bounds replay time.
//! All file I/O happens on one dedicated writer thread. Appends are queued and fsynced in
//! batches (group commit); callers that must not acknowledge before the data is on disk await
//! the batch's fsync (`append`), everyone else enqueues and moves on (`append_nowait`,
//! `append_queued`), so the request hot path never touches the disk.
//!
//! The queue is bounded in bytes (`queue_bytes`, see [`Room`]): every record takes room
//! ([`Store::room`]) before it is queued and gives it back once its batch is fsynced. When
//! the queue is full, taking room waits: that is the only wait a full queue causes, and it
//! happens before anything is applied or queued, never under a lock. Nothing is refused for
//! want of room: a refused usage record would be an undercount (a budget overspent), and a
//! refused merge would only be fetched again; waiting slows the writers down to the disk's
//! pace instead, which is what backpressure is for. Who waits: local writes
//! (`ClusterNode::mutate`, the usage flush through `mutate_nowait`) before they are applied,
//! and merges of peers' deltas before they are applied (a peer's push then waits in the
//! transport's bounded inbox, and a pull's answer in QUIC flow control).
//!
//! Files: `identity.json` (node id and incarnation), `wal-GEN.log` (records framed as length,
//! CRC-32, payload, in a file zero-filled ahead of them so that a sync never has to grow it; the
//! first all-zero header ends the log), `snapshot-GEN.bin` (one framed payload). A snapshot of generation G holds
//! everything in logs before G; recovery loads the newest snapshot and replays the logs from its
//! generation on. A torn record at the end of a log (a crash mid-write) ends that log's replay;
//! logs are never appended to after a restart, so a torn tail is never followed by new data.

mod files;
mod identity;
mod queue;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

pub use identity::Identity;
pub use queue::{QueueStats, RECORD_OVERHEAD, Room};

use writer::Command;

/// Largest record or snapshot accepted when reading; a corrupted length cannot make the node
/// allocate more than this.
pub const MAX_RECORD_BYTES: usize = 256 * 1024 * 1024;

/// Default bound on the bytes of records queued for the writer (64 MiB).
pub const DEFAULT_QUEUE_BYTES: u32 = 64 << 20;

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
    /// Why this incarnation began.
    pub start: IncarnationStart,
    /// Where the previous life's files were moved, when it began a fresh incarnation over
    /// data it could not continue (`snapshot` and `records` are what could be read of them:
    /// the previous incarnation's rows, no longer this node's own).
    pub set_aside: Option<PathBuf>,
    /// What was wrong with the data, when it was damaged.
    pub damage: Option<String>,
}

/// Why a node's incarnation began at this start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IncarnationStart {
    /// The data dir was empty.
    #[default]
    New,
    /// The node restarted on its data dir and continues its incarnation.
    Resumed,
    /// The data dir was damaged (a bad record in the middle of a log, an older log that does
    /// not end cleanly, an unreadable snapshot); its files were set aside.
    DamagedData,
    /// The previous process's store failed (a full or failing disk), so rows it applied may
    /// never have reached its disk; its files were set aside.
    StoreFailed,
}

impl IncarnationStart {
    /// The metric label: `new`, `resumed`, `damaged_data`, `store_failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Resumed => "resumed",
            Self::DamagedData => "damaged_data",
            Self::StoreFailed => "store_failed",
        }
    }

    /// Every value, for exporting the gauge with one series each.
    pub const ALL: [IncarnationStart; 4] = [
        Self::New,
        Self::Resumed,
        Self::DamagedData,
        Self::StoreFailed,
    ];
}

/// What [`Store::open`] does with a damaged data dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDamage {
    /// Refuse to open, naming the file: right for a node that no peer can refill, whose
    /// acknowledged records after the damage would otherwise be gone without a word.
    Refuse,
    /// Set the files aside and begin a fresh incarnation with what could be read: right for a
    /// member of a cluster, whose peers hold every row it shipped. The old incarnation's rows
    /// become another writer's, so no row of this node's own can regress.
    FreshIncarnation,
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
    /// Bounds what `tx` holds: the channel itself is unbounded because room is taken first.
    budget: Arc<queue::Budget>,
}

impl Store {
    /// Opens (or creates) the data dir for `node_id`, recovers its contents, and starts the
    /// writer thread, with a queue of [`DEFAULT_QUEUE_BYTES`]. A fresh dir gets a new
    /// incarnation; an existing one keeps its own, unless its previous process's store failed,
    /// or its data is damaged and `on_damage` says to begin afresh: then its files are set
    /// aside (see [`Recovered`]) under a new incarnation.
    pub fn open(
        dir: &Path,
        node_id: &str,
        on_damage: OnDamage,
    ) -> Result<(Self, Identity, Recovered), StoreError> {
        Self::open_with_queue(dir, node_id, on_damage, DEFAULT_QUEUE_BYTES)
    }

    /// [`Store::open`] with a queue bounded to `queue_bytes` bytes of records (each counted
    /// with [`RECORD_OVERHEAD`] more).
    pub fn open_with_queue(
        dir: &Path,
        node_id: &str,
        on_damage: OnDamage,
        queue_bytes: u32,
    ) -> Result<(Self, Identity, Recovered), StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create", dir, &e))?;
        let (identity, recovered, next_generation) = match identity::load(dir, node_id)? {
            Some(identity) => match files::recover(dir) {
                Ok((mut recovered, next)) => {
                    recovered.start = IncarnationStart::Resumed;
                    (identity, recovered, next)
                }
                Err(e @ StoreError::Corrupt { .. }) if on_damage == OnDamage::FreshIncarnation => {
                    let previous = Some(identity.incarnation);
                    begin_afresh(dir, node_id, previous, IncarnationStart::DamagedData, e)?
                }
                Err(e) => return Err(e),
            },
            None => match identity::load_failed(dir, node_id)? {
                Some(failed) => {
                    let why = StoreError::Closed("the previous process's store failed".to_owned());
                    let previous = Some(failed.incarnation);
                    begin_afresh(dir, node_id, previous, IncarnationStart::StoreFailed, why)?
                }
                None if files::holds_no_data(dir)? => {
                    let identity = identity::create(dir, node_id, None)?;
                    (identity, Recovered::default(), 1)
                }
                // Data without an identity: the identity was removed, which only a failed
                // store does on purpose; the data is not this life's to continue either way.
                None => {
                    let why = StoreError::Closed("the data dir has no identity".to_owned());
                    begin_afresh(dir, node_id, None, IncarnationStart::StoreFailed, why)?
                }
            },
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let failure = Arc::new(OnceLock::new());
        writer::spawn(dir.to_owned(), next_generation, rx, failure.clone())?;
        Ok((
            Self {
                dir: dir.to_owned(),
                tx,
                failure,
                budget: Arc::new(queue::Budget::new(queue_bytes)),
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

    /// The queue's depth and bound.
    pub fn queue_stats(&self) -> QueueStats {
        self.budget.stats()
    }

    /// Waits for room in the queue for a record of `len` bytes (0 when its size is not known
    /// yet: the record then takes the rest when it is queued, see [`Room`]). Take room before
    /// applying what the record holds, so that nothing is applied that must then wait to be
    /// queued. Fails if the store has failed, before or while it waits. Cancel-safe: dropping
    /// the future, or the room, gives the room back.
    pub async fn room(&self, len: usize) -> Result<Room, StoreError> {
        self.refuse_if_failed()?;
        let room = self.budget.take(len).await?;
        // The store may have failed while this waited: a failed writer still drains its queue.
        self.refuse_if_failed()?;
        Ok(room)
    }

    /// Queues `record` in `room`; it reaches disk with the next batch. Never waits.
    pub fn append_nowait(&self, room: Room, record: Bytes) -> Result<(), StoreError> {
        self.queue(room, record, None)
    }

    /// Queues `record` in `room` (never waits) and returns a handle that resolves once the
    /// batch holding it is fsynced: for callers that must not wait but must know when the
    /// record is durable (to ship it only then).
    pub fn append_queued(&self, room: Room, record: Bytes) -> Result<AppendDone, StoreError> {
        let (ack, done) = oneshot::channel();
        self.queue(room, record, Some(ack))?;
        Ok(AppendDone(done))
    }

    /// Appends `record` and waits until the batch holding it is fsynced (first for room in
    /// the queue, if it is full).
    pub async fn append(&self, record: Bytes) -> Result<(), StoreError> {
        let room = self.room(record.len()).await?;
        self.append_queued(room, record)?.wait().await
    }

    fn queue(
        &self,
        mut room: Room,
        record: Bytes,
        ack: Option<oneshot::Sender<Result<(), StoreError>>>,
    ) -> Result<(), StoreError> {
        room.cover(record.len());
        self.send(Command::Append { record, ack, room })
    }

    fn refuse_if_failed(&self) -> Result<(), StoreError> {
        match self.failure() {
            Some(reason) => Err(StoreError::Closed(reason.to_owned())),
            None => Ok(()),
        }
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

    /// Holds the writer thread until `until` is answered or dropped (tests: a stalled disk).
    #[cfg(test)]
    fn stall(&self, until: std::sync::mpsc::Receiver<()>) {
        let _ = self.send(Command::Stall(until));
    }

    async fn wait(done: oneshot::Receiver<Result<(), StoreError>>) -> Result<(), StoreError> {
        done.await.map_err(|_| {
            StoreError::Closed("the writer thread stopped before answering".to_owned())
        })?
    }
}

/// Reads what it can of `dir`, sets its files aside and records a new incarnation (see
/// [`OnDamage::FreshIncarnation`]). Returns the new identity, what was read, and the first log
/// generation of the emptied dir.
fn begin_afresh(
    dir: &Path,
    node_id: &str,
    previous: Option<u64>,
    start: IncarnationStart,
    why: StoreError,
) -> Result<(Identity, Recovered, u64), StoreError> {
    let mut recovered = files::salvage(dir)?;
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let prefix = match start {
        IncarnationStart::DamagedData => "damaged",
        _ => "failed",
    };
    let aside = dir.join(format!("{prefix}-{millis}"));
    files::set_aside(dir, &aside)?;
    let identity = identity::create(dir, node_id, previous)?;
    tracing::error!(
        dir = %dir.display(),
        set_aside = %aside.display(),
        incarnation = identity.incarnation,
        snapshot = recovered.snapshot.is_some(),
        records = recovered.records.len(),
        "{why}: began a fresh incarnation with what could be read; peers hold the rest"
    );
    recovered.start = start;
    recovered.set_aside = Some(aside);
    recovered.damage = Some(why.to_string());
    Ok((identity, recovered, 1))
}

#[cfg(test)]
mod tests;
