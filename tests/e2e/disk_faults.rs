//! The spool when the disk fails under it, with the release binary and tansu: an error
//! injected into each system call SQLite makes on the spool's files (`strace -P … -e inject=`,
//! so nothing else in the process is touched), a double fault, and a disk that fills up (a
//! 256 KiB tmpfs) followed by a restart while Kafka is cut again. After each, the bridge is
//! SIGKILLed, started again without faults and drains: every callback answered 200 must be in
//! the topic, and the bridge must have recovered by itself once the faults stopped.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::*;

/// Callbacks `prefix-0` … `prefix-{count-1}` (`call_accept`, `extend_data` of `pad` bytes),
/// each sent once, one at a time: which got a 200 is exactly known.
async fn send_padded(
    dir: &Path,
    name: &str,
    url: &str,
    prefix: &str,
    count: usize,
    pad: usize,
) -> Vec<Attempt> {
    let padding = format!("extend_data={}", "p".repeat(pad));
    send_once(
        dir,
        name,
        url,
        prefix,
        count,
        &["--concurrency", "1", "--set", &padding],
    )
    .await
}

/// Keys of the topic's records that start with `prefix-`.
fn landed(records: &[Record], prefix: &str) -> BTreeSet<String> {
    records
        .iter()
        .filter_map(|r| r.key.clone())
        .filter(|k| k.starts_with(&format!("{prefix}-")))
        .collect()
}

/// Every callback answered 200 is in `landed`: panics naming the missing ones. Returns how
/// many were answered 200.
fn assert_none_missing(label: &str, attempts: &[&Attempt], landed: &BTreeSet<String>) -> usize {
    let answered: Vec<&str> = attempts
        .iter()
        .filter(|a| a.status == 200)
        .map(|a| a.call_id.as_str())
        .collect();
    let missing: Vec<&&str> = answered.iter().filter(|k| !landed.contains(**k)).collect();
    assert!(
        missing.is_empty(),
        "{label}: answered 200 but not in Kafka: {missing:?}"
    );
    answered.len()
}

/// Kills `bridge` with SIGKILL: under strace, the traced bridge (strace's child) first.
fn kill_hard(bridge: &mut Bridge) {
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", bridge.process.pid()))
            .unwrap_or_default();
    for child in children.split_whitespace() {
        let _ = Command::new("kill")
            .args(["-KILL", child])
            .stderr(std::process::Stdio::null())
            .status();
    }
    let _ = bridge.process.child.kill();
    let _ = bridge.process.child.wait();
    wait_for_port_free(bridge.port, Duration::from_secs(10));
}

async fn wait_for_empty_spool(port: u16) {
    wait_for_metric(port, "zego_spool_records", Duration::from_secs(120), |v| {
        v == 0.0
    })
    .await;
}

/// One injected fault: `inject` clauses for strace, `syscalls` traced.
struct Fault {
    name: &'static str,
    syscalls: &'static str,
    injects: &'static [&'static str],
    /// A fault that must be hit (SQLite makes this call on every commit): the test fails if
    /// strace never injected it or no callback got 503 `spool_failed`.
    must_hit: bool,
}

