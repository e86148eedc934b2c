//! The binary as an operator runs it: start-up failures say which variable is wrong in one line
//! whatever the log filter, and `healthcheck` works against a bridge serving HTTPS.

#[path = "support/certs.rs"]
mod certs;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_zego-kafka-bridge");

/// The bridge with exactly `vars` as its environment (plus PATH).
fn bridge(args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command.envs(vars.iter().copied());
    command
}

fn run(args: &[&str], vars: &[(&str, &str)]) -> Output {
    bridge(args, vars).output().expect("the binary runs")
}

/// Exit code 2 and exactly one line on stderr, which names `variable`.
fn assert_refused_naming(vars: &[(&str, &str)], variable: &str) {
    let output = run(&[], vars);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{vars:?}: {stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "{vars:?}: one line expected, got: {stderr}"
    );
    assert!(stderr.contains(variable), "{vars:?}: {stderr}");
}

const VALID: [(&str, &str); 3] = [
    ("KAFKA_BROKERS", "127.0.0.1:1"),
    ("ZEGO_CALLBACK_SECRET", "s3cret"),
    ("BIND_ADDR", "127.0.0.1:0"),
];

fn valid_with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut vars: Vec<_> = VALID
        .iter()
        .copied()
        .filter(|(name, _)| !extra.iter().any(|(e, _)| e == name))
        .collect();
    vars.extend_from_slice(extra);
    vars
}

#[test]
fn every_bad_setting_is_one_line_naming_its_variable_whatever_the_log_filter() {
    for filter in ["info", "off"] {
        let log = ("RUST_LOG", filter);
        assert_refused_naming(&[log, ("KAFKA_BROKERS", "k:9092")], "ZEGO_CALLBACK_SECRET");
        assert_refused_naming(
            &valid_with(&[log, ("KAFKA_DELIVERY_TIMEOUT_MS", "99999999999999")]),
            "KAFKA_DELIVERY_TIMEOUT_MS",
        );
        assert_refused_naming(
            &valid_with(&[log, ("KAFKA_OPT_LINGER_MS", "soon")]),
            "KAFKA_OPT_LINGER_MS",
        );
        assert_refused_naming(
            &valid_with(&[log, ("MAX_IN_FLIGHT", "lots")]),
            "MAX_IN_FLIGHT",
        );
    }
    assert_refused_naming(&valid_with(&[("RUST_LOG", "@@@")]), "RUST_LOG");
    // An invalid filter together with a bad variable: still one line, and not silence.
    assert_refused_naming(
        &[("RUST_LOG", "@@@"), ("KAFKA_BROKERS", "k:9092")],
        "RUST_LOG",
    );
}

#[test]
fn a_variable_that_is_not_utf8_is_skipped_or_named_never_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let not_utf8 = std::ffi::OsStr::from_bytes(b"caf\xe9");
    // Not the bridge's: skipped, and start-up goes on to the real problem (no secret).
    let mut command = bridge(
        &[],
        &[
            ("KAFKA_BROKERS", "127.0.0.1:1"),
            ("BIND_ADDR", "127.0.0.1:0"),
        ],
    );
    command.env("SOME_OTHER_TOOLS_SETTING", not_utf8);
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("ZEGO_CALLBACK_SECRET is required"),
        "{stderr}"
    );
    // The bridge's own: named.
    let mut command = bridge(&[], &VALID);
    command.env("ZEGO_APP_IDS", not_utf8);
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("ZEGO_APP_IDS is not valid UTF-8"),
        "{stderr}"
    );
}

