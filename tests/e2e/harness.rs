//! Processes for the end-to-end suite: tansu, a TCP forwarder to cut it off, the real bridge
//! binary, `simulate`, and the independent Python reader.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::task::JoinSet;
use zego_kafka_bridge::callback::catalogue::{EventKind, Family, Product};

pub const SECRET: &str = "e2e-secret";

/// ZEGOCLOUD's retry schedule (2, 4, 8, 16, 32 s) divided by four: 15.5 s of patience. The
/// fault tests use it where the property is "an outage shorter (or longer) than the sender's
/// patience", not the length of ZEGOCLOUD's own.
pub const SCALED_SCHEDULE: &str = "0.5,1,2,4,8";
pub const TOPIC: &str = "zego-callbacks";
pub const FAMILY: [&str; 5] = [
    "call_create",
    "call_cancel",
    "call_accept",
    "call_reject",
    "call_timeout",
];

/// One test at a time: they measure timing and load, and tansu misbehaves when starved of
/// CPU (seen here: under a parallel load, an acked record beyond its high watermark).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` every 50 ms until it gives a value, within `within`; panics naming `what`
/// otherwise. The one way the suite waits for a condition (no sleep stands in for one).
pub async fn eventually<T>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until nothing listens on `port` any more.
pub fn wait_for_port_free(port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "port {port} still in use");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until something accepts connections on `port`.
pub fn wait_for_port(port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A folder for one test's logs: target/e2e/<name>/.
pub fn work_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("e2e")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn tansu_bin() -> PathBuf {
    if let Ok(path) = std::env::var("TANSU") {
        return path.into();
    }
    let home = PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo/bin/tansu");
    if home.exists() {
        return home;
    }
    panic!("tansu not found: set TANSU or run `cargo install tansu --version 0.6.0 --locked --features dynostore,libsql`");
}

/// The binary under test: `BRIDGE_BIN` (CI points it at the release build) or this build's.
pub fn bridge_bin() -> PathBuf {
    std::env::var("BRIDGE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_zego-kafka-bridge").into())
}

/// A child process killed when dropped.
pub struct Process {
    pub child: Child,
    pub log: PathBuf,
}

