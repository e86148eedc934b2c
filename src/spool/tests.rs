//! The spool on a real directory: durable appends in order with group commit, acknowledged
//! records gone for good, the size limit, the lock, space given back, a damaged database
//! refused, the previous release's files imported, and a model-based run of random appends,
//! reads, acks, failing commits and restarts against an in-memory model.

use std::borrow::Cow;
use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;

use super::store::{Store, DB_FILE};
use super::writer::Log;
use super::{frame, stored, SpoolError};
use crate::callback::catalogue::Family;
use crate::metrics::Metrics;
use crate::publish::{Record, SpoolStamp};

fn temp_dir(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "zego-spool-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
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
        family: Some(Family::Call),
        ids: vec![(Cow::Borrowed("zego-msg-id"), n.to_string())],
        appid: "1".into(),
        callback_id: format!("{n:040x}"),
        received_at_ms: n as i64,
        spooled: None,
    }
}

fn open(dir: &Path, max_bytes: u64) -> (Log, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let (log, _) = Log::open(dir, max_bytes, metrics.clone()).unwrap();
    (log, metrics)
}

/// The sequence numbers of every record the spool holds, oldest first.
async fn seqs(log: &Log) -> Vec<u64> {
    log.read_front(100_000, 1 << 30)
        .await
        .unwrap()
        .iter()
        .map(|r| r.spooled.unwrap().seq)
        .collect()
}

async fn keys(log: &Log) -> Vec<String> {
    log.read_front(100_000, 1 << 30)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key.unwrap())
        .collect()
}

async fn append_all(log: &Log, count: usize, value_len: usize) -> Vec<Result<u64, SpoolError>> {
    futures_util::future::join_all(
        (0..count).map(|n| async move { log.append(record(n, value_len)).await.map(|s| s.seq) }),
    )
    .await
}

