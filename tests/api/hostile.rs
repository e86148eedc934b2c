//! Hostile input: malformed and malicious requests, each with its status and code, none of
//! them producing a record.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use awc::http::Method;
use bytes::Bytes;
use serde_json::{json, Value};
use zego_kafka_bridge::testing::hostile_bodies;

use crate::helpers::{signed, spawn_app, TestApp, TOPIC};

/// The contract's status for an error code (README, "HTTP interface").
fn status_of(code: &str) -> u16 {
    match code {
        "malformed_body" | "missing_field" | "invalid_field" => 400,
        "invalid_signature" | "stale_timestamp" => 401,
        "unknown_app" => 403,
        "not_found" => 404,
        "method_not_allowed" => 405,
        "body_timeout" => 408,
        "body_too_large" => 413,
        "unsupported_media_type" => 415,
        "unsupported_event" => 422,
        other => panic!("no status for {other}"),
    }
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut request = app.client.request(method, format!("{}{path}", app.address));
    if let Some(content_type) = content_type {
        request = request.insert_header(("Content-Type", content_type));
    }
    let mut response = request
        .send_body(Bytes::from(body))
        .await
        .expect("answered");
    let body = response.body().limit(1 << 20).await.unwrap_or_default();
    (
        response.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// One request: name, method, path, content type, body, and the error code it must get.
type HostileRequest<'a> = (String, Method, &'a str, Option<&'a str>, Vec<u8>, &'a str);

/// The unit table over real HTTP, plus what only HTTP can get wrong (methods, paths, sizes):
/// each answer has its status and code, nothing lands, and a genuine callback still does.
#[actix_web::test]
async fn every_hostile_request_gets_its_status_and_code_and_lands_nothing() {
    let app = spawn_app().await;
    let seed = serde_json::to_vec(&signed(json!({}))).unwrap();
    let huge = serde_json::to_vec(&signed(json!({"call_id": "c".repeat(1 << 20)}))).unwrap();
    let json = Some("application/json");
    let mut requests: Vec<HostileRequest> = hostile_bodies()
        .into_iter()
        .map(|c| {
            (
                c.name.to_string(),
                Method::POST,
                "/zego/callback",
                c.content_type,
                c.body,
                c.code,
            )
        })
        .collect();
    #[rustfmt::skip]
    requests.extend([
        ("1 MB body".into(), Method::POST, "/zego/callback", json, huge, "body_too_large"),
        ("GET on the callback path".into(), Method::GET, "/zego/callback", None, vec![], "method_not_allowed"),
        ("PUT on the callback path".into(), Method::PUT, "/zego/callback", json, seed.clone(), "method_not_allowed"),
        ("POST to another path".into(), Method::POST, "/zego/callback/x", json, seed.clone(), "not_found"),
        ("POST to the root".into(), Method::POST, "/", json, seed.clone(), "not_found"),
    ]);
    let mut wrong = Vec::new();
    for (name, method, path, content_type, body, code) in requests {
        let (status, answer) = send(&app, method, path, content_type, body).await;
        if status != status_of(code) || answer["error"] != json!(code) {
            wrong.push(format!(
                "{name}: expected {} {code}, got {status} {answer}",
                status_of(code)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        app.records(TOPIC).is_empty(),
        "a hostile request reached Kafka"
    );
    assert_eq!(app.post_json(&signed(json!({}))).await.status, 200);
}

#[actix_web::test]
async fn a_client_dribbling_its_body_is_cut_off_with_408() {
    let app = spawn_app().await;
    let port = app.address.rsplit(':').next().unwrap().to_string();
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let head = "POST /zego/callback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"appid\":";
        stream.write_all(head.as_bytes()).unwrap();
        // Then nothing more: the bridge must not wait for ever.
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    assert!(app.records(TOPIC).is_empty());
}
