//! Connection-level attacks on the release binary while genuine callbacks flow: idle sockets,
//! stalled chunked and sized uploads, header floods, header dribblers and a thousand
//! near-limit callbacks at once. The bridge's open descriptors and memory are sampled
//! throughout; every attacking connection must be closed by the bridge, memory must stay
//! under the Kubernetes limit, and every genuine callback must land.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zego_kafka_bridge::callback::catalogue::call;
use zego_kafka_bridge::callback::sample;

use crate::harness::*;
use crate::stack;

/// The Kubernetes memory limit the deploy files set: the bound the byte budget must keep.
const MEMORY_LIMIT_KB: u64 = 128 * 1024;
/// Longer than any timeout of the bridge's (10 s body, 5 s head, 1 s linger): a connection
/// still open after this was never going to be closed.
const CLOSE_LIMIT: Duration = Duration::from_secs(45);

/// How one attacking connection ended.
#[derive(Debug)]
enum Ended {
    /// The bridge answered (the status) and closed the connection.
    Closed(u16),
    /// The bridge closed the connection without an answer.
    ClosedSilently,
    /// Still open at `CLOSE_LIMIT`.
    LeftOpen,
}

/// Connects, sends `parts` with `pause` between them (stopping when the bridge stops reading),
/// then waits for the bridge to close the connection.
async fn attack(port: u16, parts: Vec<Vec<u8>>, pause: Duration) -> Ended {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return Ended::ClosedSilently;
    };
    for (n, part) in parts.iter().enumerate() {
        if n > 0 {
            tokio::time::sleep(pause).await;
        }
        if stream.write_all(part).await.is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    match tokio::time::timeout(CLOSE_LIMIT, stream.read_to_end(&mut answer)).await {
        Err(_) => Ended::LeftOpen,
        Ok(_) if answer.starts_with(b"HTTP/1.1 ") => {
            Ended::Closed(String::from_utf8_lossy(&answer[9..12]).parse().unwrap_or(0))
        }
        Ok(_) => Ended::ClosedSilently,
    }
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

const HEAD: &str =
    "POST /zego/callback HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n";

/// A signed `call_accept` of about 60 KiB (the limit is 64 KiB), as raw JSON text.
fn near_limit_callback(call_id: &str) -> String {
    let mut body = sample::callback(
        call::accept(),
        "1",
        call_id,
        now_ms() / 1000,
        "350176",
        SECRET,
    );
    body["extend_data"] = Value::from("x".repeat(60_000));
    sample::sign(&mut body, SECRET);
    body.to_string()
}

/// Every kind of attacking connection, `count` of each and `big` near-limit callbacks, as
/// (kind, parts, pause).
fn attacks(count: usize, big: usize) -> Vec<(&'static str, Vec<Vec<u8>>, Duration)> {
    let mut all = Vec::new();
    let no_pause = Duration::ZERO;
    for n in 0..big.max(count) {
        if n >= count {
            all.push(big_callback(n));
            continue;
        }
        all.push(("idle", vec![], no_pause));
        all.push((
            "chunked stall",
            vec![
                format!("{HEAD}Transfer-Encoding: chunked\r\n\r\n400\r\n{{\"appid\":").into_bytes(),
            ],
            no_pause,
        ));
        all.push((
            "sized stall",
            vec![format!("{HEAD}Content-Length: 900\r\n\r\n{{\"appid\":").into_bytes()],
            no_pause,
        ));
        all.push((
            "header flood",
            vec![format!("{HEAD}X-Flood: {}\r\n\r\n", "f".repeat(100_000)).into_bytes()],
            no_pause,
        ));
        all.push((
            "many headers",
            vec![format!("{HEAD}{}\r\n", "X-H: v\r\n".repeat(500)).into_bytes()],
            no_pause,
        ));
        // One byte a second: the head never completes.
        let dribble = HEAD.bytes().take(20).map(|b| vec![b]).collect();
        all.push(("header dribble", dribble, Duration::from_secs(1)));
        if n < big {
            all.push(big_callback(n));
        }
    }
    all
}

/// A genuine, signed near-limit callback; half of them chunked.
fn big_callback(n: usize) -> (&'static str, Vec<Vec<u8>>, Duration) {
    let body = near_limit_callback(&format!("big-{n}"));
    let request = if n.is_multiple_of(2) {
        format!(
            "{HEAD}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    } else {
        format!(
            "{HEAD}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        )
    };
    (
        "near-limit callback",
        vec![request.into_bytes()],
        Duration::ZERO,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_attacks_are_closed_and_bounded_while_genuine_callbacks_land() {
    let _serial = serial().await;
    let (dir, _tansu, forwarder, bridge) = stack("attacks", &[]).await;
    let pid = bridge.process.pid();
    let idle_descriptors = open_descriptors(pid);
    let (peak_rss, rss_task) = sample_rss(pid);
    let (peak_fds, fd_task) = sample_peak(Duration::from_millis(100), move || {
        open_descriptors(pid) as u64
    });

    // Genuine traffic throughout, retried on ZEGOCLOUD's schedule.
    let url = bridge.url();
    let genuine_dir = dir.clone();
    let genuine = tokio::spawn(async move {
        simulate(
            &genuine_dir,
            "genuine",
            &url,
            &[
                "--event",
                "family",
                "--count",
                "100",
                "--concurrency",
                "8",
                "--pause-ms",
                "50",
            ],
        )
        .await
    });

    let started = Instant::now();
    let port = bridge.port;
    let attacks = attacks(150, 1000);
    let total = attacks.len();
    let mut running = tokio::task::JoinSet::new();
    for (kind, parts, pause) in attacks {
        running.spawn(async move { (kind, attack(port, parts, pause).await) });
    }
    let mut left_open = Vec::new();
    let mut big_ok = 0;
    let mut big_overloaded = 0;
    let mut statuses = BTreeSet::new();
    while let Some(joined) = running.join_next().await {
        let (kind, ended) = joined.unwrap();
        match (kind, &ended) {
            (_, Ended::LeftOpen) => left_open.push(kind),
            ("near-limit callback", Ended::Closed(200)) => big_ok += 1,
            ("near-limit callback", Ended::Closed(503)) => big_overloaded += 1,
            ("near-limit callback", other) => panic!("a near-limit callback ended {other:?}"),
            (kind, Ended::Closed(status)) => {
                statuses.insert((kind, *status));
            }
            (_, Ended::ClosedSilently) => {}
        }
    }
    let attack_secs = started.elapsed().as_secs();
    assert!(
        left_open.is_empty(),
        "left open by the bridge: {left_open:?}"
    );

    // Every descriptor the attacks cost is given back.
    let deadline = Instant::now() + CLOSE_LIMIT;
    while open_descriptors(pid) > idle_descriptors + 16 {
        assert!(
            Instant::now() < deadline,
            "{} descriptors open, {idle_descriptors} before the attacks",
            open_descriptors(pid)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ok, attempts) = genuine.await.unwrap();
    rss_task.abort();
    fd_task.abort();
    let peak_rss_kb = *peak_rss.lock().unwrap();
    let peak_fds = *peak_fds.lock().unwrap();
    assert!(ok, "a genuine callback was given up");
    assert!(
        peak_rss_kb < MEMORY_LIMIT_KB,
        "peak RSS {peak_rss_kb} KiB over the {MEMORY_LIMIT_KB} KiB limit"
    );
    assert!(big_ok > 0, "no near-limit callback got through at all");

    // What landed: every genuine callback, every near-limit callback answered 200, all valid.
    let records = read_topic(&format!("127.0.0.1:{}", forwarder.port), TOPIC);
    records.iter().for_each(assert_well_formed);
    let landed: BTreeSet<(String, String)> = records
        .iter()
        .map(|r| {
            (
                r.key.clone().unwrap(),
                r.value["event"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let missing: Vec<_> = acked(&attempts)
        .into_keys()
        .filter(|id| !landed.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "answered 200 but not in Kafka: {missing:?}"
    );
    let big_landed = landed
        .iter()
        .filter(|(key, _)| key.starts_with("big-"))
        .count();
    assert!(
        big_landed >= big_ok,
        "{big_ok} near-limit callbacks answered 200, {big_landed} in Kafka"
    );
    report(&format!(
        "| connection attacks | {total} connections (150 each: idle, chunked stall, sized stall, 100 KB header, 500 headers, header dribble; 1,000 signed ~60 KiB callbacks at once) in {attack_secs} s, beside 500 genuine callbacks | every attacking connection closed by the bridge; near-limit callbacks {big_ok} × 200, {big_overloaded} × 503 overloaded; answers seen {statuses:?} | peak open descriptors {peak_fds} (idle {idle_descriptors}), back to idle after | peak RSS {} MB | genuine: 500 × 200, all in Kafka |",
        peak_rss_kb / 1024
    ));
}

/// The connection cap of the bridge under test (`MAX_CONNECTIONS`'s default).
const MAX_CONNECTIONS: usize = 512;

/// Thousands of uploads that each send 60 KiB of a 64 KiB body and go silent, all at once. The
/// HTTP layer buffers about 80 KB of each before the byte budget sees any of it, so without a
/// cap on connections memory grew with their number (106/188/265 MB for 1,000/2,000/3,000).
/// With `MAX_CONNECTIONS` the bridge holds at most that many at once (the rest wait in the
/// kernel's queue), its memory stays flat, and every upload is closed by the bridge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_beyond_the_connection_cap_wait_and_memory_stays_bounded() {
    let _serial = serial().await;
    let (dir, _tansu, _forwarder, bridge) = stack("stalled uploads", &[]).await;
    let pid = bridge.process.pid();
    let idle_descriptors = open_descriptors(pid);
    let (peak_rss, rss_task) = sample_rss(pid);
    let (peak_fds, fd_task) = sample_peak(Duration::from_millis(50), move || {
        open_descriptors(pid) as u64
    });
    let uploads = 2000;
    let stalled = format!("{HEAD}Content-Length: 65536\r\n\r\n{}", "x".repeat(61_440)).into_bytes();
    let started = Instant::now();
    let port = bridge.port;
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..uploads {
        let stalled = stalled.clone();
        running.spawn(async move { attack(port, vec![stalled], Duration::ZERO).await });
    }
    let mut ended = std::collections::BTreeMap::new();
    while let Some(joined) = running.join_next().await {
        let key = match joined.unwrap() {
            Ended::Closed(status) => status.to_string(),
            Ended::ClosedSilently => "closed without an answer".to_string(),
            Ended::LeftOpen => "left open".to_string(),
        };
        *ended.entry(key).or_insert(0) += 1;
    }
    let attack_secs = started.elapsed().as_secs();
    rss_task.abort();
    fd_task.abort();
    let peak_rss_mb = *peak_rss.lock().unwrap() / 1024;
    let peak_fds = *peak_fds.lock().unwrap() as usize;
    assert!(!ended.contains_key("left open"), "{ended:?}");
    // A connection is a descriptor: at most the cap at once, beside the bridge's own.
    assert!(
        peak_fds <= idle_descriptors + MAX_CONNECTIONS + 8,
        "{peak_fds} descriptors open at the peak, {idle_descriptors} idle, cap {MAX_CONNECTIONS}"
    );
    assert!(
        peak_rss_mb * 1024 < MEMORY_LIMIT_KB,
        "peak RSS {peak_rss_mb} MB over the {MEMORY_LIMIT_KB} KiB limit"
    );
    // The bridge serves genuine callbacks again at once.
    let (ok, attempts) = simulate(
        &dir,
        "after",
        &bridge.url(),
        &["--count", "50", "--no-retry"],
    )
    .await;
    assert!(
        ok && attempts.iter().all(|a| a.status == 200),
        "{attempts:?}"
    );
    report(&format!(
        "| stalled uploads over the connection cap | {uploads} connections at once, each 60 KiB of a 64 KiB body then silent | {ended:?} in {attack_secs} s; then 50 genuine callbacks all 200 | peak open descriptors {peak_fds} (idle {idle_descriptors}, cap {MAX_CONNECTIONS}) | peak RSS {peak_rss_mb} MB | — |"
    ));
}
