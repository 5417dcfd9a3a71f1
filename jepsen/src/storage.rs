//! Storage faults on a node's data dir, and what the node says about them.
//!
//! Three faults (see [`crate::nemesis`]): the data dir, a small tmpfs, filled up by a ballast
//! file while the node runs (`disk-full`); one byte flipped in the middle of one of its logs
//! while it is down (`flip-byte`); its snapshot cut short while it is down
//! (`truncate-snapshot`). The node's contract for each (docs/jepsen.md, "Storage faults"): on a
//! full disk its store fails, it takes no writes, `/readyz` answers 503 with the reason and
//! `starling_cluster_store_failed` is 1, and after a restart it runs under a fresh
//! incarnation; on damaged files it moves them aside into `damaged-<unix-millis>/` inside its
//! data dir, logs an error naming the file, and starts under a fresh incarnation. Either way
//! it exports `starling_cluster_incarnation_start{reason="..."} 1`. The nemesis records what
//! it saw in a [`StorageReport`] on the fault's timeline record, and the `storage` checker
//! turns every broken promise into a violation ([`StorageReport::violations`]).
//!
//! The file layout is the store's (cluster/src/store/files.rs): logs `wal-GEN.log` of records
//! framed as length (u32 BE), CRC-32 (u32 BE) and payload, zero-filled after the last record;
//! snapshots `snapshot-GEN.bin`, a magic and one framed record.

use std::fs;
use std::io::{self, Write};
use std::ops::Range;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Size of the tmpfs each node's data dir lives on when the `disk-full` nemesis runs: room
/// for a long run's logs (1 MiB each, zero-filled ahead) and snapshots, yet a ballast fills it
/// at once, and five of them cost little memory.
pub const TMPFS_BYTES: u64 = 32 << 20;

/// The file that fills a node's tmpfs (the store ignores files it does not know).
pub const BALLAST: &str = "jepsen-ballast";

/// How long a node may take to report its failed store once its disk is full. Its log was
/// zero-filled up to 1 MiB ahead of its records, and those blocks are its own: the store
/// hits ENOSPC only once the records have used them up, which takes a while under load.
pub const REPORT_DEADLINE: Duration = Duration::from_secs(45);

/// How long a restarted node may take to export how its incarnation started.
pub const METRIC_DEADLINE: Duration = Duration::from_secs(10);

/// The gauge of a failed store.
pub const STORE_FAILED_GAUGE: &str = "starling_cluster_store_failed";

/// The gauge saying how the running incarnation started, by `reason`.
pub const INCARNATION_GAUGE: &str = "starling_cluster_incarnation_start";

/// The folder (prefix) a node moves damaged files into, inside its data dir.
pub const DAMAGED_PREFIX: &str = "damaged-";

/// `reason` of [`INCARNATION_GAUGE`] after a restart on damaged files.
pub const REASON_DAMAGED: &str = "damaged_data";

/// `reason` of [`INCARNATION_GAUGE`] after a restart following a failed store.
pub const REASON_STORE_FAILED: &str = "store_failed";
/// `reason` of [`INCARNATION_GAUGE`] after a restart on data as it was.
pub const REASON_RESUMED: &str = "resumed";

/// Bytes before a record's payload: length and CRC-32, each a u32.
const RECORD_HEADER: usize = 8;

/// The magic a snapshot file starts with.
const SNAPSHOT_MAGIC: &[u8] = b"STRLSNAP";

/// A file the nemesis damaged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Damage {
    /// Its name in the data dir.
    pub file: String,
    /// What was done to it, for people.
    pub what: String,
}

