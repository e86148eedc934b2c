//! A real Prometheus (the Debian package) scrapes a running bridge: after a known number of
//! callbacks, its HTTP API returns the key series with the right values.

use std::process::Command;
use std::time::Duration;

use crate::harness::*;
use crate::stack;

/// The first sample of an instant query, or `None` while Prometheus has none.
fn query(port: u16, promql: &str) -> Option<f64> {
    let encoded: String = form_urlencoded::byte_serialize(promql.as_bytes()).collect();
    let (status, body) = http_get(port, &format!("/api/v1/query?query={encoded}"))?;
    if status != 200 {
        return None;
    }
    let answer: serde_json::Value = serde_json::from_str(&body).ok()?;
    answer["data"]["result"][0]["value"][1]
        .as_str()?
        .parse()
        .ok()
}

/// Polls `promql` until it equals `expected` (the scrape interval is 1 s).
async fn wait_for_value(port: u16, promql: &str, expected: f64) {
    let what = format!("{promql} reaching {expected} in Prometheus");
    eventually(&what, Duration::from_secs(60), || {
        (query(port, promql) == Some(expected)).then_some(())
    })
    .await;
}

/// A Prometheus server scraping the bridge at `target` every second; `scrape` adds to the
/// scrape job (e.g. the HTTPS settings of the shipped monitoring-tls PodMonitor).
fn start_prometheus(dir: &std::path::Path, target: u16, scrape: &str) -> (Process, u16) {
    let prometheus_port = free_port();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: zego-kafka-bridge\n{scrape}    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
        ),
    )
    .unwrap();
    let prometheus = Process::spawn(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}")),
        dir.join("prometheus.log"),
    );
    wait_for_port(prometheus_port, Duration::from_secs(30));
    (prometheus, prometheus_port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_bridge_and_sees_what_happened() {
    let _serial = serial().await;
    let (dir, _tansu, _forwarder, bridge) = stack("prometheus", &[]).await;
    let (ok, attempts) = simulate(&dir, "load", &bridge.url(), &["--count", "20"]).await;
    assert!(ok && attempts.len() == 20);
    // One forged callback: a wrong secret, not retried.
    let forged = Command::new(bridge_bin())
        .args([
            "simulate",
            "--url",
            &bridge.url(),
            "--secret",
            "wrong",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert_eq!(forged.status.code(), Some(1));

    let (_prometheus, prometheus_port) = start_prometheus(&dir, bridge.port, "");
    wait_for_value(prometheus_port, r#"up{job="zego-kafka-bridge"}"#, 1.0).await;
    wait_for_value(
        prometheus_port,
        r#"sum(zego_callbacks_total{code="ok",status="200"})"#,
        20.0,
    )
    .await;
    wait_for_value(
        prometheus_port,
        r#"sum(zego_callbacks_total{code="invalid_signature",status="401"})"#,
        1.0,
    )
    .await;
    wait_for_value(prometheus_port, "zego_broker_reachable", 1.0).await;
    wait_for_value(prometheus_port, "zego_in_flight_limit", 10000.0).await;
    wait_for_value(
        prometheus_port,
        r#"sum(zego_publish_duration_seconds_count{outcome="acked"})"#,
        20.0,
    )
    .await;
    wait_for_value(
        prometheus_port,
        r#"zego_signature_secret_total{secret="1"}"#,
        20.0,
    )
    .await;
    wait_for_value(prometheus_port, "count(zego_build_info)", 1.0).await;
    report("| Prometheus scrape | 20 genuine callbacks and 1 forged, scraped every 1 s by the Debian prometheus server | its HTTP API shows 20 ok, 1 invalid_signature, 20 acked publishes, broker reachable, the in-flight limit and build info | — | — | — |");
}

/// With TLS on, the bridge serves /metrics over HTTPS on its one port; Prometheus scrapes it
/// the way deploy/kubernetes/monitoring-tls does (scheme https, verification skipped inside
/// the cluster), and a plain-HTTP scrape of the same port fails: the shipped monitor must be
/// the TLS one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_a_bridge_serving_https_like_the_shipped_monitor() {
    let _serial = serial().await;
    let dir = work_dir("prometheus tls");
    crate::certs::make_certificates(&dir);
    let forward_port = free_port();
    let tansu = Tansu::start(&dir, forward_port);
    let _forwarder = Forwarder::start(forward_port, tansu.port).await;
    tansu.create_topic(TOPIC, 3);
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
    let bridge = Bridge::start(
        &dir,
        "bridge",
        free_port(),
        &format!("127.0.0.1:{forward_port}"),
        &[("TLS_CERT_FILE", &cert), ("TLS_KEY_FILE", &key)],
    );
    let monitor = "    scheme: https\n    tls_config:\n      insecure_skip_verify: true\n";
    let (_prometheus, prometheus_port) = start_prometheus(&dir, bridge.port, monitor);
    wait_for_value(prometheus_port, r#"up{job="zego-kafka-bridge"}"#, 1.0).await;
    wait_for_value(prometheus_port, "zego_broker_reachable", 1.0).await;
    wait_for_value(
        prometheus_port,
        r#"count(zego_refusals_total{code="invalid_signature"})"#,
        5.0,
    )
    .await;
    wait_for_value(prometheus_port, "count(zego_build_info)", 1.0).await;
    let plain_dir = dir.join("plain");
    std::fs::create_dir_all(&plain_dir).unwrap();
    let (_plain, plain_port) = start_prometheus(&plain_dir, bridge.port, "");
    wait_for_value(plain_port, r#"up{job="zego-kafka-bridge"}"#, 0.0).await;
    report("| Prometheus scrape over HTTPS | a bridge serving TLS, scraped as monitoring-tls does (https, verification skipped) | up 1, broker reachable, refusal series from 0, build info; a plain-HTTP scrape of the same port: up 0 | — | — | — |");
}
