//! The durable spool end to end: Kafka unreachable for 90 s (longer than ZEGOCLOUD's whole
//! retry schedule, which `simulate` runs unshortened) under a steady signed load; the same with
//! the bridge SIGKILLed during the outage (with a torn write left behind) and again during the
//! drain; and a spool whose disk fills up. Every callback answered 200 must be in the topic,
//! read back by the independent client; each call's events in order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::{assert_nothing_lost, spawn_family_load, stack};

/// Longer than ZEGOCLOUD's retry schedule (2+4+8+16+32 s): without the spool, every callback
/// of the outage's first half would be lost.
const OUTAGE: Duration = Duration::from_secs(90);

/// A steady load across the whole outage and the drain: 400 calls × 5 events, 4 calls at a
/// time, 300 ms between a call's events (about 10 callbacks a second for about 150 s), on the
/// real 2/4/8/16/32 s retry schedule.
fn spawn_steady_load(dir: &Path, url: String) -> tokio::task::JoinHandle<(bool, Vec<Attempt>)> {
    spawn_family_load(dir, url, "400", "4", "300")
}

/// Each call's events, first occurrence of each callback id, by offset: must be the family order.
fn assert_calls_in_order(records: &[Record]) {
    let mut calls: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
    for record in records {
        calls
            .entry(record.key.clone().unwrap())
            .or_default()
            .push(record);
    }
    for (call, mut events) in calls {
        events.sort_by_key(|r| (r.partition, r.offset));
        let mut seen = std::collections::BTreeSet::new();
        let order: Vec<&str> = events
            .iter()
            .filter(|r| seen.insert(r.headers["zego-callback-id"].clone()))
            .map(|r| r.value["event"].as_str().unwrap())
            .collect();
        assert_eq!(order, FAMILY, "{call}: events out of order");
    }
}

fn spool_dir(name: &str) -> PathBuf {
    work_dir(&format!("{name}-spool"))
}

fn newest_segment(spool: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    segments.pop().expect("a segment")
}

async fn wait_for_empty_spool(port: u16) {
    wait_for_metric(port, "zego_spool_records", Duration::from_secs(180), |v| {
        v == 0.0
    })
    .await;
}

