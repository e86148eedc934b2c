//! The durable spool (`SPOOL_DIR`) against the mock cluster: what Kafka cannot take is spooled
//! and answered 200 `spooled`, forwarded in order once the broker is back, through produce
//! errors and a producer replaced mid-drain; a full spool answers 503; `/readyz` stays 200
//! while the spool accepts; a directory another bridge holds is refused; a repeat of a spooled
//! callback (at once, concurrently, or after a restart) is a duplicate and lands once.

use std::net::TcpListener;

use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use serde_json::{json, Value};
use zego_kafka_bridge::config::Settings;
use zego_kafka_bridge::startup::Application;

use crate::helpers::{event_body, spawn_app_with, spool_dir, Answer, TestApp, SECRET, TOPIC};

const FAMILY: [&str; 5] = [
    "call_create",
    "call_accept",
    "call_reject",
    "call_cancel",
    "call_timeout",
];

fn spooled(answer: &Answer) -> bool {
    answer.status == 200 && answer.body["spooled"] == json!(true)
}

/// The topic's records of `key`, by offset, as (event, spooled).
fn events_of(app: &TestApp, key: &str) -> Vec<(String, bool)> {
    let mut records: Vec<_> = app
        .records(TOPIC)
        .into_iter()
        .filter(|r| r.key.as_deref() == Some(key))
        .collect();
    records.sort_by_key(|r| r.offset);
    records
        .iter()
        .map(|r| {
            (
                r.headers["zego-event"].clone(),
                r.headers.contains_key("zego-spool-seq"),
            )
        })
        .collect()
}

#[actix_web::test]
async fn an_outage_is_spooled_and_a_calls_events_land_in_the_order_they_were_answered() {
    let dir = spool_dir();
    let app = spawn_app_with(&[("SPOOL_DIR", &dir)]).await;
    app.wait_for_metric("zego_broker_reachable", 1.0).await;
    let send = |event: &'static str| {
        let app = &app;
        async move { app.post_json(&event_body(event, "c1")).await }
    };
    for event in &FAMILY[..2] {
        let answer = send(event).await;
        assert_eq!(
            (answer.status, answer.body["spooled"].as_bool()),
            (200, None),
            "{answer:?}"
        );
    }
    app.cluster.broker_down(1).unwrap();
    for event in &FAMILY[2..4] {
        let answer = send(event).await;
        assert!(spooled(&answer), "{event}: {answer:?}");
    }
    // The broker is gone, but a replica that can spool stays in the load balancer.
    app.wait_for_metric("zego_spool_records", 2.0).await;
    assert_eq!(app.metric("zego_broker_reachable").await, 0.0);
    assert_eq!(app.get("/readyz").await.0, 200);

    app.cluster.broker_up(1).unwrap();
    // Sent while the spool may still hold the others: it goes behind them, or straight to
    // Kafka once they are all forwarded; either way after them.
    assert_eq!(send(FAMILY[4]).await.status, 200);
    app.wait_for_metric("zego_spool_drained_total", 2.0).await;
    let deadline = std::time::Instant::now() + crate::helpers::WAIT_LIMIT;
    while events_of(&app, "c1").len() < FAMILY.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            events_of(&app, "c1")
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let landed = events_of(&app, "c1");
    let order: Vec<&str> = landed.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(order, FAMILY, "each event once, in the order answered");
    assert_eq!(
        landed.iter().map(|(_, s)| *s).collect::<Vec<_>>()[..4],
        [false, false, true, true]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_web::test]
