//! The writer thread: appends, group commit, snapshots and log rotation.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use super::files::{frame_record, list, log_path, snapshot_path, sync_dir, write_snapshot};
use super::queue::Room;

/// Most commands folded into one fsync.
const MAX_BATCH: usize = 4_096;

/// How far ahead of the records the log is zero-filled. Records then overwrite bytes that
/// already exist, so `fdatasync` writes only data blocks: an append that grows the file makes
/// every sync commit the file system's journal too (ext4: about 50 % more time per sync, and
/// a wake-up of the journal thread). The size trades one larger write every so often against
/// the disk space a rotated log leaves unused.
const PREALLOCATE_BYTES: u64 = 1 << 20;

type Ack = oneshot::Sender<Result<(), StoreError>>;

/// Largest write buffer kept between batches: a burst of large records must not pin its
/// peak size for the life of the process.
const BUFFER_KEEP_BYTES: usize = 1 << 20;

/// Work for the writer thread.
#[derive(Debug)]
pub(super) enum Command {
    /// A record, with the room it holds in the queue until its batch is fsynced.
    Append {
        record: Bytes,
        ack: Option<Ack>,
        room: Room,
    },
    Sync {
        ack: Ack,
    },
    Snapshot {
        state: Bytes,
        ack: Ack,
    },
    /// Holds the writer until the sender answers or goes (tests: a disk that stalls).
    #[cfg(test)]
    Stall(std::sync::mpsc::Receiver<()>),
}

struct Writer {
    dir: PathBuf,
    generation: u64,
    log: File,
    /// Where the next record goes in `log`.
    offset: u64,
    /// How much of `log` is zero-filled and synced, from its start.
    allocated: u64,
    /// Off after a failed preallocation: records then grow the file as plain appends.
    preallocating: bool,
    buffer: Vec<u8>,
    failed: Option<StoreError>,
    /// The failure, for the store's handles to see (`Store::failure`).
    failure: Arc<OnceLock<String>>,
}

/// Starts the writer thread on a new log of `generation`.
pub(super) fn spawn(
    dir: PathBuf,
    generation: u64,
    mut rx: mpsc::UnboundedReceiver<Command>,
    failure: Arc<OnceLock<String>>,
) -> Result<(), StoreError> {
    let mut writer = Writer {
        log: open_log(&dir, generation)?,
        dir,
        generation,
        offset: 0,
        allocated: 0,
        preallocating: true,
        buffer: Vec::new(),
        failed: None,
        failure,
    };
    std::thread::Builder::new()
        .name("starling-store".to_owned())
        .spawn(move || {
            let mut batch = Vec::new();
            while let Some(first) = rx.blocking_recv() {
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(command) => batch.push(command),
                        Err(_) => break,
                    }
                }
                writer.run_batch(&mut batch);
                writer.preallocate();
            }
        })
        .map(|_| ())
        .map_err(|e| StoreError::Closed(format!("cannot start the writer thread: {e}")))
}

fn open_log(dir: &std::path::Path, generation: u64) -> Result<File, StoreError> {
    let path = log_path(dir, generation);
    // A generation is never reused (recovery starts past the newest), so an existing file
    // here is a bug that must not be overwritten.
    let file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::io("open", &path, &e))?;
    sync_dir(dir)?;
    Ok(file)
}

impl Writer {
    /// Writes every command of the batch, fsyncs once, then answers all waiters.
    fn run_batch(&mut self, batch: &mut Vec<Command>) {
        let mut acks = Vec::new();
        // Queued records keep their room until they are on disk (or refused), so the queue's
        // depth counts what is not yet durable.
        let mut rooms = Vec::new();
        for command in batch.drain(..) {
            match command {
                Command::Append { record, ack, room } => {
                    if self.failed.is_none()
                        && let Err(detail) = frame_record(&record, &mut self.buffer)
                    {
                        tracing::error!("dropping a store record: {detail}");
                    }
                    acks.extend(ack);
                    rooms.push(room);
                }
                Command::Sync { ack } => acks.push(ack),
                Command::Snapshot { state, ack } => {
                    let result = self.flush().and_then(|()| self.snapshot(&state));
                    if let Err(e) = result {
                        self.fail(e);
                    }
                    let _ = ack.send(self.status());
                }
                #[cfg(test)]
                Command::Stall(until) => {
                    let _ = until.recv();
                }
            }
        }
        if let Err(e) = self.flush() {
            self.fail(e);
        }
        // Room goes back before anyone hears of the fsync, so that a writer told its record is
        // durable never finds that record still counted in the queue.
        drop(rooms);
        let status = self.status();
        for ack in acks {
            let _ = ack.send(status.clone());
        }
    }

