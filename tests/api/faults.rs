//! Broker faults driven on the mock cluster: what is answered, and what lands in the topic.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use serde_json::json;

use crate::helpers::{signed, spawn_app, spawn_app_with, TestApp, DELIVERY_TIMEOUT, TOPIC};

/// The margin over the delivery timeout that a 503 may take: wide, for a busy 2-core machine.
/// The point is that the answer is bounded by the delivery timeout, not by the client's patience
/// (60 s here, as long as ZEGOCLOUD's whole retry schedule).
const MARGIN: Duration = Duration::from_secs(15);

fn keys(app: &TestApp) -> BTreeSet<String> {
    app.records(TOPIC)
        .into_iter()
        .filter_map(|r| r.key)
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[actix_web::test]
async fn broker_down_answers_503_in_time_and_the_retry_lands_once() {
    let app = spawn_app().await;
    app.wait_for_readyz(200).await;
    app.cluster.broker_down(1).unwrap();
    let started = Instant::now();
    let refused = app.post_json(&signed(json!({"call_id": "outage"}))).await;
    assert_eq!(
        (refused.status, refused.body["error"].as_str()),
        (503, Some("broker_unavailable"))
    );
    assert!(
        started.elapsed() < DELIVERY_TIMEOUT + MARGIN,
        "503 took {:?}",
        started.elapsed()
    );

    app.cluster.broker_up(1).unwrap();
    app.wait_for_readyz(200).await;
    // ZEGOCLOUD's retry: same callback, new nonce, timestamp and signature.
    let retry = app
        .post_json(&signed(json!({"call_id": "outage", "nonce": "retry-1"})))
        .await;
    assert_eq!(retry.status, 200, "{retry:?}");
    assert_eq!(
        retry.body["duplicate"],
        json!(null),
        "a failed publish is never remembered"
    );
    let records = app.records(TOPIC);
    assert_eq!(records.len(), 1, "exactly the retried record: {records:?}");
    assert_eq!(records[0].key.as_deref(), Some("outage"));
    assert_eq!(
        (records[0].partition, records[0].offset),
        (
            retry.body["partition"].as_i64().unwrap() as i32,
            retry.body["offset"].as_i64().unwrap()
        )
    );
}

#[actix_web::test]
async fn retriable_produce_errors_answer_503_and_land_nothing() {
    let app = spawn_app().await;
    app.wait_for_readyz(200).await;
    // librdkafka retries these itself; enough of them outlast the delivery timeout.
    let errors = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 500];
    app.cluster.request_errors(RDKafkaApiKey::Produce, &errors);
    let refused = app
        .post_json(&signed(json!({"call_id": "retriable"})))
        .await;
    assert_eq!(
        (refused.status, refused.body["error"].as_str()),
        (503, Some("broker_unavailable")),
        "{refused:?}"
    );
    assert!(keys(&app).is_empty());
    app.cluster.clear_request_errors(RDKafkaApiKey::Produce);
    assert_eq!(
        app.post_json(&signed(json!({"call_id": "retriable"})))
            .await
            .status,
        200
    );
    assert_eq!(keys(&app), set(&["retriable"]));
}

#[actix_web::test]
async fn non_retriable_produce_error_answers_500_and_lands_nothing() {
    let app = spawn_app().await;
    app.wait_for_readyz(200).await;
    app.cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
    );
    let refused = app.post_json(&signed(json!({"call_id": "denied"}))).await;
    assert_eq!(
        (refused.status, refused.body["error"].as_str()),
        (500, Some("publish_failed")),
        "{refused:?}"
    );
    assert!(keys(&app).is_empty());
}

#[actix_web::test]
async fn record_over_the_producers_size_limit_answers_500() {
    // A real limit, not an injected error: librdkafka refuses the record before sending it.
    let app = spawn_app_with(&[("KAFKA_OPT_MESSAGE_MAX_BYTES", "1000")]).await;
    app.wait_for_readyz(200).await;
    let refused = app
        .post_json(&signed(
            json!({"call_id": "big", "extend_data": "x".repeat(2000)}),
        ))
        .await;
    assert_eq!(
        (refused.status, refused.body["error"].as_str()),
        (500, Some("publish_failed")),
        "{refused:?}"
    );
    assert_eq!(
        app.post_json(&signed(json!({"call_id": "small"})))
            .await
            .status,
        200
    );
    assert_eq!(keys(&app), set(&["small"]));
}

/// Injects `error` on the next produce request: that callback fails, the producer is replaced,
/// and the next callback is acked and lands.
async fn broken_producer_is_replaced(error: RDKafkaRespErr) {
    let app = spawn_app().await;
    app.wait_for_readyz(200).await;
    assert_eq!(
        app.post_json(&signed(json!({"call_id": "before"})))
            .await
            .status,
        200
    );
    app.cluster.request_errors(RDKafkaApiKey::Produce, &[error]);
    let during = app.post_json(&signed(json!({"call_id": "during"}))).await;
    assert_eq!(
        (during.status, during.body["error"].as_str()),
        (503, Some("broker_unavailable")),
        "{during:?}"
    );
    let after = app.post_json(&signed(json!({"call_id": "after"}))).await;
    assert_eq!(after.status, 200, "{after:?}");
    assert_eq!(
        app.metric("zego_producer_replacements_total{reason=\"fenced\"}")
            .await,
        1.0
    );
    assert_eq!(keys(&app), set(&["after", "before"]));
}

#[actix_web::test]
async fn producer_fenced_producer_is_replaced() {
    broken_producer_is_replaced(RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED).await;
}

#[actix_web::test]
async fn invalid_producer_epoch_producer_is_replaced() {
    broken_producer_is_replaced(RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH).await;
}

#[actix_web::test]
async fn out_of_order_sequence_producer_is_replaced() {
    broken_producer_is_replaced(RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER)
        .await;
}

#[actix_web::test]
async fn fatal_error_producer_is_replaced_without_waiting_for_traffic() {
    let app = spawn_app().await;
    app.wait_for_readyz(200).await;
    app.publisher
        .raise_fatal_error_for_tests("test: simulated fatal idempotence error");
    // The background probe notices the fatal state and replaces the producer on its own.
    let deadline = Instant::now() + crate::helpers::WAIT_LIMIT;
    while app
        .metric("zego_producer_replacements_total{reason=\"fatal\"}")
        .await
        < 1.0
    {
        assert!(
            Instant::now() < deadline,
            "the fatally failed producer was never replaced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = app
        .post_json(&signed(json!({"call_id": "after-fatal"})))
        .await;
    assert_eq!(after.status, 200, "{after:?}");
    assert_eq!(keys(&app), set(&["after-fatal"]));
}
