//! Health, readiness, metrics and graceful shutdown.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{signed, spawn_app, spawn_app_with, PATIENT_DELIVERY, TOPIC};

#[actix_web::test]
async fn healthz_answers_while_serving() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.0, 200);
    // HEAD as well as GET, for probes that use it; no body.
    for path in ["/healthz", "/readyz"] {
        let mut head = app
            .client
            .head(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_ne!(head.status().as_u16(), 404, "HEAD {path}");
        assert_ne!(head.status().as_u16(), 405, "HEAD {path}");
        assert!(
            head.body().await.unwrap().is_empty(),
            "HEAD {path} has no body"
        );
    }
}

#[actix_web::test]
async fn readyz_follows_the_broker() {
    let app = spawn_app().await;
    app.wait_for_readyz(200).await;
    assert_eq!(app.metric("zego_broker_reachable").await, 1.0);
    app.cluster.broker_down(1).unwrap();
    app.wait_for_readyz(503).await;
    assert_eq!(
        app.get("/healthz").await.0,
        200,
        "liveness does not depend on the broker"
    );
    app.cluster.broker_up(1).unwrap();
    app.wait_for_readyz(200).await;
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
        .metric(r#"zego_callbacks_total{code="ok",event="call_accept",family="call",status="200"}"#)
        .await;
    let dup = app
        .metric(r#"zego_callbacks_total{code="duplicate",event="call_accept",family="call",status="200"}"#)
        .await;
    let bad = app
        .metric(r#"zego_callbacks_total{code="invalid_signature",event="unparsed",family="unknown",status="401"}"#)
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
    let mut app = spawn_app_with(&[PATIENT_DELIVERY]).await;
    app.wait_for_readyz(200).await;
    app.cluster
        .broker_round_trip_time(1, Duration::from_millis(700))
        .unwrap();
    let body = signed(json!({"call_id": "in-flight"}));
    let (answer, ()) = tokio::join!(app.post_json(&body), async {
        app.wait_for_in_flight().await;
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

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[actix_web::test]
async fn https_ingress_accepts_a_signed_callback_and_it_lands() {
    let dir = temp_dir("https-ingress");
    crate::certs::make_certificates(&dir);
    let cert = dir.join("server.pem").display().to_string();
    let key = dir.join("server.key").display().to_string();
    let app =
        crate::helpers::spawn_app_with(&[("TLS_CERT_FILE", &cert), ("TLS_KEY_FILE", &key)]).await;
    let port = app.address.rsplit(':').next().unwrap().to_string();
    let body = serde_json::to_string(&signed(json!({"call_id": "over-https"}))).unwrap();
    // curl as an independent HTTPS client that verifies the chain against the test CA.
    let ca = dir.join("ca.pem").display().to_string();
    let url = format!("https://localhost:{port}/zego/callback");
    // Blocking the test's runtime would stall the server it drives: run curl off it.
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args([
                "-sS",
                "--cacert",
                &ca,
                "-H",
                "Content-Type: application/json",
            ])
            // --http2: the bridge must not agree to HTTP/2 (it serves HTTP/1.1 only).
            .args([
                "--http2",
                "-d",
                &body,
                "-w",
                "\n%{http_version} %{http_code}",
                &url,
            ])
            .args(["--max-time", "20"])
            .output()
            .expect("curl")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.trim_end().ends_with("1.1 200"),
        "{text} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let keys: Vec<_> = app
        .records(TOPIC)
        .into_iter()
        .filter_map(|r| r.key)
        .collect();
    assert_eq!(keys, ["over-https"]);
    // Plain HTTP on the HTTPS port gets no answer.
    assert!(app
        .client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .is_err());
}

fn build_error(extra: &[(&str, &str)]) -> String {
    let mut vars = vec![
        ("KAFKA_BROKERS", "127.0.0.1:1"),
        ("ZEGO_CALLBACK_SECRET", "s"),
    ];
    vars.extend_from_slice(extra);
    let settings = zego_kafka_bridge::config::Settings::from_vars(
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    zego_kafka_bridge::startup::Application::build(settings, listener)
        .err()
        .expect("start-up refused")
        .to_string()
}

#[actix_web::test]
async fn bad_certificate_path_or_unreadable_key_fails_start_up_with_one_line() {
    let dir = temp_dir("https-bad");
    crate::certs::make_certificates(&dir);
    let cert = dir.join("server.pem").display().to_string();
    let missing = build_error(&[
        ("TLS_CERT_FILE", "/nonexistent/cert.pem"),
        ("TLS_KEY_FILE", &cert),
    ]);
    assert!(
        missing.contains("TLS_CERT_FILE /nonexistent/cert.pem") && !missing.contains('\n'),
        "{missing}"
    );
    let not_a_key = build_error(&[("TLS_CERT_FILE", &cert), ("TLS_KEY_FILE", &cert)]);
    assert!(not_a_key.contains("TLS_KEY_FILE"), "{not_a_key}");
    let key = dir.join("server.key");
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let broken = build_error(&[
        ("TLS_CERT_FILE", &cert),
        ("TLS_KEY_FILE", &key.display().to_string()),
    ]);
    assert!(
        broken.contains("TLS_KEY_FILE") && !broken.contains("not base64"),
        "{broken}"
    );
}

#[actix_web::test]
async fn queue_gauges_come_from_librdkafka_statistics() {
    // Statistics every 100 ms instead of 5 s, and a broker slow enough (0.8 s a request) for a
    // record to sit in librdkafka's queue across several statistics reports.
    let app = spawn_app_with(&[
        ("KAFKA_OPT_STATISTICS_INTERVAL_MS", "100"),
        PATIENT_DELIVERY,
    ])
    .await;
    app.wait_for_readyz(200).await;
    app.cluster
        .broker_round_trip_time(1, Duration::from_millis(800))
        .unwrap();
    let body = signed(json!({"call_id": "queued"}));
    let (answer, queued) = tokio::join!(app.post_json(&body), async {
        let deadline = std::time::Instant::now() + crate::helpers::WAIT_LIMIT;
        while app.metric("zego_kafka_queue_messages").await < 1.0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the queue gauge never showed the record"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        app.metric("zego_kafka_queue_bytes").await
    });
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(queued > 0.0, "queued bytes {queued}");
}

#[actix_web::test]
async fn metrics_tell_which_rotated_secret_signs_the_callbacks() {
    // The test signer uses the second secret of the rotation.
    let secrets = format!("old-secret,{}", crate::helpers::SECRET);
    let app = spawn_app_with(&[("ZEGO_CALLBACK_SECRET", &secrets)]).await;
    assert_eq!(app.post_json(&signed(json!({}))).await.status, 200);
    assert_eq!(
        app.metric(r#"zego_signature_secret_total{secret="2"}"#)
            .await,
        1.0
    );
    assert_eq!(
        app.metric(r#"zego_signature_secret_total{secret="1"}"#)
            .await,
        0.0
    );
}
