//! Producer ceiling for `bench/run.sh`: the bridge's records, produced straight through rdkafka
//! with the bridge's producer settings and the same number of sends outstanding, so the bridge
//! can be compared with what the broker and librdkafka alone allow on this machine.
//!
//! `cargo run --release --example producer_ceiling -- <brokers> <topic> <outstanding> <seconds>`
//! (`LINGER_MS` as the bridge's `linger.ms`) prints one JSON line: requests/s and latency percentiles (enqueue → ack) in milliseconds.

use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

/// The seed callback's size and shape: what the bridge publishes per request.
const VALUE: &str = r#"{"appid":"1","event":"call_accept","nonce":"350176","signature":"264b7f500b4935a082fef1da1760769245880d7c","timestamp":1499676978,"call_id":"bench-0000000000","user_id":"abc","extend_data":"extendData"}"#;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, brokers, topic, outstanding, seconds] = args.as_slice() else {
        eprintln!("usage: producer_ceiling <brokers> <topic> <outstanding> <seconds>");
        std::process::exit(2);
    };
    let outstanding: usize = outstanding.parse().expect("outstanding is a number");
    let duration = Duration::from_secs(seconds.parse().expect("seconds is a number"));
    // The bridge's settings (config.rs): acks=all, idempotence, its statistics and backoff.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "5000")
        .set("reconnect.backoff.max.ms", "1000")
        .set(
            "linger.ms",
            std::env::var("LINGER_MS").unwrap_or_else(|_| "5".into()),
        )
        .create()
        .expect("producer");
    let mut in_flight = FuturesUnordered::new();
    let mut latencies_ms = Vec::new();
    let mut failed = 0u64;
    let mut sent = 0u64;
    let started = Instant::now();
    let send = |n: u64| {
        let key = format!("bench-{n:010}");
        let value = VALUE.replace("bench-0000000000", &key);
        let received_at = n.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "zego-event",
                value: Some("call_accept"),
            })
            .insert(Header {
                key: "zego-appid",
                value: Some("1"),
            })
            .insert(Header {
                key: "zego-callback-id",
                value: Some("0123456789abcdef0123456789abcdef01234567"),
            })
            .insert(Header {
                key: "content-type",
                value: Some("application/json"),
            })
            .insert(Header {
                key: "received-at",
                value: Some(received_at.as_str()),
            });
        let record = FutureRecord::to(topic)
            .key(&key)
            .payload(&value)
            .headers(headers);
        (
            Instant::now(),
            producer.send_result(record).map_err(|(e, _)| e),
        )
    };
    loop {
        while in_flight.len() < outstanding && started.elapsed() < duration {
            let (at, delivery) = send(sent);
            sent += 1;
            in_flight.push(async move {
                let ok = match delivery {
                    Ok(future) => matches!(future.await, Ok(Ok(_))),
                    Err(_) => false,
                };
                (at.elapsed(), ok)
            });
        }
        match in_flight.next().await {
            Some((elapsed, true)) => latencies_ms.push(elapsed.as_secs_f64() * 1000.0),
            Some((_, false)) => failed += 1,
            None => break,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies_ms.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{{\"requests_per_sec\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"acked\":{},\"failed\":{failed}}}",
        latencies_ms.len() as f64 / elapsed,
        percentile(&latencies_ms, 0.50),
        percentile(&latencies_ms, 0.99),
        percentile(&latencies_ms, 0.999),
        latencies_ms.len()
    );
}
