//! `KAFKA_CREATE_TOPICS`: a bridge pointed at a broker without its topic creates it and
//! becomes ready; started again on the same broker (a re-applied deployment, a new pod) it
//! finds the topic and goes on, with nothing to fail. Over SASL: see sasl.rs.

use std::time::Duration;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_creates_its_missing_topics_and_a_restart_finds_them() {
    let _serial = serial().await;
    let dir = work_dir("topics");
    let port = free_port();
    let _tansu = Tansu::start_with(&dir, "tansu", port, port, "memory://tansu/", &[]);
    let brokers = format!("127.0.0.1:{port}");
    let env = [
        ("KAFKA_TOPIC", "created-by-the-bridge"),
        ("KAFKA_TOPIC_RTC", "created-rtc"),
        ("KAFKA_CREATE_TOPICS", "true"),
        ("KAFKA_TOPIC_PARTITIONS", "3"),
        ("KAFKA_TOPIC_REPLICATION", "1"),
    ];
    let bridge = Bridge::start(&dir, "first", free_port(), &brokers, &env);
    bridge.wait_ready(Duration::from_secs(30)).await;
    let (ok, _) = simulate(&dir, "load-first", &bridge.url(), &["--count", "5"]).await;
    assert!(ok);
    let log = bridge.process.log_text();
    assert!(
        log.contains("created topic created-by-the-bridge (3 partitions, replication 1)"),
        "{log}"
    );
    assert!(log.contains("created topic created-rtc"), "{log}");
    drop(bridge);

    // The same settings again: the topics exist, nothing fails, callbacks keep landing.
    let again = Bridge::start(&dir, "again", free_port(), &brokers, &env);
    again.wait_ready(Duration::from_secs(30)).await;
    let (ok, _) = simulate(
        &dir,
        "load-again",
        &again.url(),
        &["--count", "5", "--call-id", "again"],
    )
    .await;
    assert!(ok);
    wait_for_log(&again, "topic created-by-the-bridge exists").await;
    let log = again.process.log_text();
    assert!(
        !log.contains("KAFKA_CREATE_TOPICS:"),
        "no creation error: {log}"
    );
    let records = read_topic(&brokers, "created-by-the-bridge");
    assert_eq!(records.len(), 10);
    records.iter().for_each(assert_well_formed);
    report("| KAFKA_CREATE_TOPICS | a broker without the bridge's topics; then the bridge started again | created (3 partitions), ready, 5 callbacks landed; the second start finds them and goes on | 10 | 0 | — |");
}

/// Waits until the bridge's log holds `text`.
async fn wait_for_log(bridge: &Bridge, text: &str) {
    eventually(
        &format!("the log saying {text:?}"),
        Duration::from_secs(30),
        || bridge.process.log_text().contains(text).then_some(()),
    )
    .await;
}
