//! `replay`: reads the refused topic (`KAFKA_TOPIC_REFUSED`), checks each kept callback again
//! with the current configuration (secrets, app ids, families, catalogue; the timestamp window
//! measured against its receive time, not now) and publishes what now passes to its topic
//! exactly as the bridge would have: same key, headers and `zego-callback-id`, so consumers'
//! dedupe holds. What still fails is printed with why. Progress is a consumer-group commit
//! (`--group`): a second run over the same range writes nothing twice.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use super::output::Stdout;
use crate::callback::catalogue::Product;
use crate::callback::{body, verify};
use crate::config::Settings;
use crate::deliver::refused::{HEADER_CONTENT_TYPE, HEADER_PRODUCT, HEADER_RECEIVED_AT};
use crate::kafka_log::LogFolder;
use crate::metrics::Metrics;
use crate::publish::Publisher;

use super::when;

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Replay only callbacks received at or after this time: RFC 3339
    /// (`2026-12-01T10:00:00Z`), Unix seconds or milliseconds, or a duration ago (`10m`, `2h`).
    #[arg(long)]
    pub from_time: Option<String>,
    /// Replay only callbacks received before this time (same forms as --from-time).
    #[arg(long)]
    pub to_time: Option<String>,
    /// Start at this offset in every partition (instead of the group's progress or the start).
    #[arg(long, conflicts_with = "from_time")]
    pub from_offset: Option<i64>,
    /// Check and print what would be published, publish nothing and record no progress.
    #[arg(long)]
    pub dry_run: bool,
    /// The consumer group that records how far replay got.
    #[arg(long, default_value = "zego-kafka-bridge-replay")]
    pub group: String,
    /// Give up (exit 1) when the broker does not answer for this many seconds.
    #[arg(long, default_value_t = 30)]
    pub broker_timeout_secs: u64,
}

/// The consumer's context: librdkafka's own log lines folded, never printed raw.
#[derive(Default)]
struct ReplayContext {
    logs: LogFolder,
}

impl ClientContext for ReplayContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.logs.log(level, facility, message);
    }
}
impl ConsumerContext for ReplayContext {}

/// One kept callback, as read from the refused topic.
struct Kept {
    /// Received within --from-time (a record before it is read but left alone).
    in_range: bool,
    partition: i32,
    offset: i64,
    received_at_ms: i64,
    product: Option<Product>,
    content_type: Option<String>,
    body: Bytes,
}

/// What checking a kept callback again gave.
enum Outcome {
    Published(String),
    WouldPublish(String),
    StillRefused(String),
    Repeat,
}

pub async fn run(args: ReplayArgs) -> i32 {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return 2;
        }
    };
    let Some(refused) = settings.refused.clone() else {
        eprintln!(
            "configuration error: KAFKA_TOPIC_REFUSED is not set: there is nothing to replay from"
        );
        return 2;
    };
    let now_ms = when::unix_ms_now();
    let parse = |what: &str, value: &Option<String>| {
        value
            .as_deref()
            .map(|v| when::parse_time(v, now_ms).map_err(|e| format!("{what} {v:?}: {e}")))
            .transpose()
    };
    let (from_ms, to_ms) = match (
        parse("--from-time", &args.from_time),
        parse("--to-time", &args.to_time),
    ) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let timeout = Duration::from_secs(args.broker_timeout_secs.max(1));
    let consumer = match consumer(&settings, &args.group) {
        Ok(consumer) => consumer,
        Err(e) => {
            eprintln!("replay: {e}");
            return 2;
        }
    };
    let topic = refused.topic.as_str();
    let read = tokio::task::spawn_blocking({
        let from_offset = args.from_offset;
        let topic = topic.to_string();
        move || read_range(&consumer, &topic, from_ms, from_offset, timeout).map(|r| (consumer, r))
    })
    .await;
    let (consumer, (mut kept, ends)) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(e)) => {
            eprintln!("replay: {e}");
            return 1;
        }
        Err(e) => {
            eprintln!("replay: {e}");
            return 1;
        }
    };
    // One product's refusals share a partition; across products, the order they arrived in.
    kept.sort_by_key(|k| (k.received_at_ms, k.partition, k.offset));
    let publisher = match Publisher::new(&settings.kafka, Arc::new(Metrics::new())) {
        Ok(publisher) => publisher,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return 2;
        }
    };
    let mut stdout = Stdout::default();
    let mut seen = HashSet::new();
    let mut done: BTreeMap<i32, BTreeSet<i64>> = BTreeMap::new();
    let (mut published, mut refused_again, mut failed) = (0, 0, None);
    for item in &kept {
        // Outside the range asked for: left for another run (progress stops before it).
        if !item.in_range || to_ms.is_some_and(|to| item.received_at_ms >= to) {
            continue;
        }
        let outcome = replay_one(item, &settings, &publisher, &mut seen, args.dry_run).await;
        let line = match outcome {
            Ok(Outcome::Published(what)) => {
                published += 1;
                format!("published {what}")
            }
            Ok(Outcome::WouldPublish(what)) => {
                published += 1;
                format!("would publish {what}")
            }
            Ok(Outcome::StillRefused(why)) => {
                refused_again += 1;
                format!("still refused: {why}")
            }
            Ok(Outcome::Repeat) => String::new(),
            Err(e) => {
                failed = Some(format!(
                    "partition {} offset {}: could not publish: {e}",
                    item.partition, item.offset
                ));
                break;
            }
        };
        done.entry(item.partition).or_default().insert(item.offset);
        if !line.is_empty() && stdout.line(&line).is_closed() {
            break;
        }
    }
    let verb = if args.dry_run {
        "would publish"
    } else {
        "published"
    };
    let summary = format!(
        "{} kept callbacks read from {topic}: {verb} {published}, still refused {refused_again}",
        kept.len()
    );
    let _ = stdout.line(&summary);
    if !args.dry_run {
        let read: BTreeMap<i32, BTreeSet<i64>> =
            kept.iter().fold(BTreeMap::new(), |mut read, item| {
                read.entry(item.partition).or_default().insert(item.offset);
                read
            });
        if let Err(e) = commit(&consumer, topic, &ends, &read, &done) {
            eprintln!(
                "replay: could not record progress in group {}: {e}",
                args.group
            );
            return 1;
        }
    }
    publisher.flush_blocking(timeout);
    match failed {
        Some(why) => {
            eprintln!("replay stopped: {why}; run it again to continue from there");
            1
        }
        None => 0,
    }
}

