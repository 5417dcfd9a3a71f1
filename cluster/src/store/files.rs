//! On-disk formats: framed records, log and snapshot file names, atomic writes, recovery.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{MAX_RECORD_BYTES, Recovered, StoreError};

/// Bytes before a record's payload: length (u32 BE) and CRC-32 of the payload (u32 BE).
pub(super) const RECORD_HEADER: usize = 8;
const SNAPSHOT_MAGIC: &[u8; 8] = b"STRLSNAP";

/// Appends `payload`'s frame to `out`. Payloads are never empty: an all-zero header (length 0,
/// and 0 is the CRC-32 of nothing) marks the preallocated tail of a log.
pub(super) fn frame_record(payload: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    if payload.is_empty() {
        return Err("empty record".to_owned());
    }
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| (*l as usize) <= MAX_RECORD_BYTES)
        .ok_or_else(|| format!("record of {} bytes is too large", payload.len()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// How a log's bytes end after its last good record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LogEnd {
    /// Only zeros (the preallocated tail) or nothing.
    Clean,
    /// A bad record with nothing but zeros after it: a write cut short by a crash. `at` is
    /// where the good records end.
    Torn { at: usize },
    /// A bad record followed by non-zero bytes: damage in the middle of the log, so records
    /// after it, acknowledged ones included, are lost. `at` is where the good records end.
    Damaged { at: usize },
}

/// Splits a log file's bytes into records, stopping at the first bad one (torn, failing its
/// checksum, or of an impossible length) or at the zero-filled tail, and says how it ended.
pub(super) fn parse_records(bytes: &[u8]) -> (Vec<Bytes>, LogEnd) {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(rest) = bytes.get(at..).filter(|rest| !rest.is_empty()) {
        if rest.iter().take(RECORD_HEADER).all(|b| *b == 0) {
            if rest.iter().all(|b| *b == 0) {
                return (records, LogEnd::Clean);
            }
            return (records, LogEnd::Damaged { at });
        }
        match next_record(rest) {
            Some((payload, used)) => {
                records.push(Bytes::copy_from_slice(payload));
                at += used;
            }
            None => return (records, bad_record_end(rest, at)),
        }
    }
    (records, LogEnd::Clean)
}

/// The payload of the record at the start of `bytes` and the bytes it spans, if it is whole
/// and its checksum holds.
fn next_record(bytes: &[u8]) -> Option<(&[u8], usize)> {
    let (header, body) = bytes.split_at_checked(RECORD_HEADER)?;
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_RECORD_BYTES {
        return None;
    }
    let payload = body.get(..len)?;
    (crc32fast::hash(payload) == crc).then_some((payload, RECORD_HEADER + len))
}

/// Whether the bad record at the start of `rest` (at offset `at`) is a torn last write or
/// damage: a torn write leaves only zeros (the preallocated tail) past the span its header
/// claims, or past its header when the claimed length is impossible.
fn bad_record_end(rest: &[u8], at: usize) -> LogEnd {
    let claimed = rest
        .get(..4)
        .map(|len| u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize)
        .filter(|len| *len <= MAX_RECORD_BYTES)
        .map_or(RECORD_HEADER, |len| RECORD_HEADER + len);
    let after = rest.get(claimed..).unwrap_or_default();
    if after.iter().all(|b| *b == 0) {
        LogEnd::Torn { at }
    } else {
        LogEnd::Damaged { at }
    }
}

pub(super) fn log_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("wal-{generation:020}.log"))
}

pub(super) fn snapshot_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("snapshot-{generation:020}.bin"))
}

fn generation_of(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    name.strip_prefix(prefix)?
        .strip_suffix(suffix)?
        .parse()
        .ok()
}

