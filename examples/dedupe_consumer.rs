//! A downstream consumer that processes each callback once: it skips records whose
//! `zego-callback-id` it has already seen (bounded memory, oldest ids forgotten first).
//!
//! Run: `cargo run --example dedupe_consumer -- <brokers> [topic]`

use std::collections::{HashSet, VecDeque};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;

/// Ids kept: far more than arrive within ZEGOCLOUD's one-minute retry window.
const REMEMBERED: usize = 100_000;

/// The ids seen most recently, forgetting the oldest beyond `capacity`.
struct SeenIds {
    ids: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl SeenIds {
    /// True the first time `id` is offered.
    fn first_time(&mut self, id: &str) -> bool {
        if !self.ids.insert(id.to_string()) {
            return false;
        }
        self.order.push_back(id.to_string());
        if self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.ids.remove(&oldest);
            }
        }
        true
    }
}

fn header<'a>(message: &'a impl Message, name: &str) -> Option<&'a str> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| std::str::from_utf8(h.value?).ok())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "zego-callbacks".into());
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "zego-dedupe-example")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer configuration is valid");
    consumer.subscribe(&[&topic]).expect("subscribed");
    let mut seen = SeenIds {
        ids: HashSet::new(),
        order: VecDeque::new(),
        capacity: REMEMBERED,
    };
    loop {
        let message = match consumer.recv().await {
            Ok(message) => message,
            Err(e) => {
                eprintln!("consume error: {e}");
                continue;
            }
        };
        let Some(id) = header(&message, "zego-callback-id") else {
            eprintln!(
                "record without zego-callback-id at offset {}",
                message.offset()
            );
            continue;
        };
        if !seen.first_time(id) {
            println!("skip duplicate {id}");
            continue;
        }
        let event = header(&message, "zego-event").unwrap_or("?");
        let key = message
            .key()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        // Your processing goes here: make its effect idempotent on `id` for exactly-once.
        println!("{event} call_id={key} id={id}");
    }
}
