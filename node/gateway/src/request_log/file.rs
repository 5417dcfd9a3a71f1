//! JSON-lines request log files: a writer thread fed by a bounded queue, with size-based
//! rotation (`FILE` → `FILE.1` → … → `FILE.N`, the oldest deleted).
//!
//! A thread rather than a Tokio task: file writes block, and a thread of its own keeps them
//! off the runtime's workers without `spawn_blocking` per record.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use metrics::counter;

use super::{DROPPED, RequestRecord};

enum Message {
    Record(Arc<RequestRecord>),
    Close,
}

/// The sending side of the request log file.
#[derive(Debug)]
pub struct FileSink {
    tx: SyncSender<Message>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Message::Record(_) => "Record",
            Message::Close => "Close",
        })
    }
}

impl FileSink {
    /// Opens (or creates) `path` for appending and starts the writer thread. Opening here
    /// makes a bad path fail at start, not on the first request.
    pub fn start(
        path: PathBuf,
        max_bytes: u64,
        keep: usize,
        queue: usize,
    ) -> std::io::Result<Self> {
        let writer = RotatingWriter::open(path, max_bytes, keep)?;
        let (tx, rx) = sync_channel(queue.max(1));
        let thread = std::thread::Builder::new()
            .name("starling-request-log".to_owned())
            .spawn(move || run(&rx, writer))?;
        Ok(Self {
            tx,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues a record; never waits. A full queue drops the record and counts it.
    pub fn send(&self, record: Arc<RequestRecord>) {
        match self.tx.try_send(Message::Record(record)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                counter!(DROPPED, "reason" => "queue_full").increment(1);
            }
            Err(TrySendError::Disconnected(_)) => {
                counter!(DROPPED, "reason" => "closed").increment(1);
            }
        }
    }

    /// Writes everything queued, flushes and stops the thread. Blocks until it has.
    pub fn close(&self) {
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            // Waits for room in the queue: the writer always makes progress.
            let _ = self.tx.send(Message::Close);
            let _ = thread.join();
        }
    }
}

fn run(rx: &Receiver<Message>, mut writer: RotatingWriter) {
    let mut line = Vec::with_capacity(1024);
    let mut failing = false;
    // Blocks for the first message, then takes what else is queued before flushing, so a
    // busy node writes in large batches and a quiet one flushes each record promptly.
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        let mut closing = false;
        while let Some(message) = next.take() {
            match message {
                Message::Close => closing = true,
                Message::Record(record) => {
                    line.clear();
                    let written = serde_json::to_writer(&mut line, &*record)
                        .map_err(std::io::Error::from)
                        .and_then(|()| {
                            line.push(b'\n');
                            writer.write_line(&line)
                        });
                    note(written, &mut failing, writer.path());
                }
            }
            if !closing {
                next = rx.try_recv().ok();
            }
        }
        note(writer.flush(), &mut failing, writer.path());
        if closing {
            return;
        }
    }
    let _ = writer.flush();
}

/// Counts a failed write, logging the first of a run of failures only.
fn note(result: std::io::Result<()>, failing: &mut bool, path: &Path) {
    match result {
        Ok(()) => *failing = false,
        Err(e) => {
            counter!(DROPPED, "reason" => "write_failed").increment(1);
            if !*failing {
                tracing::warn!(path = %path.display(), "cannot write the request log: {e}");
            }
            *failing = true;
        }
    }
}

/// A file that is rotated when a write would take it past `max_bytes`.
pub struct RotatingWriter {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: BufWriter<File>,
    size: u64,
}

impl RotatingWriter {
    /// Opens `path` for appending, creating it (not its directory) if needed.
    pub fn open(path: PathBuf, max_bytes: u64, keep: usize) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path,
            max_bytes,
            keep,
            file: BufWriter::new(file),
            size,
        })
    }

    /// The current file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line, rotating first if it would not fit. A line longer than `max_bytes`
    /// gets a file of its own rather than being cut.
    pub fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        let len = line.len() as u64;
        if self.size > 0 && self.size.saturating_add(len) > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.size += len;
        Ok(())
    }

    /// Flushes buffered lines to the file.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }

    fn rotated(&self, n: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        if self.keep > 0 {
            // FILE.(keep-1) → FILE.keep (replacing the oldest), …, FILE → FILE.1.
            for n in (1..self.keep).rev() {
                let from = self.rotated(n);
                if from.exists() {
                    std::fs::rename(&from, self.rotated(n + 1))?;
                }
            }
            std::fs::rename(&self.path, self.rotated(1))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        self.file = BufWriter::new(file);
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn files_rotate_by_size_and_keep_n() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("requests.jsonl");
        let mut w = RotatingWriter::open(path.clone(), 10, 2).expect("opens");
        for line in [
            "aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n", "ffff\n", "gggg\n",
        ] {
            w.write_line(line.as_bytes()).expect("writes");
        }
        w.flush().expect("flushes");
        // Two lines of 5 bytes fill a 10-byte file; the seventh starts a fourth file.
        assert_eq!(read(&path), "gggg\n");
        assert_eq!(read(&dir.path().join("requests.jsonl.1")), "eeee\nffff\n");
        assert_eq!(read(&dir.path().join("requests.jsonl.2")), "cccc\ndddd\n");
        assert!(
            !dir.path().join("requests.jsonl.3").exists(),
            "only two kept"
        );
    }

    #[test]
    fn keep_zero_truncates_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.jsonl");
        let mut w = RotatingWriter::open(path.clone(), 6, 0).expect("opens");
        for line in ["aaaa\n", "bbbb\n"] {
            w.write_line(line.as_bytes()).expect("writes");
        }
        w.flush().expect("flushes");
        assert_eq!(read(&path), "bbbb\n");
        assert!(!dir.path().join("r.jsonl.1").exists());
    }

    #[test]
    fn an_existing_file_counts_towards_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.jsonl");
        std::fs::write(&path, "old-line\n").expect("seed");
        let mut w = RotatingWriter::open(path.clone(), 12, 1).expect("opens");
        w.write_line(b"new-line\n").expect("writes");
        w.flush().expect("flushes");
        assert_eq!(read(&path), "new-line\n");
        assert_eq!(read(&dir.path().join("r.jsonl.1")), "old-line\n");
    }

    #[test]
    fn the_sink_writes_json_lines_and_flushes_on_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.jsonl");
        let sink = FileSink::start(path.clone(), 1 << 20, 1, 16).expect("starts");
        for n in 0..3 {
            sink.send(Arc::new(RequestRecord {
                id: format!("r{n}"),
                status: 200,
                ..RequestRecord::default()
            }));
        }
        sink.close();
        let text = read(&path);
        let ids: Vec<String> = text
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
                assert!(v.get("request_body").is_none(), "no bodies unless enabled");
                v["id"].as_str().expect("id").to_owned()
            })
            .collect();
        assert_eq!(ids, ["r0", "r1", "r2"]);
        // After close, records are counted as dropped, not written.
        sink.send(Arc::new(RequestRecord::default()));
        assert_eq!(read(&path).lines().count(), 3);
    }
}
