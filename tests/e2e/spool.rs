//! The durable spool end to end: Kafka unreachable for twice the sender's patience (simulate
//! retries on `SCALED_SCHEDULE`, 15.5 s; with ZEGOCLOUD's real 62 s the property is the same,
//! only four times slower) under a steady signed load, with the bridge SIGKILLed twenty times
//! at random moments while spooling and while draining; and the broker replaced by an empty one
//! mid-drain. Every callback answered 200 must be in the topic, read back by the independent
//! client; each call's events in order. (Disk faults: `disk_faults.rs`.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::{assert_nothing_lost, spawn_family_load, stack};

/// Twice the sender's patience (`SCALED_SCHEDULE`: 0.5+1+2+4+8 s): without the spool, every
/// callback of the outage's first half would be lost.
const OUTAGE: Duration = Duration::from_secs(17);

/// A steady load across the outage and into the drain: 200 calls × 5 events, 4 calls at a
/// time, 100 ms between a call's events (about 40 callbacks a second for about 25 s), retried
/// on `SCALED_SCHEDULE`.
fn spawn_steady_load(dir: &Path, url: String) -> tokio::task::JoinHandle<(bool, Vec<Attempt>)> {
    spawn_family_load(dir, url, "200", "4", "100", SCALED_SCHEDULE)
}

/// Callbacks the steady load sends.
const STEADY: usize = 1000;

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

async fn wait_for_empty_spool(port: u16) {
    wait_for_metric(port, "zego_spool_records", Duration::from_secs(180), |v| {
        v == 0.0
    })
    .await;
}

/// Runs the `OUTAGE` under load; `during` runs at the outage's midpoint, `draining` once the
/// drain has begun. Returns the attempts, the topic, the oldest spooled record's age at the
/// end of the outage, and whether the broker was really unreachable then.
async fn long_outage(
    name: &str,
    extra: &[(&str, &str)],
    during: impl AsyncFnOnce(&Path, &mut Bridge, &Path),
    draining: impl AsyncFnOnce(&Path, &mut Bridge, &Path),
) -> (Vec<Attempt>, Vec<Record>, f64, f64) {
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
    let oldest = metric(bridge.port, "zego_spool_oldest_age_seconds");
    let reachable = metric(bridge.port, "zego_broker_reachable");
    forwarder.restore().await;
    draining(&dir, &mut bridge, &spool).await;
    let (ok, attempts) = load.await.unwrap();
    assert!(
        ok,
        "simulate gave up on some callbacks: see {}",
        dir.display()
    );
    wait_for_empty_spool(bridge.port).await;
    let records = read_topic(&format!("127.0.0.1:{}", forwarder.port), TOPIC);
    (attempts, records, oldest, reachable)
}

/// A small pseudo-random source (xorshift), seeded from the clock and reported, so a failing
/// run's kill moments can be replayed.
struct Moments(u64);

impl Moments {
    fn new(salt: u64) -> Moments {
        let seed = (now_ms() as u64 ^ salt) | 1;
        println!("SIGKILL moments seed ({salt}): {seed}");
        Moments(seed)
    }

    /// A pause between `min_ms` and `max_ms`.
    fn pause(&mut self, min_ms: u64, max_ms: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_millis(min_ms + self.0 % (max_ms - min_ms))
    }
}

/// Kills the bridge with SIGKILL and starts it again on the same spool, `kills` times, at
/// random moments; returns the spool records left at each kill.
async fn kill_repeatedly(
    dir: &Path,
    bridge: &mut Bridge,
    spool: &Path,
    kills: usize,
    moments: &mut Moments,
    (min_ms, max_ms): (u64, u64),
    label: &str,
) -> Vec<f64> {
    let mut left = Vec::new();
    for n in 0..kills {
        tokio::time::sleep(moments.pause(min_ms, max_ms)).await;
        let port = bridge.port;
        left.push(metric(port, "zego_spool_records"));
        bridge.process.signal("KILL");
        wait_for_port_free(port, Duration::from_secs(10));
        *bridge = restart(dir, &format!("bridge-{label}-{n}"), port, bridge, spool);
        wait_for_port(port, Duration::from_secs(20));
    }
    left
}

