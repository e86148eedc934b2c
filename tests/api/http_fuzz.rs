//! HTTP-level fuzzing of the whole server, not only the body decoder: random request lines,
//! headers and framings (duplicate and contradictory lengths, smuggling-style transfer
//! encodings, injected line breaks, broken chunks), some carrying genuine signed callbacks.
//! Every connection gets a well-formed answer or is closed, nothing panics, the bridge keeps
//! serving, and whatever lands in Kafka is a valid record.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

use crate::helpers::{signed, spawn_app, TOPIC, WAIT_LIMIT};

fn request_line() -> impl Strategy<Value = String> {
    let method = prop::sample::select(vec!["POST", "GET", "PUT", "post", "P0ST", "", "POST POST"]);
    let path = prop::sample::select(vec![
        "/zego/callback",
        "/zego/callback?x=1",
        "//zego/callback",
        "/zego/callback/",
        "/zego/%63allback",
        "*",
        "/metrics",
        "",
    ]);
    let version = prop::sample::select(vec!["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1x", ""]);
    // Mostly the real thing, so most cases reach the framing and the handler.
    prop_oneof![
        6 => Just("POST /zego/callback HTTP/1.1\r\n".to_string()),
        1 => (method, path, version).prop_map(|(m, p, v)| format!("{m} {p} {v}\r\n")),
    ]
}

/// Usually the headers a genuine callback has, plus the fuzzed ones.
fn headers() -> impl Strategy<Value = Vec<String>> {
    let usual = vec![
        "Host: bridge".to_string(),
        "Content-Type: application/json".to_string(),
    ];
    (any::<bool>(), prop::collection::vec(header(), 0..4)).prop_map(move |(keep, extra)| {
        let mut all = if keep { usual.clone() } else { Vec::new() };
        all.extend(extra);
        all
    })
}

fn header() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "Host: bridge",
        "Host: a\r\nHost: b",
        "Content-Type: application/json",
        "Content-Type: application/x-www-form-urlencoded",
        "Content-Type: text/plain",
        "Content-Type: application/json\r\nContent-Type: application/json",
        "Content-Length: 0",
        "Content-Length: 5",
        "Content-Length: -1",
        "Content-Length: 99999999999999999999",
        "Content-Length: 10\r\nContent-Length: 20",
        "Content-Length: 1e3",
        "Transfer-Encoding: chunked",
        "Transfer-Encoding: chunked, chunked",
        "Transfer-Encoding: gzip, chunked",
        "Transfer-Encoding: identity",
        "Transfer-Encoding : chunked",
        "Content-Encoding: gzip",
        "Expect: 100-continue",
        "Expect: 999-nothing",
        "Connection: keep-alive",
        "Connection: upgrade\r\nUpgrade: websocket",
        "X-Injected: a\rb",
        "X-Nul: a\0b",
        " X-Folded: continued",
        "X-Long: llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllll",
    ])
    .prop_map(String::from)
}

/// A body and the framing header that goes with it (`None`: left to the fuzzed headers).
fn body(seed: Vec<u8>) -> impl Strategy<Value = (Vec<u8>, Option<String>)> {
    let sized = |body: Vec<u8>| {
        let header = format!("Content-Length: {}", body.len());
        (body, Some(header))
    };
    let mut chunked_seed = format!("{:x}\r\n", seed.len()).into_bytes();
    chunked_seed.extend_from_slice(&seed);
    chunked_seed.extend_from_slice(b"\r\n0\r\n\r\n");
    let chunked = Some("Transfer-Encoding: chunked".to_string());
    prop_oneof![
        3 => Just(sized(seed.clone())),
        2 => Just((chunked_seed, chunked.clone())),
        1 => Just((seed, None)),
        1 => Just((b"5\r\nhello\r\n0\r\n\r\n".to_vec(), chunked.clone())),
        1 => Just((b"zz\r\nbroken\r\n".to_vec(), chunked.clone())),
        1 => Just((b"ffffffffffffffff\r\n".to_vec(), chunked)),
        2 => prop::collection::vec(any::<u8>(), 0..300).prop_map(sized),
        1 => prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| (b, None)),
    ]
}

/// Sends one raw request and half-closes, so the bridge sees the end of it; returns whatever
/// came back before the bridge closed the connection.
fn exchange(port: u16, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
    let _ = stream.write_all(request);
    let _ = stream.shutdown(Shutdown::Write);
    let mut answer = Vec::new();
    if let Err(e) = stream.read_to_end(&mut answer) {
        // A reset after a refused request is a close too; a timeout is not.
        assert!(
            e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::TimedOut,
            "the bridge neither answered nor closed: {}",
            String::from_utf8_lossy(request)
        );
    }
    answer
}

#[actix_web::test]
async fn random_requests_get_an_answer_or_a_close_and_never_a_fault() {
    let app = spawn_app().await;
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let seed = serde_json::to_vec(&signed(json!({"call_id": "fuzzed"}))).unwrap();
    let request =
        (request_line(), headers(), body(seed)).prop_map(|(line, mut headers, (body, framing))| {
            headers.extend(framing);
            let mut raw = line.into_bytes();
            for header in headers {
                raw.extend_from_slice(header.as_bytes());
                raw.extend_from_slice(b"\r\n");
            }
            raw.extend_from_slice(b"\r\n");
            raw.extend_from_slice(&body);
            raw
        });
    let cases = tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(Config {
            cases: 400,
            failure_persistence: None,
            ..Config::default()
        });
        let statuses = std::cell::RefCell::new(std::collections::BTreeMap::new());
        runner
            .run(&request, |raw| {
                let answer = exchange(port, &raw);
                if !answer.is_empty() {
                    let text = String::from_utf8_lossy(&answer);
                    let status: u16 = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
                    prop_assert!(
                        text.starts_with("HTTP/1.") && status >= 100,
                        "not an HTTP answer: {text:.80}"
                    );
                    prop_assert!(status != 500, "a fault: {text}");
                    *statuses.borrow_mut().entry(status).or_insert(0) += 1;
                }
                Ok(())
            })
            .map(|()| statuses.into_inner())
    })
    .await
    .unwrap();
    let statuses = cases.unwrap_or_else(|e| panic!("{e}"));
    println!("http fuzz: 400 requests, answers by status {statuses:?}");
    assert!(
        statuses.len() > 3,
        "the fuzz reached too few answers: {statuses:?}"
    );
    // Still serving, and anything that landed is a genuine, well-formed record.
    assert_eq!(
        app.post_json(&signed(json!({"call_id": "after"})))
            .await
            .status,
        200
    );
    for record in app.records(TOPIC) {
        let value = record.json();
        assert_eq!(record.key.as_deref(), value["call_id"].as_str());
        assert_eq!(record.headers["zego-event"], "call_accept");
    }
}