/// What happened to a node under a storage fault, as the nemesis saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StorageReport {
    /// The reason the node must give for its next incarnation (`None` when the fault could
    /// not be applied and was a plain kill).
    pub expected_reason: Option<String>,
    /// The file damaged (`flip-byte`, `truncate-snapshot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damage: Option<Damage>,
    /// Why the fault was a plain kill instead (no log with records, no snapshot yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// `disk-full`: bytes of ballast it took to fill the disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ballast_bytes: Option<u64>,
    /// `disk-full`: what the node said while its disk was full (`None`: not watched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_failure: Option<FailureSeen>,
    /// The node would not start after the fault (the start error's first line); the nemesis
    /// then emptied its data dir, as an operator would, and started it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_start: Option<String>,
    /// After the restart: every reason [`INCARNATION_GAUGE`] was 1 for (empty: not exported
    /// within [`METRIC_DEADLINE`]).
    #[serde(default)]
    pub incarnation_start: Vec<String>,
    /// After the restart: the `damaged-*` folder holding the damaged file, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_aside: Option<String>,
    /// After the restart: whether the node's log since the restart names the damaged file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logged: Option<bool>,
    /// Where the node's log ended when it was restarted: what it said since is read from here.
    #[serde(skip)]
    pub log_offset: u64,
}

/// What a node with a full disk said, polled until it reported the failure or the deadline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailureSeen {
    /// The last `/readyz` answer: status and body (`None`: no answer).
    pub readyz: Option<(u16, String)>,
    /// The last value of [`STORE_FAILED_GAUGE`] (`None`: not exported or no answer).
    pub gauge: Option<f64>,
    /// Milliseconds from the fill until `/readyz` said 503 and the gauge 1 (`None`: not
    /// within [`REPORT_DEADLINE`]).
    pub reported_after_ms: Option<u64>,
    /// When it did not report: the zero-filled room still left after the records of its
    /// newest log. A node that never wrote past that room never met the full disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_room_left: Option<u64>,
}

impl FailureSeen {
    /// Whether `/readyz` answered 503 with a reason and the gauge was 1.
    pub fn reported(&self) -> bool {
        let ready_says = matches!(&self.readyz, Some((503, body)) if !body.trim().is_empty());
        ready_says && self.gauge == Some(1.0)
    }

    /// Whether the node should have reported: it did not, and its log had (as far as can be
    /// told) used up the room it had zero-filled ahead, so its writes needed the full disk.
    pub fn missed(&self) -> bool {
        !self.reported() && self.log_room_left.is_none_or(|room| room < UNUSED_ROOM)
    }
}

/// Room left in a full disk's log past which the node cannot have met ENOSPC yet: far more
/// than one batch of records.
const UNUSED_ROOM: u64 = 64 << 10;

impl StorageReport {
    /// A short account for the timeline.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(d) = &self.damage {
            parts.push(format!("{}: {}", d.file, d.what));
        }
        if let Some(s) = &self.skipped {
            parts.push(format!("skipped: {s}"));
        }
        if let Some(f) = &self.store_failure {
            parts.push(match (f.reported_after_ms, f.log_room_left) {
                (Some(ms), _) => format!("store failure reported after {ms} ms"),
                (None, Some(room)) if !f.missed() => format!(
                    "store never failed: its log still had {room} bytes of room it had zero-filled ahead"
                ),
                (None, _) => "store failure not reported".to_owned(),
            });
        }
        if let Some(r) = &self.refused_start {
            parts.push(format!("refused to start: {r}"));
        }
        if self.expected_reason.is_some() {
            parts.push(format!(
                "incarnation start [{}]",
                self.incarnation_start.join(",")
            ));
        }
        parts.join("; ")
    }

    /// Every way the node broke its contract for this fault.
    pub fn violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(seen) = &self.store_failure
            && seen.missed()
        {
            out.push(format!(
                "disk full, but within {} s the node did not report its failed store (last /readyz {:?}, {STORE_FAILED_GAUGE} {:?})",
                REPORT_DEADLINE.as_secs(),
                seen.readyz,
                seen.gauge
            ));
        }
        if let Some(line) = &self.refused_start {
            out.push(format!(
                "refused to start after the fault ({line}); it must start under a fresh incarnation"
            ));
        }
        let Some(expected) = &self.expected_reason else {
            return out;
        };
        // A node whose log still had room it had zero-filled ahead never met the full disk
        // while it was watched (seed 66, n3): it restarts on its data as it was, unless it met
        // the full disk after the watch.
        let never_failed = self
            .store_failure
            .as_ref()
            .is_some_and(|seen| !seen.reported() && !seen.missed());
        let resumed_untouched = never_failed && self.incarnation_start == [REASON_RESUMED];
        if self.incarnation_start.is_empty() {
            out.push(format!(
                "after the restart, no {INCARNATION_GAUGE}{{reason=...}} 1 (expected reason {expected:?})"
            ));
        } else if self.incarnation_start != [expected.clone()] && !resumed_untouched {
            out.push(format!(
                "after the restart, {INCARNATION_GAUGE} says {:?}, expected {expected:?}",
                self.incarnation_start
            ));
        }
        if let Some(damage) = &self.damage {
            if self.moved_aside.is_none() && self.refused_start.is_none() {
                out.push(format!(
                    "the damaged {} was not moved into a {DAMAGED_PREFIX}* folder",
                    damage.file
                ));
            }
            if self.logged == Some(false) {
                out.push(format!(
                    "the log after the restart does not name the damaged {}",
                    damage.file
                ));
            }
        }
        out
    }
}