async fn the_drain_gets_through_produce_errors_and_a_replaced_producer() {
    let dir = spool_dir();
    let app = spawn_app_with(&[("SPOOL_DIR", &dir)]).await;
    app.wait_for_metric("zego_broker_reachable", 1.0).await;
    app.cluster.broker_down(1).unwrap();
    let calls: Vec<String> = (0..20).map(|n| format!("drain-{n}")).collect();
    for call in &calls {
        let answer = app.post_json(&event_body("call_create", call)).await;
        assert!(spooled(&answer), "{answer:?}");
    }
    // Back, but refusing writes for a while: the drain's first rounds fail.
    let errors = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 2000];
    app.cluster.request_errors(RDKafkaApiKey::Produce, &errors);
    app.cluster.broker_up(1).unwrap();
    app.wait_for_metric("zego_broker_reachable", 1.0).await;
    // The producer breaks mid-drain as a fenced one does, and is replaced.
    app.publisher
        .raise_fatal_error_for_tests("test: fenced while draining");
    app.wait_for_metric("zego_producer_replacements_total{reason=\"fatal\"}", 1.0)
        .await;
    assert_eq!(
        app.metric("zego_spool_records").await,
        20.0,
        "nothing left early"
    );
    app.cluster.clear_request_errors(RDKafkaApiKey::Produce);
    app.wait_for_metric("zego_spool_drained_total", 20.0).await;
    assert_eq!(app.metric("zego_spool_records").await, 0.0);
    let records = app.records(TOPIC);
    for call in &calls {
        assert!(
            records
                .iter()
                .any(|r| r.key.as_deref() == Some(call.as_str())),
            "{call} lost"
        );
    }
    // Spooled records carry their place and time in the spool.
    let seqs: Vec<u64> = records
        .iter()
        .map(|r| r.headers["zego-spool-seq"].parse().unwrap())
        .collect();
    assert!(seqs.iter().all(|s| (1..=20).contains(s)), "{seqs:?}");
    assert!(records
        .iter()
        .all(|r| r.headers["zego-spooled-at"].parse::<i64>().is_ok()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_web::test]
async fn a_full_spool_answers_503_spool_full_and_readyz_follows() {
    let dir = spool_dir();
    // An empty spool database takes a few pages; this leaves room for a handful of callbacks.
    let app = spawn_app_with(&[("SPOOL_DIR", &dir), ("SPOOL_MAX_BYTES", "80000")]).await;
    app.wait_for_metric("zego_broker_reachable", 1.0).await;
    app.cluster.broker_down(1).unwrap();
    let mut answers: Vec<Answer> = Vec::new();
    for n in 0..200 {
        answers.push(
            app.post_json(&event_body("call_accept", &format!("full-{n}")))
                .await,
        );
    }
    let accepted = answers.iter().filter(|a| spooled(a)).count();
    let full: Vec<&Answer> = answers.iter().filter(|a| a.status != 200).collect();
    assert!(accepted > 0 && !full.is_empty(), "{answers:?}");
    for answer in &full {
        assert_eq!(
            (answer.status, answer.body["error"].as_str()),
            (503, Some("spool_full")),
            "{answer:?}"
        );
    }
    // Broker gone and spool full: this replica cannot take callbacks.
    app.wait_for_readyz(503).await;
    let refused =
        r#"zego_callbacks_total{code="spool_full",event="call_accept",family="call",status="503"}"#;
    assert_eq!(app.metric(refused).await, full.len() as f64);

    app.cluster.broker_up(1).unwrap();
    app.wait_for_metric("zego_spool_drained_total", accepted as f64)
        .await;
    app.wait_for_readyz(200).await;
    let keys: Vec<String> = app
        .records(TOPIC)
        .into_iter()
        .filter_map(|r| r.key)
        .collect();
    assert_eq!(
        keys.len(),
        accepted,
        "every callback answered 200 and none refused"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_web::test]
async fn a_spool_directory_another_bridge_holds_is_refused_at_start_up() {
    let dir = spool_dir();
    let app = spawn_app_with(&[("SPOOL_DIR", &dir)]).await;
    let settings = Settings::from_vars([
        ("KAFKA_BROKERS".to_string(), app.cluster.bootstrap_servers()),
        ("ZEGO_CALLBACK_SECRET".to_string(), SECRET.to_string()),
        ("SPOOL_DIR".to_string(), dir.clone()),
    ])
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let error = Application::build(settings, listener)
        .err()
        .expect("a second bridge on the same SPOOL_DIR is refused")
        .to_string();
    assert!(
        error.contains("SPOOL_DIR") && error.contains("another running bridge"),
        "{error}"
    );
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_web::test]
async fn without_a_spool_the_answer_to_an_outage_is_still_503() {
    let app = spawn_app_with(&[]).await;
    app.wait_for_metric("zego_broker_reachable", 1.0).await;
    app.cluster.broker_down(1).unwrap();
    let answer = app.post_json(&event_body("call_accept", "no-spool")).await;
    assert_eq!(
        (answer.status, answer.body["error"].clone()),
        (503, Value::from("broker_unavailable"))
    );
    app.wait_for_readyz(503).await;
}

/// The records of `key` in the topic.
fn landed(app: &TestApp, key: &str) -> usize {
    app.records(TOPIC)
        .iter()
        .filter(|r| r.key.as_deref() == Some(key))
        .count()
}

#[actix_web::test]
async fn repeats_of_a_spooled_callback_are_duplicates_and_it_lands_once() {
    let dir = spool_dir();
    let app = spawn_app_with(&[("SPOOL_DIR", &dir)]).await;
    app.wait_for_metric("zego_broker_reachable", 1.0).await;
    app.cluster.broker_down(1).unwrap();
    // Fifty copies at once (ZEGOCLOUD's retry overlapping a slow answer, or a client
    // repeating): one is spooled, every other one is answered with that.
    let body = event_body("call_accept", "repeated");
    let answers = futures_util::future::join_all((0..50).map(|_| app.post_json(&body))).await;
    let seq = answers[0].body["spool_seq"].clone();
    for answer in &answers {
        assert!(spooled(answer), "{answer:?}");
        assert_eq!(answer.body["spool_seq"], seq, "{answer:?}");
    }
    let duplicates = answers
        .iter()
        .filter(|a| a.body["duplicate"] == json!(true))
        .count();
    assert_eq!(duplicates, 49);
    // And later, still during the outage.
    let later = app.post_json(&body).await;
    assert!(
        spooled(&later) && later.body["duplicate"] == json!(true),
        "{later:?}"
    );
    assert_eq!(app.metric("zego_spool_appended_total").await, 1.0);
    app.cluster.broker_up(1).unwrap();
    app.wait_for_metric("zego_spool_drained_total", 1.0).await;
    assert_eq!(landed(&app, "repeated"), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_web::test]
async fn a_callback_spooled_before_a_restart_is_a_duplicate_after_it() {
    let dir = spool_dir();
    let mut app = spawn_app_with(&[("SPOOL_DIR", &dir)]).await;
    app.wait_for_metric("zego_broker_reachable", 1.0).await;
    app.cluster.broker_down(1).unwrap();
    let body = event_body("call_accept", "across-restart");
    assert!(spooled(&app.post_json(&body).await));
    app.shut_down().await;
    drop(app);
    // The same spool, a new broker: the record drains into it, and the retry ZEGOCLOUD sends
    // meanwhile is answered as the duplicate it is.
    let app = spawn_app_with(&[("SPOOL_DIR", &dir)]).await;
    let retry = app.post_json(&body).await;
    assert_eq!(retry.status, 200, "{retry:?}");
    assert_eq!(retry.body["duplicate"], json!(true), "{retry:?}");
    app.wait_for_metric("zego_spool_drained_total", 1.0).await;
    // The record lands once (from the spool); the retry was neither spooled nor published.
    assert_eq!(app.metric("zego_spool_appended_total").await, 0.0);
    let published =
        r#"zego_callbacks_total{code="ok",event="call_accept",family="call",status="200"}"#;
    assert_eq!(app.metric(published).await, 0.0);
    let _ = std::fs::remove_dir_all(&dir);
}
