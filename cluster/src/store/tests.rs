use std::path::Path;

use bytes::Bytes;

use super::files::{list, log_path};
use super::*;

fn records(r: &Recovered) -> Vec<&[u8]> {
    r.records.iter().map(|b| b.as_ref()).collect()
}

fn open(dir: &Path) -> (Store, Identity, Recovered) {
    Store::open(dir, "n1", OnDamage::Refuse).expect("opens")
}

/// The bytes of a log up to its preallocated zero tail.
fn used_log(bytes: &[u8]) -> &[u8] {
    let mut end = 0;
    while let Some(header) = bytes.get(end..end + 8)
        && header != [0u8; 8]
    {
        end += 8 + u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    }
    &bytes[..end]
}

#[tokio::test]
async fn appended_records_survive_a_reopen_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _, recovered) = open(dir.path());
    assert!(recovered.snapshot.is_none() && recovered.records.is_empty());
    store
        .append(Bytes::from_static(b"one"))
        .await
        .expect("append");
    let room = store.room(3).await.expect("room");
    store
        .append_nowait(room, Bytes::from_static(b"two"))
        .expect("queue");
    store
        .append(Bytes::from_static(b"three"))
        .await
        .expect("append");
    drop(store);
    let (_, _, recovered) = open(dir.path());
    assert_eq!(records(&recovered), vec![&b"one"[..], b"two", b"three"]);
}

#[tokio::test]
async fn concurrent_appends_are_all_acknowledged_and_recovered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _, _) = open(dir.path());
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.append(Bytes::from(i.to_be_bytes().to_vec())).await
        }));
    }
    for task in tasks {
        task.await.expect("joins").expect("acknowledged");
    }
    drop(store);
    let (_, _, recovered) = open(dir.path());
    let mut seen: Vec<u32> = recovered
        .records
        .iter()
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..200).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_torn_tail_ends_replay_and_later_writes_still_recover() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _, _) = open(dir.path());
    for r in [&b"a"[..], b"b", b"c"] {
        store
            .append(Bytes::copy_from_slice(r))
            .await
            .expect("append");
    }
    drop(store);
    // Crash mid-write: chop the last record in half, and add a garbage tail elsewhere.
    let (logs, _) = list(dir.path()).expect("list");
    let path = log_path(dir.path(), logs[0]);
    let bytes = std::fs::read(&path).expect("read");
    let used = used_log(&bytes);
    std::fs::write(&path, &used[..used.len() - 1]).expect("truncate");
    let (store, _, recovered) = open(dir.path());
    assert_eq!(records(&recovered), vec![&b"a"[..], b"b"]);
    store
        .append(Bytes::from_static(b"d"))
        .await
        .expect("append");
    drop(store);
    let (_, _, recovered) = open(dir.path());
    assert_eq!(records(&recovered), vec![&b"a"[..], b"b", b"d"]);
}

/// Appends each record, then closes the store.
async fn write_all(dir: &Path, records: &[&'static [u8]]) {
    let (store, _, _) = open(dir);
    for r in records {
        store.append(Bytes::from_static(r)).await.expect("append");
    }
}

fn refused(dir: &Path) -> String {
    match Store::open(dir, "n1", OnDamage::Refuse) {
        Err(StoreError::Corrupt { detail, .. }) => detail,
        Ok(_) => panic!("a damaged data dir was opened"),
        Err(other) => panic!("expected corruption, got {other:?}"),
    }
}

#[tokio::test]
async fn a_torn_tail_is_cut_off_so_the_log_reads_clean_once_newer_logs_follow() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_all(dir.path(), &[b"a", b"b"]).await;
    let (logs, _) = list(dir.path()).expect("list");
    let path = log_path(dir.path(), logs[0]);
    let bytes = std::fs::read(&path).expect("read");
    let used = used_log(&bytes).len();
    std::fs::write(&path, &bytes[..used - 1]).expect("tear the last record");
    let (_, _, recovered) = open(dir.path());
    assert_eq!(records(&recovered), vec![&b"a"[..]]);
    let (_, end) = super::files::parse_records(&std::fs::read(&path).expect("read"));
    assert_eq!(
        end,
        super::files::LogEnd::Clean,
        "the torn record was cut off"
    );
}

