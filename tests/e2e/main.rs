//! End-to-end: tansu and the real bridge binary as processes, driven by `simulate`, the topic
//! read back by an independent client. Run with `cargo test --features e2e` (needs tansu,
//! Python confluent-kafka, haproxy and prometheus: `.ci/run` installs them).

mod attacks;
#[path = "../support/certs.rs"]
mod certs;
mod disk_faults;
mod harness;
mod prometheus;
mod replay;
mod replicas;
mod sasl;
mod spool;
mod tail;
mod topics;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use harness::*;

/// What a run under a fault must show: no 200 answered while the broker was unreachable,
/// every 200 in the topic, every callback eventually 200. Returns the duplicate count.
pub fn assert_nothing_lost(
    attempts: &[Attempt],
    records: &[Record],
    outage: Option<(i64, i64)>,
    expected: usize,
) -> usize {
    if let Some((from, to)) = outage {
        // Grace for a request acked just before the cut whose answer was still on its way.
        let lied: Vec<_> = attempts
            .iter()
            .filter(|a| a.status == 200 && a.sent_ms > from + 100 && a.answered_ms < to)
            .collect();
        assert!(
            lied.is_empty(),
            "200 answered while the broker was unreachable: {lied:?}"
        );
    }
    let acked = acked(attempts);
    let mut in_topic: BTreeMap<(String, String), usize> = BTreeMap::new();
    for record in records {
        assert_well_formed(record);
        let id = (
            record.key.clone().unwrap(),
            record.value["event"].as_str().unwrap().to_string(),
        );
        *in_topic.entry(id).or_insert(0) += 1;
    }
    let missing: Vec<_> = acked
        .keys()
        .filter(|id| !in_topic.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "answered 200 but not in Kafka: {missing:?}"
    );
    assert_eq!(acked.len(), expected, "callbacks that never got their 200");
    let unexpected: Vec<_> = in_topic
        .keys()
        .filter(|id| !acked.contains_key(*id))
        .collect();
    assert!(
        unexpected.is_empty(),
        "in Kafka but never answered 200 (a fake?): {unexpected:?}"
    );
    in_topic.values().map(|n| n - 1).sum()
}

/// The load of the fault tests: 200 calls × 5 events over 16 connections, 100 ms between a
/// call's events (about 6 s when nothing fails), retried on ZEGOCLOUD's schedule scaled down
/// four times (`SCALED_SCHEDULE`): what is under test is an outage shorter than the sender's
/// patience, not the length of ZEGOCLOUD's.
pub fn spawn_paced_load(
    dir: &std::path::Path,
    url: String,
) -> tokio::task::JoinHandle<(bool, Vec<Attempt>)> {
    spawn_family_load(dir, url, "200", "16", "100", SCALED_SCHEDULE)
}

/// `calls` calls × 5 events, `concurrency` calls at a time, `pause_ms` between a call's
/// events, retried on `schedule` (seconds before each retry), in the background.
pub fn spawn_family_load(
    dir: &std::path::Path,
    url: String,
    calls: &'static str,
    concurrency: &'static str,
    pause_ms: &'static str,
    schedule: &'static str,
) -> tokio::task::JoinHandle<(bool, Vec<Attempt>)> {
    let dir = dir.to_path_buf();
    tokio::spawn(async move {
        let args = [
            "--event",
            "family",
            "--count",
            calls,
            "--concurrency",
            concurrency,
            "--pause-ms",
            pause_ms,
            "--schedule",
            schedule,
        ];
        simulate(&dir, "load", &url, &args).await
    })
}

