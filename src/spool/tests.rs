//! The spool's log on a real directory: durable appends in order, group commit, the cursor, a
//! torn tail and damage found at start-up, the size limit, and the lock.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::wal::Log;
use super::SpoolError;
use crate::metrics::Metrics;
use crate::publish::Record;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "zego-spool-{name}-{}-{}",
        std::process::id(),
        crate::clock::unix_ms()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn record(n: usize, value_len: usize) -> Record {
    Record {
        topic: "t".into(),
        key: Some(format!("call-{n}")),
        value: Bytes::from(format!(
            "{{\"n\":{n},\"pad\":\"{}\"}}",
            "x".repeat(value_len)
        )),
        event: "call_accept".into(),
        family: Some("call"),
        ids: vec![(Cow::Borrowed("zego-msg-id"), n.to_string())],
        appid: "1".into(),
        callback_id: format!("id-{n}"),
        received_at_ms: n as i64,
        spooled: None,
    }
}

fn open(dir: &Path, max_bytes: u64) -> (Log, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    (Log::open(dir, max_bytes, metrics.clone()).unwrap(), metrics)
}

/// A spool of five records, closed: its directory and its one segment file.
async fn five_records_closed(name: &str) -> (PathBuf, PathBuf) {
    let dir = temp_dir(name);
    let (log, _) = open(&dir, 1 << 30);
    append_all(&log, 5, 100).await;
    drop(log);
    let segment = the_segment(&dir);
    (dir, segment)
}

/// The spool's one segment file.
fn the_segment(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .unwrap()
}

fn keys(log: &Log) -> Vec<String> {
    log.read_batch(10_000, 64 << 20)
        .into_iter()
        .map(|d| d.record.key.unwrap())
        .collect()
}

async fn append_all(log: &Log, count: usize, value_len: usize) -> Vec<Result<u64, SpoolError>> {
    futures_util::future::join_all(
        (0..count).map(|n| async move { log.append(record(n, value_len)).await.map(|s| s.seq) }),
    )
    .await
}