impl Process {
    pub fn spawn(command: &mut Command, log: PathBuf) -> Process {
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = command
            .stdout(out)
            .stderr(err)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn");
        Process { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Thaws a frozen process so it can die; says nothing if it is gone already.
        let _ = Command::new("kill")
            .args(["-CONT", &self.pid().to_string()])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tansu with memory storage; clients reach it through `advertised_port`.
pub struct Tansu {
    pub process: Process,
    pub port: u16,
}

impl Tansu {
    pub fn start(dir: &Path, advertised_port: u16) -> Tansu {
        Tansu::start_with(
            dir,
            "tansu",
            free_port(),
            advertised_port,
            "memory://tansu/",
            &[],
        )
    }

    /// tansu listening on `port` with `storage` (relative paths are under `dir`) and `extra`
    /// broker arguments.
    pub fn start_with(
        dir: &Path,
        name: &str,
        port: u16,
        advertised_port: u16,
        storage: &str,
        extra: &[&str],
    ) -> Tansu {
        let process = Process::spawn(
            Command::new(tansu_bin())
                .args([
                    "broker",
                    "--listener-url",
                    &format!("tcp://127.0.0.1:{port}"),
                    "--advertised-listener-url",
                    &format!("tcp://127.0.0.1:{advertised_port}"),
                    "--storage-engine",
                    storage,
                ])
                .args(extra)
                // A relative sqlite:// path lives in the test's own directory.
                .current_dir(dir),
            dir.join(format!("{name}.log")),
        );
        wait_for_port(port, Duration::from_secs(20));
        Tansu { process, port }
    }

    /// Kills this broker and starts an empty one on its port, with `TOPIC` created: a cluster
    /// rebuilt or restored behind the same address. `between` runs once the old one is gone.
    pub fn replace_with_empty(
        self,
        dir: &Path,
        name: &str,
        advertised_port: u16,
        between: impl FnOnce(),
    ) -> Tansu {
        let port = self.port;
        drop(self);
        wait_for_port_free(port, Duration::from_secs(10));
        between();
        let fresh = Tansu::start_with(dir, name, port, advertised_port, "memory://tansu/", &[]);
        fresh.create_topic(TOPIC, 3);
        fresh
    }

    /// A SCRAM user (tansu's own CLI; it needs a broker without `--authentication`).
    pub fn create_user(&self, name: &str, password: &str) {
        let status = Command::new(tansu_bin())
            .args(["user", "create", "--mechanism", "scram512", "--broker"])
            .arg(format!("tcp://127.0.0.1:{}", self.port))
            .args([name, password])
            .status()
            .unwrap();
        assert!(status.success(), "tansu user create");
    }

    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let status = Command::new(tansu_bin())
            .args([
                "topic",
                "create",
                "--broker",
                &format!("tcp://127.0.0.1:{}", self.port),
            ])
            .args(["--partitions", &partitions.to_string(), topic])
            .status()
            .unwrap();
        assert!(status.success(), "tansu topic create");
    }
}

/// A TCP forwarder between the bridge and tansu: `cut` drops every connection and stops
/// listening (the broker keeps running and keeps its data); `restore` listens again.
pub struct Forwarder {
    pub port: u16,
    target: u16,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Forwarder {
    pub async fn start(port: u16, target: u16) -> Forwarder {
        let forwarder = Forwarder {
            port,
            target,
            tasks: Arc::new(Mutex::new(JoinSet::new())),
        };
        forwarder.restore().await;
        forwarder
    }

    pub async fn restore(&self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("forwarder port");
        let (target, tasks) = (self.target, self.tasks.clone());
        self.tasks.lock().unwrap().spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                tasks.lock().unwrap().spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
    }

    /// Aborting the tasks drops every socket: all connections close at once.
    pub fn cut(&self) {
        self.tasks.lock().unwrap().abort_all();
    }
}

/// Terminates TLS in front of tansu (whose own `--cert` cannot be combined with `--key` in
/// 0.6): the bridge speaks Kafka over TLS to it, verified against the test CA, and it forwards
/// the plain protocol to tansu. The server side reuses the bridge's own PEM loader.
pub struct TlsTerminator {
    task: tokio::task::JoinHandle<()>,
}

impl TlsTerminator {
    pub async fn start(port: u16, target: u16, cert: &Path, key: &Path) -> TlsTerminator {
        let files = zego_kafka_bridge::tls::TlsFiles {
            cert: cert.into(),
            key: key.into(),
        };
        let config = zego_kafka_bridge::tls::server_config(&files).expect("test certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("TLS port");
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut inbound) = acceptor.accept(inbound).await else {
                        return;
                    };
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        TlsTerminator { task }
    }
}

impl Drop for TlsTerminator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The real bridge binary, configured through its environment.
pub struct Bridge {
    pub process: Process,
    pub port: u16,
    /// What it was started with, to restart it the same way.
    pub brokers: String,
    pub extra: Vec<(String, String)>,
}

impl Bridge {
    pub fn start(
        dir: &Path,
        name: &str,
        port: u16,
        brokers: &str,
        extra: &[(&str, &str)],
    ) -> Bridge {
        Bridge::start_under(dir, name, port, brokers, extra, &[])
    }

    /// The bridge run by `wrapper` (e.g. `strace … --`), which must run its last argument.
    pub fn start_under(
        dir: &Path,
        name: &str,
        port: u16,
        brokers: &str,
        extra: &[(&str, &str)],
        wrapper: &[String],
    ) -> Bridge {
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(bridge_bin());
                command
            }
            None => Command::new(bridge_bin()),
        };
        command
            .env("ZEGO_CALLBACK_SECRET", SECRET)
            .env("KAFKA_BROKERS", brokers)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info");
        for (k, v) in extra {
            command.env(k, v);
        }
        let process = Process::spawn(&mut command, dir.join(format!("{name}.log")));
        wait_for_port(port, Duration::from_secs(20));
        Bridge {
            process,
            port,
            brokers: brokers.to_string(),
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/zego/callback", self.port)
    }

    /// `GET /readyz` status, or 0 when the bridge does not answer.
    pub fn readyz(&self) -> u16 {
        http_status(self.port, "/readyz")
    }

    pub async fn wait_ready(&self, within: Duration) {
        eventually("the bridge ready", within, || {
            (self.readyz() == 200).then_some(())
        })
        .await;
    }
}

/// Minimal HTTP/1.0 GET: status and body, `None` on any failure.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.get(9..12)?.parse().ok()?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// The status code of a GET, 0 on any failure.
pub fn http_status(port: u16, path: &str) -> u16 {
    http_get(port, path).map_or(0, |(status, _)| status)
}

/// One series' value from the bridge's `/metrics` (`name` or `name{labels}` exactly as
/// rendered); 0 when absent or the bridge does not answer.
pub fn metric(port: u16, series: &str) -> f64 {
    http_get(port, "/metrics")
        .and_then(|(_, text)| {
            text.lines().find_map(|line| {
                let value = line.strip_prefix(series)?.strip_prefix(' ')?;
                value.trim().parse().ok()
            })
        })
        .unwrap_or(0.0)
}

/// Polls `series` until `done` says yes (within `within`), or panics naming it.
pub async fn wait_for_metric(
    port: u16,
    series: &str,
    within: Duration,
    done: impl Fn(f64) -> bool,
) {
    let what = format!("{series} reaching the awaited value");
    eventually(&what, within, || done(metric(port, series)).then_some(())).await;
}

/// Waits until the bridge's metrics count `n` acked callbacks.
pub async fn wait_for_acks(port: u16, n: u64) {
    let what = format!("the bridge acking {n} callbacks");
    eventually(&what, Duration::from_secs(30), || {
        let acked: f64 = http_get(port, "/metrics")
            .map(|(_, text)| {
                text.lines()
                    .filter(|l| {
                        l.starts_with("zego_callbacks_total{")
                            && (l.contains("code=\"ok\"") || l.contains("code=\"spooled\""))
                    })
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum()
            })
            .unwrap_or(0.0);
        (acked >= n as f64).then_some(())
    })
    .await;
}

/// `/readyz` samples: (Unix ms, status).
pub type ReadyzSamples = Arc<Mutex<Vec<(i64, u16)>>>;

/// Samples `/readyz` every 100 ms until the task is aborted.
pub fn sample_readyz(port: u16) -> (ReadyzSamples, tokio::task::JoinHandle<()>) {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sink = samples.clone();
    let task = tokio::spawn(async move {
        loop {
            let status = tokio::task::spawn_blocking(move || http_status(port, "/readyz"))
                .await
                .unwrap_or(0);
            sink.lock().unwrap().push((now_ms(), status));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (samples, task)
}

/// One attempt `simulate --jsonl` reported.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub call_id: String,
    pub event: String,
    /// The `zego-callback-id` the callback's record carries (simulate computes it).
    pub callback_id: String,
    /// The answer's error code, if any, and whether a 200 said `spooled`.
    pub error: Option<String>,
    pub spooled: bool,
    pub status: u16,
    pub sent_ms: i64,
    pub answered_ms: i64,
}

/// Runs `zego-kafka-bridge simulate` with `args` to completion, off the async threads.
async fn run_simulate(args: Vec<String>, stdout: &Path, stderr: &Path) -> bool {
    let mut command = Command::new(bridge_bin());
    command.arg("simulate").args(args);
    let child = command
        .stdout(File::create(stdout).unwrap())
        .stderr(File::create(stderr).unwrap())
        .spawn()
        .expect("simulate");
    tokio::task::spawn_blocking(move || {
        let mut child = child;
        child.wait().map(|s| s.success()).unwrap_or(false)
    })
    .await
    .unwrap()
}

fn simulate_args(url: &str, mode: &str, args: &[&str]) -> Vec<String> {
    ["--url", url, "--secret", SECRET, mode]
        .iter()
        .chain(args)
        .map(|a| a.to_string())
        .collect()
}

/// Runs `simulate` to completion: its exit success and every attempt.
pub async fn simulate(dir: &Path, name: &str, url: &str, args: &[&str]) -> (bool, Vec<Attempt>) {
    let out = dir.join(format!("{name}.jsonl"));
    let ok = run_simulate(
        simulate_args(url, "--jsonl", args),
        &out,
        &dir.join(format!("{name}.log")),
    )
    .await;
    let attempts = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("simulate writes JSON lines");
            Attempt {
                call_id: v["call_id"].as_str().unwrap().into(),
                event: v["event"].as_str().unwrap().into(),
                callback_id: v["callback_id"].as_str().unwrap_or_default().into(),
                error: v["answer"]["error"].as_str().map(String::from),
                spooled: v["answer"]["spooled"] == Value::Bool(true),
                status: v["status"].as_u64().unwrap() as u16,
                sent_ms: v["sent_ms"].as_i64().unwrap(),
                answered_ms: v["answered_ms"].as_i64().unwrap(),
            }
        })
        .collect();
    (ok, attempts)
}

/// `count` `call_accept` callbacks keyed `call_id-0` … (or `call_id` alone when `count` is
/// 1), each sent once, no retry: exactly which got a 200 is known. `extra`: more `simulate`
/// arguments.
pub async fn send_once(
    dir: &Path,
    name: &str,
    url: &str,
    call_id: &str,
    count: usize,
    extra: &[&str],
) -> Vec<Attempt> {
    let count = count.to_string();
    let mut args = vec![
        "--event",
        "call_accept",
        "--count",
        &count,
        "--call-id",
        call_id,
        "--no-retry",
    ];
    args.extend_from_slice(extra);
    simulate(dir, name, url, &args).await.1
}

/// Runs `simulate --quiet` (failures and the summary only, for long loads): exit success and
/// the summary counts (callbacks, answered 200).
pub async fn simulate_quiet(dir: &Path, name: &str, url: &str, args: &[&str]) -> (bool, u64, u64) {
    let log = dir.join(format!("{name}.log"));
    let ok = run_simulate(
        simulate_args(url, "--quiet", args),
        &dir.join(format!("{name}.out")),
        &log,
    )
    .await;
    // "simulate: N callbacks, M answered 200, K given up, in S s"
    let summary = std::fs::read_to_string(&log).unwrap();
    let line = summary
        .lines()
        .find(|l| l.starts_with("simulate:"))
        .expect("summary line");
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    (ok, numbers[0], numbers[1])
}

/// A process's resident memory now, in KiB (0 once it is gone).
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Samples a process's RSS every 250 ms until aborted; the peak in KiB.
pub fn sample_rss(pid: u32) -> (Arc<Mutex<u64>>, tokio::task::JoinHandle<()>) {
    sample_peak(Duration::from_millis(250), move || rss_kb(pid))
}

/// Calls `measure` every `every` until aborted; the highest value seen.
pub fn sample_peak(
    every: Duration,
    measure: impl Fn() -> u64 + Send + 'static,
) -> (Arc<Mutex<u64>>, tokio::task::JoinHandle<()>) {
    let peak = Arc::new(Mutex::new(0));
    let sink = peak.clone();
    let task = tokio::spawn(async move {
        loop {
            let value = measure();
            {
                let mut peak = sink.lock().unwrap();
                *peak = (*peak).max(value);
            }
            tokio::time::sleep(every).await;
        }
    });
    (peak, task)
}

/// A record as the independent reader saw it.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i64,
    pub offset: i64,
    pub key: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub value: Value,
}

/// Every record of `topic`, read by Python confluent-kafka (tests/e2e/read_topic.py).
pub fn read_topic(bootstrap: &str, topic: &str) -> Vec<Record> {
    read_topic_tls(bootstrap, topic, None)
}

/// The same, over TLS verified against `ca` when given.
pub fn read_topic_tls(bootstrap: &str, topic: &str, ca: Option<&Path>) -> Vec<Record> {
    let mut command = reader(bootstrap, topic);
    if let Some(ca) = ca {
        command.env("READ_TOPIC_SSL_CA", ca);
    }
    read_with(command)
}

/// The same, over SASL (SCRAM-SHA-512).
pub fn read_topic_sasl(
    bootstrap: &str,
    topic: &str,
    username: &str,
    password: &str,
) -> Vec<Record> {
    let mut command = reader(bootstrap, topic);
    command
        .env("READ_TOPIC_SASL_USERNAME", username)
        .env("READ_TOPIC_SASL_PASSWORD", password);
    read_with(command)
}

fn reader(bootstrap: &str, topic: &str) -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/read_topic.py");
    let mut command = Command::new("python3");
    command.arg(script).args([bootstrap, topic]);
    command
}