#[tokio::test]
async fn damage_in_the_middle_of_a_log_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_all(dir.path(), &[b"first", b"second", b"third"]).await;
    let (logs, _) = list(dir.path()).expect("list");
    let path = log_path(dir.path(), logs[0]);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[8 + 2] ^= 0x40; // inside the first record's payload
    std::fs::write(&path, &bytes).expect("write");
    let detail = refused(dir.path());
    assert!(
        detail.contains("non-zero bytes follow a bad record") && detail.contains("byte 0"),
        "{detail}"
    );
    assert!(
        detail.contains("Move the data dir aside"),
        "says what to do: {detail}"
    );
}

#[tokio::test]
async fn an_older_log_that_does_not_end_cleanly_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_all(dir.path(), &[b"old"]).await;
    // Each start writes a new log, so the first one is no longer the newest.
    write_all(dir.path(), &[b"new"]).await;
    let (logs, _) = list(dir.path()).expect("list");
    assert!(logs.len() >= 2, "{logs:?}");
    let path = log_path(dir.path(), logs[0]);
    let bytes = std::fs::read(&path).expect("read");
    let used = used_log(&bytes).len();
    std::fs::write(&path, &bytes[..used - 1]).expect("cut");
    let detail = refused(dir.path());
    assert!(detail.contains("older than the newest"), "{detail}");
}

#[tokio::test]
async fn a_flipped_bit_is_caught_by_the_checksum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _, _) = open(dir.path());
    store
        .append(Bytes::from_static(b"good"))
        .await
        .expect("append");
    store
        .append(Bytes::from_static(b"flipped"))
        .await
        .expect("append");
    drop(store);
    let (logs, _) = list(dir.path()).expect("list");
    let path = log_path(dir.path(), logs[0]);
    let mut bytes = std::fs::read(&path).expect("read");
    let last = used_log(&bytes).len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&path, &bytes).expect("write");
    let (_, _, recovered) = open(dir.path());
    assert_eq!(records(&recovered), vec![&b"good"[..]]);
}

#[tokio::test]
async fn the_log_is_zero_filled_ahead_and_its_tail_ends_replay_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _, _) = open(dir.path());
    // Enough to need a second preallocation step.
    let record = Bytes::from(vec![7u8; 64 * 1024]);
    for _ in 0..20 {
        store.append(record.clone()).await.expect("append");
    }
    // An empty record would read as the zero tail: it is refused, not written.
    store.append(Bytes::new()).await.expect("acknowledged");
    store
        .append(Bytes::from_static(b"last"))
        .await
        .expect("append");
    store.sync().await.expect("sync");
    drop(store);
    let (logs, _) = list(dir.path()).expect("list");
    let bytes = std::fs::read(log_path(dir.path(), logs[0])).expect("read");
    let used = used_log(&bytes).len();
    assert_eq!(used, 21 * 8 + 20 * record.len() + 4);
    assert!(bytes.len() > used, "zeros follow the records");
    assert!(bytes[used..].iter().all(|b| *b == 0));
    let (files_records, end) = super::files::parse_records(&bytes);
    assert_eq!(
        end,
        super::files::LogEnd::Clean,
        "a zero tail is a clean end"
    );
    assert_eq!(files_records.len(), 21);
    let (_, _, recovered) = open(dir.path());
    assert_eq!(recovered.records.len(), 21);
    assert_eq!(
        recovered.records.last().map(|r| r.as_ref()),
        Some(&b"last"[..])
    );
}

#[tokio::test]
async fn snapshots_cover_earlier_logs_which_are_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _, _) = open(dir.path());
    store
        .append(Bytes::from_static(b"a"))
        .await
        .expect("append");
    store
        .append(Bytes::from_static(b"b"))
        .await
        .expect("append");
    store
        .snapshot(Bytes::from_static(b"state(a,b)"))
        .await
        .expect("snapshot");
    store
        .append(Bytes::from_static(b"c"))
        .await
        .expect("append");
    drop(store);
    let (logs, snapshots) = list(dir.path()).expect("list");
    assert_eq!(snapshots.len(), 1);
    assert!(
        logs.iter().all(|g| *g >= snapshots[0]),
        "{logs:?} {snapshots:?}"
    );
    let (store, _, recovered) = open(dir.path());
    assert_eq!(recovered.snapshot.as_deref(), Some(&b"state(a,b)"[..]));
    assert_eq!(records(&recovered), vec![&b"c"[..]]);
    // A second snapshot replaces the first.
    store
        .snapshot(Bytes::from_static(b"state(a,b,c)"))
        .await
        .expect("snapshot");
    drop(store);
    let (_, _, recovered) = open(dir.path());
    assert_eq!(recovered.snapshot.as_deref(), Some(&b"state(a,b,c)"[..]));
    assert!(recovered.records.is_empty());
}