#[tokio::test]
async fn appends_are_durable_in_order_and_written_in_groups() {
    let dir = temp_dir("order");
    let (log, metrics) = open(&dir, 1 << 30);
    let seqs: Vec<u64> = append_all(&log, 300, 10)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        seqs,
        (0..300).collect::<Vec<u64>>(),
        "sequence numbers in append order"
    );
    assert_eq!(log.undrained(), 300);
    let groups = metrics.spool_group_records.get_sample_count();
    assert!(
        groups <= 150,
        "300 concurrent appends took {groups} flushes: no group commit"
    );
    drop(log);
    // Everything answered is there after a restart, in order, with its headers and stamp.
    let (log, _) = open(&dir, 1 << 30);
    assert_eq!(log.undrained(), 300);
    let batch = log.read_batch(10_000, 64 << 20);
    assert_eq!(batch.len(), 300);
    for (n, drained) in batch.iter().enumerate() {
        assert_eq!(
            drained.record.key.as_deref(),
            Some(format!("call-{n}").as_str())
        );
        assert_eq!(drained.record.spooled.unwrap().seq, n as u64);
        assert_eq!(drained.record.ids[0].1, n.to_string());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_cursor_survives_a_restart_and_drained_segments_are_deleted() {
    let dir = temp_dir("cursor");
    let (log, _) = open(&dir, 1 << 30);
    // About 20 MB, one append at a time: three segments of about 8 MiB.
    for n in 0..40 {
        log.append(record(n, 500_000)).await.unwrap();
    }
    let segments = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "seg")
            })
            .count()
    };
    assert_eq!(segments(), 3);
    let batch = log.read_batch(30, 64 << 20);
    assert_eq!(batch.len(), 30);
    log.commit(&batch[29], 30).unwrap();
    assert_eq!(log.undrained(), 10);
    assert!(segments() < 3, "a fully drained segment is deleted");
    drop(log);
    let (log, _) = open(&dir, 1 << 30);
    assert_eq!(log.undrained(), 10);
    let rest = keys(&log);
    assert_eq!(rest.first().map(String::as_str), Some("call-30"));
    assert_eq!(rest.len(), 10);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_rewind_reads_the_unacknowledged_records_again() {
    let dir = temp_dir("rewind");
    let (log, _) = open(&dir, 1 << 30);
    append_all(&log, 10, 10).await;
    let start = log.read_position();
    let first = log.read_batch(4, 1 << 20);
    log.commit(&first[1], 2).unwrap();
    log.rewind(first[1].next);
    assert_eq!(
        keys(&log),
        (2..10).map(|n| format!("call-{n}")).collect::<Vec<_>>()
    );
    log.rewind(start);
    // Records before the cursor are passed over even when read again.
    assert_eq!(keys(&log).len(), 8);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_torn_tail_is_cut_counted_and_the_records_before_it_kept() {
    let (dir, segment) = five_records_closed("torn").await;
    let len = std::fs::metadata(&segment).unwrap().len();
    // The last write cut short, as a crash mid-write leaves it.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let (log, metrics) = open(&dir, 1 << 30);
    assert_eq!(
        metrics
            .spool_damaged
            .with_label_values(&["torn_tail"])
            .get(),
        1
    );
    assert_eq!(log.undrained(), 4);
    assert_eq!(keys(&log), ["call-0", "call-1", "call-2", "call-3"]);
    // The cut tail is gone from disk: appending goes on after the last intact record.
    log.append(record(99, 1)).await.unwrap();
    drop(log);
    let (log, metrics) = open(&dir, 1 << 30);
    assert_eq!(
        metrics
            .spool_damaged
            .with_label_values(&["torn_tail"])
            .get(),
        0
    );
    assert_eq!(keys(&log).last().map(String::as_str), Some("call-99"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn damage_in_the_middle_is_reported_and_the_records_after_it_kept() {
    let (dir, segment) = five_records_closed("damage").await;
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&segment, bytes).unwrap();
    let (log, metrics) = open(&dir, 1 << 30);
    assert_eq!(
        metrics.spool_damaged.with_label_values(&["skipped"]).get(),
        1
    );
    let kept = keys(&log);
    assert_eq!(kept.len(), 4, "{kept:?}");
    assert_eq!(kept.last().map(String::as_str), Some("call-4"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn past_its_size_limit_the_spool_refuses_and_accepts_again_once_drained() {
    let dir = temp_dir("full");
    let (log, _) = open(&dir, 4_000);
    let results = append_all(&log, 40, 100).await;
    let full = results
        .iter()
        .filter(|r| **r == Err(SpoolError::Full))
        .count();
    assert!(full > 0 && full < 40, "{full} of 40 refused");
    assert!(!log.accepting() || full > 0);
    let written = log.undrained() as usize;
    assert_eq!(written + full, 40);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_directory_another_bridge_holds_is_refused() {
    let dir = temp_dir("lock");
    let (_held, _) = open(&dir, 1 << 30);
    let second = Log::open(&dir, 1 << 30, Arc::new(Metrics::new()));
    let error = second.err().expect("refused");
    assert!(error.contains("another running bridge"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_drained_spool_gives_its_space_back() {
    let dir = temp_dir("compact");
    let (log, metrics) = open(&dir, 1 << 30);
    append_all(&log, 10, 1000).await;
    let batch = log.read_batch(100, 1 << 20);
    log.commit(batch.last().unwrap(), 10).unwrap();
    assert!(metrics.spool_bytes.get() > 10_000);
    log.compact();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while metrics.spool_bytes.get() > 0 {
        assert!(std::time::Instant::now() < deadline, "never compacted");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Appends go on in a fresh segment, numbered on.
    assert_eq!(log.append(record(10, 1)).await.unwrap().seq, 10);
    assert_eq!(keys(&log), ["call-10"]);
    drop(log);
    let (log, _) = open(&dir, 1 << 30);
    assert_eq!(keys(&log), ["call-10"]);
    let _ = std::fs::remove_dir_all(&dir);
}
