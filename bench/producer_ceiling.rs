//! Producer ceiling for `bench/run.sh`: the bridge's records (built by the library from the seed
//! callback), produced straight through the library's producer settings with the same number of
//! sends outstanding, so the bridge can be compared with what the broker and librdkafka alone
//! allow on this machine.
//!
//! `cargo run --release --example producer_ceiling -- <brokers> <topic> <outstanding> <seconds>`
//! (`LINGER_MS` as the bridge's `linger.ms`) prints one JSON line: requests/s and latency percentiles (enqueue → ack) in milliseconds.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use rdkafka::producer::FutureProducer;
use zego_kafka_bridge::callback::catalogue::{call, Product};
use zego_kafka_bridge::callback::policy::CallbackPolicy;
use zego_kafka_bridge::callback::{body, sample, verify};
use zego_kafka_bridge::clock::unix_ms;
use zego_kafka_bridge::publish::settings::PassThroughOption;
use zego_kafka_bridge::publish::Outgoing;
use zego_kafka_bridge::publish::{KafkaSettings, Record};
use zego_kafka_bridge::secret::Secret;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The seed callback as the bridge turns it into a record: decoded, verified, routed.
fn template_record(settings: &KafkaSettings) -> Record {
    let now = unix_ms() / 1000;
    let seed = sample::callback(call::accept(), "1", "bench-0000000000", now, "350176", "s");
    let decoded = body::decode(Bytes::from(seed.to_string()), Some("application/json"))
        .expect("the seed decodes");
    let callback = verify(
        decoded,
        &CallbackPolicy::with_secret("s"),
        Product::Zim,
        now,
    )
    .expect("the seed verifies");
    settings.record_for(callback, unix_ms())
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
    // The bridge's own producer settings, with linger.ms passed through as KAFKA_OPT_LINGER_MS.
    let mut settings = KafkaSettings::new(brokers, topic, Duration::from_millis(5000));
    settings.options.insert(
        "linger.ms".into(),
        PassThroughOption {
            variable: "KAFKA_OPT_LINGER_MS".into(),
            value: Secret::new(std::env::var("LINGER_MS").unwrap_or_else(|_| "5".into())),
        },
    );
    let producer: FutureProducer = settings.to_client_config().create().expect("producer");
    let template = template_record(&settings);
    let template_value = String::from_utf8_lossy(&template.value).into_owned();
    let mut in_flight = FuturesUnordered::new();
    let mut latencies_ms = Vec::new();
    let mut failed = 0u64;
    let mut sent = 0u64;
    let started = Instant::now();
    let send = |n: u64| {
        let key = format!("bench-{n:010}");
        let mut record = template.clone();
        record.value = Bytes::from(template_value.replace("bench-0000000000", &key));
        record.key = Some(key);
        record.received_at_ms = unix_ms();
        let at = Instant::now();
        let delivery = producer
            .send_result(record.to_future_record())
            .map_err(|(e, _)| e);
        (at, delivery)
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