#[tokio::test]
async fn a_corrupt_snapshot_is_an_error_not_silent_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _, _) = open(dir.path());
    store
        .snapshot(Bytes::from_static(b"state"))
        .await
        .expect("snapshot");
    drop(store);
    let (_, snapshots) = list(dir.path()).expect("list");
    let path = super::files::snapshot_path(dir.path(), snapshots[0]);
    let mut bytes = std::fs::read(&path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).expect("write");
    match Store::open(dir.path(), "n1", OnDamage::Refuse) {
        Err(StoreError::Corrupt { .. }) => {}
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[tokio::test]
async fn identity_is_kept_per_dir_and_new_dirs_get_a_new_incarnation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, first, _) = open(dir.path());
    let (_, again, _) = open(dir.path());
    assert_eq!(first, again);
    match Store::open(dir.path(), "other-node", OnDamage::Refuse) {
        Err(StoreError::WrongNode { found, .. }) => assert_eq!(found, "n1"),
        other => panic!("expected WrongNode, got {other:?}"),
    }
    // Same node id, wiped disk: a different incarnation, so a fresh counter slot.
    let wiped = tempfile::tempdir().expect("tempdir");
    let (_, reborn, _) = open(wiped.path());
    assert_eq!(reborn.node_id, "n1");
    assert_ne!(reborn.incarnation, first.incarnation);
}

/// A store with a 4,096-byte queue whose writer is held until the sender answers.
fn stalled_store(dir: &Path) -> (Store, std::sync::mpsc::Sender<()>) {
    let (store, _, _) = Store::open_with_queue(dir, "n1", OnDamage::Refuse, 4_096).expect("opens");
    let (resume, stalled) = std::sync::mpsc::channel();
    store.stall(stalled);
    (store, resume)
}

#[tokio::test]
async fn a_full_queue_holds_writers_back_until_the_disk_catches_up() {
    use futures::FutureExt;

    let dir = tempfile::tempdir().expect("tempdir");
    let (store, resume) = stalled_store(dir.path());
    // 1,000-byte records take 1,128 bytes of room each: three fit in 4,096, a fourth waits.
    let record = Bytes::from(vec![7u8; 1_000]);
    let mut queued = Vec::new();
    for _ in 0..3 {
        let room = store.room(record.len()).await.expect("room");
        queued.push(store.append_queued(room, record.clone()).expect("queued"));
    }
    let stats = store.queue_stats();
    assert_eq!(
        (stats.records, stats.bytes, stats.limit),
        (3, 3 * 1_128, 4_096)
    );
    let mut fourth = Box::pin(store.append(record.clone()));
    assert!((&mut fourth).now_or_never().is_none(), "no room: it waits");
    assert_eq!(store.queue_stats().waits, 1);
    // The disk catches up: the queued records are written, and the waiter gets its room.
    resume.send(()).expect("writer stalled");
    for done in queued {
        done.wait().await.expect("durable");
    }
    fourth.await.expect("appended once there was room");
    let stats = store.queue_stats();
    assert_eq!((stats.records, stats.bytes), (0, 0));
    drop(store);
    let (_, _, recovered) = open(dir.path());
    assert_eq!(recovered.records.len(), 4);
}

#[tokio::test]
async fn room_is_refused_once_the_store_has_failed_even_to_a_writer_already_waiting() {
    use futures::FutureExt;

    let dir = tempfile::tempdir().expect("tempdir");
    let (store, resume) = stalled_store(dir.path());
    let room = store.room(3_500).await.expect("room");
    store
        .append_nowait(room, Bytes::from(vec![1u8; 3_500]))
        .expect("queued");
    let mut waiting = Box::pin(store.room(1_000));
    assert!((&mut waiting).now_or_never().is_none(), "no room: it waits");
    let _ = store.failure.set("disk on fire".to_owned());
    resume.send(()).expect("writer stalled");
    for refused in [waiting.await, store.room(10).await] {
        match refused {
            Err(StoreError::Closed(reason)) => assert!(reason.contains("disk on fire")),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}

#[test]
fn record_parsing_never_panics_on_garbage() {
    use super::files::parse_records;
    let mut state: u64 = 7;
    for len in 0..300usize {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                (state >> 56) as u8
            })
            .collect();
        let _ = parse_records(&bytes);
    }
}

