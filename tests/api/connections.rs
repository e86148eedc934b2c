//! Connection-level hostility: stalls in every framing, encodings and header tricks. Every
//! connection answered with an error is closed by the bridge, and nothing lands.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{signed, spawn_app, TestApp, TOPIC, WAIT_LIMIT};

/// Sends `request` raw, then waits for the bridge to answer and close the connection.
/// Returns the whole answer; panics if the socket is still open after the body timeout (10 s)
/// plus a generous margin.
fn answer_then_closed(port: u16, request: Vec<u8>) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10) + WAIT_LIMIT))
        .unwrap();
    stream.write_all(&request).unwrap();
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => String::from_utf8_lossy(&answer).into_owned(),
        Err(e) => panic!(
            "the bridge kept the connection open ({e}); it had answered: {}",
            String::from_utf8_lossy(&answer)
        ),
    }
}

fn port(app: &TestApp) -> u16 {
    app.address.rsplit(':').next().unwrap().parse().unwrap()
}

const HEAD: &str = "POST /zego/callback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";

#[actix_web::test]
async fn a_stall_in_any_framing_is_answered_and_closed() {
    let app = spawn_app().await;
    let port = port(&app);
    let stalls: Vec<(&str, String)> = vec![
        (
            "chunked, mid-chunk",
            format!("{HEAD}Transfer-Encoding: chunked\r\n\r\n40\r\n{{\"appid\":"),
        ),
        (
            "chunked, between chunks",
            format!("{HEAD}Transfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n"),
        ),
        (
            "chunked, no chunk yet",
            format!("{HEAD}Transfer-Encoding: chunked\r\n\r\n"),
        ),
        (
            "content-length, short body",
            format!("{HEAD}Content-Length: 200\r\n\r\n{{\"appid\":"),
        ),
    ];
    // All at once: the whole test takes one body timeout, not four.
    let started = Instant::now();
    let answers: Vec<(&str, String)> = tokio::task::spawn_blocking(move || {
        let handles: Vec<_> = stalls
            .into_iter()
            .map(|(name, request)| {
                std::thread::spawn(move || (name, answer_then_closed(port, request.into_bytes())))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
    .await
    .unwrap();
    for (name, answer) in &answers {
        assert!(answer.starts_with("HTTP/1.1 408"), "{name}: {answer}");
        assert!(answer.contains("body_timeout"), "{name}: {answer}");
    }
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "answered before the body timeout"
    );
    assert!(app.records(TOPIC).is_empty());
}

#[actix_web::test]
async fn many_stalled_chunked_uploads_do_not_keep_their_sockets() {
    let app = spawn_app().await;
    let port = port(&app);
    let open_before = open_files();
    let closed = tokio::task::spawn_blocking(move || {
        let handles: Vec<_> = (0..64)
            .map(|_| {
                let stall = format!("{HEAD}Transfer-Encoding: chunked\r\n\r\n40\r\n{{\"a\":");
                std::thread::spawn(move || answer_then_closed(port, stall.into_bytes()))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
            .len()
    })
    .await
    .unwrap();
    assert_eq!(closed, 64);
    // Both ends of every connection live in this process: once the bridge closed its end and
    // the client dropped its own, the process holds no more descriptors than before.
    let deadline = Instant::now() + WAIT_LIMIT;
    while open_files() > open_before + 8 {
        assert!(
            Instant::now() < deadline,
            "{} descriptors open, {open_before} before",
            open_files()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And a genuine callback is still served.
    assert_eq!(app.post_json(&signed(json!({}))).await.status, 200);
}

fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[actix_web::test]
async fn an_encoded_body_or_two_content_types_are_refused_with_415() {
    let app = spawn_app().await;
    let port = port(&app);
    let body = serde_json::to_string(&signed(json!({"call_id": "encoded"}))).unwrap();
    let requests = [
        (
            "gzip label on a plain body",
            format!("{HEAD}Content-Encoding: gzip\r\n"),
        ),
        (
            "unknown encoding",
            format!("{HEAD}Content-Encoding: zstd\r\n"),
        ),
        (
            "two content types",
            format!("{HEAD}Content-Type: application/x-www-form-urlencoded\r\n"),
        ),
    ];
    for (name, head) in requests {
        let request = format!(
            "{head}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let answer =
            tokio::task::spawn_blocking(move || answer_then_closed(port, request.into_bytes()))
                .await
                .unwrap();
        assert!(answer.starts_with("HTTP/1.1 415"), "{name}: {answer}");
        assert!(
            answer.contains("unsupported_media_type"),
            "{name}: {answer}"
        );
    }
    // `identity` is no encoding at all.
    let request = format!(
        "{HEAD}Content-Encoding: identity\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer =
        tokio::task::spawn_blocking(move || answer_then_closed(port, request.into_bytes()))
            .await
            .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let keys: Vec<_> = app
        .records(TOPIC)
        .into_iter()
        .filter_map(|r| r.key)
        .collect();
    assert_eq!(keys, ["encoded"]);
}

#[actix_web::test]
async fn expect_100_continue_checks_the_declared_size_first() {
    let app = spawn_app().await;
    let port = port(&app);
    let too_big = format!("{HEAD}Content-Length: 100000\r\nExpect: 100-continue\r\n\r\n");
    let answer =
        tokio::task::spawn_blocking(move || answer_then_closed(port, too_big.into_bytes()))
            .await
            .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert!(answer.contains("body_too_large"), "{answer}");

    // Within the limit, the client is told to continue and its callback lands.
    let body = serde_json::to_string(&signed(json!({"call_id": "continued"}))).unwrap();
    let head = format!(
        "{HEAD}Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        let mut interim = [0u8; 25];
        stream.read_exact(&mut interim).unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        stream.write_all(body.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let keys: Vec<_> = app
        .records(TOPIC)
        .into_iter()
        .filter_map(|r| r.key)
        .collect();
    assert_eq!(keys, ["continued"]);
}

/// Reads one HTTP answer (head and a `Content-Length` body) off a kept-alive connection.
fn read_answer(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "closed mid-answer");
        got.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&got).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |n| n.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    format!("{head}{}", String::from_utf8_lossy(&body))
}

/// actix times only a connection's first request head: after one cheap request on a kept-alive
/// connection, the next head could be trickled forever (one descriptor each). Every head is
/// timed now: the trickled second head is cut off (the connection closed) after the 5 s head
/// limit, while complete requests on a kept-alive connection are answered as before.
#[actix_web::test]
async fn a_trickled_head_after_a_kept_alive_request_is_cut_off() {
    let app = spawn_app().await;
    let port = port(&app);
    let trickle = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        for _ in 0..2 {
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            assert!(read_answer(&mut stream).starts_with("http/1.1 200"));
        }
        let started = Instant::now();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let head = HEAD.as_bytes();
        let mut closed = None;
        for n in 0.. {
            if stream.write_all(&[head[n % head.len()]]).is_err() {
                closed = Some(started.elapsed());
                break;
            }
            let mut buf = [0u8; 512];
            match stream.read(&mut buf) {
                Ok(0) | Err(_) if started.elapsed() > Duration::from_secs(60) => break,
                Ok(0) => {
                    closed = Some(started.elapsed());
                    break;
                }
                Err(e)
                    if e.kind() != std::io::ErrorKind::WouldBlock
                        && e.kind() != std::io::ErrorKind::TimedOut =>
                {
                    closed = Some(started.elapsed());
                    break;
                }
                _ => {}
            }
        }
        closed
    });
    let closed = trickle
        .await
        .unwrap()
        .expect("the trickled head was never cut off");
    // 5 s limit; the margin is for a busy machine (before the fix: never).
    assert!(
        closed >= Duration::from_secs(4),
        "cut off too early: {closed:?}"
    );
    assert!(closed < Duration::from_secs(40), "{closed:?}");
    assert!(app.records(TOPIC).is_empty());
}
