//! Hostile input: malformed and malicious requests, each with its status and code, none of
//! them producing a record.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use awc::http::Method;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::helpers::{resign, signed, spawn_app, TestApp, TOPIC};

const JSON: Option<&str> = Some("application/json");
const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

/// One hostile request and what it must get.
struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn post(
    name: &'static str,
    content_type: Option<&'static str>,
    body: impl Into<Vec<u8>>,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        name,
        method: Method::POST,
        path: "/zego/callback",
        content_type,
        body: body.into(),
        status,
        code,
    }
}

fn json_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

/// A signed seed with `field` set to `value` (signature recomputed, so the field check is hit).
fn with_field(field: &str, value: Value) -> Vec<u8> {
    let mut body = signed(json!({}));
    body[field] = value;
    resign(&mut body);
    json_bytes(&body)
}

fn without(field: &str) -> Vec<u8> {
    let mut body = signed(json!({}));
    body.as_object_mut().unwrap().remove(field);
    if field != "signature" {
        resign(&mut body);
    }
    json_bytes(&body)
}

fn signature(value: Value) -> Vec<u8> {
    let mut body = signed(json!({}));
    body["signature"] = value;
    json_bytes(&body)
}

fn cases() -> Vec<Case> {
    let seed = signed(json!({}));
    let seed_text = serde_json::to_string(&seed).unwrap();
    let right_signature = seed["signature"].as_str().unwrap().to_string();
    let deep = |depth: usize| format!("{{\"a\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    vec![
        // Not parseable.
        post(
            "truncated JSON",
            JSON,
            &seed_text[..seed_text.len() / 2],
            400,
            "malformed_body",
        ),
        post(
            "JSON with trailing garbage",
            JSON,
            format!("{seed_text}}}"),
            400,
            "malformed_body",
        ),
        post("nested 200 deep", JSON, deep(200), 400, "malformed_body"),
        post(
            "nested 20000 deep",
            JSON,
            deep(20_000),
            400,
            "malformed_body",
        ),
        post(
            "invalid UTF-8 in a JSON string",
            JSON,
            b"{\"call_id\":\"\xc3\x28\"}".to_vec(),
            400,
            "malformed_body",
        ),
        post(
            "lone surrogate escape",
            JSON,
            r#"{"call_id":"\ud800"}"#,
            400,
            "malformed_body",
        ),
        post(
            "NUL byte in JSON",
            JSON,
            b"{\"a\":\x00}".to_vec(),
            400,
            "malformed_body",
        ),
        post(
            "byte order mark",
            JSON,
            format!("\u{feff}{seed_text}"),
            400,
            "malformed_body",
        ),
        post(
            "duplicate call_id keys",
            JSON,
            seed_text.replacen('{', "{\"call_id\":\"smuggled\",", 1),
            400,
            "malformed_body",
        ),
        post(
            "duplicate nested keys",
            JSON,
            seed_text.replacen('{', "{\"x\":{\"k\":1,\"k\":2},", 1),
            400,
            "malformed_body",
        ),
        post("empty body", JSON, "", 400, "malformed_body"),
        post("whitespace body", JSON, " \r\n\t ", 400, "malformed_body"),
        post(
            "JSON array",
            JSON,
            "[{\"call_id\":\"x\"}]",
            400,
            "malformed_body",
        ),
        post(
            "JSON string",
            JSON,
            "\"call_accept\"",
            400,
            "malformed_body",
        ),
        post("JSON null", JSON, "null", 400, "malformed_body"),
        post(
            "broken percent-encoding",
            JSON,
            "%7B%ZZ%22",
            400,
            "malformed_body",
        ),
        post(
            "invalid UTF-8 in a form",
            FORM,
            "appid=%FF%FE",
            400,
            "malformed_body",
        ),
        post(
            "form of separators only",
            FORM,
            "&&&",
            400,
            "malformed_body",
        ),
        // Fields absent or of the wrong type.
        post(
            "no timestamp",
            JSON,
            without("timestamp"),
            400,
            "missing_field",
        ),
        post("no event", JSON, without("event"), 400, "missing_field"),
        post("no call_id", JSON, without("call_id"), 400, "missing_field"),
        post("no user_id", JSON, without("user_id"), 400, "missing_field"),
        post(
            "nonce as an array",
            JSON,
            with_field("nonce", json!(["1"])),
            400,
            "invalid_field",
        ),
        post(
            "timestamp of 100 digits",
            JSON,
            with_field("timestamp", json!("1".repeat(100))),
            400,
            "invalid_field",
        ),
        post(
            "timestamp as a fraction",
            JSON,
            with_field("timestamp", json!(now as f64 + 0.5)),
            400,
            "invalid_field",
        ),
        post(
            "appid as a boolean",
            JSON,
            with_field("appid", json!(true)),
            400,
            "invalid_field",
        ),
        post(
            "appid as a 100-digit number",
            JSON,
            with_field(
                "appid",
                serde_json::from_str::<Value>(&"9".repeat(100)).unwrap(),
            ),
            400,
            "invalid_field",
        ),
        post(
            "event as a number",
            JSON,
            with_field("event", json!(3)),
            400,
            "invalid_field",
        ),
        post(
            "call_id as a number",
            JSON,
            with_field("call_id", json!(3501761173612493269u64)),
            400,
            "invalid_field",
        ),
        post(
            "empty call_id",
            JSON,
            with_field("call_id", json!("")),
            400,
            "invalid_field",
        ),
        post(
            "user_id as an object",
            JSON,
            with_field("user_id", json!({"id": "abc"})),
            400,
            "invalid_field",
        ),
        post(
            "extend_data as a number",
            JSON,
            with_field("extend_data", json!(1)),
            400,
            "invalid_field",
        ),
        // Not genuine.
        post(
            "no signature",
            JSON,
            without("signature"),
            401,
            "invalid_signature",
        ),
        post(
            "signature in upper case",
            JSON,
            signature(json!(right_signature.to_uppercase())),
            401,
            "invalid_signature",
        ),
        post(
            "signature one digit short",
            JSON,
            signature(json!(right_signature[..39])),
            401,
            "invalid_signature",
        ),
        post(
            "signature one digit long",
            JSON,
            signature(json!(format!("{right_signature}0"))),
            401,
            "invalid_signature",
        ),
        post(
            "empty signature",
            JSON,
            signature(json!("")),
            401,
            "invalid_signature",
        ),
        post(
            "signature as a number",
            JSON,
            signature(json!(12345)),
            401,
            "invalid_signature",
        ),
        post(
            "signature not hex",
            JSON,
            signature(json!("z".repeat(40))),
            401,
            "invalid_signature",
        ),
        post(
            "timestamp an hour ahead",
            JSON,
            with_field("timestamp", json!(now + 3600)),
            401,
            "stale_timestamp",
        ),
        post(
            "negative timestamp",
            JSON,
            with_field("timestamp", json!(-1)),
            401,
            "stale_timestamp",
        ),
        // Not ours to take.
        post(
            "unknown event",
            JSON,
            with_field("event", json!("call_hijack")),
            422,
            "unsupported_event",
        ),
        post(
            "1 MB call_id",
            JSON,
            with_field("call_id", json!("c".repeat(1 << 20))),
            413,
            "body_too_large",
        ),
        post(
            "no content type",
            None,
            seed_text.clone(),
            415,
            "unsupported_media_type",
        ),
        post(
            "text/plain",
            Some("text/plain"),
            seed_text.clone(),
            415,
            "unsupported_media_type",
        ),
        post(
            "multipart",
            Some("multipart/form-data; boundary=x"),
            seed_text.clone(),
            415,
            "unsupported_media_type",
        ),
        Case {
            name: "GET on the callback path",
            method: Method::GET,
            path: "/zego/callback",
            content_type: None,
            body: vec![],
            status: 405,
            code: "method_not_allowed",
        },
        Case {
            name: "PUT on the callback path",
            method: Method::PUT,
            path: "/zego/callback",
            content_type: JSON,
            body: seed_text.clone().into(),
            status: 405,
            code: "method_not_allowed",
        },
        Case {
            name: "POST to another path",
            method: Method::POST,
            path: "/zego/callback/x",
            content_type: JSON,
            body: seed_text.clone().into(),
            status: 404,
            code: "not_found",
        },
        Case {
            name: "POST to the root",
            method: Method::POST,
            path: "/",
            content_type: JSON,
            body: seed_text.into(),
            status: 404,
            code: "not_found",
        },
    ]
}

async fn send(app: &TestApp, case: &Case) -> (u16, Value) {
    let mut request = app
        .client
        .request(case.method.clone(), format!("{}{}", app.address, case.path));
    if let Some(content_type) = case.content_type {
        request = request.insert_header(("Content-Type", content_type));
    }
    let mut response = request
        .send_body(Bytes::from(case.body.clone()))
        .await
        .expect(case.name);
    let body = response.body().limit(1 << 20).await.unwrap_or_default();
    (
        response.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

#[actix_web::test]
async fn every_hostile_request_gets_its_status_and_code_and_lands_nothing() {
    let app = spawn_app().await;
    let cases = cases();
    assert!(cases.len() >= 40);
    let mut wrong = Vec::new();
    for case in &cases {
        let (status, body) = send(&app, case).await;
        if status != case.status || body["error"] != json!(case.code) {
            wrong.push(format!(
                "{}: expected {} {}, got {status} {body}",
                case.name, case.status, case.code
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        app.records(TOPIC).is_empty(),
        "a hostile request reached Kafka"
    );
    // And the bridge still serves a genuine callback.
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