fn read_with(mut command: Command) -> Vec<Record> {
    let output = command.output().expect("python3");
    assert!(
        output.status.success(),
        "reader failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            Record {
                partition: v["partition"].as_i64().unwrap(),
                offset: v["offset"].as_i64().unwrap(),
                key: v["key"].as_str().map(String::from),
                headers: serde_json::from_value(v["headers"].clone()).unwrap(),
                value: serde_json::from_str(v["value"].as_str().unwrap()).expect("value is JSON"),
            }
        })
        .collect()
}

pub use zego_kafka_bridge::testing::expected_callback_id;

/// Checks one record's key, headers and value against each other and the contract: the key is
/// the event's natural key, the headers repeat the envelope, the value validates against
/// `schemas/<family>/<event>.schema.json`.
pub fn assert_well_formed(record: &Record) {
    let v = &record.value;
    let header = |name: &str| record.headers.get(name).map(String::as_str);
    let family = header("zego-family").and_then(Family::from_name);
    let kind = family.map(|family| {
        family
            .events()
            .find(|k| k.spec().any_name || Some(k.name()) == header("zego-event"))
            .unwrap_or_else(|| panic!("{family:?} has no event {:?}", header("zego-event")))
    });
    let product = family.map_or(Product::Zim, |f| f.product());
    let names = product.envelope();
    let text = |value: &Value| {
        value
            .as_str()
            .map_or_else(|| value.to_string(), String::from)
    };
    let expected_key = match kind {
        Some(kind) => Some(kind.key(v.as_object().unwrap()).expect("a key")),
        None => v["call_id"].as_str().map(String::from),
    };
    assert_eq!(record.key, expected_key, "key is the event's natural key");
    let event = names
        .event
        .map_or_else(|| "recording_status".to_string(), |field| text(&v[field]));
    assert_eq!(header("zego-event"), Some(event.as_str()));
    assert_eq!(header("zego-appid"), Some(text(&v[names.appid]).as_str()));
    assert_eq!(header("content-type"), Some("application/json"));
    assert!(header("received-at")
        .and_then(|t| t.parse::<i64>().ok())
        .is_some());
    assert_eq!(
        record.headers.get("zego-callback-id"),
        Some(&expected_callback_id(v))
    );
    if let Some(kind) = kind {
        let errors: Vec<String> = schema(kind).iter_errors(v).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "{event} record {v} breaks {}: {errors:?}",
            kind.schema_path()
        );
    }
}

