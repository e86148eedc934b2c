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
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let output = run(&["healthcheck"], &probe);
        if output.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "healthcheck never passed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Plain HTTP against the HTTPS port fails, as it should.
    let plain = run(&["healthcheck"], &[("BIND_ADDR", addr.as_str())]);
    assert_eq!(plain.status.code(), Some(1));
}
