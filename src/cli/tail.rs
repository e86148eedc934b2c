//! `tail`: prints every record of a topic — partition/offset, key, headers, value.

use std::time::Duration;

use clap::Args;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;

#[derive(Args, Debug)]
pub struct TailArgs {
    /// Bootstrap servers (the address `--embedded-kafka` logs, or your cluster's).
    #[arg(long, env = "KAFKA_BROKERS")]
    pub brokers: String,
    #[arg(long, env = "KAFKA_TOPIC", default_value = "zego-callbacks")]
    pub topic: String,
    /// Start at the newest record instead of the oldest.
    #[arg(long)]
    pub from_end: bool,
    /// Stop after this many records.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Stop when no record arrived for this many seconds.
    #[arg(long)]
    pub idle_exit_secs: Option<u64>,
}

pub async fn run(args: TailArgs) -> i32 {
    let consumer: StreamConsumer = match ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", format!("zego-tail-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set(
            "auto.offset.reset",
            if args.from_end { "latest" } else { "earliest" },
        )
        .create()
    {
        Ok(consumer) => consumer,
        Err(e) => {
            eprintln!("tail: cannot create a consumer: {e}");
            return 1;
        }
    };
    if let Err(e) = consumer.subscribe(&[&args.topic]) {
        eprintln!("tail: cannot subscribe to {}: {e}", args.topic);
        return 1;
    }
    eprintln!("tail: reading {} from {}", args.topic, args.brokers);
    let idle = args
        .idle_exit_secs
        .map(Duration::from_secs)
        .unwrap_or(Duration::MAX);
    let mut printed = 0;
    while args.limit.is_none_or(|limit| printed < limit) {
        let message = match tokio::time::timeout(idle, consumer.recv()).await {
            Err(_) => break,
            Ok(Err(e)) => {
                eprintln!("tail: {e}");
                continue;
            }
            Ok(Ok(message)) => message,
        };
        let key = message
            .key()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        println!(
            "{}/{}/{} key={key}",
            message.topic(),
            message.partition(),
            message.offset()
        );
        if let Some(headers) = message.headers() {
            for header in headers.iter() {
                let value = header
                    .value
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                println!("  {}: {value}", header.key);
            }
        }
        println!(
            "  {}",
            message
                .payload()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
        );
        printed += 1;
    }
    0
}
