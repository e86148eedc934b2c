//! `tail`: prints the records of a topic (partition/offset, key, headers, value), as text or as
//! one JSON object a line. It assigns the topic's partitions itself (no consumer-group join, so
//! the first record shows at once), gives up with exit 1 when no broker answers for
//! `--broker-timeout-secs`, and exits quietly when its reader goes away (`| head`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use serde_json::{json, Value};

use super::output::Stdout;
use crate::kafka_log::LogFolder;

#[derive(Args, Debug)]
pub struct TailArgs {
    /// Bootstrap servers: the address `--embedded-kafka` logs, or your cluster's.
    #[arg(long, env = "KAFKA_BROKERS")]
    pub brokers: String,
    /// Topic to read.
    #[arg(long, env = "KAFKA_TOPIC", default_value = "zego-callbacks")]
    pub topic: String,
    /// Start at the oldest record of each partition (the default).
    #[arg(long, conflicts_with_all = ["from_end", "offset"])]
    pub from_beginning: bool,
    /// Start after the newest record: show only what arrives from now on.
    #[arg(long, conflicts_with = "offset")]
    pub from_end: bool,
    /// Start at this offset in each partition read.
    #[arg(long)]
    pub offset: Option<i64>,
    /// Read only this partition.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Show only records of this event (their `zego-event` header).
    #[arg(long)]
    pub event: Option<String>,
    /// Show only records of this call (their key).
    #[arg(long)]
    pub call_id: Option<String>,
    /// `text` for people, `json` for one object a line (key, headers, partition, offset, value).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Stop after printing this many records.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Stop once every partition read is at the end it had when tail started.
    #[arg(long)]
    pub exit_at_end: bool,
    /// Stop when no record arrived for this many seconds, counted from when reading starts.
    #[arg(long)]
    pub idle_exit_secs: Option<u64>,
    /// Give up (exit 1) when no broker answers for this many seconds.
    #[arg(long, default_value_t = 30)]
    pub broker_timeout_secs: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// The consumer's context: folded librdkafka logs, and since when no broker answers.
#[derive(Default)]
struct TailContext {
    logs: LogFolder,
    unreachable_since: Mutex<Option<Instant>>,
}

impl ClientContext for TailContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.logs.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            let mut since = self
                .unreachable_since
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            since.get_or_insert_with(Instant::now);
        }
        self.logs.error(&error, reason);
    }
}

impl ConsumerContext for TailContext {}

impl TailContext {
    fn reached(&self) {
        *self
            .unreachable_since
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn unreachable_for(&self) -> Duration {
        self.unreachable_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map_or(Duration::ZERO, |since| since.elapsed())
    }
}

pub async fn run(args: TailArgs) -> i32 {
    // librdkafka's consumer is polled on a thread of its own, off the async runtime.
    tokio::task::spawn_blocking(move || tail(&args))
        .await
        .unwrap_or(1)
}

fn tail(args: &TailArgs) -> i32 {
    let broker_timeout = Duration::from_secs(args.broker_timeout_secs);
    let consumer: BaseConsumer<TailContext> = match ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", "zego-kafka-bridge-tail")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create_with_context(TailContext::default())
    {
        Ok(consumer) => consumer,
        Err(e) => {
            eprintln!("tail: cannot create a consumer: {e}");
            return 2;
        }
    };
    let partitions = match partitions(&consumer, args, broker_timeout) {
        Ok(partitions) => partitions,
        Err(why) => {
            eprintln!("tail: {why}");
            return 1;
        }
    };
    // Where each partition ends now, for --exit-at-end.
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for &partition in &partitions {
        let start = match (args.offset, args.from_end) {
            (Some(offset), _) => Offset::Offset(offset),
            (None, true) => Offset::End,
            (None, false) => Offset::Beginning,
        };
        if args.exit_at_end {
            match consumer.fetch_watermarks(&args.topic, partition, broker_timeout) {
                Ok((_, high)) => {
                    ends.insert(partition, high);
                }
                Err(e) => {
                    eprintln!("tail: cannot read where partition {partition} ends: {e}");
                    return 1;
                }
            }
        }
        if let Err(e) = assignment.add_partition_offset(&args.topic, partition, start) {
            eprintln!("tail: {e}");
            return 2;
        }
    }
    if let Err(e) = consumer.assign(&assignment) {
        eprintln!("tail: cannot read {}: {e}", args.topic);
        return 1;
    }
    eprintln!(
        "tail: reading {} (partitions {partitions:?}) from {}",
        args.topic, args.brokers
    );
    let mut stdout = Stdout::default();
    let mut printed = 0usize;
    let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
    let idle = args.idle_exit_secs.map(Duration::from_secs);
    let mut last_record = Instant::now();
    let at_end = |positions: &BTreeMap<i32, i64>| {
        ends.iter()
            .all(|(p, end)| positions.get(p).copied().unwrap_or(0) >= *end || *end == 0)
    };
    loop {
        if args.limit.is_some_and(|limit| printed >= limit) {
            break;
        }
        if args.exit_at_end && at_end(&positions) {
            break;
        }
        if idle.is_some_and(|idle| last_record.elapsed() >= idle) {
            break;
        }
        if consumer.context().unreachable_for() > broker_timeout {
            eprintln!(
                "tail: no broker at {} answered for {}s; giving up",
                args.brokers, args.broker_timeout_secs
            );
            return 1;
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                consumer.context().reached();
                if let Some(&end) = ends.get(&partition) {
                    let position = positions.entry(partition).or_insert(0);
                    *position = (*position).max(end);
                }
            }
            Some(Err(e)) => eprintln!("tail: {e}"),
            Some(Ok(message)) => {
                consumer.context().reached();
                last_record = Instant::now();
                positions.insert(message.partition(), message.offset() + 1);
                if !wanted(&message, args) {
                    continue;
                }
                let text = match args.format {
                    Format::Text => as_text(&message),
                    Format::Json => printable_json(as_json(&message).to_string()),
                };
                if stdout.line(&text).is_closed() {
                    return 0;
                }
                printed += 1;
            }
        }
    }
    if printed == 0 {
        eprintln!("tail: nothing read from {}", args.topic);
    }
    0
}