/// Runs the 90 s outage under load; `during` runs at the outage's midpoint, `draining` once
/// the drain has begun. Returns the attempts and the topic.
async fn outage_of_90s(
    name: &str,
    extra: &[(&str, &str)],
    during: impl AsyncFnOnce(&Path, &mut Bridge, &Path),
    draining: impl AsyncFnOnce(&Path, &mut Bridge, &Path),
) -> (Vec<Attempt>, Vec<Record>, f64) {
    let spool = spool_dir(name);
    let spool_text = spool.to_string_lossy().into_owned();
    let mut env = vec![("SPOOL_DIR", spool_text.as_str())];
    env.extend_from_slice(extra);
    let (dir, _tansu, forwarder, mut bridge) = stack(name, &env).await;
    let load = spawn_steady_load(&dir, bridge.url());
    wait_for_acks(bridge.port, 50).await;
    forwarder.cut();
    let cut_at = Instant::now();
    tokio::time::sleep(OUTAGE / 2).await;
    during(&dir, &mut bridge, &spool).await;
    tokio::time::sleep(OUTAGE.saturating_sub(cut_at.elapsed())).await;
    let outage = cut_at.elapsed();
    let oldest = metric(bridge.port, "zego_spool_oldest_age_seconds");
    forwarder.restore().await;
    draining(&dir, &mut bridge, &spool).await;
    let (ok, attempts) = load.await.unwrap();
    assert!(
        ok,
        "simulate gave up on some callbacks: see {}",
        dir.display()
    );
    wait_for_empty_spool(bridge.port).await;
    assert!(outage >= OUTAGE);
    let records = read_topic(&format!("127.0.0.1:{}", forwarder.port), TOPIC);
    (attempts, records, oldest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_90s_outage_under_load_is_spooled_and_loses_nothing() {
    let _serial = serial().await;
    let mut spooled = 0.0;
    let (attempts, records, oldest) = outage_of_90s(
        "spool outage",
        &[],
        async |_, _, _| {},
        async |_, bridge, _| {
            spooled = metric(bridge.port, "zego_spool_appended_total");
        },
    )
    .await;
    let duplicates = assert_nothing_lost(&attempts, &records, None, 2000);
    assert_calls_in_order(&records);
    let answered_spooled = attempts.iter().filter(|a| a.spooled).count();
    assert!(
        answered_spooled > 500,
        "only {answered_spooled} callbacks were answered from the spool"
    );
    assert!(
        oldest >= 60.0,
        "the oldest spooled record was only {oldest} s old at the end"
    );
    let refused = attempts.iter().filter(|a| a.status != 200).count();
    report(&format!(
        "| spool: 90 s network cut | 2000 sent over the real 2/4/8/16/32 s schedule, 4 calls at a time | 2000 answered 200 ({answered_spooled} spooled, {refused} refused attempts) | {} in Kafka | 0 lost | {duplicates} duplicates; {spooled} spooled records, oldest {oldest} s |",
        records.len()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_the_outage_and_during_the_drain_loses_nothing() {
    let _serial = serial().await;
    let mut torn_found = 0.0;
    let mut drained_before_kill = 0.0;
    let mut left_at_kill = 0.0;
    let (attempts, records, _) = outage_of_90s(
        "spool sigkill",
        // A slow drain, so the second SIGKILL lands while it runs.
        &[("SPOOL_DRAIN_RATE", "100")],
        async |dir, bridge, spool| {
            let port = bridge.port;
            bridge.process.signal("KILL");
            wait_for_port_free(port, Duration::from_secs(10));
            // What a crash in the middle of a write leaves: a frame header and part of its
            // payload, never flushed, never answered.
            let segment = newest_segment(spool);
            let mut torn = std::fs::OpenOptions::new()
                .append(true)
                .open(&segment)
                .unwrap();
            std::io::Write::write_all(&mut torn, b"ZSP1\x00\x04\x00\x00\xde\xad\xbe\xef{\"seq\":")
                .unwrap();
            drop(torn);
            *bridge = restart(dir, "bridge-after-outage-kill", port, bridge, spool);
            wait_for_port(port, Duration::from_secs(20));
            torn_found = metric(port, "zego_spool_damaged_total{kind=\"torn_tail\"}");
        },
        async |dir, bridge, spool| {
            let port = bridge.port;
            wait_for_metric(
                port,
                "zego_spool_drained_total",
                Duration::from_secs(60),
                |v| v >= 100.0,
            )
            .await;
            drained_before_kill = metric(port, "zego_spool_drained_total");
            left_at_kill = metric(port, "zego_spool_records");
            bridge.process.signal("KILL");
            wait_for_port_free(port, Duration::from_secs(10));
            *bridge = restart(dir, "bridge-after-drain-kill", port, bridge, spool);
        },
    )
    .await;
    assert_eq!(
        torn_found, 1.0,
        "the torn write was not found and cut at start-up"
    );
    assert!(
        left_at_kill > 0.0,
        "the second kill came after the drain ended: no evidence"
    );
    let duplicates = assert_nothing_lost(&attempts, &records, None, 2000);
    assert_calls_in_order(&records);
    report(&format!(
        "| spool: 90 s network cut, SIGKILL mid-outage (torn write left) and mid-drain | 2000 sent, real schedule | 2000 answered 200 | {} in Kafka | 0 lost | {duplicates} duplicates; killed after {drained_before_kill} drained, {left_at_kill} still spooled; torn tail cut |",
        records.len()
    ));
}

/// The bridge again, on the same port and spool, with the same brokers.
fn restart(dir: &Path, name: &str, port: u16, old: &Bridge, spool: &Path) -> Bridge {
    let brokers = old.brokers.clone();
    let spool = spool.to_string_lossy().into_owned();
    let mut env: Vec<(&str, &str)> = old
        .extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.retain(|(k, _)| *k != "SPOOL_DIR");
    env.push(("SPOOL_DIR", &spool));
    Bridge::start(dir, name, port, &brokers, &env)
}

/// Cuts the broker off and waits until the bridge has seen it gone.
async fn cut_broker(forwarder: &Forwarder, port: u16) {
    forwarder.cut();
    wait_for_metric(
        port,
        "zego_broker_reachable",
        Duration::from_secs(30),
        |v| v == 0.0,
    )
    .await;
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(Tmpfs(path.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_keeps_serving_and_recovers() {
    let _serial = serial().await;
    let spool = spool_dir("spool disk full");
    let _tmpfs = Tmpfs::mount(&spool, "256k").unwrap_or_else(|e| {
        panic!("this test needs a small tmpfs (root, as .ci/run runs): mount failed: {e}")
    });
    let spool_text = spool.to_string_lossy().into_owned();
    let (dir, _tansu, forwarder, bridge) =
        stack("spool disk full", &[("SPOOL_DIR", spool_text.as_str())]).await;
    cut_broker(&forwarder, bridge.port).await;
    let (_, attempts) = simulate(
        &dir,
        "fill",
        &bridge.url(),
        &[
            "--event",
            "call_accept",
            "--count",
            "800",
            "--concurrency",
            "8",
            "--no-retry",
        ],
    )
    .await;
    let spooled = attempts.iter().filter(|a| a.spooled).count();
    let refused: Vec<&Attempt> = attempts.iter().filter(|a| a.status != 200).collect();
    assert!(
        spooled > 50,
        "only {spooled} spooled before the disk filled"
    );
    assert!(!refused.is_empty(), "a 256 KiB disk never filled");
    for attempt in &refused {
        assert_eq!(
            (attempt.status, attempt.error.as_deref()),
            (503, Some("spool_failed")),
            "{attempt:?}"
        );
    }
    assert!(metric(bridge.port, "zego_spool_write_failures_total") >= 1.0);
    assert_eq!(
        http_status(bridge.port, "/healthz"),
        200,
        "the bridge keeps serving"
    );
    assert_eq!(
        bridge.readyz(),
        503,
        "broker gone and spool failing: not ready"
    );

    forwarder.restore().await;
    wait_for_empty_spool(bridge.port).await;
    // The drained spool gives the disk back: the next outage is spooled again.
    wait_for_metric(
        bridge.port,
        "zego_spool_bytes",
        Duration::from_secs(30),
        |v| v == 0.0,
    )
    .await;
    let records = read_topic(&format!("127.0.0.1:{}", forwarder.port), TOPIC);
    let duplicates = assert_nothing_lost(&attempts, &records, None, spooled);
    cut_broker(&forwarder, bridge.port).await;
    let (_, again) = simulate(
        &dir,
        "after",
        &bridge.url(),
        &[
            "--event",
            "call_accept",
            "--count",
            "20",
            "--call-id",
            "after",
            "--no-retry",
        ],
    )
    .await;
    assert!(again.iter().all(|a| a.spooled), "{again:?}");
    report(&format!(
        "| spool: disk full (256 KiB tmpfs), broker down | 800 sent once each | {spooled} answered 200 spooled, {} answered 503 spool_failed | {} in Kafka | 0 lost | {duplicates} duplicates; spool accepts again after the drain |",
        refused.len(),
        records.len()
    ));
}
