//! Kafka behind SASL (SCRAM-SHA-512, as managed Kafka offerings use): with the right
//! credentials the bridge publishes; with a wrong password `/readyz` stays 503, callbacks get
//! 503, and the log names the problem without the password. `KAFKA_CREATE_TOPICS` creates a
//! missing topic over the same SASL connection.

use std::time::Duration;

use crate::harness::*;

const PASSWORD: &str = "sasl-e2e-password";

fn sasl_env(password: &str) -> Vec<(&'static str, String)> {
    vec![
        ("KAFKA_OPT_SECURITY_PROTOCOL", "SASL_PLAINTEXT".into()),
        ("KAFKA_OPT_SASL_MECHANISM", "SCRAM-SHA-512".into()),
        ("KAFKA_OPT_SASL_USERNAME", "bridge".into()),
        ("KAFKA_OPT_SASL_PASSWORD", password.into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_publishes_over_sasl_and_a_wrong_password_is_named_not_shown() {
    let _serial = serial().await;
    let dir = work_dir("sasl");
    let port = free_port();
    let storage = "sqlite://broker.db";
    // tansu's CLI cannot talk to a broker that requires authentication: the user and the topic
    // are made first, then the broker is started again on the same storage, requiring it.
    let open = Tansu::start_with(&dir, "tansu-setup", port, port, storage, &[]);
    open.create_user("bridge", PASSWORD);
    open.create_topic(TOPIC, 3);
    open.process.signal("TERM");
    drop(open);
    wait_for_port_free(port, Duration::from_secs(20));
    let _tansu = Tansu::start_with(&dir, "tansu", port, port, storage, &["--authentication"]);
    let brokers = format!("127.0.0.1:{port}");

    // The refused topic does not exist yet: the bridge creates it over SASL with the same
    // credentials (KAFKA_CREATE_TOPICS).
    let mut right = sasl_env(PASSWORD);
    right.extend([
        ("KAFKA_CREATE_TOPICS", "true".to_string()),
        ("KAFKA_TOPIC_PARTITIONS", "1".to_string()),
        ("KAFKA_TOPIC_REPLICATION", "1".to_string()),
        ("KAFKA_TOPIC_REFUSED", "sasl-refused".to_string()),
    ]);
    let right: Vec<(&str, &str)> = right.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let bridge = Bridge::start(&dir, "bridge", free_port(), &brokers, &right);
    bridge.wait_ready(Duration::from_secs(30)).await;
    let (ok, attempts) = simulate(&dir, "load", &bridge.url(), &["--count", "20"]).await;
    assert!(ok, "callbacks were refused over SASL");
    let forged = std::process::Command::new(bridge_bin())
        .args([
            "simulate",
            "--url",
            &bridge.url(),
            "--secret",
            "forger",
            "--no-retry",
        ])
        .output()
        .expect("simulate runs");
    assert!(!forged.status.success());
    wait_for_metric(
        bridge.port,
        r#"zego_refused_kept_total{outcome="kept"}"#,
        Duration::from_secs(30),
        |kept| kept >= 1.0,
    )
    .await;
    let log = bridge.process.log_text();
    assert!(log.contains("created topic sasl-refused"), "{log}");
    assert_eq!(
        read_topic_sasl(&brokers, "sasl-refused", "bridge", PASSWORD).len(),
        1,
        "the forged callback, kept in the topic the bridge created over SASL"
    );
    drop(bridge);

    let wrong = sasl_env("not-the-password");
    let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = Bridge::start(&dir, "bridge-wrong-password", free_port(), &brokers, &wrong);
    let (ok, rejected) = simulate(
        &dir,
        "refused",
        &refused.url(),
        &["--no-retry", "--call-id", "never"],
    )
    .await;
    assert!(
        !ok && rejected.iter().all(|a| a.status == 503),
        "{rejected:?}"
    );
    assert_eq!(refused.readyz(), 503);
    let log = refused.process.log_text();
    assert!(
        log.contains("Kafka refused the bridge's credentials"),
        "{log}"
    );
    assert!(
        !log.contains("not-the-password"),
        "the password reached the log"
    );

    let records = read_topic_sasl(&brokers, TOPIC, "bridge", PASSWORD);
    assert_eq!(records.len(), 20, "exactly the callbacks acked over SASL");

    // `tail` reads the secured topic with the bridge's own variables...
    let env = sasl_env(PASSWORD);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let tailed = tail(&brokers, &env, &["--limit", "20", "--idle-exit-secs", "30"]);
    assert_eq!(
        tailed.records.len(),
        20,
        "tail over SASL: {}",
        tailed.stderr
    );
    // ... and a wrong password given as a flag is named as a credentials problem, never shown.
    let tailed = tail(
        &brokers,
        &env,
        &[
            "-X",
            "sasl.password=not-the-password",
            "--broker-timeout-secs",
            "3",
        ],
    );
    assert_eq!(tailed.code, Some(1), "{}", tailed.stderr);
    assert!(
        tailed.stderr.contains("refused tail's credentials"),
        "{}",
        tailed.stderr
    );
    assert!(
        !tailed.stderr.contains("not-the-password"),
        "{}",
        tailed.stderr
    );
    records.iter().for_each(assert_well_formed);
    assert_eq!(acked(&attempts).len(), 20);
    report("| Kafka over SASL (SCRAM-SHA-512) | 20 callbacks with the right credentials; then a bridge with a wrong password | 20 × 200; the wrong one: 503, /readyz 503, its log names the credentials problem, never the password; `tail` reads the 20 with the same variables and names a wrong `-X sasl.password` | 20 | 0 | — |");
}