/// The byte ranges of the framed records at the start of a log (header and payload), up to
/// the zero-filled tail or a length that runs past the end. Checksums are not verified: the
/// spans only say where to aim, and a record that is not whole is never the one aimed at.
pub fn record_spans(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + RECORD_HEADER) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        // A record is never empty: a zero length is the zero-filled tail.
        let end = at + RECORD_HEADER + len;
        if len == 0 || end > bytes.len() {
            break;
        }
        spans.push(at..end);
        at = end;
    }
    spans
}

/// Where to flip a byte in a log's `bytes`: the middle of the payload of a record in the
/// middle of the log that another record follows, so that what the store finds is a bad
/// record with data after it (damage), never a torn tail. `None` with fewer than two records.
pub fn flip_target(bytes: &[u8]) -> Option<usize> {
    let spans = record_spans(bytes);
    let followed = spans.get(..spans.len().checked_sub(1)?)?;
    let span = followed.get(followed.len() / 2)?;
    let payload = span.start + RECORD_HEADER..span.end;
    Some(payload.start + payload.len() / 2)
}

/// The generations of the files named `{prefix}GEN{suffix}` in `dir`, newest first.
fn generations(dir: &Path, prefix: &str, suffix: &str) -> io::Result<Vec<(u64, String)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let generation = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .and_then(|digits| digits.parse::<u64>().ok());
        if let Some(generation) = generation {
            found.push((generation, name));
        }
    }
    found.sort_unstable_by(|a, b| b.cmp(a));
    Ok(found)
}

/// Flips (inverts) one byte well inside the newest log of `dir` that has at least two
/// records. The node must be down. `Ok(None)` when no log has two records yet.
pub fn flip_byte(dir: &Path) -> io::Result<Option<Damage>> {
    for (_, name) in generations(dir, "wal-", ".log")? {
        let path = dir.join(&name);
        let mut bytes = fs::read(&path)?;
        let Some(at) = flip_target(&bytes) else {
            continue;
        };
        let spans = record_spans(&bytes);
        let record = spans
            .iter()
            .position(|s| s.contains(&at))
            .map_or(0, |i| i + 1);
        let before = bytes[at];
        bytes[at] = !before;
        write_durably(&path, &bytes)?;
        return Ok(Some(Damage {
            file: name,
            what: format!(
                "byte {at} of {} flipped ({before:#04x} to {:#04x}), in the payload of record {record} of {}",
                bytes.len(),
                !before,
                spans.len()
            ),
        }));
    }
    Ok(None)
}