/// The generations of the logs and snapshots in `dir`, each sorted.
pub(super) fn list(dir: &Path) -> Result<(Vec<u64>, Vec<u64>), StoreError> {
    let mut logs = Vec::new();
    let mut snapshots = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| StoreError::io("list", dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("list", dir, &e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(g) = generation_of(&name, "wal-", ".log") {
            logs.push(g);
        } else if let Some(g) = generation_of(&name, "snapshot-", ".bin") {
            snapshots.push(g);
        }
    }
    logs.sort_unstable();
    snapshots.sort_unstable();
    Ok((logs, snapshots))
}

/// Loads the newest snapshot and the logs after it. Returns the next free generation.
pub(super) fn recover(dir: &Path) -> Result<(Recovered, u64), StoreError> {
    let (logs, snapshots) = list(dir)?;
    let mut recovered = Recovered::default();
    let mut from = 0;
    if let Some(&generation) = snapshots.last() {
        recovered.snapshot = Some(read_snapshot(&snapshot_path(dir, generation))?);
        from = generation;
    }
    let replayed: Vec<u64> = logs.iter().copied().filter(|g| *g >= from).collect();
    for (i, &generation) in replayed.iter().enumerate() {
        let path = log_path(dir, generation);
        let bytes = std::fs::read(&path).map_err(|e| StoreError::io("read", &path, &e))?;
        let (records, end) = parse_records(&bytes);
        let newest = i + 1 == replayed.len();
        match end {
            LogEnd::Clean => {}
            // The newest log may end in a write a crash cut short: it was never acknowledged.
            // Cut it off, so that the log reads clean once newer logs follow it.
            LogEnd::Torn { at } if newest => {
                tracing::warn!(
                    path = %path.display(),
                    kept = records.len(),
                    "log ends in a torn record (a crash mid-write); replaying up to it"
                );
                truncate(&path, at)?;
            }
            LogEnd::Torn { at } | LogEnd::Damaged { at } => {
                let reason = if newest {
                    "non-zero bytes follow a bad record"
                } else {
                    "a log older than the newest does not end cleanly"
                };
                return Err(StoreError::Corrupt {
                    path,
                    detail: format!(
                        "{reason} (the good records end at byte {at}): records after it, \
                         acknowledged ones included, are lost, so this node cannot go on \
                         under its incarnation. Move the data dir aside and start the node \
                         with an empty one: it rejoins under a new incarnation and recovers \
                         the cluster's state from its peers"
                    ),
                });
            }
        }
        recovered.records.extend(records);
    }
    let next = logs
        .last()
        .copied()
        .max(snapshots.last().copied())
        .map_or(1, |g| g + 1);
    Ok((recovered, next))
}

/// Reads what can be read of a damaged data dir: the newest snapshot if it reads whole, and
/// every log's records up to its first bad one (all logs when the snapshot is unreadable: their
/// records are deltas, and a partial state merges like any other). What is missing, peers have
/// (or it was lost with the damage).
pub(super) fn salvage(dir: &Path) -> Result<Recovered, StoreError> {
    let (logs, snapshots) = list(dir)?;
    let mut recovered = Recovered::default();
    let mut from = 0;
    if let Some(&generation) = snapshots.last()
        && let Ok(state) = read_snapshot(&snapshot_path(dir, generation))
    {
        recovered.snapshot = Some(state);
        from = generation;
    }
    for generation in logs.into_iter().filter(|g| *g >= from) {
        let path = log_path(dir, generation);
        let bytes = std::fs::read(&path).map_err(|e| StoreError::io("read", &path, &e))?;
        recovered.records.extend(parse_records(&bytes).0);
    }
    Ok(recovered)
}

/// Whether `dir` holds no log or snapshot.
pub(super) fn holds_no_data(dir: &Path) -> Result<bool, StoreError> {
    let (logs, snapshots) = list(dir)?;
    Ok(logs.is_empty() && snapshots.is_empty())
}

/// Moves the identity, logs, snapshots and half-written files of `dir` into its new
/// subdirectory `aside`, durably, leaving `dir` empty of data. Returns what was moved.
pub(super) fn set_aside(dir: &Path, aside: &Path) -> Result<usize, StoreError> {
    std::fs::create_dir(aside).map_err(|e| StoreError::io("create", aside, &e))?;
    let mut moved = 0;
    let entries = std::fs::read_dir(dir).map_err(|e| StoreError::io("list", dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("list", dir, &e))?;
        let name = entry.file_name();
        let text = name.to_string_lossy();
        let data = text.starts_with("wal-")
            || text.starts_with("snapshot-")
            || text.starts_with("identity.")
            || text.ends_with(".tmp");
        if data && entry.path().is_file() {
            let to = aside.join(&name);
            std::fs::rename(entry.path(), &to).map_err(|e| StoreError::io("move", &to, &e))?;
            moved += 1;
        }
    }
    sync_dir(aside)?;
    sync_dir(dir)?;
    Ok(moved)
}

/// Cuts a log back to `len` bytes, durably.
fn truncate(path: &Path, len: usize) -> Result<(), StoreError> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io("open", path, &e))?;
    file.set_len(len as u64)
        .and_then(|()| file.sync_all())
        .map_err(|e| StoreError::io("truncate", path, &e))
}

fn read_snapshot(path: &Path) -> Result<Bytes, StoreError> {
    let bytes = std::fs::read(path).map_err(|e| StoreError::io("read", path, &e))?;
    let corrupt = |detail: &str| StoreError::Corrupt {
        path: path.to_owned(),
        detail: detail.to_owned(),
    };
    let body = bytes
        .strip_prefix(SNAPSHOT_MAGIC.as_slice())
        .ok_or_else(|| corrupt("bad magic"))?;
    let (records, end) = parse_records(body);
    match (records.as_slice(), end) {
        ([state], LogEnd::Clean) => Ok(state.clone()),
        _ => Err(corrupt("truncated or checksum mismatch")),
    }
}

/// Writes a snapshot file for `generation` durably.
pub(super) fn write_snapshot(dir: &Path, generation: u64, state: &[u8]) -> Result<(), StoreError> {
    let path = snapshot_path(dir, generation);
    let mut bytes = Vec::with_capacity(SNAPSHOT_MAGIC.len() + RECORD_HEADER + state.len());
    bytes.extend_from_slice(SNAPSHOT_MAGIC);
    frame_record(state, &mut bytes).map_err(|detail| StoreError::Corrupt {
        path: path.clone(),
        detail,
    })?;
    write_atomically(dir, &path, &bytes)
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the whole new one:
/// a temporary file, fsynced, renamed over, then the directory fsynced.
pub(super) fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(|e| StoreError::io("create", &tmp, &e))?;
    file.write_all(bytes)
        .map_err(|e| StoreError::io("write", &tmp, &e))?;
    file.sync_all()
        .map_err(|e| StoreError::io("fsync", &tmp, &e))?;
    std::fs::rename(&tmp, path).map_err(|e| StoreError::io("rename", path, &e))?;
    sync_dir(dir)
}

/// Makes a directory's entries (new, renamed, removed files) durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("fsync", dir, &e))
}