/// One outage twice as long as the sender's patience, under load: the callbacks of the outage
/// are answered from the spool, and the bridge is SIGKILLed ten times while spooling (mid
/// commit, between groups) and ten times while draining; nothing answered 200 is lost, and
/// each call's events land in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_outage_with_twenty_sigkills_is_spooled_and_loses_nothing() {
    let _serial = serial().await;
    let (mut outage_moments, mut drain_moments) = (Moments::new(1), Moments::new(2));
    let mut during_outage = Vec::new();
    let mut during_drain = Vec::new();
    let (attempts, records, oldest, reachable) = long_outage(
        "spool sigkill",
        // A slow drain, so the kills land while it runs.
        &[("SPOOL_DRAIN_RATE", "100")],
        async |dir, bridge, spool| {
            // Ten kills over about 8 s of the outage: mid-commit, between groups.
            during_outage = kill_repeatedly(
                dir,
                bridge,
                spool,
                10,
                &mut outage_moments,
                (200, 1300),
                "outage",
            )
            .await;
        },
        async |dir, bridge, spool| {
            wait_for_metric(
                bridge.port,
                "zego_spool_drained_total",
                Duration::from_secs(60),
                |v| v >= 50.0,
            )
            .await;
            during_drain = kill_repeatedly(
                dir,
                bridge,
                spool,
                10,
                &mut drain_moments,
                (200, 1500),
                "drain",
            )
            .await;
        },
    )
    .await;
    assert_eq!(
        reachable, 0.0,
        "the broker was reachable at the end of the cut"
    );
    assert!(
        during_drain.iter().filter(|left| **left > 0.0).count() >= 5,
        "most drain kills came after the drain ended: {during_drain:?}"
    );
    let duplicates = assert_nothing_lost(&attempts, &records, None, STEADY);
    assert_calls_in_order(&records);
    let answered_spooled = attempts.iter().filter(|a| a.spooled).count();
    assert!(
        answered_spooled > 200,
        "only {answered_spooled} callbacks were answered from the spool"
    );
    assert!(
        oldest >= (OUTAGE.as_secs() / 2) as f64,
        "the oldest spooled record was only {oldest} s old at the end of the cut"
    );
    report(&format!(
        "| spool: {} s network cut (twice the sender's 15.5 s patience), 20 SIGKILLs at random moments (10 while spooling, 10 while draining at 100/s) | {STEADY} sent | {STEADY} answered 200 ({answered_spooled} spooled) | {} in Kafka | 0 lost, each call in order | {duplicates} duplicates; oldest spooled {oldest} s; records spooled at the drain kills: {during_drain:?}; at the outage kills: {during_outage:?} |",
        OUTAGE.as_secs(),
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

/// The broker is replaced by an empty one behind the same address while the spool drains (a
/// cluster rebuilt or restored): the producer's idempotence state means nothing to the new
/// broker, its sends time out while the broker answers metadata, and the drain must replace it
/// by itself, without a bridge restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_replaced_mid_drain_is_drained_into_without_a_restart() {
    let _serial = serial().await;
    let spool = spool_dir("spool broker replaced");
    let spool_text = spool.to_string_lossy().into_owned();
    let (dir, tansu, forwarder, bridge) = stack(
        "spool broker replaced",
        &[
            ("SPOOL_DIR", spool_text.as_str()),
            ("SPOOL_DRAIN_RATE", "100"),
            ("KAFKA_DELIVERY_TIMEOUT_MS", "1000"),
        ],
    )
    .await;
    // Some callbacks straight to Kafka first: the producer has sequence state on this broker.
    let before = send_once(&dir, "before", &bridge.url(), "before", 20, &[]).await;
    assert!(before.iter().all(|a| a.status == 200 && !a.spooled));
    cut_broker(&forwarder, bridge.port).await;
    let spooled = send_once(
        &dir,
        "spooled",
        &bridge.url(),
        "replaced",
        300,
        &["--concurrency", "4"],
    )
    .await;
    assert!(
        spooled.iter().all(|a| a.spooled),
        "all spooled during the cut"
    );
    forwarder.restore().await;
    wait_for_metric(
        bridge.port,
        "zego_spool_drained_total",
        Duration::from_secs(60),
        |v| v >= 50.0,
    )
    .await;
    // The broker dies mid-drain; once it is gone nothing more can be acknowledged by it.
    let mut drained_by_old = 0.0;
    let _fresh = tansu.replace_with_empty(&dir, "tansu-replacement", forwarder.port, || {
        drained_by_old = metric(bridge.port, "zego_spool_drained_total");
    });
    wait_for_empty_spool(bridge.port).await;
    let replaced = metric(
        bridge.port,
        "zego_producer_replacements_total{reason=\"stalled\"}",
    ) + metric(
        bridge.port,
        "zego_producer_replacements_total{reason=\"fenced\"}",
    ) + metric(
        bridge.port,
        "zego_producer_replacements_total{reason=\"fatal\"}",
    );
    let records = read_topic(&format!("127.0.0.1:{}", forwarder.port), TOPIC);
    let landed: std::collections::BTreeSet<String> =
        records.iter().filter_map(|r| r.key.clone()).collect();
    // What the old broker acknowledged went down with it (the broker's loss, not the
    // bridge's); everything else must be on the new one.
    let expected_on_new = 300 - drained_by_old as usize;
    assert!(
        landed.len() >= expected_on_new,
        "{} records on the new broker, {expected_on_new} expected (the old one took {drained_by_old})",
        landed.len()
    );
    assert!(replaced >= 1.0, "the stalled producer was never replaced");
    report(&format!(
        "| spool: broker replaced by an empty one mid-drain | 300 spooled, drain at 100/s | {drained_by_old} acknowledged by the old broker before it died | {} on the new broker | 0 lost of what the old one had not taken; producer replaced {replaced} times, no bridge restart |",
        landed.len()
    ));
}

/// `spool inspect` and `spool drain` on a spool whose bridge is gone (SIGKILLed during an
/// outage, never restarted): refused while a bridge holds the directory; then it shows what
/// the spool holds and forwards all of it with the bridge's own rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphaned_spool_is_inspected_and_drained_by_the_spool_tool() {
    let _serial = serial().await;
    let spool = spool_dir("spool orphaned");
    let spool_text = spool.to_string_lossy().into_owned();
    let (dir, _tansu, forwarder, bridge) =
        stack("spool orphaned", &[("SPOOL_DIR", spool_text.as_str())]).await;
    cut_broker(&forwarder, bridge.port).await;
    let (_, spooled) = simulate(
        &dir,
        "orphaned",
        &bridge.url(),
        &[
            "--event",
            "family",
            "--count",
            "10",
            "--call-id",
            "orphan",
            "--no-retry",
        ],
    )
    .await;
    assert!(spooled.iter().all(|a| a.spooled), "{spooled:?}");
    let tool = |args: &[&str]| {
        std::process::Command::new(bridge_bin())
            .arg("spool")
            .args(args)
            .arg("--dir")
            .arg(&spool)
            .env("KAFKA_BROKERS", format!("127.0.0.1:{}", forwarder.port))
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let held = tool(&["drain"]);
    assert_eq!(
        held.status.code(),
        Some(2),
        "refused while the bridge holds it"
    );
    assert!(String::from_utf8_lossy(&held.stderr).contains("in use by another running bridge"));
    let port = bridge.port;
    bridge.process.signal("KILL");
    wait_for_port_free(port, Duration::from_secs(10));
    drop(bridge);
    let inspected = tool(&["inspect"]);
    let text = String::from_utf8_lossy(&inspected.stdout);
    assert!(inspected.status.success(), "{inspected:?}");
    assert!(text.contains("50 records waiting"), "{text}");
    forwarder.restore().await;
    let drained = tool(&["drain", "--patience-secs", "60"]);
    let text = String::from_utf8_lossy(&drained.stdout);
    assert!(drained.status.success(), "{drained:?}");
    assert!(text.contains("50 records forwarded"), "{text}");
    let after = tool(&["inspect"]);
    assert!(String::from_utf8_lossy(&after.stdout).contains("0 records waiting"));
    let records = read_topic(&format!("127.0.0.1:{}", forwarder.port), TOPIC);
    let duplicates = crate::assert_nothing_lost(&spooled, &records, None, 50);
    assert_calls_in_order(&records);
    report(&format!(
        "| spool tool: an orphaned spool (bridge SIGKILLed mid-outage, never restarted) | 10 calls × 5 events spooled | `spool drain` refused while the bridge ran; `inspect` showed 50; `drain` forwarded 50 and exited 0 | {} in Kafka | 0 lost, each call in order | {duplicates} duplicates |",
        records.len()
    ));
}

/// Waits until the bridge has said `times` times that its spool went idle (callbacks go
/// straight to Kafka again).
async fn wait_for_idle_spool(bridge: &Bridge, times: usize) {
    eventually("the spool going idle", Duration::from_secs(60), || {
        let idle = bridge
            .process
            .log_text()
            .matches("callbacks go straight to Kafka again")
            .count();
        (idle >= times).then_some(())
    })
    .await;
}

/// Runs one `simulate` invocation (no retry) and returns its single attempt.
async fn one(dir: &Path, name: &str, url: &str, args: &[&str]) -> Attempt {
    let mut args = args.to_vec();
    args.extend(["--count", "1", "--no-retry"]);
    let (_, mut attempts) = simulate(dir, name, url, &args).await;
    assert_eq!(attempts.len(), 1, "{name}");
    attempts.remove(0)
}

/// `KAFKA_TOPIC_RTC` names a topic nobody created (tansu does not create topics on use). The
/// bridge starts while the broker is unreachable, so an RTC callback is spooled (nothing can
/// say its topic is missing yet) with a call's behind it. Once the broker is back the drain
/// sets the RTC record aside: the call behind it is delivered, the spool goes idle, and new
/// RTC callbacks are answered 500 `publish_failed` at once instead of timing out, never
/// spooled, while other families go straight to Kafka. Once the topic exists the set-aside
/// record is retried at once (not at its next 10 s round) and delivered, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeliverable_record_is_set_aside_or_refused_up_front_never_poisoning_the_spool() {
    let _serial = serial().await;
    let dir = work_dir("poison");
    let spool = spool_dir("poison");
    let spool_text = spool.to_string_lossy().into_owned();
    let forward_port = free_port();
    let tansu = Tansu::start(&dir, forward_port);
    let forwarder = Forwarder::start(forward_port, tansu.port).await;
    tansu.create_topic(TOPIC, 3);
    forwarder.cut();
    let bridge = Bridge::start(
        &dir,
        "bridge",
        free_port(),
        &format!("127.0.0.1:{forward_port}"),
        &[
            ("SPOOL_DIR", &spool_text),
            ("KAFKA_TOPIC_RTC", "missing-rtc"),
        ],
    );
    bridge.wait_ready(Duration::from_secs(20)).await;
    let url = bridge.url();
    let rtc = |id: &'static str| ["--family", "rtc", "--event", "room_login", "--call-id", id];

    let spooled_rtc = one(&dir, "rtc-spooled", &url, &rtc("room-spooled")).await;
    assert_eq!(
        (spooled_rtc.status, spooled_rtc.spooled),
        (200, true),
        "{spooled_rtc:?}"
    );
    let spooled_call = one(&dir, "call-1", &url, &["--call-id", "call-1"]).await;
    assert_eq!((spooled_call.status, spooled_call.spooled), (200, true));
    forwarder.restore().await;
    wait_for_metric(
        bridge.port,
        "zego_spool_held_records",
        Duration::from_secs(60),
        |v| v == 1.0,
    )
    .await;
    wait_for_idle_spool(&bridge, 1).await;
    let brokers = format!("127.0.0.1:{}", forwarder.port);

    // Known missing now: refused at once, never spooled; other families straight to Kafka.
    let refused = one(&dir, "rtc-refused", &url, &rtc("room-refused")).await;
    assert_eq!(
        (refused.status, refused.error.as_deref(), refused.spooled),
        (500, Some("publish_failed"), false),
        "{refused:?}"
    );
    assert!(
        refused.answered_ms - refused.sent_ms < 1000,
        "at once: {refused:?}"
    );
    let fresh = one(&dir, "call-2", &url, &["--call-id", "call-2"]).await;
    assert_eq!(
        (fresh.status, fresh.spooled),
        (200, false),
        "the spool is idle: {fresh:?}"
    );
    let calls: Vec<String> = read_topic(&brokers, TOPIC)
        .into_iter()
        .filter_map(|r| r.key)
        .collect();
    for key in ["call-1", "call-2"] {
        assert_eq!(
            calls.iter().filter(|k| *k == key).count(),
            1,
            "{key}: {calls:?}"
        );
    }

    // The topic is created: the set-aside record is retried at once and delivered once.
    tansu.create_topic("missing-rtc", 1);
    wait_for_metric(
        bridge.port,
        "zego_spool_held_records",
        Duration::from_secs(60),
        |v| v == 0.0,
    )
    .await;
    let rtc_records = eventually(
        "the RTC record in its topic",
        Duration::from_secs(60),
        || {
            let records = read_topic(&brokers, "missing-rtc");
            (!records.is_empty()).then_some(records)
        },
    )
    .await;
    let keys: Vec<_> = rtc_records.iter().map(|r| r.key.clone()).collect();
    assert_eq!(keys, [Some("room-spooled".to_string())], "delivered once");
    let log = bridge.process.log_text();
    assert_eq!(
        log.matches("set 1 records aside").count(),
        1,
        "said once, not at every retry:\n{log}"
    );
    report("| undeliverable record (KAFKA_TOPIC_RTC names a missing topic) | started during a cut: an RTC callback spooled with a call behind it | the RTC record set aside, the call drained, the spool idle; later RTC callbacks 500 at once, others straight to Kafka; once the topic exists: delivered once | — | 0 lost | 0 duplicates |");
}