fn open_afresh(dir: &Path) -> (Store, Identity, Recovered) {
    Store::open(dir, "n1", OnDamage::FreshIncarnation).expect("opens")
}

/// The files a fresh incarnation moved aside, by name.
fn set_aside_names(recovered: &Recovered) -> Vec<String> {
    let aside = recovered.set_aside.as_ref().expect("files were set aside");
    let mut names: Vec<String> = std::fs::read_dir(aside)
        .expect("the folder exists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_member_with_a_damaged_log_begins_a_fresh_incarnation_with_what_it_can_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, before, _) = open(dir.path());
    write_all(dir.path(), &[b"first", b"second", b"third"]).await;
    let (logs, _) = list(dir.path()).expect("list");
    let path = log_path(dir.path(), *logs.last().expect("a log"));
    let mut bytes = std::fs::read(&path).expect("read");
    let second = 8 + b"first".len() + 8 + 1;
    bytes[second] ^= 0x40;
    std::fs::write(&path, &bytes).expect("write");

    let (store, after, recovered) = open_afresh(dir.path());
    assert_eq!(recovered.start, IncarnationStart::DamagedData);
    assert!(after.incarnation > before.incarnation);
    assert_eq!(
        records(&recovered),
        vec![&b"first"[..]],
        "the readable prefix"
    );
    let names = set_aside_names(&recovered);
    assert!(names.iter().any(|n| n == "identity.json"), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("wal-")), "{names:?}");
    assert!(
        recovered
            .damage
            .as_deref()
            .is_some_and(|d| d.contains("non-zero bytes follow a bad record")),
        "{:?}",
        recovered.damage
    );
    // The emptied dir now belongs to the new life, which resumes from it.
    store
        .append(Bytes::from_static(b"new life"))
        .await
        .expect("append");
    drop(store);
    let (_, again, recovered) = open(dir.path());
    assert_eq!(again, after);
    assert_eq!(recovered.start, IncarnationStart::Resumed);
    assert_eq!(records(&recovered), vec![&b"new life"[..]]);
}

#[tokio::test]
async fn a_truncated_snapshot_begins_a_fresh_incarnation_from_the_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, before, _) = open(dir.path());
    store
        .snapshot(Bytes::from_static(b"state"))
        .await
        .expect("snapshot");
    store
        .append(Bytes::from_static(b"after"))
        .await
        .expect("append");
    drop(store);
    let (_, snapshots) = list(dir.path()).expect("list");
    let path = super::files::snapshot_path(dir.path(), snapshots[0]);
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");

    let (_, after, recovered) = open_afresh(dir.path());
    assert_eq!(recovered.start, IncarnationStart::DamagedData);
    assert_ne!(after.incarnation, before.incarnation);
    assert!(recovered.snapshot.is_none());
    assert_eq!(records(&recovered), vec![&b"after"[..]]);
    assert!(
        set_aside_names(&recovered)
            .iter()
            .any(|n| n.starts_with("snapshot-"))
    );
}

#[tokio::test]
async fn after_a_store_failure_the_next_start_takes_a_fresh_incarnation_and_keeps_the_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, before, _) = open(dir.path());
    store
        .append(Bytes::from_static(b"durable"))
        .await
        .expect("append");
    drop(store);
    // What the writer does when a write or fsync fails.
    super::identity::mark_failed(dir.path()).expect("marked");

    // Even a node that refuses damaged data: a failed store's files are sound.
    let (_, after, recovered) = open(dir.path());
    assert_eq!(recovered.start, IncarnationStart::StoreFailed);
    assert!(after.incarnation > before.incarnation);
    assert_eq!(records(&recovered), vec![&b"durable"[..]]);
    assert!(
        set_aside_names(&recovered)
            .iter()
            .any(|n| n == "identity.failed.json")
    );
}

#[tokio::test]
async fn a_new_and_a_resumed_start_say_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, _, recovered) = open(dir.path());
    assert_eq!(recovered.start, IncarnationStart::New);
    let (_, _, recovered) = open(dir.path());
    assert_eq!(recovered.start, IncarnationStart::Resumed);
    assert!(recovered.set_aside.is_none());
}