#[tokio::test]
async fn appends_are_durable_in_order_and_committed_in_groups() {
    let dir = temp_dir("order");
    let (log, metrics) = open(&dir, 1 << 30);
    let seqs: Vec<u64> = append_all(&log, 300, 10)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "sequence numbers in append order: {seqs:?}"
    );
    assert_eq!(log.undrained(), 300);
    let groups = metrics.spool_group_records.get_sample_count();
    assert!(
        groups <= 150,
        "300 concurrent appends took {groups} commits: no group commit"
    );
    drop(log);
    // Everything answered is there after a restart, in order, with its headers and stamp.
    let (log, metrics) = open(&dir, 1 << 30);
    assert_eq!(log.undrained(), 300);
    assert_eq!(metrics.spool_records.get(), 300);
    let batch = log.read_front(10_000, 64 << 20).await.unwrap();
    assert_eq!(batch.len(), 300);
    for (n, record) in batch.iter().enumerate() {
        assert_eq!(record.key.as_deref(), Some(format!("call-{n}").as_str()));
        assert_eq!(record.spooled.unwrap().seq, seqs[n]);
        assert_eq!(record.ids[0].1, n.to_string());
        assert_eq!(record.family, Some(Family::Call));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A record set aside leaves reads and the count (so the spool can go idle), is kept, and is
/// back in line after `retry_held`; setting it aside again is not news; after a restart it is
/// in line again (the set-aside state is not stored: the drain decides afresh).
#[tokio::test]
async fn set_aside_records_are_kept_out_of_the_way_and_back_on_retry() {
    let dir = temp_dir("held");
    let (log, metrics) = open(&dir, 1 << 30);
    append_all(&log, 3, 10).await;
    let all = seqs(&log).await;
    let held = all[0];
    assert_eq!(
        log.set_aside(vec![(held, "topic t does not exist".into())])
            .await,
        1
    );
    assert_eq!(log.undrained(), 2);
    assert_eq!(metrics.spool_records.get(), 2);
    assert_eq!(metrics.spool_held_records.get(), 1);
    assert_eq!(seqs(&log).await, all[1..]);
    log.acked(all[1..].to_vec()).await;
    assert_eq!(
        log.undrained(),
        0,
        "only the set-aside record is left: the spool is idle"
    );
    assert_eq!(log.retry_held().await, 1);
    assert_eq!(metrics.spool_held_records.get(), 0);
    assert_eq!((log.undrained(), seqs(&log).await), (1, vec![held]));
    assert_eq!(
        log.set_aside(vec![(held, "still".into())]).await,
        0,
        "not news"
    );
    drop(log);
    let (log, _) = open(&dir, 1 << 30);
    assert_eq!((log.undrained(), seqs(&log).await), (1, vec![held]));
}

#[tokio::test]
async fn acknowledged_records_are_gone_for_good_and_numbers_never_reused() {
    let dir = temp_dir("acked");
    let (log, _) = open(&dir, 1 << 30);
    append_all(&log, 10, 10).await;
    let front = log.read_front(4, 1 << 20).await.unwrap();
    // Acked out of order (a record in the middle failed): exactly those leave.
    let acked: Vec<u64> = [0, 1, 3]
        .iter()
        .map(|&i| front[i].spooled.unwrap().seq)
        .collect();
    log.acked(acked).await;
    assert_eq!(log.undrained(), 7);
    let rest = keys(&log).await;
    assert_eq!(rest[..2], ["call-2", "call-4"]);
    let highest = log
        .read_front(100, 1 << 20)
        .await
        .unwrap()
        .last()
        .unwrap()
        .spooled
        .unwrap()
        .seq;
    drop(log);
    let (log, _) = open(&dir, 1 << 30);
    assert_eq!(keys(&log).await, rest, "the same records after a restart");
    // Delete the newest too, restart: the next number is still past every one handed out.
    log.acked(seqs(&log).await).await;
    drop(log);
    let (log, _) = open(&dir, 1 << 30);
    assert!(log.append(record(99, 1)).await.unwrap().seq > highest);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn past_its_size_limit_the_spool_refuses_and_accepts_again_once_drained() {
    let dir = temp_dir("full");
    let (log, _) = open(&dir, 120_000);
    let results = append_all(&log, 200, 1000).await;
    let full = results
        .iter()
        .filter(|r| **r == Err(SpoolError::Full))
        .count();
    assert!(full > 0 && full < 200, "{full} of 200 refused");
    assert!(!log.accepting());
    assert_eq!(log.undrained() as usize + full, 200);
    log.acked(seqs(&log).await).await;
    assert!(log.accepting(), "a drained spool accepts again");
    assert!(log.append(record(1, 1000)).await.is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_directory_another_process_holds_is_refused() {
    let dir = temp_dir("lock");
    let (_held, _) = open(&dir, 1 << 30);
    let second = Log::open(&dir, 1 << 30, Arc::new(Metrics::new()));
    let error = second.err().expect("refused");
    assert!(
        error.contains("in use by another running bridge"),
        "{error}"
    );
    assert!(error.contains("SPOOL_DIR="), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_drained_spool_gives_its_space_back() {
    let dir = temp_dir("reclaim");
    let (log, metrics) = open(&dir, 1 << 30);
    append_all(&log, 2000, 1000).await;
    let full = metrics.spool_bytes.get();
    assert!(full > 2_000_000, "{full}");
    log.acked(seqs(&log).await).await;
    log.reclaim();
    // Commands are served in order: once this is answered, the reclaim is done.
    assert_eq!(log.oldest_spooled_at().await, None);
    let empty = metrics.spool_bytes.get();
    assert!(
        empty < 64 << 10,
        "{full} bytes before the drain, {empty} after: space not given back"
    );
    assert_eq!(log.file_bytes() as i64, empty);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_damaged_database_stops_start_up_with_one_line_naming_spool_dir() {
    let dir = temp_dir("damaged");
    let (log, _) = open(&dir, 1 << 30);
    append_all(&log, 500, 200).await;
    drop(log);
    // Overwrite the middle of the database file (a table page), as a failing disk would.
    let path = dir.join(DB_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + 4096].fill(0xA5);
    std::fs::write(&path, &bytes).unwrap();
    let error = Log::open(&dir, 1 << 30, Arc::new(Metrics::new()))
        .err()
        .expect("a damaged spool is refused");
    assert!(
        error.contains(&format!("SPOOL_DIR={}", dir.display())),
        "{error}"
    );
    assert!(
        error.contains("damaged") && error.contains("move"),
        "{error}"
    );
    assert!(!error.contains('\n'), "one line: {error}");
    // Not a database at all.
    std::fs::write(
        &path,
        b"this is not a database, just text of some length ......",
    )
    .unwrap();
    let error = Log::open(&dir, 1 << 30, Arc::new(Metrics::new()))
        .err()
        .expect("refused");
    assert!(error.contains("damaged"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_spool_of_the_previous_release_is_imported_once_in_order() {
    let dir = temp_dir("legacy");
    std::fs::create_dir_all(&dir).unwrap();
    // Two segments as the previous release wrote them, and a cursor it trusted: records before
    // the cursor are imported too (sent again, never lost).
    let mut seq = 0;
    for first in [0u64, 3] {
        let mut bytes = Vec::new();
        for n in first..first + 3 {
            let payload = stored::encode(&record(n as usize, 5), SpoolStamp { seq, at_ms: 7 });
            bytes.extend(frame::encode(&payload));
            seq += 1;
        }
        std::fs::write(dir.join(format!("{first:020}.seg")), bytes).unwrap();
    }
    std::fs::write(dir.join("cursor"), "2").unwrap();
    let (log, _) = open(&dir, 1 << 30);
    assert_eq!(
        keys(&log).await,
        ["call-0", "call-1", "call-2", "call-3", "call-4", "call-5"]
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".seg") || n.starts_with("cursor"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    drop(log);
    let (log, _) = open(&dir, 1 << 30);
    assert_eq!(log.undrained(), 6, "imported once");
    let _ = std::fs::remove_dir_all(&dir);
}

/// One step of the model-based test.
#[derive(Debug, Clone)]
enum Step {
    /// Append this many records of about this many bytes each.
    Append(usize, usize),
    /// The next commits fail (SQLite refuses to grow the database: `SQLITE_FULL`), or not.
    DiskFull(bool),
    /// Read the front and acknowledge the records at these positions of it.
    Ack(Vec<prop::sample::Index>),
    Reclaim,
    /// Close and open again.
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1..20usize, 1..3000usize).prop_map(|(n, len)| Step::Append(n, len)),
        1 => any::<bool>().prop_map(Step::DiskFull),
        3 => prop::collection::vec(any::<prop::sample::Index>(), 0..25).prop_map(Step::Ack),
        1 => Just(Step::Reclaim),
        1 => Just(Step::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Whatever the sequence of appends, failing commits, acks and restarts, the store holds
    /// exactly what the model says: every committed record not acknowledged, in order, and
    /// nothing else; a failed commit leaves nothing behind; numbers only grow.
    #[test]
    fn the_store_matches_a_model_through_failures_and_restarts(steps in prop::collection::vec(step(), 1..60)) {
        let dir = temp_dir("model");
        let mut store = Some(Store::open(&dir, 1 << 30).unwrap());
        let mut model: VecDeque<(u64, String)> = VecDeque::new();
        let mut highest = 0;
        let mut next = 0;
        let mut disk_full = false;
        for step in steps {
            let db = store.as_mut().unwrap();
            match step {
                Step::Append(count, len) => {
                    let records: Vec<Record> = (0..count).map(|_| { next += 1; record(next, len) }).collect();
                    let refs: Vec<&Record> = records.iter().collect();
                    match db.append(&refs, 1) {
                        // With the database at its page limit a group may still fit in pages
                        // freed by deletes: success is allowed, a failure only then.
                        Ok(stamps) => {
                            for (stamp, record) in stamps.iter().zip(&records) {
                                prop_assert!(stamp.seq > highest, "seq {} after {highest}", stamp.seq);
                                highest = stamp.seq;
                                model.push_back((stamp.seq, record.key.clone().unwrap()));
                            }
                        }
                        Err(why) => prop_assert!(disk_full, "append failed: {why}"),
                    }
                }
                Step::DiskFull(full) => {
                    disk_full = full;
                    db.limit_pages_for_tests(full).unwrap();
                }
                Step::Ack(picks) => {
                    let front = db.read_front(30, 1 << 30, &BTreeSet::new()).unwrap().records;
                    if !front.is_empty() {
                        let seqs: BTreeSet<u64> = picks.iter().map(|i| front[i.index(front.len())].spooled.unwrap().seq).collect();
                        let seqs: Vec<u64> = seqs.into_iter().collect();
                        db.delete(&seqs).unwrap();
                        model.retain(|(seq, _)| !seqs.contains(seq));
                    }
                }
                Step::Reclaim => {
                    if model.is_empty() {
                        db.reclaim().unwrap();
                    }
                }
                Step::Restart => {
                    drop(store.take());
                    store = Some(Store::open(&dir, 1 << 30).unwrap());
                    disk_full = false;
                }
            }
            let db = store.as_ref().unwrap();
            let held: Vec<(u64, String)> = db
                .read_front(usize::MAX, usize::MAX, &BTreeSet::new())
                .unwrap()
                .records
                .into_iter()
                .map(|r| (r.spooled.unwrap().seq, r.key.unwrap()))
                .collect();
            prop_assert_eq!(&held, &model.iter().cloned().collect::<Vec<_>>());
            prop_assert_eq!(db.count().unwrap(), model.len() as u64);
        }
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