/// Cuts the newest snapshot of `dir` to half its length (its record then runs past the end).
/// The node must be down. `Ok(None)` when there is no snapshot.
pub fn truncate_snapshot(dir: &Path) -> io::Result<Option<Damage>> {
    let Some((_, name)) = generations(dir, "snapshot-", ".bin")?.into_iter().next() else {
        return Ok(None);
    };
    let path = dir.join(&name);
    let len = fs::metadata(&path)?.len();
    // Past the magic and the header when there is room, so that what is lost is state, not
    // framing; always shorter than it was.
    let keep = (len / 2)
        .max((SNAPSHOT_MAGIC.len() + RECORD_HEADER) as u64)
        .min(len.saturating_sub(1));
    let file = fs::OpenOptions::new().write(true).open(&path)?;
    file.set_len(keep)?;
    file.sync_all()?;
    Ok(Some(Damage {
        file: name,
        what: format!("truncated from {len} to {keep} bytes"),
    }))
}

/// Whether `dir` holds a snapshot.
pub fn has_snapshot(dir: &Path) -> bool {
    generations(dir, "snapshot-", ".bin").is_ok_and(|found| !found.is_empty())
}

fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = fs::OpenOptions::new().write(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Fills the file system of `dir` with [`BALLAST`] until it is full; the bytes written. Refuses
/// a file system larger than `at_most` bytes: filling the machine's own disk by mistake would
/// hurt everyone else on it.
pub fn fill(dir: &Path, at_most: u64) -> io::Result<u64> {
    let stats = rustix::fs::statvfs(dir)?;
    let size = stats.f_blocks.saturating_mul(stats.f_frsize);
    if size > at_most {
        return Err(io::Error::other(format!(
            "refusing to fill {}: its file system has {size} bytes, more than the {at_most} of a test tmpfs",
            dir.display()
        )));
    }
    let mut file = fs::File::create(dir.join(BALLAST))?;
    let chunk = vec![0xa5u8; 1 << 20];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.kind() == io::ErrorKind::StorageFull => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// Removes the ballast from `dir`.
pub fn remove_ballast(dir: &Path) -> io::Result<()> {
    match fs::remove_file(dir.join(BALLAST)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The zero-filled room after the records of the newest log in `dir`, in bytes.
pub fn log_room_left(dir: &Path) -> Option<u64> {
    let (_, name) = generations(dir, "wal-", ".log").ok()?.into_iter().next()?;
    let bytes = fs::read(dir.join(name)).ok()?;
    let used = record_spans(&bytes).last().map_or(0, |span| span.end);
    u64::try_from(bytes.len() - used).ok()
}

/// What was appended to the log at `path` after its first `offset` bytes (empty if unreadable).
pub fn log_since(path: &Path, offset: u64) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// The `damaged-*` folder of `dir` that holds a file named `file`, if any.
pub fn moved_aside(dir: &Path, file: &str) -> Option<String> {
    let entries = fs::read_dir(dir).ok()?;
    entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(DAMAGED_PREFIX))
        .find(|name| dir.join(name).join(file).exists())
}

/// The value of the unlabelled gauge `name` in a Prometheus text exposition.
pub fn gauge(metrics: &str, name: &str) -> Option<f64> {
    samples(metrics)
        .find(|s| s.name == name && s.labels.is_empty())
        .map(|s| s.value)
}

/// The `reason`s for which [`INCARNATION_GAUGE`] is 1 in a Prometheus text exposition.
pub fn incarnation_reasons(metrics: &str) -> Vec<String> {
    samples(metrics)
        .filter(|s| s.name == INCARNATION_GAUGE && s.value == 1.0)
        .filter_map(|s| {
            s.labels
                .into_iter()
                .find(|(k, _)| k == "reason")
                .map(|(_, v)| v)
        })
        .collect()
}

/// One sample line of a Prometheus text exposition.
struct MetricSample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// The sample lines of an exposition; comments and lines that do not parse are skipped.
fn samples(metrics: &str) -> impl Iterator<Item = MetricSample> + '_ {
    metrics.lines().filter_map(|line| {
        let line = line.trim();
        if line.starts_with('#') {
            return None;
        }
        let split = line.find(|c: char| c == '{' || c.is_whitespace())?;
        let (name, labels, rest) = match line[split..].strip_prefix('{') {
            Some(after) => {
                let (labels, rest) = parse_labels(after)?;
                (&line[..split], labels, rest)
            }
            None => (&line[..split], Vec::new(), &line[split..]),
        };
        // A timestamp may follow the value.
        let value = rest.split_whitespace().next()?.parse().ok()?;
        Some(MetricSample {
            name: name.to_owned(),
            labels,
            value,
        })
    })
}

/// Parses the label set after a series' `{` (`a="x",b="y\"z"}`), unescaping `\"`, `\\` and
/// `\n`: the labels and what follows the closing `}`.
fn parse_labels(text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    let mut rest = text.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let (key, after) = rest.split_once('=')?;
        let quoted = after.trim_start().strip_prefix('"')?;
        let mut chars = quoted.char_indices();
        let mut value = String::new();
        let close = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.trim().to_owned(), value));
        rest = quoted[close + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
}

/// GETs `url` once with a short timeout: its status and body.
async fn get(http: &reqwest::Client, url: &str) -> Option<(u16, String)> {
    let resp = http.get(url).send().await.ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().await.ok()?))
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap_or_default()
}