/// The partitions to read: all of the topic's, or the one asked for.
fn partitions(
    consumer: &BaseConsumer<TailContext>,
    args: &TailArgs,
    timeout: Duration,
) -> Result<Vec<i32>, String> {
    let metadata = consumer
        .fetch_metadata(Some(&args.topic), timeout)
        .map_err(|e| {
            format!(
                "no broker at {} answered within {}s ({e})",
                args.brokers,
                timeout.as_secs()
            )
        })?;
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == args.topic && t.error().is_none() && !t.partitions().is_empty())
        .ok_or_else(|| format!("topic {} does not exist on {}", args.topic, args.brokers))?;
    let all: Vec<i32> = topic.partitions().iter().map(|p| p.id()).collect();
    match args.partition {
        None => Ok(all),
        Some(p) if all.contains(&p) => Ok(vec![p]),
        Some(p) => Err(format!(
            "{} has no partition {p} (it has {all:?})",
            args.topic
        )),
    }
}

fn header(message: &BorrowedMessage<'_>, name: &str) -> Option<String> {
    message.headers()?.iter().find_map(|h| {
        (h.key == name).then(|| String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())
    })
}

fn wanted(message: &BorrowedMessage<'_>, args: &TailArgs) -> bool {
    let event_ok = args
        .event
        .as_ref()
        .is_none_or(|event| header(message, "zego-event").as_ref() == Some(event));
    let call_ok = args.call_id.as_ref().is_none_or(|call| {
        message.key().map(String::from_utf8_lossy).as_deref() == Some(call.as_str())
    });
    event_ok && call_ok
}

/// Control characters (ESC, CSI, newlines, DEL, C1) written as `\u{1b}` escapes: a signed
/// field's text must not be able to drive the reader's terminal or forge lines.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// JSON text with the control characters serde_json leaves as they are (DEL and C1, which
/// some terminals obey) written as `\u` escapes: the same JSON value, harmless on a terminal.
fn printable_json(json: String) -> String {
    if !json.chars().any(char::is_control) {
        return json;
    }
    json.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\u{:04x}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn as_text(message: &BorrowedMessage<'_>) -> String {
    let key = message
        .key()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let key = printable(&key);
    let mut text = format!(
        "{}/{}/{} key={key}",
        message.topic(),
        message.partition(),
        message.offset()
    );
    for h in message.headers().iter().flat_map(|headers| headers.iter()) {
        let value = String::from_utf8_lossy(h.value.unwrap_or_default());
        text.push_str(&format!("\n  {}: {}", printable(h.key), printable(&value)));
    }
    let value = message
        .payload()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    text.push_str(&format!("\n  {}", printable(&value)));
    text
}

/// One record as JSON; the value embedded as JSON when it is, as a string otherwise.
fn as_json(message: &BorrowedMessage<'_>) -> Value {
    let headers: serde_json::Map<String, Value> = message
        .headers()
        .iter()
        .flat_map(|headers| headers.iter())
        .map(|h| {
            let value = String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned();
            (h.key.to_string(), Value::String(value))
        })
        .collect();
    let payload = message.payload().unwrap_or_default();
    let value = serde_json::from_slice(payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()));
    json!({
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "key": message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        "headers": headers,
        "value": value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(printable("call-1"), "call-1");
        let shown = printable("a\u{1b}[31mred\u{9b}2J\nforged line");
        assert!(!shown.chars().any(char::is_control), "{shown}");
        assert_eq!(shown, "a\\u{1b}[31mred\\u{9b}2J\\u{a}forged line");
        // JSON: C0 is escaped by serde_json already; DEL and C1 here; the value is unchanged.
        let value = serde_json::json!({"k": "x\u{1b}y\u{9b}z\u{7f}"});
        let line = printable_json(value.to_string());
        assert!(!line.chars().any(char::is_control), "{line}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&line).unwrap(),
            value
        );
    }
}