/// SQLite (bundled) writes with `pwrite64` and flushes with `fsync` (it is built without
/// `fdatasync`); `fdatasync`, `write`, `ftruncate` and `rename` are tried too and reported with
/// how often they were hit. Counts start after the spool was created (see `precreate`).
const FAULTS: &[Fault] = &[
    Fault {
        name: "fsync EIO",
        syscalls: "fsync",
        injects: &["fsync:error=EIO:when=4..6"],
        must_hit: true,
    },
    Fault {
        name: "fsync ENOSPC",
        syscalls: "fsync",
        injects: &["fsync:error=ENOSPC:when=4..6"],
        must_hit: true,
    },
    Fault {
        name: "pwrite64 EIO",
        syscalls: "pwrite64",
        injects: &["pwrite64:error=EIO:when=10..13"],
        must_hit: true,
    },
    Fault {
        name: "pwrite64 ENOSPC",
        syscalls: "pwrite64",
        injects: &["pwrite64:error=ENOSPC:when=10..13"],
        must_hit: true,
    },
    // Calls SQLite makes only when giving space back (ftruncate of the write-ahead log), or
    // never on the spool's files (WAL mode uses pwrite64 and fsync): one run tries them all and
    // reports what was hit; none of them may cost a callback.
    Fault {
        name: "ftruncate, fdatasync, write, rename EIO",
        syscalls: "ftruncate,fdatasync,write,rename,renameat,renameat2",
        injects: &[
            "ftruncate:error=EIO:when=1..3",
            "fdatasync:error=EIO:when=1..3",
            "write:error=EIO:when=1..3",
            "rename:error=EIO",
            "renameat:error=EIO",
            "renameat2:error=EIO",
        ],
        must_hit: false,
    },
    Fault {
        name: "double: fsync EIO, then pwrite64 ENOSPC on the next commits",
        syscalls: "fsync,pwrite64",
        injects: &[
            "fsync:error=EIO:when=4",
            "pwrite64:error=ENOSPC:when=14..18",
        ],
        must_hit: true,
    },
];

/// Creates the spool once without faults (SQLite's start-up writes on a new database), so the
/// injected counts land on the commits of the callbacks.
fn precreate(dir: &Path, spool_env: &[(&str, &str)], brokers: &str, name: &str) {
    let port = free_port();
    let mut bridge = Bridge::start(dir, name, port, brokers, spool_env);
    // Serving means its spool is open and its signal handling in place: a TERM sooner can
    // end it before either (seen: killed by the signal, no spool created).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while http_status(port, "/healthz") != 200 {
        assert!(std::time::Instant::now() < deadline, "{name} never served");
        std::thread::sleep(Duration::from_millis(20));
    }
    bridge.process.signal("TERM");
    let status = bridge.process.child.wait().unwrap();
    assert!(status.success(), "{name} did not stop cleanly: {status:?}");
    wait_for_port_free(port, Duration::from_secs(10));
}

/// strace around the bridge: only calls on the spool's files are traced and faulted.
fn strace(spool: &Path, log: &Path, fault: &Fault) -> Vec<String> {
    let mut args: Vec<String> = ["strace", "-f", "-qq", "-o"].map(String::from).to_vec();
    args.push(log.to_string_lossy().into_owned());
    for file in ["spool.db", "spool.db-wal", "spool.db-journal"] {
        args.push("-P".into());
        args.push(spool.join(file).to_string_lossy().into_owned());
    }
    args.push("-e".into());
    args.push(format!("trace={}", fault.syscalls));
    for inject in fault.injects {
        args.push("-e".into());
        args.push(format!("inject={inject}"));
    }
    args.push("--".into());
    args
}