#[test]
fn a_sensitive_kafka_option_is_never_echoed() {
    // librdkafka refuses the value of an unknown mechanism; the password beside it stays hidden.
    let output = run(
        &[],
        &valid_with(&[
            ("KAFKA_OPT_SASL_MECHANISM", "NOT-A-MECHANISM"),
            ("KAFKA_OPT_SECURITY_PROTOCOL", "SASL_SSL"),
            ("KAFKA_OPT_SASL_PASSWORD", "hunter2-secret"),
        ]),
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!all.contains("hunter2-secret"), "{all}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the bridge when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn work_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn healthcheck_speaks_https_to_a_bridge_serving_it() {
    let dir = work_dir("cli-healthcheck-https");
    certs::make_certificates(&dir);
    let cert = dir.join("server.pem").display().to_string();
    let key = dir.join("server.key").display().to_string();
    let addr = format!("127.0.0.1:{}", free_port());
    let serving = [
        ("ZEGO_CALLBACK_SECRET", "s3cret"),
        ("BIND_ADDR", addr.as_str()),
        ("TLS_CERT_FILE", cert.as_str()),
        ("TLS_KEY_FILE", key.as_str()),
        ("RUST_LOG", "warn"),
    ];
    let _bridge = Running(
        bridge(&["--embedded-kafka"], &serving)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let probe = [
        ("BIND_ADDR", addr.as_str()),
        ("TLS_CERT_FILE", cert.as_str()),
    ];
    wait_healthy_with(&probe);
    // Plain HTTP against the HTTPS port fails, as it should.
    let plain = run(&["healthcheck"], &[("BIND_ADDR", addr.as_str())]);
    assert_eq!(plain.status.code(), Some(1));
}

/// Waits until `healthcheck` passes against `addr` (the bridge is up and serving).
fn wait_healthy(addr: &str) {
    wait_healthy_with(&[("BIND_ADDR", addr)]);
}

/// Waits until `healthcheck` with `probe` as its environment passes (`TLS_CERT_FILE` too for a
/// bridge serving HTTPS).
fn wait_healthy_with(probe: &[(&str, &str)]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let output = run(&["healthcheck"], probe);
        if output.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the bridge never became healthy: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A bridge serving with its embedded Kafka on a free port; its broker address read from its
/// log (the `tail --brokers` hint).
struct EmbeddedBridge {
    _process: Running,
    addr: String,
    brokers: String,
}

fn embedded_bridge(name: &str, extra: &[(&str, &str)]) -> EmbeddedBridge {
    let dir = work_dir(name);
    let log = dir.join("bridge.log");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut vars = vec![
        ("ZEGO_CALLBACK_SECRET", "s3cret"),
        ("BIND_ADDR", addr.as_str()),
    ];
    vars.extend_from_slice(extra);
    let process = Running(
        bridge(&["--embedded-kafka"], &vars)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let brokers = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let hint = text.lines().find_map(|l| l.split("mock Kafka at ").nth(1));
        if let Some(rest) = hint {
            break rest.split(';').next().unwrap().trim().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no broker hint in the log: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let bridge = EmbeddedBridge {
        _process: process,
        addr,
        brokers,
    };
    wait_healthy(&bridge.addr);
    bridge
}

impl EmbeddedBridge {
    fn simulate(&self, args: &[&str]) -> Output {
        let mut all = vec!["simulate", "--schedule", "0.2,0.2"];
        all.extend_from_slice(args);
        run(
            &all,
            &[
                ("BIND_ADDR", self.addr.as_str()),
                ("ZEGO_CALLBACK_SECRET", "s3cret"),
            ],
        )
    }

    fn tail(&self, args: &[&str]) -> Output {
        let mut all = vec![
            "tail",
            "--brokers",
            self.brokers.as_str(),
            "--broker-timeout-secs",
            "30",
        ];
        all.extend_from_slice(args);
        run(&all, &[])
    }
}

/// Runs `command | head -n lines` in bash with pipefail: the exit status is the tool's.
fn piped_into_head(command: &str, lines: usize) -> Output {
    Command::new("bash")
        .args([
            "-o",
            "pipefail",
            "-c",
            &format!("{command} | head -n {lines}"),
        ])
        .output()
        .unwrap()
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn tools_piped_into_head_exit_quietly() {
    let bridge = embedded_bridge("cli-pipes", &[("RUST_LOG", "warn")]);
    assert!(bridge
        .simulate(&["--count", "300", "--concurrency", "8", "--quiet"])
        .status
        .success());
    let tail = format!("{BIN} tail --brokers {} --exit-at-end", bridge.brokers);
    let (stdout, stderr) = text(&piped_into_head(&tail, 3));
    assert_eq!(stdout.lines().count(), 3);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let simulate = format!(
        "BIND_ADDR={} ZEGO_CALLBACK_SECRET=s3cret {BIN} simulate --count 300 --event family",
        bridge.addr
    );
    let output = piped_into_head(&simulate, 2);
    let (stdout, stderr) = text(&output);
    assert_eq!(stdout.lines().count(), 2);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        output.status.code(),
        Some(1),
        "stopped early, so not everything was sent: {stderr}"
    );
}

#[test]
fn tail_reads_at_once_filters_and_speaks_json() {
    let bridge = embedded_bridge("cli-tail", &[("RUST_LOG", "warn")]);
    assert!(bridge
        .simulate(&["--event", "family", "--count", "3", "--call-id", "c"])
        .status
        .success());
    // Reading starts at assignment: an idle limit shorter than a group join still prints.
    let (stdout, stderr) = text(&bridge.tail(&["--idle-exit-secs", "3", "--format", "json"]));
    let records: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(records.len(), 15, "{stderr}");
    assert!(records
        .iter()
        .all(|r| r["value"].is_object() && r["headers"]["zego-callback-id"].is_string()));
    let (stdout, _) = text(&bridge.tail(&[
        "--exit-at-end",
        "--event",
        "call_accept",
        "--format",
        "json",
    ]));
    assert_eq!(stdout.lines().count(), 3);
    let (stdout, _) = text(&bridge.tail(&["--exit-at-end", "--call-id", "c-1"]));
    assert_eq!(stdout.lines().filter(|l| l.contains(" key=c-1")).count(), 5);
    assert!(stdout.lines().all(|l| !l.contains(" key=c-0")));
    // Nothing there: said so.
    let (_, stderr) = text(&bridge.tail(&["--exit-at-end", "--call-id", "nobody"]));
    assert!(stderr.contains("nothing read"), "{stderr}");
}

#[test]
fn tail_without_a_broker_gives_up_with_few_lines() {
    let started = Instant::now();
    let output = run(
        &[
            "tail",
            "--brokers",
            "127.0.0.1:1",
            "--broker-timeout-secs",
            "3",
            "--idle-exit-secs",
            "3",
        ],
        &[],
    );
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no broker at 127.0.0.1:1"), "{stderr}");
    assert!(
        stderr.lines().count() < 10,
        "{} lines: {stderr}",
        stderr.lines().count()
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn simulate_explains_refusals_instead_of_retrying_them() {
    let nothing = format!("127.0.0.1:{}", free_port());
    let output = run(
        &["simulate", "--schedule", "0.1"],
        &[
            ("BIND_ADDR", nothing.as_str()),
            ("ZEGO_CALLBACK_SECRET", "s"),
        ],
    );
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout.contains(&format!(
            "connection refused: is the bridge listening on {nothing}?"
        )),
        "{stdout}"
    );
    assert!(
        stderr.contains("simulate: 1 callbacks, 0 answered 200"),
        "{stderr}"
    );
    // No answer: no status 0 before the reason, and no rate or latency of nothing.
    assert!(
        stdout.contains("attempt 1: connection refused") && !stdout.contains(": 0 "),
        "{stdout}"
    );
    assert!(stderr.contains("nothing was answered"), "{stderr}");
    assert!(
        !stderr.contains("callbacks/s") && !stderr.contains("p50"),
        "{stderr}"
    );

    let bridge = embedded_bridge("cli-refusals", &[("RUST_LOG", "warn")]);
    let wrong = run(
        &["simulate", "--jsonl"],
        &[
            ("BIND_ADDR", bridge.addr.as_str()),
            ("ZEGO_CALLBACK_SECRET", "not-it"),
        ],
    );
    let (stdout, stderr) = text(&wrong);
    assert_eq!(wrong.status.code(), Some(1));
    assert_eq!(stdout.lines().count(), 1, "a 401 is not retried: {stdout}");
    let attempt: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        attempt["answer"]["error"], "invalid_signature",
        "the answer is embedded as JSON"
    );
    assert!(
        stderr.contains("--secret must match the bridge's ZEGO_CALLBACK_SECRET"),
        "{stderr}"
    );
    // Empty secrets are refused before anything is sent.
    let empty = run(&["simulate", "--secret", " "], &[]);
    assert_eq!(empty.status.code(), Some(2));
}

#[test]
fn simulate_sets_fields_and_the_summary_counts_duplicates() {
    let bridge = embedded_bridge("cli-set", &[("RUST_LOG", "warn")]);
    let dir = work_dir("cli-set-data");
    let data = dir.join("data.json");
    std::fs::write(&data, r#"{"extend_data": "from a file", "room": 7}"#).unwrap();
    let at_data = format!("@{}", data.display());
    let output = bridge.simulate(&[
        "--set",
        "user_id=bob",
        "--data",
        &at_data,
        "--call-id",
        "set-1",
    ]);
    assert!(output.status.success(), "{:?}", text(&output));
    let again = bridge.simulate(&[
        "--set",
        "user_id=bob",
        "--data",
        &at_data,
        "--call-id",
        "set-1",
    ]);
    let (_, stderr) = text(&again);
    assert!(stderr.contains("1 answered 200 (1 duplicates)"), "{stderr}");
    assert!(stderr.contains("latency p50"), "{stderr}");
    let (stdout, _) =
        text(&bridge.tail(&["--exit-at-end", "--format", "json", "--call-id", "set-1"]));
    let record: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(record["value"]["user_id"], "bob");
    assert_eq!(record["value"]["extend_data"], "from a file");
    assert_eq!(record["value"]["room"], 7);
}

#[test]
fn sign_and_verify_agree_and_name_the_secret() {
    let output = run(
        &[
            "sign",
            "--secret",
            "new",
            "--timestamp",
            "1499676978",
            "--nonce",
            "350176",
        ],
        &[],
    );
    let signature = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert_eq!(signature.len(), 40);
    let body = format!(
        r#"{{"appid":"1","event":"call_accept","nonce":"350176","timestamp":1499676978,"signature":"{signature}","call_id":"c","user_id":"u"}}"#
    );
    let valid = run(&["verify", "--secret", "old,new", "--data", &body], &[]);
    let (stdout, _) = text(&valid);
    assert_eq!(valid.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("signed with secret 2 of 2"), "{stdout}");
    let tampered = body.replace("350176", "350177");
    let invalid = run(&["verify", "--secret", "old,new", "--data", &tampered], &[]);
    assert_eq!(invalid.status.code(), Some(1));
    assert!(text(&invalid).0.contains("invalid_signature"));
}

#[test]
fn completions_and_a_consistent_command_line() {
    let bash = run(&["completions", "bash"], &[]);
    assert!(bash.status.success());
    let script = text(&bash).0;
    assert!(
        script.contains("complete -F") && script.contains("zego-kafka-bridge"),
        "{script}"
    );
    // Into a pipe whose reader is already gone (it exits before the script is written).
    let closed = Command::new("bash")
        .args([
            "-o",
            "pipefail",
            "-c",
            &format!("{{ sleep 1; {BIN} completions zsh; }} | true"),
        ])
        .output()
        .unwrap();
    let (_, stderr) = text(&closed);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(closed.status.code(), Some(0), "{stderr}");
    // --embedded-kafka belongs to serving only.
    let tail = run(&["tail", "--embedded-kafka", "--brokers", "x"], &[]);
    assert_eq!(tail.status.code(), Some(2));
    // Every option says what it is for.
    for sub in ["serve", "simulate", "tail", "healthcheck", "sign", "verify"] {
        let help = text(&run(&[sub, "--help"], &[])).0;
        let undescribed: Vec<&str> = help
            .lines()
            .filter(|l| {
                l.trim_start().starts_with("--") && !l.contains("  ") && !l.contains("--help")
            })
            .collect();
        assert!(
            undescribed.is_empty(),
            "{sub}: options without a description: {undescribed:?}"
        );
    }
}

#[test]
fn json_logs_are_one_object_a_line() {
    let dir = work_dir("cli-json-logs");
    let log = dir.join("bridge.log");
    let addr = format!("127.0.0.1:{}", free_port());
    let _bridge = Running(
        bridge(
            &["--embedded-kafka"],
            &[
                ("ZEGO_CALLBACK_SECRET", "s"),
                ("BIND_ADDR", addr.as_str()),
                ("LOG_FORMAT", "json"),
            ],
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap(),
    );
    wait_healthy(&addr);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().count() >= 2, "{text}");
    for line in text.lines() {
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            entry["level"].is_string() && entry["message"].is_string(),
            "{line}"
        );
    }
    assert_refused_naming(&valid_with(&[("LOG_FORMAT", "xml")]), "LOG_FORMAT");
}

/// What librdkafka says in its own words: `tail` must never show it.
const RAW_LIBRDKAFKA: &[&str] = &[
    "librdkafka",
    "Global error",
    "PartitionEOF",
    "BrokerTransportFailure",
    "rdkafka",
];

/// Waits until `path` (a tool's stderr) contains `text`; returns the whole text.
fn wait_for_text(path: &Path, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = std::fs::read_to_string(path).unwrap_or_default();
        if now.contains(text) {
            return now;
        }
        assert!(Instant::now() < deadline, "never said {text:?}: {now}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A bridge on fixed ports, its embedded Kafka at `kafka_port`, started again as often as a
/// test likes: a restart is a new cluster behind the same address.
struct FixedPorts {
    addr: String,
    kafka_port: String,
}

impl FixedPorts {
    fn new() -> Self {
        FixedPorts {
            addr: format!("127.0.0.1:{}", free_port()),
            kafka_port: free_port().to_string(),
        }
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port)
    }

    fn serve(&self, log: &str) -> Running {
        let dir = work_dir(log);
        let process = Running(
            bridge(
                &[
                    "--embedded-kafka",
                    "--embedded-kafka-port",
                    &self.kafka_port,
                ],
                &[
                    ("ZEGO_CALLBACK_SECRET", "s3cret"),
                    ("BIND_ADDR", self.addr.as_str()),
                    ("RUST_LOG", "warn"),
                ],
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("bridge.log")).unwrap())
            .spawn()
            .unwrap(),
        );
        wait_healthy(&self.addr);
        process
    }

    fn send(&self, call_id: &str) {
        let output = run(
            &["simulate", "--call-id", call_id, "--quiet"],
            &[
                ("BIND_ADDR", self.addr.as_str()),
                ("ZEGO_CALLBACK_SECRET", "s3cret"),
            ],
        );
        assert!(output.status.success(), "{:?}", text(&output));
    }

    /// `tail --format json` following the topic, its stderr in `dir/tail.err`.
    fn tail(&self, dir: &Path, extra: &[&str]) -> Running {
        let mut args = vec!["tail", "--format", "json"];
        args.extend_from_slice(extra);
        let brokers = self.brokers();
        Running(
            bridge(&args, &[("KAFKA_BROKERS", brokers.as_str())])
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(dir.join("tail.err")).unwrap())
                .spawn()
                .unwrap(),
        )
    }
}

/// The keys of the next `count` records a tail prints.
fn keys_read(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    count: usize,
) -> Vec<String> {
    (0..count)
        .map(|_| {
            let line = lines.next().expect("the tail printed on").unwrap();
            let record: serde_json::Value = serde_json::from_str(&line).unwrap();
            record["key"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn a_tail_follows_a_restarted_cluster_from_its_start_saying_the_outage_once() {
    use std::io::{BufRead, BufReader};
    let ports = FixedPorts::new();
    let dir = work_dir("cli-tail-follow");
    let first = ports.serve("cli-fixed-port-1");
    let before: Vec<String> = (0..3).map(|n| format!("before-restart-{n}")).collect();
    before.iter().for_each(|call| ports.send(call));
    let mut tail = ports.tail(&dir, &["--limit", "13"]);
    let mut lines = BufReader::new(tail.0.stdout.take().unwrap()).lines();
    let mut seen = keys_read(&mut lines, 3);
    drop(first);
    wait_for_text(&dir.join("tail.err"), "lost the brokers");
    let _second = ports.serve("cli-fixed-port-2");
    // The new cluster's offsets start again at 0 in every partition: records at offsets the
    // tail had read past on the old one must show too.
    let after: Vec<String> = (0..10).map(|n| format!("after-restart-{n}")).collect();
    after.iter().for_each(|call| ports.send(call));
    seen.extend(keys_read(&mut lines, 10));
    let status = tail.0.wait().unwrap();
    assert!(status.success());
    let mut expected: Vec<String> = before.into_iter().chain(after).collect();
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected, "every record of both clusters, each once");
    let stderr = std::fs::read_to_string(dir.join("tail.err")).unwrap();
    assert_eq!(stderr.matches("lost the brokers").count(), 1, "{stderr}");
    assert!(stderr.contains("answers again"), "{stderr}");
    for raw in RAW_LIBRDKAFKA {
        assert!(!stderr.contains(raw), "{raw} in {stderr}");
    }
}

#[test]
fn a_tail_started_before_its_broker_says_so_and_reads_once_it_is_there() {
    use std::io::{BufRead, BufReader};
    let ports = FixedPorts::new();
    let dir = work_dir("cli-tail-early");
    let mut tail = ports.tail(&dir, &["--limit", "1", "--broker-timeout-secs", "120"]);
    let waiting = wait_for_text(&dir.join("tail.err"), "waiting for a broker");
    assert!(waiting.contains(&ports.brokers()), "{waiting}");
    assert!(
        waiting.contains("Connection refused"),
        "says why: {waiting}"
    );
    let _bridge = ports.serve("cli-tail-early-bridge");
    ports.send("late-broker");
    let mut lines = BufReader::new(tail.0.stdout.take().unwrap()).lines();
    assert_eq!(keys_read(&mut lines, 1), ["late-broker"]);
    assert!(tail.0.wait().unwrap().success());
    let stderr = std::fs::read_to_string(dir.join("tail.err")).unwrap();
    assert_eq!(
        stderr.matches("waiting for a broker").count(),
        1,
        "once: {stderr}"
    );
    for raw in RAW_LIBRDKAFKA {
        assert!(!stderr.contains(raw), "{raw} in {stderr}");
    }
}

#[test]
fn tail_from_time_shows_only_what_was_written_since() {
    let bridge = embedded_bridge("cli-tail-from-time", &[("RUST_LOG", "warn")]);
    let unix_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    assert!(bridge
        .simulate(&["--call-id", "old", "--quiet"])
        .status
        .success());
    // A time after the old record's timestamp and before the new one's: the clock has
    // passed it before the new callback is sent.
    let since = unix_ms() + 1;
    while unix_ms() <= since {
        std::thread::yield_now();
    }
    assert!(bridge
        .simulate(&["--call-id", "new", "--quiet"])
        .status
        .success());
    let since = since.to_string();
    for from_time in [since.as_str(), "10m ago"] {
        let (stdout, stderr) = text(&bridge.tail(&["--exit-at-end", "--from-time", from_time]));
        let keys: Vec<&str> = stdout
            .lines()
            .filter_map(|l| l.split(" key=").nth(1))
            .collect();
        let expected: &[&str] = if from_time == "10m ago" {
            &["new", "old"]
        } else {
            &["new"]
        };
        let mut keys = keys;
        keys.sort();
        assert_eq!(keys, expected, "--from-time {from_time}: {stderr}");
    }
    let (_, stderr) = text(&bridge.tail(&["--from-time", "yesterday-ish"]));
    assert!(stderr.contains("--from-time \"yesterday-ish\""), "{stderr}");
}

#[test]
fn ctrl_c_prints_the_summary_so_far() {
    use std::io::Read;
    // Nothing listens: the first attempt is refused, then simulate waits 60 s to retry.
    let nothing = format!("127.0.0.1:{}", free_port());
    let mut simulate = Running(
        bridge(
            &["simulate", "--schedule", "60"],
            &[
                ("BIND_ADDR", nothing.as_str()),
                ("ZEGO_CALLBACK_SECRET", "s"),
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    let mut stdout = simulate.0.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap(); // the first attempt's line has begun
    let interrupted = Command::new("kill")
        .args(["-INT", &simulate.0.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let status = simulate.0.wait().unwrap();
    let mut stderr = String::new();
    simulate
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains("simulate: interrupted"), "{stderr}");
    assert!(stderr.contains("1 attempts"), "{stderr}");
    assert_eq!(status.code(), Some(1));
}

#[test]
fn tail_reads_one_partition_from_an_offset_and_simulate_sends_any_event() {
    let bridge = embedded_bridge("cli-partition", &[("RUST_LOG", "warn")]);
    assert!(bridge
        .simulate(&["--count", "30", "--concurrency", "4", "--quiet"])
        .status
        .success());
    let records = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut all = vec!["--exit-at-end", "--format", "json"];
        all.extend_from_slice(args);
        text(&bridge.tail(&all))
            .0
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let everything = records(&[]);
    assert_eq!(everything.len(), 30);
    let first = records(&["--partition", "0"]);
    assert!(!first.is_empty() && first.iter().all(|r| r["partition"] == 0));
    let later = records(&["--partition", "0", "--offset", "1"]);
    assert_eq!(later.len(), first.len() - 1);
    assert!(later.iter().all(|r| r["offset"].as_i64().unwrap() >= 1));
    // Any event name is sent, signed; this bridge refuses unknown events, and that answer is
    // one no retry can fix.
    let output = bridge.simulate(&["--event", "room_notice", "--jsonl"]);
    let (stdout, _) = text(&output);
    let attempt: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(attempt["status"], 422);
    assert_eq!(attempt["answer"]["error"], "unsupported_event");
}

#[test]
fn simulate_sends_whole_families_to_their_products_paths() {
    let bridge = embedded_bridge("cli-families", &[("RUST_LOG", "warn")]);
    for family in ["rtc", "recording", "ai_agent", "message"] {
        let output = bridge.simulate(&["--family", family, "--key", &format!("{family}-1")]);
        assert!(output.status.success(), "{family}: {:?}", text(&output));
    }
    // --event picks one event of a family whose name another product shares.
    let output = bridge.simulate(&["--family", "room", "--event", "room_create", "--jsonl"]);
    let (stdout, _) = text(&output);
    let attempt: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        (attempt["status"].as_u64(), attempt["family"].as_str()),
        (Some(200), Some("room"))
    );
    let records: Vec<serde_json::Value> =
        text(&bridge.tail(&["--exit-at-end", "--format", "json"]))
            .0
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let families: std::collections::BTreeMap<String, usize> =
        records.iter().fold(Default::default(), |mut counts, r| {
            *counts
                .entry(r["headers"]["zego-family"].as_str().unwrap().to_string())
                .or_default() += 1;
            counts
        });
    // Each family sends every catalogued event once (room: the one picked with --event).
    use zego_kafka_bridge::callback::catalogue::Family;
    let events = |family: Family| family.events().count();
    assert_eq!(
        families.into_iter().collect::<Vec<_>>(),
        [
            ("ai_agent".into(), events(Family::AiAgent)),
            ("message".into(), events(Family::Message)),
            ("recording".into(), events(Family::Recording)),
            ("room".into(), 1),
            ("rtc".into(), events(Family::Rtc))
        ]
    );
    let bad = bridge.simulate(&["--family", "chat"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).1.contains("not a family"), "{:?}", text(&bad));
}

#[test]
fn verify_reads_each_products_envelope() {
    let agent = zego_kafka_bridge::callback::catalogue::Family::AiAgent
        .events()
        .next()
        .unwrap();
    let body = zego_kafka_bridge::callback::sample::callback(
        agent,
        "1",
        "agent-7",
        1_499_676_978,
        "9",
        "s",
    );
    let valid = run(
        &[
            "verify",
            "--secret",
            "s",
            "--product",
            "ai-agent",
            "--data",
            &body.to_string(),
        ],
        &[],
    );
    let (stdout, _) = text(&valid);
    assert_eq!(valid.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("family ai_agent event UserSpeakAction key agent-7"),
        "{stdout}"
    );
    let as_zim = run(
        &["verify", "--secret", "s", "--data", &body.to_string()],
        &[],
    );
    assert_eq!(
        as_zim.status.code(),
        Some(1),
        "In-app Chat's envelope has no `timestamp` here"
    );
}

/// A misspelled variable is named at start-up with the one it probably meant, and the
/// effective configuration shows what the typo left in force (no allow-list, no spool).
#[test]
fn start_up_names_typos_and_says_what_it_runs_with() {
    let _bridge = embedded_bridge(
        "typos",
        &[
            ("ZEGO_APPIDS", "1"),
            ("SPOOLDIR", "/data"),
            ("RUST_LOG", "info"),
        ],
    );
    let log =
        std::fs::read_to_string(Path::new(env!("CARGO_TARGET_TMPDIR")).join("typos/bridge.log"))
            .unwrap();
    assert!(
        log.contains("ZEGO_APPIDS is not a variable the bridge reads (did you mean ZEGO_APP_IDS?)"),
        "{log}"
    );
    assert!(
        log.contains("SPOOLDIR is not a variable the bridge reads (did you mean SPOOL_DIR?)"),
        "{log}"
    );
    let configuration = log
        .lines()
        .find(|l| l.contains("configuration: "))
        .unwrap_or_else(|| panic!("no configuration line: {log}"));
    assert!(
        configuration.contains("ZEGO_APP_IDS=any"),
        "{configuration}"
    );
    assert!(configuration.contains("SPOOL_DIR=off"), "{configuration}");
    assert!(!configuration.contains("s3cret"), "{configuration}");
}

/// Bad numbers and oversized input get a clear refusal, never a panic (exit 101).
#[test]
fn simulate_and_verify_refuse_bad_input_without_panicking() {
    for schedule in ["nan", "-1", "inf", "2,x"] {
        let flag = format!("--schedule={schedule}");
        let output = run(&["simulate", "--secret", "s", &flag], &[]);
        let (_, stderr) = text(&output);
        assert_eq!(
            output.status.code(),
            Some(2),
            "--schedule {schedule}: {stderr}"
        );
        assert!(stderr.contains("not a number of seconds"), "{stderr}");
    }
    let output = run(&["simulate", "--secret", "s", "--duration-secs=-5"], &[]);
    assert_eq!(output.status.code(), Some(2), "{:?}", text(&output));
    // verify reads at most 16 MiB (more than any body the bridge would take).
    let big = work_dir("verify-big").join("body.json");
    std::fs::write(&big, vec![b' '; (16 << 20) + 10]).unwrap();
    let output = run(
        &[
            "verify",
            "--secret",
            "s",
            "--data",
            &format!("@{}", big.display()),
        ],
        &[],
    );
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("more than the bridge would read"),
        "{stderr}"
    );
}

/// A signed field is the sender's text: a `call_id` carrying ESC and CSI sequences reaches the
/// topic unchanged, but `tail` never writes a control character to the terminal.
#[test]
fn tail_never_writes_control_characters_from_a_callback() {
    let bridge = embedded_bridge("cli-tail-escapes", &[("RUST_LOG", "warn")]);
    let hostile = "evil\u{1b}[2J\u{1b}]0;owned\u{7}\u{9b}31m";
    let sent = bridge.simulate(&["--call-id", hostile]);
    assert!(sent.status.success(), "{:?}", text(&sent));
    for format in ["text", "json"] {
        let output = bridge.tail(&["--exit-at-end", "--format", format]);
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(stdout.contains("evil"), "{format}: {stdout}");
        assert!(
            !stdout.chars().any(|c| c.is_control() && c != '\n'),
            "{format}: a control character reached the terminal: {stdout:?}"
        );
    }
    // The JSON form still carries the exact key.
    let json =
        String::from_utf8(bridge.tail(&["--exit-at-end", "--format", "json"]).stdout).unwrap();
    let record: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(record["key"], hostile);
}

/// The completion scripts complete a subcommand's options: bash (sourced, then asked as bash
/// asks), fish (`complete -C`) and zsh (parsed, its function defined, the option listed) where
/// those shells are installed (`.ci/run` installs them).
#[test]
fn completions_complete_a_subcommands_options() {
    let dir = std::env::temp_dir().join(format!("completions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = |shell: &str| {
        let output = run(&["completions", shell], &[]);
        assert!(output.status.success(), "{shell}");
        let path = dir.join(format!("completion.{shell}"));
        std::fs::write(&path, &output.stdout).unwrap();
        path
    };
    let bash = script("bash");
    // Asks bash's completion function as bash would for `zego-kafka-bridge <sub> <word>`.
    let bash_completes = |subcommand: &str, word: &str| {
        let asked = format!(
            "source {}; COMP_WORDS=(zego-kafka-bridge {subcommand} {word}); COMP_CWORD=2; \
             _zego__kafka__bridge zego-kafka-bridge {word} {subcommand}; echo \"${{COMPREPLY[*]}}\"",
            bash.display()
        );
        let out = Command::new("bash").args(["-c", &asked]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(bash_completes("simulate", "--sch"), "--schedule");
    assert_eq!(bash_completes("replay", "--dry"), "--dry-run");

    let fish = script("fish");
    if let Ok(out) = Command::new("fish")
        .args([
            "-c",
            &format!(
                "source {}; complete -C 'zego-kafka-bridge simulate --sch'",
                fish.display()
            ),
        ])
        .output()
    {
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(listed.starts_with("--schedule"), "fish: {listed}");
    }
    let zsh = script("zsh");
    if let Ok(out) = Command::new("zsh")
        .args([
            "-f",
            "-c",
            &format!(
                "autoload -U compinit && compinit -u && source {} && functions _zego-kafka-bridge > /dev/null && echo defined",
                zsh.display()
            ),
        ])
        .output()
    {
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "defined", "zsh: {out:?}");
        let text = std::fs::read_to_string(&zsh).unwrap();
        assert!(text.contains("--schedule") && text.contains("--dry-run"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--help` lists every environment variable the bridge reads, with its default.
#[test]
fn help_lists_the_environment_variables() {
    let output = run(&["--help"], &[]);
    let (stdout, _) = text(&output);
    for (name, default, _) in zego_kafka_bridge::config::VARIABLE_HELP {
        assert!(
            stdout.contains(name) && stdout.contains(&format!("[{default}]")),
            "{name}: {stdout}"
        );
    }
    assert!(stdout.contains("KAFKA_OPT_<NAME>"));
}

/// `simulate --url https://…` against a bridge serving HTTPS with a certificate from a private
/// CA: verified with `--ca-file`, accepted with `--insecure`, and refused with neither (the
/// certificate is not one the system trusts), each with a line that says so.
#[test]
fn simulate_speaks_https_verified_or_insecure() {
    let dir = work_dir("cli-simulate-https");
    certs::make_certificates(&dir);
    let cert = dir.join("server.pem").display().to_string();
    let key = dir.join("server.key").display().to_string();
    let ca = dir.join("ca.pem").display().to_string();
    let addr = format!("127.0.0.1:{}", free_port());
    let _bridge = Running(
        bridge(
            &["--embedded-kafka"],
            &[
                ("ZEGO_CALLBACK_SECRET", "s3cret"),
                ("BIND_ADDR", addr.as_str()),
                ("TLS_CERT_FILE", cert.as_str()),
                ("TLS_KEY_FILE", key.as_str()),
                ("RUST_LOG", "warn"),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let probe = [
        ("BIND_ADDR", addr.as_str()),
        ("TLS_CERT_FILE", cert.as_str()),
    ];
    wait_healthy_with(&probe);
    let port = addr.rsplit(':').next().unwrap();
    // The certificate names localhost.
    let url = format!("https://localhost:{port}/zego/callback");
    let env = [("ZEGO_CALLBACK_SECRET", "s3cret")];
    let verified = run(
        &[
            "simulate",
            "--url",
            &url,
            "--ca-file",
            &ca,
            "--call-id",
            "tls-1",
        ],
        &env,
    );
    let (_, stderr) = text(&verified);
    assert!(verified.status.success(), "{stderr}");
    assert!(stderr.contains("1 answered 200"), "{stderr}");
    let insecure = run(
        &[
            "simulate",
            "--url",
            &url,
            "--insecure",
            "--call-id",
            "tls-2",
        ],
        &env,
    );
    let (_, stderr) = text(&insecure);
    assert!(insecure.status.success(), "{stderr}");
    let untrusted = run(
        &[
            "simulate",
            "--url",
            &url,
            "--no-retry",
            "--call-id",
            "tls-3",
        ],
        &env,
    );
    let (stdout, stderr) = text(&untrusted);
    assert_eq!(untrusted.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("nothing was answered"), "{stderr}");
    assert!(
        !stdout.contains(": 0 ") && stdout.to_lowercase().contains("certificate"),
        "the line names the certificate problem: {stdout}"
    );
}

/// The README's `curl` example, run as written against a bridge (its address and the binary's
/// path put in): a signed callback answered 200 and in the topic; sent again, a duplicate.
#[test]
fn the_readmes_curl_example_lands_one_record() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("### One callback with curl")
        .nth(1)
        .expect("the README has its curl section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a sh block in it");
    assert!(
        block.contains("curl") && block.contains("sign --secret secret"),
        "{block}"
    );
    // The README's bridge: ZEGO_CALLBACK_SECRET=secret (the later value wins), embedded Kafka.
    let bridge = embedded_bridge(
        "cli-readme-curl",
        &[("ZEGO_CALLBACK_SECRET", "secret"), ("RUST_LOG", "warn")],
    );
    let script = block
        .replace("zego-kafka-bridge", BIN)
        .replace("127.0.0.1:8080", &bridge.addr);
    let run_block = || {
        let output = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .output()
            .unwrap();
        assert!(output.status.success(), "{:?}", text(&output));
        String::from_utf8(output.stdout).unwrap()
    };
    let first = run_block();
    assert!(
        first.contains(r#""ok":true"#) && first.contains(r#""topic":"zego-callbacks""#),
        "{first}"
    );
    assert!(!first.contains("duplicate"), "{first}");
    let again = run_block();
    assert!(again.contains(r#""duplicate":true"#), "{again}");
}

/// The README's "Try it" block, its commands run as written (the binary's path, a free HTTP
/// address and a free Kafka port put in; `tail` told when to stop): every record the two
/// `simulate` lines had answered 200 is printed by the `tail`.
#[test]
fn the_readmes_try_it_block_works_as_written() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let block = readme
        .split("## Try it")
        .nth(1)
        .and_then(|section| section.split("```sh\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("the README's Try it block");
    let commands: Vec<&str> = block
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .collect();
    assert_eq!(commands.len(), 4, "{block}");
    let addr = format!("127.0.0.1:{}", free_port());
    let kafka_port = free_port().to_string();
    let as_run = |line: &str| {
        line.replace("zego-kafka-bridge", BIN)
            .replace("19092", &kafka_port)
    };
    let shell = |line: String| {
        let mut command = Command::new("bash");
        command.args(["-c", &line]).env("BIND_ADDR", &addr);
        command
    };
    let dir = work_dir("cli-readme-try-it");
    let _bridge = Running(
        shell(as_run(commands[0]))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("bridge.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_healthy(&addr);
    // 1 seed + 10 calls × 5 events.
    let tail = shell(format!("{} --limit 51 --format json", as_run(commands[1])))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for line in &commands[2..] {
        let output = shell(as_run(line)).output().unwrap();
        assert!(output.status.success(), "{line}: {:?}", text(&output));
    }
    let output = tail.wait_with_output().unwrap();
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).unwrap();
    assert_eq!(printed.lines().count(), 51, "{printed}");
}