    fn status(&self) -> Result<(), StoreError> {
        match &self.failed {
            Some(e) => Err(StoreError::Closed(e.to_string())),
            None => Ok(()),
        }
    }

    fn fail(&mut self, error: StoreError) {
        tracing::error!("the store failed and refuses further writes: {error}");
        if self.failed.is_none()
            && let Err(e) = super::identity::mark_failed(&self.dir)
        {
            tracing::error!(
                "cannot mark the data dir as failed ({e}): restart the node on an empty data dir"
            );
        }
        let _ = self.failure.set(error.to_string());
        self.failed.get_or_insert(error);
    }

    /// Writes buffered records and fsyncs the log.
    fn flush(&mut self) -> Result<(), StoreError> {
        self.status()?;
        if self.buffer.is_empty() {
            return Ok(());
        }
        let path = log_path(&self.dir, self.generation);
        self.log
            .write_all_at(&self.buffer, self.offset)
            .map_err(|e| StoreError::io("write", &path, &e))?;
        self.log
            .sync_data()
            .map_err(|e| StoreError::io("fsync", &path, &e))?;
        self.offset += self.buffer.len() as u64;
        self.allocated = self.allocated.max(self.offset);
        self.buffer.clear();
        self.buffer.shrink_to(BUFFER_KEEP_BYTES);
        Ok(())
    }

    /// Zero-fills the log ahead of the records once less than half a step is left. Runs after
    /// a batch's waiters are answered, so no acknowledgement waits for it.
    fn preallocate(&mut self) {
        if !self.preallocating
            || self.failed.is_some()
            || self.allocated - self.offset >= PREALLOCATE_BYTES / 2
        {
            return;
        }
        let path = log_path(&self.dir, self.generation);
        let zeros = vec![0u8; (self.offset + PREALLOCATE_BYTES - self.allocated) as usize];
        let result = self
            .log
            .write_all_at(&zeros, self.allocated)
            .map_err(|e| StoreError::io("preallocate", &path, &e))
            .and_then(|()| {
                self.log
                    .sync_data()
                    .map_err(|e| StoreError::io("fsync", &path, &e))
            });
        match result {
            Ok(()) => self.allocated += zeros.len() as u64,
            Err(e) => {
                // Slower syncs, not lost data: the records still land, as appends.
                tracing::warn!("log preallocation off for this log: {e}");
                self.preallocating = false;
            }
        }
    }

    /// Rotates to a new log and writes the snapshot under its generation, which then covers
    /// every older log; those and older snapshots are removed.
    fn snapshot(&mut self, state: &[u8]) -> Result<(), StoreError> {
        let next = self.generation + 1;
        self.log = open_log(&self.dir, next)?;
        self.generation = next;
        self.offset = 0;
        self.allocated = 0;
        self.preallocating = true;
        write_snapshot(&self.dir, next, state)?;
        let (logs, snapshots) = list(&self.dir)?;
        for old in logs.into_iter().filter(|g| *g < next) {
            let path = log_path(&self.dir, old);
            std::fs::remove_file(&path).map_err(|e| StoreError::io("remove", &path, &e))?;
        }
        for old in snapshots.into_iter().filter(|g| *g < next) {
            let path = snapshot_path(&self.dir, old);
            std::fs::remove_file(&path).map_err(|e| StoreError::io("remove", &path, &e))?;
        }
        sync_dir(&self.dir)
    }
}