fn injected(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("(INJECTED)"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_io_error_on_each_spool_syscall_loses_nothing_answered_200() {
    let _serial = serial().await;
    if Command::new("strace").arg("-V").output().is_err() {
        panic!("this test needs strace (.ci/run installs it)");
    }
    let dir = work_dir("disk faults");
    let forward_port = free_port();
    let tansu = Tansu::start(&dir, forward_port);
    let forwarder = Forwarder::start(forward_port, tansu.port).await;
    tansu.create_topic(TOPIC, 3);
    let brokers = format!("127.0.0.1:{forward_port}");
    for (n, fault) in FAULTS.iter().enumerate() {
        let prefix = format!("fault{n}");
        let spool = dir.join(format!("{prefix}-spool"));
        std::fs::create_dir_all(&spool).unwrap();
        let spool_text = spool.to_string_lossy().into_owned();
        let env = [
            ("SPOOL_DIR", spool_text.as_str()),
            ("KAFKA_DELIVERY_TIMEOUT_MS", "1000"),
        ];
        let trace_log = dir.join(format!("{prefix}-strace.log"));
        forwarder.cut();
        precreate(&dir, &env, &brokers, &format!("{prefix}-precreate"));
        let port = free_port();
        let mut bridge = Bridge::start_under(
            &dir,
            &format!("{prefix}-bridge"),
            port,
            &brokers,
            &env,
            &strace(&spool, &trace_log, fault),
        );
        // 1. An outage: every callback goes to the spool while the faults hit.
        let outage = send_padded(
            &dir,
            &format!("{prefix}-a"),
            &bridge.url(),
            &format!("{prefix}a"),
            15,
            200,
        )
        .await;
        // 2. Kafka back: the drain (reads, deletes, giving space back) runs under strace too.
        forwarder.restore().await;
        wait_for_empty_spool(port).await;
        // 3. Cut again: the faults are over, so every callback must be spooled (recovered by
        //    itself, no restart).
        forwarder.cut();
        let after = send_padded(
            &dir,
            &format!("{prefix}-c"),
            &bridge.url(),
            &format!("{prefix}c"),
            8,
            200,
        )
        .await;
        let hits = injected(&trace_log);
        kill_hard(&mut bridge);
        // 4. Started again without faults on the same spool; Kafka back; drained.
        let bridge = Bridge::start(
            &dir,
            &format!("{prefix}-bridge-again"),
            port,
            &brokers,
            &env,
        );
        forwarder.restore().await;
        wait_for_empty_spool(port).await;
        let records = read_topic(&brokers, TOPIC);

        let failed: Vec<&Attempt> = outage.iter().filter(|a| a.status != 200).collect();
        for attempt in &failed {
            assert_eq!(
                (attempt.status, attempt.error.as_deref()),
                (503, Some("spool_failed")),
                "{}: {attempt:?}",
                fault.name
            );
        }
        assert!(
            after.iter().all(|a| a.status == 200 && a.spooled),
            "{}: not recovered once the faults stopped: {after:?}",
            fault.name
        );
        if fault.must_hit {
            assert!(
                hits > 0,
                "{}: strace injected nothing (see {})",
                fault.name,
                trace_log.display()
            );
            assert!(
                !failed.is_empty(),
                "{}: injected {hits} faults but no callback got 503",
                fault.name
            );
        }
        let answered_a = assert_none_missing(
            fault.name,
            &outage.iter().collect::<Vec<_>>(),
            &landed(&records, &format!("{prefix}a")),
        );
        let answered_c = assert_none_missing(
            fault.name,
            &after.iter().collect::<Vec<_>>(),
            &landed(&records, &format!("{prefix}c")),
        );
        let answered_503_landed = failed
            .iter()
            .filter(|a| landed(&records, &format!("{prefix}a")).contains(&a.call_id))
            .count();
        report(&format!(
            "| spool disk fault: {} | 23 sent once each, 15 during the faults | {} injected; {} answered 200, {} answered 503 spool_failed ({answered_503_landed} of those in Kafka anyway) | all {} answered 200 in Kafka after SIGKILL and restart | 0 lost; recovered without a restart |",
            fault.name,
            hits,
            answered_a + answered_c,
            failed.len(),
            answered_a + answered_c,
        ));
        drop(bridge);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_file_that_cannot_be_opened_stops_start_up_with_one_line() {
    let _serial = serial().await;
    let dir = work_dir("spool openat fault");
    let spool = dir.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let trace_log = dir.join("strace.log");
    let port = free_port();
    let mut command = Command::new("strace");
    command
        .args(["-f", "-qq", "-o"])
        .arg(&trace_log)
        .arg("-P")
        .arg(spool.join("spool.db"))
        .args([
            "-e",
            "trace=openat",
            "-e",
            "inject=openat:error=EIO:when=1",
            "--",
        ])
        .arg(bridge_bin())
        .env("ZEGO_CALLBACK_SECRET", SECRET)
        .env("KAFKA_BROKERS", "127.0.0.1:1")
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("SPOOL_DIR", &spool);
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(injected(&trace_log) >= 1);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].contains(&format!("SPOOL_DIR={}", spool.display())),
        "{stderr}"
    );
    report("| spool disk fault: openat EIO on spool.db at start | — | start-up refused (exit 2) with one line naming SPOOL_DIR | — | nothing answered |");
}

/// A small tmpfs mounted for one test, unmounted when dropped.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .expect("mount");
        assert!(
            output.status.success(),
            "this test needs a small tmpfs (root, as .ci/run runs): mount failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The loss reported against the previous release: a spool on a disk smaller than
/// `SPOOL_MAX_BYTES` fills up during an outage, drains, then the bridge restarts while Kafka is
/// cut again and spools more; then Kafka is healthy and more callbacks arrive. Every callback
/// answered 200 in any phase must land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_then_a_restart_during_a_second_outage_loses_nothing() {
    let _serial = serial().await;
    let dir = work_dir("spool disk full");
    let spool = dir.join("spool");
    let _tmpfs = Tmpfs::mount(&spool, "256k");
    let spool_text = spool.to_string_lossy().into_owned();
    let env = [
        ("SPOOL_DIR", spool_text.as_str()),
        ("SPOOL_MAX_BYTES", "300000"),
        ("KAFKA_DELIVERY_TIMEOUT_MS", "1000"),
    ];
    let forward_port = free_port();
    let tansu = Tansu::start(&dir, forward_port);
    let forwarder = Forwarder::start(forward_port, tansu.port).await;
    tansu.create_topic(TOPIC, 3);
    let brokers = format!("127.0.0.1:{forward_port}");
    let port = free_port();
    let mut bridge = Bridge::start(&dir, "bridge", port, &brokers, &env);
    bridge.wait_ready(Duration::from_secs(20)).await;

    // 1. An outage until the disk refuses.
    forwarder.cut();
    let first = send_padded(&dir, "first", &bridge.url(), "full1", 300, 1000).await;
    let refused: Vec<&Attempt> = first.iter().filter(|a| a.status != 200).collect();
    assert!(!refused.is_empty(), "a 256 KiB disk never filled");
    for attempt in &refused {
        assert_eq!(attempt.status, 503, "{attempt:?}");
        assert!(
            matches!(
                attempt.error.as_deref(),
                Some("spool_failed" | "spool_full")
            ),
            "{attempt:?}"
        );
    }
    assert_eq!(
        http_status(port, "/healthz"),
        200,
        "the bridge keeps serving"
    );
    assert_eq!(
        bridge.readyz(),
        503,
        "broker gone and spool refusing: not ready"
    );

    // 2. Kafka back: the spool drains and gives the disk back.
    forwarder.restore().await;
    wait_for_empty_spool(port).await;

    // 3. Kafka cut again and the bridge restarted (SIGKILL) during it; more callbacks.
    forwarder.cut();
    kill_hard(&mut bridge);
    let mut bridge = Bridge::start(&dir, "bridge-restarted", port, &brokers, &env);
    let second = send_padded(&dir, "second", &bridge.url(), "full2", 120, 1000).await;
    let spooled_second = second.iter().filter(|a| a.spooled).count();
    assert!(
        spooled_second > 20,
        "only {spooled_second} spooled after the restart"
    );

    // 4. Kafka back for good; more callbacks while it is healthy.
    forwarder.restore().await;
    wait_for_empty_spool(port).await;
    bridge.wait_ready(Duration::from_secs(30)).await;
    let healthy = send_padded(&dir, "healthy", &bridge.url(), "full3", 30, 1000).await;
    assert!(healthy.iter().all(|a| a.status == 200), "{healthy:?}");
    wait_for_empty_spool(port).await;

    let records = read_topic(&brokers, TOPIC);
    let mut answered = 0;
    for (attempts, prefix) in [(&first, "full1"), (&second, "full2"), (&healthy, "full3")] {
        answered += assert_none_missing(
            prefix,
            &attempts.iter().collect::<Vec<_>>(),
            &landed(&records, prefix),
        );
    }
    assert_eq!(metric(port, "zego_spool_records"), 0.0);
    let spool_bytes = metric(port, "zego_spool_bytes");
    kill_hard(&mut bridge);
    report(&format!(
        "| spool: disk full (256 KiB tmpfs, SPOOL_MAX_BYTES=300000), drained, restarted during a second outage, then healthy | 450 ~1 KB callbacks sent once each | {} answered 200 ({} of the first outage, {spooled_second} spooled after the restart), {} answered 503 | all {answered} in Kafka | 0 lost; spool empty, {spool_bytes} bytes on disk at the end |",
        answered,
        first.len() - refused.len(),
        refused.len(),
    ));
}