/// Checks one kept callback again and publishes it when it now passes.
async fn replay_one(
    item: &Kept,
    settings: &Settings,
    publisher: &Publisher,
    seen: &mut HashSet<String>,
    dry_run: bool,
) -> Result<Outcome, String> {
    let at = format!("partition {} offset {}", item.partition, item.offset);
    let Some(product) = item.product else {
        return Ok(Outcome::StillRefused(format!(
            "{at}: no zego-product header"
        )));
    };
    let checked =
        body::decode(item.body.clone(), item.content_type.as_deref()).and_then(|decoded| {
            verify(
                decoded,
                &settings.policy,
                product,
                item.received_at_ms.div_euclid(1000),
            )
        });
    let callback = match checked {
        Ok(callback) => callback,
        Err(rejection) => {
            return Ok(Outcome::StillRefused(format!(
                "{at} ({} path): {} ({rejection})",
                product.name(),
                rejection.code()
            )))
        }
    };
    // ZEGOCLOUD retried it, and each attempt was kept: the same callback once.
    if !seen.insert(callback.id.clone()) {
        return Ok(Outcome::Repeat);
    }
    let record = settings.kafka.record_for(callback, item.received_at_ms);
    let what = format!(
        "{} key={} callback_id={} to {}",
        record.event,
        record.key.as_deref().unwrap_or("-"),
        record.callback_id,
        record.topic
    );
    if dry_run {
        return Ok(Outcome::WouldPublish(what));
    }
    let ack = publisher
        .publish(&record)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Outcome::Published(format!(
        "{what} at {}/{}",
        ack.partition, ack.offset
    )))
}

/// The consumer: the bridge's brokers and `KAFKA_OPT_*` settings (TLS, SASL), no auto commit.
fn consumer(settings: &Settings, group: &str) -> Result<BaseConsumer<ReplayContext>, String> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.kafka.brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set_log_level(RDKafkaLogLevel::Warning);
    for (name, option) in &settings.kafka.options {
        config.set(name, option.value.expose());
    }
    config
        .create_with_context(ReplayContext::default())
        .map_err(|e| settings.kafka.explain_config_error(&e.to_string()))
}

