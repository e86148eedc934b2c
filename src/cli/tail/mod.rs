//! `tail`: prints the records of a topic (partition/offset, key, headers, value), as text or as
//! one JSON object a line, and follows it the way `kcat -C` does. It reads with the bridge's
//! own connection settings (`connection.rs`), assigns the topic's partitions itself (no
//! consumer-group join, so the first record shows at once), waits out outages once it has
//! reached a broker, and reads a partition again from its start when the cluster under it
//! changed (`follow.rs`). It exits quietly when its reader goes away (`| head`).

mod connection;
mod follow;
mod print;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::metadata::Metadata;
use rdkafka::{Offset, TopicPartitionList};

use self::connection::TailContext;
use self::follow::{Change, Follow};
use super::output::Stdout;
use super::when;

/// How often tail asks the cluster whether the topic, its partitions or the cluster changed.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// One metadata request's patience: short, the loop goes on polling records in between.
const METADATA_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Args, Debug)]
pub struct TailArgs {
    /// Bootstrap servers: the address `--embedded-kafka` logs, or your cluster's.
    #[arg(long, env = "KAFKA_BROKERS")]
    pub brokers: String,
    /// Topic to read.
    #[arg(long, env = "KAFKA_TOPIC", default_value = "zego-callbacks")]
    pub topic: String,
    /// A librdkafka property, as `-X security.protocol=SASL_SSL` (repeatable). Applied after
    /// the bridge's own `KAFKA_OPT_*` variables, which tail reads too.
    #[arg(short = 'X', long = "property", value_name = "NAME=VALUE")]
    pub properties: Vec<String>,
    /// Start at the oldest record of each partition (the default).
    #[arg(long, conflicts_with_all = ["from_end", "offset", "from_time"])]
    pub from_beginning: bool,
    /// Start after the newest record: show only what arrives from now on.
    #[arg(long, conflicts_with_all = ["offset", "from_time"])]
    pub from_end: bool,
    /// Start at this offset in each partition read.
    #[arg(long, conflicts_with = "from_time")]
    pub offset: Option<i64>,
    /// Start at the first record written at or after this time: RFC 3339, Unix seconds or
    /// milliseconds, or a duration ago (`10m`, `2h ago`).
    #[arg(long)]
    pub from_time: Option<String>,
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
    /// Give up (exit 1) when no broker answered this many seconds after start. Once one has
    /// answered, tail waits out outages for as long as they last.
    #[arg(long, default_value_t = 30)]
    pub broker_timeout_secs: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub async fn run(args: TailArgs) -> i32 {
    // librdkafka's consumer is polled on a thread of its own, off the async runtime.
    tokio::task::spawn_blocking(move || tail(&args))
        .await
        .unwrap_or(1)
}

/// Says one of tail's own lines about the link or the cluster (never librdkafka's).
fn say(line: Option<String>) {
    if let Some(line) = line {
        eprintln!("tail: {line}");
    }
}

fn tail(args: &TailArgs) -> i32 {
    let broker_timeout = Duration::from_secs(args.broker_timeout_secs);
    let from_time_ms = match args
        .from_time
        .as_deref()
        .map(|text| {
            when::parse_time(text, when::unix_ms_now())
                .map_err(|e| format!("--from-time {text:?}: {e}"))
        })
        .transpose()
    {
        Ok(at) => at,
        Err(why) => {
            eprintln!("tail: {why}");
            return 2;
        }
    };
    let vars = match crate::config::environment() {
        Ok(vars) => vars,
        Err(e) => {
            eprintln!("tail: {e}");
            return 2;
        }
    };
    let consumer = match connection::settings(&args.brokers, &args.topic, &vars, &args.properties)
        .and_then(|settings| connection::consumer(&settings))
    {
        Ok(consumer) => consumer,
        Err(e) => {
            eprintln!("tail: {e}");
            return 2;
        }
    };
    let partitions = match first_partitions(&consumer, args, broker_timeout) {
        Ok(partitions) => partitions,
        Err(why) => {
            eprintln!("tail: {why}");
            return 1;
        }
    };
    let cluster = consumer.client().fetch_cluster_id(Duration::ZERO);
    let mut follow = Follow::new(&args.topic, &partitions, args.partition, cluster);
    let starts = match start_offsets(&consumer, args, from_time_ms, &partitions, broker_timeout) {
        Ok(starts) => starts,
        Err(why) => {
            eprintln!("tail: {why}");
            return 1;
        }
    };
    // Where each partition ends now, for --exit-at-end.
    let ends: BTreeMap<i32, i64> = if args.exit_at_end {
        match partition_ends(&consumer, &args.topic, &partitions, broker_timeout) {
            Ok(ends) => ends.into_iter().collect(),
            Err(why) => {
                eprintln!("tail: {why}");
                return 1;
            }
        }
    } else {
        BTreeMap::new()
    };
    if let Err(e) = assign(&consumer, &args.topic, &follow, &[], &starts) {
        eprintln!("tail: cannot read {}: {e}", args.topic);
        return 1;
    }
    eprintln!(
        "tail: reading {} (partitions {partitions:?}) from {}",
        args.topic, args.brokers
    );
    let mut stdout = Stdout::default();
    let mut printed = 0usize;
    let mut finished: BTreeSet<i32> = BTreeSet::new();
    let idle = args.idle_exit_secs.map(Duration::from_secs);
    let mut last_record = Instant::now();
    let mut last_check = Instant::now();
    // An outage happened and the partitions' ends were not yet compared with what was read.
    let mut after_outage = false;
    loop {
        if args.limit.is_some_and(|limit| printed >= limit) {
            break;
        }
        let at_end = |follow: &Follow| {
            ends.iter().all(|(p, end)| {
                *end == 0 || finished.contains(p) || follow.next_offset(*p).unwrap_or(0) >= *end
            })
        };
        if args.exit_at_end && at_end(&follow) {
            break;
        }
        if idle.is_some_and(|idle| last_record.elapsed() >= idle) {
            break;
        }
        say(consumer.context().notice(broker_timeout));
        if last_check.elapsed() >= CHECK_EVERY {
            last_check = Instant::now();
            after_outage |= consumer.context().take_outage();
            follow_changes(
                &consumer,
                &args.topic,
                &mut follow,
                &starts,
                &mut after_outage,
            );
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(e)) => match end_of(&e) {
                Some(partition) => {
                    say(consumer.context().reached());
                    if ends.contains_key(&partition) {
                        finished.insert(partition);
                    }
                }
                // Fetch and link errors: the link's state is said by the context, in words.
                None => log::debug!(target: "librdkafka", "{e}"),
            },
            Some(Ok(message)) => {
                say(consumer.context().reached());
                last_record = Instant::now();
                say(follow.record(message.partition(), message.offset()));
                let older = |at: i64| message.timestamp().to_millis().is_some_and(|ts| ts < at);
                if from_time_ms.is_some_and(older) || !print::wanted(&message, args) {
                    continue;
                }
                let text = match args.format {
                    Format::Text => print::as_text(&message),
                    Format::Json => print::printable_json(print::as_json(&message).to_string()),
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

/// The partition an end-of-partition event is about; `None` for any other error.
fn end_of(error: &KafkaError) -> Option<i32> {
    match error {
        KafkaError::PartitionEOF(partition) => Some(*partition),
        _ if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) => Some(-1),
        _ => None,
    }
}

/// The partitions to read: all of the topic's, or the one asked for. Asks until a broker
/// answers, saying what it waits for after a second, and gives up after `timeout`.
fn first_partitions(
    consumer: &BaseConsumer<TailContext>,
    args: &TailArgs,
    timeout: Duration,
) -> Result<Vec<i32>, String> {
    let metadata = loop {
        match consumer.fetch_metadata(Some(&args.topic), METADATA_TIMEOUT) {
            Ok(metadata) => break metadata,
            Err(_) if consumer.context().waiting_for_first_answer() < timeout => {
                // librdkafka reports why the connection failed through the context's error
                // callback, which only a poll serves: first that, then say it.
                let _ = consumer.poll(Duration::from_millis(100));
                say(consumer.context().notice(timeout));
            }
            Err(e) => {
                let why = consumer
                    .context()
                    .problem()
                    .unwrap_or_else(|| e.to_string());
                return Err(format!(
                    "no broker at {} answered within {}s ({why}); giving up",
                    args.brokers,
                    timeout.as_secs()
                ));
            }
        }
    };
    say(consumer.context().reached());
    let all = topic_partitions(&metadata, &args.topic)
        .ok_or_else(|| format!("topic {} does not exist on {}", args.topic, args.brokers))?;
    match args.partition {
        None => Ok(all),
        Some(p) if all.contains(&p) => Ok(vec![p]),
        Some(p) => Err(format!(
            "{} has no partition {p} (it has {all:?})",
            args.topic
        )),
    }
}

/// Where each partition starts: `--offset`, `--from-end`, `--from-time` or the beginning.
fn start_offsets(
    consumer: &BaseConsumer<TailContext>,
    args: &TailArgs,
    from_time_ms: Option<i64>,
    partitions: &[i32],
    timeout: Duration,
) -> Result<BTreeMap<i32, Offset>, String> {
    let every = |offset: Offset| partitions.iter().map(|&p| (p, offset)).collect();
    let Some(at_ms) = from_time_ms else {
        return Ok(match (args.offset, args.from_end) {
            (Some(offset), _) => every(Offset::Offset(offset)),
            (None, true) => every(Offset::End),
            (None, false) => every(Offset::Beginning),
        });
    };
    let mut asked = TopicPartitionList::new();
    for &partition in partitions {
        asked
            .add_partition_offset(&args.topic, partition, Offset::Offset(at_ms))
            .map_err(|e| e.to_string())?;
    }
    let found = consumer
        .offsets_for_times(asked, timeout)
        .map_err(|e| format!("cannot find the records written since --from-time: {e}"))?;
    Ok(partitions
        .iter()
        .map(|&p| {
            // No offset for the time: either no record is that new, or the broker cannot look
            // times up (librdkafka's mock, behind `--embedded-kafka`, cannot). Both are read
            // from the start, the older records skipped by their timestamp in the loop.
            let offset = found
                .find_partition(&args.topic, p)
                .map(|e| e.offset())
                .filter(|o| matches!(o, Offset::Offset(_)))
                .unwrap_or(Offset::Beginning);
            (p, offset)
        })
        .collect())
}

/// Asks what changed under the tail and acts on it: the topic, its partitions or the cluster
/// (every check), and after an outage the partitions' ends against what was read.
fn follow_changes(
    consumer: &BaseConsumer<TailContext>,
    topic: &str,
    follow: &mut Follow,
    starts: &BTreeMap<i32, Offset>,
    after_outage: &mut bool,
) {
    let change = check(consumer, topic, follow).or_else(|| {
        if !*after_outage {
            return None;
        }
        // Asked again at the next check until every partition answered.
        let ends = partition_ends(consumer, topic, &follow.partitions(), METADATA_TIMEOUT).ok()?;
        *after_outage = false;
        follow.ends(&ends)
    });
    match change {
        None => {}
        Some(Change::Say(line)) => say(Some(line)),
        Some(Change::FromStart { partitions, why }) => {
            say(Some(why));
            if let Err(e) = assign(consumer, topic, follow, &partitions, starts) {
                eprintln!("tail: cannot read {topic} again: {e}");
            }
        }
    }
}

/// Asks the cluster what changed: the topic gone or back, new partitions, a new cluster.
fn check(consumer: &BaseConsumer<TailContext>, topic: &str, follow: &mut Follow) -> Option<Change> {
    let metadata = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .ok()?;
    say(consumer.context().reached());
    let partitions = topic_partitions(&metadata, topic);
    // The id of the cluster that answered that request (librdkafka keeps the latest).
    let cluster = consumer.client().fetch_cluster_id(Duration::ZERO);
    follow.metadata(cluster, partitions)
}

/// Where each of `partitions` ends now (its high watermark).
fn partition_ends(
    consumer: &BaseConsumer<TailContext>,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
) -> Result<Vec<(i32, i64)>, String> {
    partitions
        .iter()
        .map(|&p| match consumer.fetch_watermarks(topic, p, timeout) {
            Ok((_, high)) => Ok((p, high)),
            Err(e) => Err(format!("cannot read where partition {p} ends: {e}")),
        })
        .collect()
}

/// The topic's partitions in a metadata answer; `None` when the broker has no such topic.
fn topic_partitions(metadata: &Metadata, topic: &str) -> Option<Vec<i32>> {
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
}

/// Assigns every partition followed: those in `from_start` from their beginning, the others
/// where they were (after the last record read, or their fetch position, or their start).
fn assign(
    consumer: &BaseConsumer<TailContext>,
    topic: &str,
    follow: &Follow,
    from_start: &[i32],
    starts: &BTreeMap<i32, Offset>,
) -> Result<(), KafkaError> {
    let positions = consumer.position().unwrap_or_default();
    let mut list = TopicPartitionList::new();
    for partition in follow.partitions() {
        let offset = if from_start.contains(&partition) {
            Offset::Beginning
        } else if let Some(next) = follow.next_offset(partition) {
            Offset::Offset(next)
        } else {
            positions
                .find_partition(topic, partition)
                .map(|e| e.offset())
                .filter(|o| matches!(o, Offset::Offset(_)))
                .or_else(|| starts.get(&partition).copied())
                .unwrap_or(Offset::Beginning)
        };
        list.add_partition_offset(topic, partition, offset)?;
    }
    consumer.assign(&list)
}