/// The published schema of `kind` (from `schemas/`), loaded once.
fn schema(kind: EventKind) -> &'static jsonschema::Validator {
    static SCHEMAS: OnceLock<Mutex<BTreeMap<String, &'static jsonschema::Validator>>> =
        OnceLock::new();
    let mut schemas = SCHEMAS.get_or_init(Default::default).lock().unwrap();
    schemas.entry(kind.schema_path()).or_insert_with(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(kind.schema_path());
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Box::leak(Box::new(
            jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).expect("valid schema"),
        ))
    })
}

/// Where each callback, by (call_id, event), got its 200s.
pub fn acked(attempts: &[Attempt]) -> BTreeMap<(String, String), usize> {
    let mut acked = BTreeMap::new();
    for a in attempts.iter().filter(|a| a.status == 200) {
        *acked
            .entry((a.call_id.clone(), a.event.clone()))
            .or_insert(0) += 1;
    }
    acked
}

/// Appends a line to target/e2e/report.md, the figures docs/reliability.md quotes.
pub fn report(line: &str) {
    println!("REPORT {line}");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-report.md");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let _ = writeln!(file, "{line}");
}

/// What a `tail --format json` run printed, said and exited with.
pub struct Tailed {
    pub records: Vec<serde_json::Value>,
    pub stderr: String,
    pub code: Option<i32>,
}

/// Runs `tail --format json` against `brokers` with exactly `env` (plus PATH) and `args`,
/// until it exits (give it `--limit` or `--idle-exit-secs`).
pub fn tail(brokers: &str, env: &[(&str, &str)], args: &[&str]) -> Tailed {
    let output = Command::new(bridge_bin())
        .args(["tail", "--format", "json", "--brokers", brokers])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .expect("tail runs");
    Tailed {
        records: String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("one JSON object a line"))
            .collect(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        code: output.status.code(),
    }
}
