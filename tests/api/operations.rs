//! Health, readiness, metrics and graceful shutdown.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{signed, spawn_app, TOPIC};

#[actix_web::test]
async fn healthz_answers_while_serving() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.0, 200);
}

#[actix_web::test]
async fn readyz_follows_the_broker() {
    let app = spawn_app().await;
    app.wait_for_readyz(200, Duration::from_secs(5)).await;
    assert_eq!(app.metric("zego_broker_reachable").await, 1.0);
    app.cluster.broker_down(1).unwrap();
    app.wait_for_readyz(503, Duration::from_secs(10)).await;
    assert_eq!(
        app.get("/healthz").await.0,
        200,
        "liveness does not depend on the broker"
    );
    app.cluster.broker_up(1).unwrap();
    app.wait_for_readyz(200, Duration::from_secs(15)).await;
}

#[actix_web::test]
async fn metrics_count_known_traffic() {
    let app = spawn_app().await;
    assert_eq!(
        app.post_json(&signed(json!({"nonce": "1"}))).await.status,
        200
    );
    assert_eq!(
        app.post_json(&signed(json!({"nonce": "2"}))).await.status,
        200
    );
    let mut forged = signed(json!({}));
    forged["signature"] = json!("0".repeat(40));
    assert_eq!(app.post_json(&forged).await.status, 401);

    let ok = app
        .metric(r#"zego_callbacks_total{code="ok",event="call_accept",status="200"}"#)
        .await;
    let dup = app
        .metric(r#"zego_callbacks_total{code="duplicate",event="call_accept",status="200"}"#)
        .await;
    let bad = app
        .metric(r#"zego_callbacks_total{code="invalid_signature",event="unparsed",status="401"}"#)
        .await;
    assert_eq!((ok, dup, bad), (1.0, 1.0, 1.0));
    assert_eq!(app.metric("zego_duplicates_total").await, 1.0);
    assert_eq!(
        app.metric(r#"zego_publish_duration_seconds_count{outcome="acked"}"#)
            .await,
        1.0
    );
    assert_eq!(app.metric("zego_in_flight").await, 0.0);
    let (_, text) = app.get("/metrics").await;
    assert!(text.contains("zego_build_info{librdkafka="), "{text}");
    assert!(text.contains("zego_kafka_queue_messages"));
}

#[actix_web::test]
async fn shutdown_lets_the_callback_in_flight_finish_then_stops_accepting() {
    let mut app = spawn_app().await;
    app.wait_for_readyz(200, Duration::from_secs(10)).await;
    app.cluster
        .broker_round_trip_time(1, Duration::from_millis(700))
        .unwrap();
    let body = signed(json!({"call_id": "in-flight"}));
    let (answer, ()) = tokio::join!(app.post_json(&body), async {
        while app.metric("zego_in_flight").await < 1.0 {
            tokio::task::yield_now().await;
        }
        app.begin_shutdown();
    });
    assert_eq!(
        answer.status, 200,
        "the in-flight callback was answered: {answer:?}"
    );
    app.shut_down().await;
    assert!(
        app.client
            .get(format!("{}/healthz", app.address))
            .send()
            .await
            .is_err(),
        "still accepting"
    );
    let keys: Vec<_> = app
        .records(TOPIC)
        .into_iter()
        .filter_map(|r| r.key)
        .collect();
    assert_eq!(keys, ["in-flight"]);
}

#[actix_web::test]
async fn tls_settings_fail_start_up_instead_of_serving_plain_http() {
    let settings = zego_kafka_bridge::config::Settings::from_vars(
        [
            ("KAFKA_BROKERS", "127.0.0.1:1"),
            ("ZEGO_CALLBACK_SECRET", "s"),
            ("TLS_CERT_FILE", "/etc/cert.pem"),
            ("TLS_KEY_FILE", "/etc/key.pem"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let error = zego_kafka_bridge::startup::Application::build(settings, listener)
        .err()
        .expect("refused");
    assert!(error.to_string().contains("TLS_CERT_FILE"), "{error}");
}
