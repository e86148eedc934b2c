//! One test per row of the status table (README, "HTTP interface"), each checking what landed in the topic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::stream;
use serde_json::{json, Value};

use crate::helpers::{signed, spawn_app, spawn_app_with, Answer, TestApp, SECRET, TOPIC};
use zego_kafka_bridge::callback::signature::sign;

fn assert_refused(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(answer.body["ok"], json!(false), "{answer:?}");
    assert_eq!(answer.body["error"], json!(code), "{answer:?}");
    assert!(
        answer.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{answer:?}"
    );
}

fn assert_nothing_landed(app: &TestApp) {
    assert!(
        app.records(TOPIC).is_empty(),
        "a refused callback reached Kafka"
    );
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

#[actix_web::test]
async fn ok_200_only_with_the_record_in_kafka_key_value_and_headers() {
    let app = spawn_app().await;
    let body = signed(json!({}));
    let bytes = serde_json::to_vec(&body).unwrap();
    let before = now_ms();
    let answer = app.post_raw(bytes.clone(), Some("application/json")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["ok"], json!(true));
    assert_eq!(answer.body["topic"], json!(app.topic(TOPIC)));
    let records = app.records(TOPIC);
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(json!(record.partition), answer.body["partition"]);
    assert_eq!(json!(record.offset), answer.body["offset"]);
    assert_eq!(record.key.as_deref(), Some("3501761173612493269"));
    assert_eq!(record.value, bytes, "the JSON body's bytes, unchanged");
    assert_eq!(record.headers["zego-event"], "call_accept");
    assert_eq!(record.headers["zego-appid"], "1");
    assert_eq!(record.headers["content-type"], "application/json");
    let mut stable = body.as_object().unwrap().clone();
    for field in ["nonce", "timestamp", "signature"] {
        stable.remove(field);
    }
    let expected_id = hex::encode(<sha1::Sha1 as sha1::Digest>::digest(
        serde_json::to_vec(&stable).unwrap(),
    ));
    assert_eq!(record.headers["zego-callback-id"], expected_id);
    let received_at: u128 = record.headers["received-at"].parse().unwrap();
    assert!(
        received_at >= before - 1 && received_at <= now_ms(),
        "received-at {received_at}"
    );
}

#[actix_web::test]
async fn ok_200_for_form_and_percent_encoded_bodies_published_as_json_objects() {
    let app = spawn_app().await;
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let form = format!(
        "appid=1&event=call_accept&nonce=42&timestamp={ts}&signature={}&call_id=form-call&user_id=a+b&extend_data=%7Bx%7D",
        sign(SECRET, &ts, "42")
    );
    let answer = app
        .post_raw(form, Some("application/x-www-form-urlencoded"))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let json_text = serde_json::to_string(&signed(json!({"call_id": "encoded-call"}))).unwrap();
    let encoded =
        percent_encoding::utf8_percent_encode(&json_text, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    assert_eq!(
        app.post_raw(encoded, Some("application/json")).await.status,
        200
    );

    let records = app.records(TOPIC);
    let form_record = records
        .iter()
        .find(|r| r.key.as_deref() == Some("form-call"))
        .unwrap();
    let value = form_record.json();
    assert_eq!(
        (value["user_id"].as_str(), value["extend_data"].as_str()),
        (Some("a b"), Some("{x}"))
    );
    assert_eq!(value["timestamp"], json!(ts), "form values stay as sent");
    let encoded_record = records
        .iter()
        .find(|r| r.key.as_deref() == Some("encoded-call"))
        .unwrap();
    assert_eq!(
        encoded_record.value,
        json_text.as_bytes(),
        "the decoded JSON text"
    );
}

#[actix_web::test]
async fn bad_request_400_malformed_missing_or_invalid() {
    let app = spawn_app().await;
    let json_type = Some("application/json");
    assert_refused(
        &app.post_raw("{\"appid\":", json_type).await,
        400,
        "malformed_body",
    );
    assert_refused(&app.post_raw("[1]", json_type).await, 400, "malformed_body");
    let mut no_call = signed(json!({}));
    no_call.as_object_mut().unwrap().remove("call_id");
    assert_refused(&app.post_json(&no_call).await, 400, "missing_field");
    assert_refused(
        &app.post_json(&signed(json!({"call_id": ""}))).await,
        400,
        "invalid_field",
    );
    assert_refused(
        &app.post_json(&signed(json!({"user_id": 7}))).await,
        400,
        "invalid_field",
    );
    assert_nothing_landed(&app);
}

#[actix_web::test]
async fn unauthorized_401_bad_signature() {
    let app = spawn_app().await;
    let mut forged = signed(json!({}));
    forged["signature"] = json!(sign("guessed-secret", "1", "2"));
    assert_refused(&app.post_json(&forged).await, 401, "invalid_signature");
    forged.as_object_mut().unwrap().remove("signature");
    assert_refused(&app.post_json(&forged).await, 401, "invalid_signature");
    assert_nothing_landed(&app);
}

#[actix_web::test]
async fn unauthorized_401_stale_timestamp() {
    let app = spawn_app().await;
    let old = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 301;
    assert_refused(
        &app.post_json(&signed(json!({"timestamp": old}))).await,
        401,
        "stale_timestamp",
    );
    assert_nothing_landed(&app);
}

#[actix_web::test]
async fn forbidden_403_unknown_app() {
    let app = spawn_app_with(&[("ZEGO_APP_IDS", "7,8")]).await;
    assert_refused(
        &app.post_json(&signed(json!({"appid": "9"}))).await,
        403,
        "unknown_app",
    );
    assert_eq!(
        app.post_json(&signed(json!({"appid": 8}))).await.status,
        200
    );
    assert_eq!(app.records(TOPIC).len(), 1);
}

#[actix_web::test]
async fn payload_too_large_413_with_and_without_content_length() {
    let app = spawn_app_with(&[("MAX_BODY_BYTES", "1024")]).await;
    let big = signed(json!({"extend_data": "x".repeat(2000)}));
    assert_refused(&app.post_json(&big).await, 413, "body_too_large");
    // Chunked: no Content-Length, the limit is enforced while reading.
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        vec![Ok(Bytes::from(serde_json::to_vec(&big).unwrap()))];
    let mut response = app
        .client
        .post(&app.callback_url)
        .content_type("application/json")
        .send_stream(stream::iter(chunks))
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&response.body().await.unwrap()).unwrap();
    assert_refused(
        &Answer {
            status: response.status().as_u16(),
            body,
        },
        413,
        "body_too_large",
    );
    assert_nothing_landed(&app);
}

#[actix_web::test]
async fn unsupported_media_type_415() {
    let app = spawn_app().await;
    let body = serde_json::to_vec(&signed(json!({}))).unwrap();
    assert_refused(
        &app.post_raw(body.clone(), Some("text/plain")).await,
        415,
        "unsupported_media_type",
    );
    assert_refused(
        &app.post_raw(body, None).await,
        415,
        "unsupported_media_type",
    );
    assert_nothing_landed(&app);
}

#[actix_web::test]
async fn unprocessable_422_unsupported_event() {
    let app = spawn_app().await;
    assert_refused(
        &app.post_json(&signed(json!({"event": "call_dance"}))).await,
        422,
        "unsupported_event",
    );
    assert_nothing_landed(&app);
}

#[actix_web::test]
async fn service_unavailable_503_overloaded_at_max_in_flight() {
    let app = spawn_app_with(&[("MAX_IN_FLIGHT", "1"), crate::helpers::PATIENT_DELIVERY]).await;
    app.wait_for_readyz(200).await;
    // A slow broker keeps the first callback in flight while the second arrives.
    app.cluster
        .broker_round_trip_time(1, Duration::from_millis(800))
        .unwrap();
    let first = signed(json!({"call_id": "first"}));
    let second = signed(json!({"call_id": "second"}));
    let (a, b) = tokio::join!(app.post_json(&first), async {
        app.wait_for_in_flight().await;
        app.post_json(&second).await
    });
    assert_eq!(a.status, 200, "{a:?}");
    assert_refused(&b, 503, "overloaded");
    let keys: Vec<_> = app
        .records(TOPIC)
        .into_iter()
        .filter_map(|r| r.key)
        .collect();
    assert_eq!(keys, ["first"]);
}

#[actix_web::test]
async fn unknown_path_and_wrong_method_answer_json() {
    let app = spawn_app().await;
    let (status, body) = app.get("/nowhere").await;
    assert_eq!(status, 404);
    assert!(body.contains("not_found"));
    let (status, body) = app.get("/zego/callback").await;
    assert_eq!(status, 405);
    assert!(body.contains("method_not_allowed"));
}

#[actix_web::test]
async fn service_unavailable_503_overloaded_past_the_byte_budget() {
    // Room for one 3 KB callback, not two: the first holds its bytes until its slow ack.
    let app = spawn_app_with(&[
        ("MAX_BODY_BYTES", "4096"),
        ("MAX_BUFFERED_BYTES", "5000"),
        crate::helpers::PATIENT_DELIVERY,
    ])
    .await;
    app.wait_for_readyz(200).await;
    app.cluster
        .broker_round_trip_time(1, Duration::from_millis(800))
        .unwrap();
    let padding = "x".repeat(3000);
    let first = signed(json!({"call_id": "first", "extend_data": padding}));
    let second = signed(json!({"call_id": "second", "extend_data": padding}));
    let (a, b) = tokio::join!(app.post_json(&first), async {
        app.wait_for_in_flight().await;
        app.post_json(&second).await
    });
    assert_eq!(a.status, 200, "{a:?}");
    assert_refused(&b, 503, "overloaded");
    // The budget comes back with the answer: the retry fits.
    assert_eq!(app.post_json(&second).await.status, 200);
    let mut keys: Vec<_> = app
        .records(TOPIC)
        .into_iter()
        .filter_map(|r| r.key)
        .collect();
    keys.sort();
    assert_eq!(keys, ["first", "second"]);
}

/// Request heads that declare a large body and send almost nothing hold almost nothing: the
/// byte budget counts bytes held, not the declared `Content-Length`, so they cannot make a
/// genuine callback 503 (twenty such heads declare 1.3 MB against a 256 KiB budget).
#[actix_web::test]
async fn declared_but_unsent_bodies_do_not_exhaust_the_byte_budget() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_with(&[("MAX_BUFFERED_BYTES", "262144")]).await;
    app.wait_for_readyz(200).await;
    let address = app.address.trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream
            .write_all(b"POST /zego/callback HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\nContent-Length: 65536\r\n\r\n{")
            .await
            .unwrap();
        held.push(stream);
    }
    // Every head was read and its first body byte charged: 20 bytes held, not 1.3 MB.
    app.wait_for_metric("zego_buffered_bytes", 20.0).await;
    let genuine = app
        .post_json(&signed(json!({"call_id": "despite-heads"})))
        .await;
    assert_eq!(genuine.status, 200, "{genuine:?}");
    assert_eq!(app.metric("zego_buffered_bytes").await, 20.0);
    drop(held);
    let keys: Vec<_> = app
        .records(TOPIC)
        .into_iter()
        .filter_map(|r| r.key)
        .collect();
    assert_eq!(keys, ["despite-heads"]);
}