/// Reads every kept callback from where this group stopped (or `from_offset`, or the first
/// record at `from_ms`) up to each partition's end as it is now. Returns them with the ends.
fn read_range(
    consumer: &BaseConsumer<ReplayContext>,
    topic: &str,
    from_ms: Option<i64>,
    from_offset: Option<i64>,
    timeout: Duration,
) -> Result<(Vec<Kept>, BTreeMap<i32, i64>), String> {
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| format!("no broker answered within {timeout:?}: {e}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(format!("topic {topic} does not exist or has no partitions"));
    }
    let mut wanted = TopicPartitionList::new();
    for &partition in &partitions {
        wanted.add_partition(topic, partition);
    }
    let committed = consumer
        .committed_offsets(wanted.clone(), timeout)
        .map_err(|e| format!("could not read the group's progress: {e}"))?;
    let by_time = match from_ms {
        Some(ms) => {
            let mut at = TopicPartitionList::new();
            for &partition in &partitions {
                at.add_partition_offset(topic, partition, Offset::Offset(ms))
                    .map_err(|e| e.to_string())?;
            }
            Some(
                consumer
                    .offsets_for_times(at, timeout)
                    .map_err(|e| format!("could not look up offsets by time: {e}"))?,
            )
        }
        None => None,
    };
    let mut assignment = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    let mut starts = BTreeMap::new();
    for &partition in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, timeout)
            .map_err(|e| format!("could not read partition {partition}'s offsets: {e}"))?;
        let offset_of = |list: &TopicPartitionList| match list
            .find_partition(topic, partition)
            .map(|e| e.offset())
        {
            Some(Offset::Offset(n)) => Some(n),
            Some(Offset::End) => Some(high),
            _ => None,
        };
        let requested = from_offset.or_else(|| by_time.as_ref().and_then(offset_of));
        let progress = offset_of(&committed);
        // Never before the group's progress: a high watermark that lags (see below) must not
        // send replay back over what it already published.
        let start = [Some(low), requested, progress]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(low);
        ends.insert(partition, high);
        starts.insert(partition, start);
        assignment
            .add_partition_offset(topic, partition, Offset::Offset(start))
            .map_err(|e| e.to_string())?;
    }
    let mut remaining: BTreeMap<i32, i64> = starts
        .iter()
        .filter(|(p, start)| **start < ends[*p])
        .map(|(p, _)| (*p, ends[p]))
        .collect();
    let mut kept = Vec::new();
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
    let deadline = std::time::Instant::now() + timeout.max(Duration::from_secs(10)) * 4;
    // Read to each partition's end as it was at the start, then on until the topic has been
    // quiet for `QUIET`: some brokers report a high watermark that lags the records they
    // serve (tansu 0.6 after a batched produce), and a record kept meanwhile is read too.
    let mut quiet_since = std::time::Instant::now();
    loop {
        if std::time::Instant::now() > deadline {
            return Err("the refused topic stopped answering before its end was read".into());
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            if remaining.is_empty() && quiet_since.elapsed() >= QUIET {
                break;
            }
            continue;
        };
        quiet_since = std::time::Instant::now();
        let message = message.map_err(|e| format!("could not read {topic}: {e}"))?;
        let header = |name: &str| {
            message.headers().and_then(|headers| {
                headers
                    .iter()
                    .find(|h| h.key == name)
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
        };
        let (partition, offset) = (message.partition(), message.offset());
        let received_at_ms = header(HEADER_RECEIVED_AT)
            .and_then(|v| v.parse().ok())
            .or_else(|| message.timestamp().to_millis())
            .unwrap_or_default();
        {
            kept.push(Kept {
                in_range: from_ms.is_none_or(|from| received_at_ms >= from),
                partition,
                offset,
                received_at_ms,
                product: header(HEADER_PRODUCT)
                    .as_deref()
                    .and_then(Product::from_name),
                content_type: header(HEADER_CONTENT_TYPE),
                body: Bytes::copy_from_slice(message.payload().unwrap_or_default()),
            });
        }
        if remaining
            .get(&partition)
            .is_some_and(|end| offset + 1 >= *end)
        {
            remaining.remove(&partition);
        }
    }
    Ok((kept, ends))
}

/// How long the refused topic must be quiet after its end before the read stops.
const QUIET: Duration = Duration::from_secs(1);

/// Records progress: in each partition read, the first offset read but not handled (left
/// outside the time range, or not reached after a failure), or its end when all were.
fn commit(
    consumer: &BaseConsumer<ReplayContext>,
    topic: &str,
    ends: &BTreeMap<i32, i64>,
    read: &BTreeMap<i32, BTreeSet<i64>>,
    done: &BTreeMap<i32, BTreeSet<i64>>,
) -> Result<(), String> {
    let mut offsets = TopicPartitionList::new();
    for (&partition, offsets_read) in read {
        let handled = done.get(&partition);
        let past_last_read = offsets_read.last().map_or(0, |last| last + 1);
        let first_open = offsets_read
            .iter()
            .find(|offset| !handled.is_some_and(|h| h.contains(offset)))
            .copied()
            .unwrap_or(ends[&partition].max(past_last_read));
        offsets
            .add_partition_offset(topic, partition, Offset::Offset(first_open))
            .map_err(|e| e.to_string())?;
    }
    if offsets.count() == 0 {
        return Ok(());
    }
    consumer
        .commit(&offsets, CommitMode::Sync)
        .map_err(|e| e.to_string())
}