/// A small runtime for the nemesis thread's few HTTP calls (it runs outside the harness's).
fn block_on<T>(future: impl std::future::Future<Output = T>) -> io::Result<T> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(future))
}

/// Polls the node at `url` (`http://IP:PORT`) until `/readyz` says 503 with a reason and
/// [`STORE_FAILED_GAUGE`] is 1, or until `deadline`. Blocking; runs on its own thread.
pub fn watch_store_failure(url: &str, filled: Instant, deadline: Instant) -> FailureSeen {
    let poll = async {
        let http = http();
        let mut seen = FailureSeen::default();
        loop {
            if let Some(answer) = get(&http, &format!("{url}/readyz")).await {
                seen.readyz = Some(answer);
            }
            if let Some((_, text)) = get(&http, &format!("{url}/metrics")).await {
                seen.gauge = gauge(&text, STORE_FAILED_GAUGE);
            }
            if seen.reported() {
                seen.reported_after_ms =
                    Some(u64::try_from(filled.elapsed().as_millis()).unwrap_or(u64::MAX));
                return seen;
            }
            if Instant::now() >= deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    block_on(poll).unwrap_or_default()
}

/// Polls `/metrics` of the node at `url` until [`INCARNATION_GAUGE`] shows a reason, or
/// [`METRIC_DEADLINE`]; the reasons at 1 (empty if none showed).
pub fn incarnation_start(url: &str) -> Vec<String> {
    let deadline = Instant::now() + METRIC_DEADLINE;
    let poll = async {
        let http = http();
        loop {
            if let Some((200, text)) = get(&http, &format!("{url}/metrics")).await {
                let reasons = incarnation_reasons(&text);
                if !reasons.is_empty() {
                    return reasons;
                }
            }
            if Instant::now() >= deadline {
                return Vec::new();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    block_on(poll).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&crc32(payload).to_be_bytes());
        out.extend_from_slice(payload);
    }

    /// Any fixed value does: the spans do not check it.
    fn crc32(_: &[u8]) -> u32 {
        0xdead_beef
    }

    #[test]
    fn the_flipped_byte_is_inside_a_record_that_another_follows() {
        let mut log = Vec::new();
        for payload in [&b"first record"[..], b"second", b"third one", b"last"] {
            frame(payload, &mut log);
        }
        let records_end = log.len();
        log.resize(records_end + 4096, 0);
        let spans = record_spans(&log);
        assert_eq!(spans.len(), 4);
        assert_eq!(spans[3].end, records_end);
        let at = flip_target(&log).expect("a target");
        // Records 1..3 are followed by another; the middle of those is record 2 (index 1),
        // and the byte is in its payload, not its header.
        assert!(
            spans[1].start + RECORD_HEADER <= at && at < spans[1].end,
            "{at}"
        );

        let mut two = Vec::new();
        frame(b"one", &mut two);
        frame(b"two", &mut two);
        let at = flip_target(&two).expect("a target");
        assert!((RECORD_HEADER..RECORD_HEADER + 3).contains(&at));

        let mut one = Vec::new();
        frame(b"alone", &mut one);
        one.resize(100, 0);
        assert_eq!(
            flip_target(&one),
            None,
            "a lone record would read as a torn tail"
        );
        assert_eq!(flip_target(&[0; 64]), None);
        // A length that runs past the end (a torn write) ends the spans.
        let mut torn = two.clone();
        torn.extend_from_slice(&1000u32.to_be_bytes());
        torn.extend_from_slice(&[1, 2, 3, 4, 5]);
        assert_eq!(record_spans(&torn).len(), 2);
    }

    #[test]
    fn files_are_damaged_where_aimed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Vec::new();
        for payload in [&b"aaaa"[..], b"bbbb", b"cccc"] {
            frame(payload, &mut log);
        }
        fs::write(dir.path().join("wal-00000000000000000001.log"), &log).expect("write");
        let mut newest = Vec::new();
        frame(b"only", &mut newest);
        fs::write(dir.path().join("wal-00000000000000000002.log"), &newest).expect("write");
        let damage = flip_byte(dir.path())
            .expect("flip")
            .expect("a log with records");
        // The newest log has one record only: the older one is damaged.
        assert_eq!(damage.file, "wal-00000000000000000001.log");
        let after = fs::read(dir.path().join(&damage.file)).expect("read");
        let changed: Vec<usize> = (0..log.len()).filter(|&i| log[i] != after[i]).collect();
        assert_eq!(changed.len(), 1, "{damage:?}");
        assert_eq!(after[changed[0]], !log[changed[0]]);

        assert_eq!(truncate_snapshot(dir.path()).expect("no snapshot"), None);
        assert!(!has_snapshot(dir.path()));
        let mut snapshot = SNAPSHOT_MAGIC.to_vec();
        frame(&[7u8; 1000], &mut snapshot);
        let name = "snapshot-00000000000000000002.bin";
        fs::write(dir.path().join(name), &snapshot).expect("write");
        assert!(has_snapshot(dir.path()));
        let damage = truncate_snapshot(dir.path())
            .expect("truncate")
            .expect("a snapshot");
        assert_eq!(damage.file, name);
        let len = fs::metadata(dir.path().join(name)).expect("stat").len();
        assert_eq!(len, snapshot.len() as u64 / 2);

        assert_eq!(moved_aside(dir.path(), name), None);
        let aside = dir.path().join("damaged-1700000000000");
        fs::create_dir(&aside).expect("mkdir");
        fs::rename(dir.path().join(name), aside.join(name)).expect("move");
        assert_eq!(
            moved_aside(dir.path(), name).as_deref(),
            Some("damaged-1700000000000")
        );
    }

    #[test]
    fn the_ballast_fills_what_is_free_and_goes() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Not a small file system here: only that the file is made and removed.
        fs::write(dir.path().join(BALLAST), b"x").expect("write");
        remove_ballast(dir.path()).expect("remove");
        remove_ballast(dir.path()).expect("remove again");
        assert!(!dir.path().join(BALLAST).exists());
    }

    #[test]
    fn metric_lines_parse() {
        let text = "# HELP starling_cluster_incarnation_start How the incarnation started.\n\
                    # TYPE starling_cluster_incarnation_start gauge\n\
                    starling_cluster_incarnation_start{reason=\"new\"} 0\n\
                    starling_cluster_incarnation_start{node=\"n1\",reason=\"damaged_data\"} 1\n\
                    starling_cluster_store_failed 1\n\
                    starling_cluster_store_failed_total{kind=\"x\"} 3\n\
                    starling_other{text=\"a \\\"quoted\\\", value}\"} 1 1700000000000\n\
                    garbage line\n";
        assert_eq!(incarnation_reasons(text), ["damaged_data"]);
        assert_eq!(gauge(text, STORE_FAILED_GAUGE), Some(1.0));
        assert_eq!(gauge(text, "starling_other"), None, "labelled");
        let other = samples(text)
            .find(|s| s.name == "starling_other")
            .expect("parsed");
        assert_eq!(other.value, 1.0);
        assert_eq!(other.labels[0].1, "a \"quoted\", value}");
        assert_eq!(
            gauge("starling_cluster_store_failed 0\n", STORE_FAILED_GAUGE),
            Some(0.0)
        );
        assert!(incarnation_reasons("starling_cluster_store_failed 1\n").is_empty());
        assert_eq!(
            incarnation_reasons("starling_cluster_incarnation_start{reason=\"store_failed\"} 1.0"),
            ["store_failed"]
        );
        let (labels, rest) =
            parse_labels(r#"text="a \"quoted\", value}", b="\\n"} 2"#).expect("labels");
        assert_eq!(rest, " 2");
        assert_eq!(
            labels,
            [
                ("text".to_owned(), "a \"quoted\", value}".to_owned()),
                ("b".to_owned(), "\\n".to_owned())
            ]
        );
    }

    #[test]
    fn a_report_fails_on_every_broken_promise() {
        let damage = Damage {
            file: "wal-00000000000000000003.log".into(),
            what: String::new(),
        };
        let kept = StorageReport {
            expected_reason: Some(REASON_DAMAGED.into()),
            damage: Some(damage.clone()),
            incarnation_start: vec![REASON_DAMAGED.into()],
            moved_aside: Some("damaged-1".into()),
            logged: Some(true),
            ..StorageReport::default()
        };
        assert!(kept.violations().is_empty(), "{:?}", kept.violations());
        let wrong = StorageReport {
            incarnation_start: vec!["resumed".into()],
            ..kept.clone()
        };
        assert!(wrong.violations()[0].contains("resumed"));
        let missing = StorageReport {
            incarnation_start: Vec::new(),
            moved_aside: None,
            logged: Some(false),
            ..kept.clone()
        };
        assert_eq!(missing.violations().len(), 3, "{:?}", missing.violations());
        let refused = StorageReport {
            refused_start: Some("data dir corrupt".into()),
            incarnation_start: vec!["new".into()],
            moved_aside: None,
            ..kept.clone()
        };
        // The refusal and the wrong reason; moving aside is moot once the operator wiped.
        assert_eq!(refused.violations().len(), 2, "{:?}", refused.violations());
        let skipped = StorageReport {
            skipped: Some("no snapshot yet".into()),
            ..StorageReport::default()
        };
        assert!(skipped.violations().is_empty());

        let full = StorageReport {
            expected_reason: Some(REASON_STORE_FAILED.into()),
            store_failure: Some(FailureSeen {
                readyz: Some((503, "store failed: no space left on device".into())),
                gauge: Some(1.0),
                reported_after_ms: Some(1_500),
                log_room_left: None,
            }),
            incarnation_start: vec![REASON_STORE_FAILED.into()],
            ..StorageReport::default()
        };
        assert!(full.violations().is_empty(), "{:?}", full.violations());
        let silent = StorageReport {
            store_failure: Some(FailureSeen {
                readyz: Some((200, "ready".into())),
                gauge: Some(0.0),
                reported_after_ms: None,
                log_room_left: Some(100),
            }),
            ..full.clone()
        };
        assert_eq!(silent.violations().len(), 1);
        assert!(silent.violations()[0].contains("did not report"));
        // A node that still had room in its log never met the full disk: nothing to report.
        let quiet = StorageReport {
            store_failure: Some(FailureSeen {
                log_room_left: Some(600 << 10),
                ..FailureSeen::default()
            }),
            ..silent
        };
        assert!(quiet.violations().is_empty(), "{:?}", quiet.violations());
        let resumed = StorageReport {
            incarnation_start: vec![REASON_RESUMED.into()],
            ..quiet.clone()
        };
        assert!(
            resumed.violations().is_empty(),
            "{:?}",
            resumed.violations()
        );
        // A node that reported its failure must not come back as if nothing happened.
        let pretended = StorageReport {
            incarnation_start: vec![REASON_RESUMED.into()],
            ..full.clone()
        };
        assert_eq!(
            pretended.violations().len(),
            1,
            "{:?}",
            pretended.violations()
        );
        assert!(
            quiet.summary().contains("never failed"),
            "{}",
            quiet.summary()
        );
    }
}