/// tansu behind a forwarder, the bridge in front, topic created, bridge ready.
pub async fn stack(
    name: &str,
    bridge_env: &[(&str, &str)],
) -> (std::path::PathBuf, Tansu, Forwarder, Bridge) {
    let dir = work_dir(name);
    let forward_port = free_port();
    let tansu = Tansu::start(&dir, forward_port);
    let forwarder = Forwarder::start(forward_port, tansu.port).await;
    tansu.create_topic(TOPIC, 3);
    let bridge = Bridge::start(
        &dir,
        "bridge",
        free_port(),
        &format!("127.0.0.1:{forward_port}"),
        bridge_env,
    );
    bridge.wait_ready(Duration::from_secs(20)).await;
    (dir, tansu, forwarder, bridge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_2000_callbacks_over_64_connections() {
    let _serial = serial().await;
    let (dir, _tansu, forwarder, bridge) = stack("happy", &[]).await;
    let (ok, attempts) = simulate(
        &dir,
        "load",
        &bridge.url(),
        &["--event", "family", "--count", "400", "--concurrency", "64"],
    )
    .await;
    assert!(ok, "simulate gave up on some callbacks");
    assert_eq!(attempts.len(), 2000);
    assert!(
        attempts.iter().all(|a| a.status == 200),
        "every callback answered 200 at once"
    );
    let records = read_topic(&format!("127.0.0.1:{}", forwarder.port), TOPIC);
    let duplicates = assert_nothing_lost(&attempts, &records, None, 2000);
    assert_eq!(
        (records.len(), duplicates),
        (2000, 0),
        "exactly the callbacks sent"
    );
    // Each call's events: one partition, in send order.
    let mut calls: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
    for record in &records {
        calls
            .entry(record.key.clone().unwrap())
            .or_default()
            .push(record);
    }
    for (call, mut events) in calls {
        let partitions: BTreeSet<_> = events.iter().map(|r| r.partition).collect();
        assert_eq!(partitions.len(), 1, "{call}");
        events.sort_by_key(|r| r.offset);
        let order: Vec<_> = events
            .iter()
            .map(|r| r.value["event"].as_str().unwrap())
            .collect();
        assert_eq!(order, FAMILY, "{call}");
    }
    report(&format!("| happy path | 2000 sent over 64 connections | 2000 answered 200 | {} in Kafka | 0 lost | {duplicates} duplicates |", records.len()));
}

/// Every event of every family (In-app Chat, RTC, cloud recording, AI Agent; four callback
/// paths) as one mixed load through the real broker: each callback answered 200 is in the topic
/// under its callback id, keyed and headed as its family says, and nothing else is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_family_mixed_load_lands_by_callback_id() {
    let _serial = serial().await;
    let (dir, _tansu, forwarder, bridge) = stack("families", &[]).await;
    let per_call = zego_kafka_bridge::callback::catalogue::EventKind::all().count();
    let (ok, attempts) = simulate(
        &dir,
        "load",
        &bridge.url(),
        &["--family", "all", "--count", "40", "--concurrency", "16"],
    )
    .await;
    assert!(ok, "simulate gave up on or was refused some callbacks");
    assert_eq!(attempts.len(), 40 * per_call);
    assert!(
        attempts.iter().all(|a| a.status == 200),
        "every callback answered 200"
    );
    let records = read_topic(&format!("127.0.0.1:{}", forwarder.port), TOPIC);
    let mut by_id: BTreeMap<&str, &Record> = BTreeMap::new();
    for record in &records {
        assert_well_formed(record);
        let id = record.headers["zego-callback-id"].as_str();
        assert!(by_id.insert(id, record).is_none(), "duplicate record {id}");
    }
    for attempt in &attempts {
        let record = by_id
            .get(attempt.callback_id.as_str())
            .unwrap_or_else(|| panic!("answered 200, not in Kafka: {attempt:?}"));
        assert_eq!(
            record.key.as_deref(),
            Some(attempt.call_id.as_str()),
            "{attempt:?}"
        );
    }
    assert_eq!(
        records.len(),
        attempts.len(),
        "nothing in Kafka that was not sent"
    );
    let families: BTreeSet<&str> = records
        .iter()
        .map(|r| r.headers["zego-family"].as_str())
        .collect();
    assert_eq!(
        families.len(),
        zego_kafka_bridge::callback::catalogue::Family::ALL.len()
    );
    report(&format!(
        "| every family, mixed | {} sent ({per_call} events × 40 keys, 4 paths) | {} answered 200 | {} in Kafka | 0 lost | 0 duplicates |",
        attempts.len(),
        attempts.len(),
        records.len()
    ));
}

/// An outage in the middle of a load, ended by `restore`: `OUTAGE_UNDER_LOAD`, shorter than
/// the sender's patience (`SCALED_SCHEDULE`, 15.5 s), with a delivery timeout to match (2 s;
/// the real ones are 62 s and 5 s). Checks nothing lost, no lie, readiness, and the memory.
async fn outage_under_load(
    name: &str,
    cut: impl Fn(&Tansu, &Forwarder),
    restore: impl AsyncFnOnce(&Tansu, &Forwarder),
) {
    let (dir, tansu, forwarder, bridge) =
        stack(name, &[("KAFKA_DELIVERY_TIMEOUT_MS", "2000")]).await;
    let (readyz, sampler) = sample_readyz(bridge.port);
    let load = spawn_paced_load(&dir, bridge.url());
    // The fault must land mid-load: after the first hundred acks.
    wait_for_acks(bridge.port, 100).await;
    let cut_at = now_ms();
    cut(&tansu, &forwarder);
    let (peak, rss_sampler) = sample_rss(bridge.process.pid());
    // The outage itself: its length is what is under test.
    tokio::time::sleep(OUTAGE_UNDER_LOAD).await;
    rss_sampler.abort();
    let peak_rss_kb = *peak.lock().unwrap();
    restore(&tansu, &forwarder).await;
    let restored_at = now_ms();
    let (ok, attempts) = load.await.unwrap();
    sampler.abort();
    assert!(ok, "some callbacks were given up: see {}", dir.display());

    let samples = readyz.lock().unwrap().clone();
    assert!(
        samples
            .iter()
            .any(|(t, s)| *t > cut_at && *t < restored_at && *s == 503),
        "/readyz never went 503"
    );
    assert_eq!(
        samples.last().map(|s| s.1),
        Some(200),
        "/readyz did not come back"
    );
    let records = read_topic(&format!("127.0.0.1:{}", forwarder.port), TOPIC);
    let duplicates = assert_nothing_lost(&attempts, &records, Some((cut_at, restored_at)), 1000);
    let refused = attempts.iter().filter(|a| a.status != 200).count();
    assert!(
        peak_rss_kb < 200 * 1024,
        "bridge RSS {peak_rss_kb} KiB during the outage"
    );
    report(&format!(
        "| {name} | 1000 sent, 16 connections, {} s outage, retries every 0.5/1/2/4/8 s | 1000 answered 200 after {refused} refused attempts | {} in Kafka | 0 lost | {duplicates} duplicates; peak RSS {} MB |",
        OUTAGE_UNDER_LOAD.as_secs(),
        records.len(),
        peak_rss_kb / 1024
    ));
}

/// Well inside the sender's patience (`SCALED_SCHEDULE`, 15.5 s), and longer than its first
/// three retry gaps.
const OUTAGE_UNDER_LOAD: Duration = Duration::from_secs(6);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_cut_shorter_than_the_retries_loses_nothing() {
    let _serial = serial().await;
    outage_under_load(
        "network cut",
        |_, forwarder| forwarder.cut(),
        async |_, forwarder| forwarder.restore().await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_frozen_shorter_than_the_retries_loses_nothing() {
    let _serial = serial().await;
    outage_under_load(
        "broker frozen",
        |tansu, _| tansu.process.signal("STOP"),
        async |tansu, _| tansu.process.signal("CONT"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_killed_mid_load_keeps_every_acked_callback() {
    let _serial = serial().await;
    let (dir, _tansu, forwarder, bridge) = stack("bridge crash", &[]).await;
    let port = bridge.port;
    let load = spawn_paced_load(&dir, bridge.url());
    wait_for_acks(bridge.port, 100).await;
    let killed_at = now_ms();
    bridge.process.signal("KILL");
    drop(bridge);
    let restarted = Bridge::start(
        &dir,
        "bridge-restarted",
        port,
        &format!("127.0.0.1:{}", forwarder.port),
        &[],
    );
    let (ok, attempts) = load.await.unwrap();
    assert!(ok, "some callbacks were given up");
    let records = read_topic(&format!("127.0.0.1:{}", forwarder.port), TOPIC);
    let acked_before_kill = attempts
        .iter()
        .filter(|a| a.status == 200 && a.answered_ms < killed_at)
        .count();
    assert!(
        acked_before_kill > 0,
        "the kill came before any ack: no evidence"
    );
    let duplicates = assert_nothing_lost(&attempts, &records, None, 1000);
    drop(restarted);
    report(&format!(
        "| bridge SIGKILL | 1000 sent, 16 connections, killed after {acked_before_kill} acks | 1000 answered 200 | {} in Kafka | 0 lost | {duplicates} duplicates |",
        records.len()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_beyond_zegoclouds_patience_is_refused_and_counted() {
    let _serial = serial().await;
    let (dir, tansu, forwarder, bridge) =
        stack("beyond patience", &[("KAFKA_DELIVERY_TIMEOUT_MS", "1000")]).await;
    let _ = &tansu;
    forwarder.cut();
    let cut_at = now_ms();
    // A shortened schedule (5 × 0.2 s, each attempt waiting up to the 1 s delivery timeout)
    // that the outage outlasts.
    let (ok, attempts) = simulate(
        &dir,
        "load",
        &bridge.url(),
        &[
            "--event",
            "call_accept",
            "--count",
            "20",
            "--concurrency",
            "20",
            "--schedule",
            "0.2,0.2,0.2,0.2,0.2",
        ],
    )
    .await;
    let outage_end = now_ms();
    forwarder.restore().await;
    assert!(!ok, "simulate should have given up");
    assert!(
        attempts.iter().all(|a| a.status != 200),
        "a 200 for a callback that could not be written"
    );
    let refused = attempts.len();
    assert_eq!(refused, 20 * 6, "every attempt of every callback refused");
    bridge.process.signal("TERM");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !bridge.process.log_text().contains("since start:") {
        assert!(
            std::time::Instant::now() < deadline,
            "no refusal total in the log"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = bridge.process.log_text();
    let expected =
        format!("since start: {refused} callbacks refused (broker_unavailable={refused})");
    assert!(log.contains(&expected), "log lacks {expected:?}:\n{log}");
    let records = read_topic(&format!("127.0.0.1:{}", forwarder.port), TOPIC);
    assert!(records.is_empty());
    report(&format!(
        "| outage beyond retries | 20 sent, outage {} s > the 1 s schedule and 6 s of delivery timeouts | 0 answered 200 | 0 in Kafka | 20 given up by the sender, all {refused} attempts counted in the bridge's log | 0 duplicates |",
        (outage_end - cut_at) / 1000
    ));
}

/// The memory bound documented in docs/reliability.md and used as the Kubernetes limit.
const RSS_BOUND_KB: u64 = 128 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_loaded_then_broker_down_under_load() {
    let _serial = serial().await;
    // 6 s each in CI; SOAK_SECS=60 (or more) for the long soak.
    let secs: f64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6.0);
    let (dir, _tansu, forwarder, bridge) = stack("soak", &[]).await;
    let (peak, sampler) = sample_rss(bridge.process.pid());
    let load = |call_id: &'static str| -> Vec<String> {
        let args = [
            "--call-id",
            call_id,
            "--count",
            "100000000",
            "--concurrency",
            "128",
        ];
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.extend([
            "--no-retry".into(),
            "--duration-secs".into(),
            secs.to_string(),
        ]);
        args
    };
    let loaded_args = load("loaded");
    let loaded_args: Vec<&str> = loaded_args.iter().map(String::as_str).collect();
    let (ok, sent, acked) = simulate_quiet(&dir, "loaded", &bridge.url(), &loaded_args).await;
    assert!(
        ok && sent == acked && sent > 0,
        "loaded: {acked} of {sent} answered 200"
    );
    let loaded_peak = *peak.lock().unwrap();

    forwarder.cut();
    // New call ids: a repeat of an acked one would rightly be answered 200 from the dedupe cache.
    let down_args = load("down");
    let down_args: Vec<&str> = down_args.iter().map(String::as_str).collect();
    let (_, attempts) = simulate(&dir, "broker-down", &bridge.url(), &down_args).await;
    let statuses: BTreeSet<u16> = attempts.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses,
        BTreeSet::from([503]),
        "only 503 while the broker is down"
    );
    let down_peak = *peak.lock().unwrap();
    forwarder.restore().await;
    bridge.wait_ready(Duration::from_secs(30)).await;
    let (ok, _, _) = simulate_quiet(
        &dir,
        "after",
        &bridge.url(),
        &["--call-id", "after", "--count", "50", "--concurrency", "8"],
    )
    .await;
    sampler.abort();
    assert!(ok, "the bridge did not recover after the soak");
    assert!(
        down_peak < RSS_BOUND_KB,
        "RSS {down_peak} KiB over the {RSS_BOUND_KB} KiB bound"
    );
    report(&format!(
        "| soak | {secs} s at 128 connections: {sent} callbacks, all 200; then {secs} s broker down: {} attempts, all 503 | peak RSS {} MB loaded, {} MB with the broker down (bound {} MB) |",
        attempts.len(),
        loaded_peak / 1024,
        down_peak / 1024,
        RSS_BOUND_KB / 1024
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_over_tls_end_to_end() {
    let _serial = serial().await;
    let dir = work_dir("kafka tls");
    certs::make_certificates(&dir);
    let (cert, key, ca) = (
        dir.join("server.pem"),
        dir.join("server.key"),
        dir.join("ca.pem"),
    );
    let tls_port = free_port();
    let tansu = Tansu::start(&dir, tls_port);
    let _terminator = TlsTerminator::start(tls_port, tansu.port, &cert, &key).await;
    tansu.create_topic(TOPIC, 3);
    let bootstrap = format!("localhost:{tls_port}");
    let ca_location = ca.display().to_string();
    let bridge = Bridge::start(
        &dir,
        "bridge",
        free_port(),
        &bootstrap,
        &[
            ("KAFKA_OPT_SECURITY_PROTOCOL", "SSL"),
            ("KAFKA_OPT_SSL_CA_LOCATION", ca_location.as_str()),
        ],
    );
    bridge.wait_ready(Duration::from_secs(20)).await;
    let (ok, attempts) = simulate(
        &dir,
        "load",
        &bridge.url(),
        &["--event", "family", "--count", "4"],
    )
    .await;
    assert!(
        ok && attempts.iter().all(|a| a.status == 200),
        "{attempts:?}"
    );
    let records = read_topic_tls(&bootstrap, TOPIC, Some(&ca));
    assert_nothing_lost(&attempts, &records, None, 20);
    assert_eq!(records.len(), 20);
    // `tail` over TLS with its settings as flags; without the CA it says why and gives up.
    let ca_flag = format!("ssl.ca.location={ca_location}");
    let tailed = tail(
        &bootstrap,
        &[],
        &[
            "-X",
            "security.protocol=SSL",
            "-X",
            &ca_flag,
            "--limit",
            "20",
            "--idle-exit-secs",
            "30",
        ],
    );
    assert_eq!(tailed.records.len(), 20, "tail over TLS: {}", tailed.stderr);
    let untrusted = tail(
        &bootstrap,
        &[("KAFKA_OPT_SECURITY_PROTOCOL", "SSL")],
        &["--broker-timeout-secs", "3"],
    );
    assert_eq!(untrusted.code, Some(1), "{}", untrusted.stderr);
    assert!(
        untrusted.stderr.contains("TLS with Kafka failed"),
        "{}",
        untrusted.stderr
    );
    report("| Kafka over TLS | 20 callbacks, bridge → TLS (verified against a test CA) → tansu; `tail` with `-X` flags reads them, and without the CA names the TLS failure | 20 answered 200 | 20 in Kafka | 0 lost | 0 duplicates |");
}

/// The broker rebuilt empty behind the same address (a cluster restored or recreated), with no
/// spool: the producer's idempotence state means nothing to the new broker and its sends time
/// out while the broker answers metadata. The bridge must replace the producer by itself, so
/// ZEGOCLOUD's retries land: every callback answered 200, and in the new broker's topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_rebuilt_behind_the_same_address_heals_the_producer() {
    let _serial = serial().await;
    let (dir, tansu, forwarder, bridge) =
        stack("broker rebuilt", &[("KAFKA_DELIVERY_TIMEOUT_MS", "2000")]).await;
    let before = send_once(&dir, "before", &bridge.url(), "before", 20, &[]).await;
    assert!(before.iter().all(|a| a.status == 200), "{before:?}");
    let _rebuilt = tansu.replace_with_empty(&dir, "tansu-rebuilt", forwarder.port, || {});
    // On ZEGOCLOUD's real retry schedule (2, 4, 8, 16, 32 s).
    let (ok, attempts) = simulate(
        &dir,
        "after",
        &bridge.url(),
        &[
            "--event",
            "family",
            "--count",
            "20",
            "--concurrency",
            "4",
            "--call-id",
            "rebuilt",
        ],
    )
    .await;
    assert!(
        ok,
        "simulate gave up on some callbacks: see {}",
        dir.display()
    );
    let replaced = metric(
        bridge.port,
        "zego_producer_replacements_total{reason=\"stalled\"}",
    );
    assert!(replaced >= 1.0, "the stalled producer was never replaced");
    let records = read_topic(&format!("127.0.0.1:{}", forwarder.port), TOPIC);
    let duplicates = assert_nothing_lost(&attempts, &records, None, 100);
    let refused = attempts.iter().filter(|a| a.status != 200).count();
    report(&format!(
        "| broker rebuilt empty behind the same address (no spool) | 100 callbacks (20 calls × 5), real retry schedule | 100 × 200 after {refused} refused attempts | {} in the new broker | 0 lost | producer replaced as stalled {replaced} time(s), no restart; {duplicates} duplicates |",
        records.len()
    ));
}
