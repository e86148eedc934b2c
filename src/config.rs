//! Reads the environment and assembles each part's settings; validated once, at start-up.
//!
//! `envy` reads the fixed variables; the two groups with variable names (`KAFKA_TOPIC_<EVENT>` or
//! `KAFKA_TOPIC_<FAMILY>`, `KAFKA_OPT_<NAME>`) are collected by prefix. What a value means is decided by the part that
//! owns it (`callback::policy`, `publish::settings`, `routes::limits`, `tls`): this module only
//! says which variable a problem came from, and never echoes a secret.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::callback::catalogue::{EventKind, Family};
use crate::callback::policy::{self, CallbackPolicy, UnknownEvents};
use crate::deliver::refused::RefusedSettings;
use crate::publish::settings::{
    option_property, validate_topic, PassThroughOption, MAX_DELIVERY_TIMEOUT_MS,
};
use crate::publish::topics::TopicSpec;
use crate::publish::KafkaSettings;
use crate::routes::limits::{
    validate_callback_path, HttpLimits, BODY_READ_TIMEOUT, DEFAULT_MAX_BUFFERED_BYTES,
    DEFAULT_MAX_CONNECTIONS,
};
use crate::secret::Secret;
use crate::spool::{SpoolSettings, DEFAULT_MAX_BYTES as DEFAULT_SPOOL_MAX_BYTES};
use crate::tls::TlsFiles;

/// A start-up configuration problem: one line, naming the variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError(message.into())
    }
}

/// The whole validated configuration, one part per owner.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind_addr: String,
    pub http: HttpLimits,
    pub policy: CallbackPolicy,
    pub kafka: KafkaSettings,
    pub max_in_flight: usize,
    /// `None` turns dedupe off.
    pub dedup_ttl: Option<Duration>,
    pub dedup_capacity: usize,
    pub tls: Option<TlsFiles>,
    /// `None`: no spool, a 200 only from a broker ack.
    pub spool: Option<SpoolSettings>,
    /// `KAFKA_TOPIC_REFUSED`: where refused callbacks are kept for `replay`; `None`: not kept.
    pub refused: Option<RefusedSettings>,
}

/// The fixed variables, as envy reads them (lower-case field = upper-case variable).
#[derive(Deserialize)]
struct RawSettings {
    kafka_brokers: Option<String>,
    #[serde(default = "default_topic")]
    kafka_topic: String,
    #[serde(default = "default_delivery_timeout_ms")]
    kafka_delivery_timeout_ms: u64,
    zego_callback_secret: Option<String>,
    zego_app_ids: Option<String>,
    #[serde(default = "default_bind_addr")]
    bind_addr: String,
    #[serde(default = "default_callback_path")]
    callback_path: String,
    #[serde(default = "default_timestamp_tolerance_secs")]
    timestamp_tolerance_secs: u64,
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: usize,
    #[serde(default = "default_max_in_flight")]
    max_in_flight: usize,
    #[serde(default = "default_max_buffered_bytes")]
    max_buffered_bytes: usize,
    #[serde(default = "default_max_connections")]
    max_connections: usize,
    #[serde(default = "default_dedup_ttl_secs")]
    dedup_ttl_secs: u64,
    #[serde(default = "default_dedup_capacity")]
    dedup_capacity: usize,
    #[serde(default = "default_unknown_events")]
    unknown_events: String,
    zego_families: Option<String>,
    spool_dir: Option<PathBuf>,
    #[serde(default = "default_spool_max_bytes")]
    spool_max_bytes: u64,
    #[serde(default)]
    spool_drain_rate: u32,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    kafka_topic_refused: Option<String>,
    #[serde(default)]
    kafka_create_topics: bool,
    #[serde(default = "default_topic_partitions")]
    kafka_topic_partitions: u64,
    #[serde(default = "default_topic_replication")]
    kafka_topic_replication: i64,
    #[serde(default = "default_refused_per_second")]
    kafka_refused_per_second: u32,
}

fn default_topic() -> String {
    "zego-callbacks".into()
}
fn default_delivery_timeout_ms() -> u64 {
    5000
}
fn default_bind_addr() -> String {
    "0.0.0.0:8080".into()
}
fn default_callback_path() -> String {
    "/zego/callback".into()
}
fn default_timestamp_tolerance_secs() -> u64 {
    300
}
fn default_max_body_bytes() -> usize {
    65536
}
fn default_max_in_flight() -> usize {
    10_000
}
fn default_max_buffered_bytes() -> usize {
    DEFAULT_MAX_BUFFERED_BYTES
}
fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}
fn default_dedup_ttl_secs() -> u64 {
    600
}
/// About 100 bytes an entry: 100k remembered callbacks cost ~10 MB at most.
fn default_dedup_capacity() -> usize {
    100_000
}
fn default_spool_max_bytes() -> u64 {
    DEFAULT_SPOOL_MAX_BYTES
}
fn default_topic_partitions() -> u64 {
    6
}
/// The broker's own `default.replication.factor`.
fn default_topic_replication() -> i64 {
    -1
}
fn default_refused_per_second() -> u32 {
    20
}
fn default_unknown_events() -> String {
    "reject".into()
}

/// Every fixed variable the bridge reads (the fields of `RawSettings`, upper-cased, and the
/// logger's two), besides the open-ended `VARIABLE_PREFIXES`: the one list that deployment
/// files, the start-up warnings for unknown variables and the README's configuration table
/// (tests) are checked against. Keep in step with `RawSettings`.
pub const VARIABLES: &[&str] = &[
    "KAFKA_BROKERS",
    "KAFKA_TOPIC",
    "KAFKA_DELIVERY_TIMEOUT_MS",
    "ZEGO_CALLBACK_SECRET",
    "ZEGO_APP_IDS",
    "BIND_ADDR",
    "CALLBACK_PATH",
    "TIMESTAMP_TOLERANCE_SECS",
    "MAX_BODY_BYTES",
    "MAX_IN_FLIGHT",
    "MAX_BUFFERED_BYTES",
    "MAX_CONNECTIONS",
    "DEDUP_TTL_SECS",
    "DEDUP_CAPACITY",
    "UNKNOWN_EVENTS",
    "ZEGO_FAMILIES",
    "SPOOL_DIR",
    "SPOOL_MAX_BYTES",
    "SPOOL_DRAIN_RATE",
    "TLS_CERT_FILE",
    "TLS_KEY_FILE",
    "KAFKA_TOPIC_REFUSED",
    "KAFKA_REFUSED_PER_SECOND",
    "KAFKA_CREATE_TOPICS",
    "KAFKA_TOPIC_PARTITIONS",
    "KAFKA_TOPIC_REPLICATION",
    "RUST_LOG",
    "LOG_FORMAT",
];
/// Each fixed variable with its default and one line, for `--help` (the README's table says
/// more); a test keeps it equal to `VARIABLES`.
pub const VARIABLE_HELP: &[(&str, &str, &str)] = &[
    ("KAFKA_BROKERS", "required", "Kafka bootstrap servers"),
    (
        "KAFKA_TOPIC",
        "zego-callbacks",
        "topic for every event without an override",
    ),
    (
        "KAFKA_DELIVERY_TIMEOUT_MS",
        "5000",
        "longest wait for the broker's ack, then 503",
    ),
    (
        "ZEGO_CALLBACK_SECRET",
        "required",
        "callback secret(s), comma-separated for rotation",
    ),
    (
        "ZEGO_APP_IDS",
        "any",
        "comma-separated app ids accepted; others get 403",
    ),
    ("BIND_ADDR", "0.0.0.0:8080", "listen address"),
    (
        "CALLBACK_PATH",
        "/zego/callback",
        "In-app Chat's path; other products add /rtc, /recording, /ai-agent",
    ),
    (
        "TIMESTAMP_TOLERANCE_SECS",
        "300",
        "callbacks older or newer are refused (0: off)",
    ),
    ("MAX_BODY_BYTES", "65536", "larger bodies get 413"),
    (
        "MAX_IN_FLIGHT",
        "10000",
        "callbacks awaiting an ack at once; beyond, 503",
    ),
    (
        "MAX_BUFFERED_BYTES",
        "16777216",
        "request bytes held at once; beyond, 503",
    ),
    (
        "MAX_CONNECTIONS",
        "512",
        "open connections at once; beyond, new ones wait to be accepted",
    ),
    (
        "DEDUP_TTL_SECS",
        "600",
        "how long an acked callback id is remembered (0: off)",
    ),
    ("DEDUP_CAPACITY", "100000", "most callback ids remembered"),
    (
        "UNKNOWN_EVENTS",
        "reject",
        "reject (422) or forward events the catalogue does not know",
    ),
    ("ZEGO_FAMILIES", "all", "families accepted, comma-separated"),
    (
        "SPOOL_DIR",
        "off",
        "durable spool directory: callbacks Kafka cannot take wait there",
    ),
    (
        "SPOOL_MAX_BYTES",
        "1073741824",
        "the spool's size limit; beyond, 503 spool_full",
    ),
    (
        "SPOOL_DRAIN_RATE",
        "0",
        "records forwarded from the spool a second (0: as fast as acked)",
    ),
    (
        "TLS_CERT_FILE",
        "off",
        "PEM certificate chain: serve HTTPS (with TLS_KEY_FILE)",
    ),
    ("TLS_KEY_FILE", "off", "PEM private key"),
    (
        "KAFKA_TOPIC_REFUSED",
        "off",
        "keep refused callbacks here for `replay`",
    ),
    (
        "KAFKA_REFUSED_PER_SECOND",
        "20",
        "most refused callbacks kept a second",
    ),
    (
        "KAFKA_CREATE_TOPICS",
        "false",
        "create missing topics at start",
    ),
    (
        "KAFKA_TOPIC_PARTITIONS",
        "6",
        "partitions of a topic the bridge creates",
    ),
    (
        "KAFKA_TOPIC_REPLICATION",
        "-1",
        "replication of a topic the bridge creates (-1: broker default)",
    ),
    ("RUST_LOG", "info", "log filter"),
    ("LOG_FORMAT", "text", "text or json"),
];

/// The `--help` text listing the environment variables.
pub fn variables_help() -> String {
    let mut text = String::from("Environment (README, \"Configuration\", says more):\n");
    for (name, default, meaning) in VARIABLE_HELP {
        text.push_str(&format!("  {name:<26} [{default}] {meaning}\n"));
    }
    text.push_str("  KAFKA_TOPIC_<EVENT|FAMILY>  per-event or per-family topic\n");
    text.push_str("  KAFKA_OPT_<NAME>            any librdkafka property (SASL, TLS, ...)\n");
    text.push_str("Without a subcommand it serves.");
    text
}

/// Variable families: any name with these prefixes is read too.
pub const VARIABLE_PREFIXES: &[&str] = &[TOPIC_PREFIX, OPT_PREFIX];
/// Variables start-up fails without (`--embedded-kafka` supplies `KAFKA_BROKERS` itself).
pub const REQUIRED_VARIABLES: &[&str] = &["KAFKA_BROKERS", "ZEGO_CALLBACK_SECRET"];

/// tokio's semaphore holds at most `usize::MAX >> 3` permits; one permit is one byte.
const MAX_SEMAPHORE_PERMITS: u64 = (usize::MAX >> 3) as u64;
const TOPIC_PREFIX: &str = "KAFKA_TOPIC_";
/// The smallest `SPOOL_MAX_BYTES` that leaves room for records beside SQLite's own pages.
const MIN_SPOOL_BYTES: u64 = 65536;
const OPT_PREFIX: &str = "KAFKA_OPT_";

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(environment()?)
    }

    /// Reads any set of variables: the tests, and `--embedded-kafka` (which adds
    /// `KAFKA_BROKERS`), pass their own.
    pub fn from_vars<I>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let raw = raw_settings(&vars)?;
        let mut kafka = kafka_settings(&raw, &vars)?;

        let secrets = raw
            .zego_callback_secret
            .ok_or_else(|| ConfigError("ZEGO_CALLBACK_SECRET is required".into()))?;
        let policy = CallbackPolicy {
            secrets: policy::parse_secrets(&secrets).map_err(named("ZEGO_CALLBACK_SECRET"))?,
            app_ids: raw.zego_app_ids.as_deref().and_then(policy::parse_app_ids),
            timestamp_tolerance: (raw.timestamp_tolerance_secs > 0)
                .then(|| Duration::from_secs(raw.timestamp_tolerance_secs)),
            unknown_events: UnknownEvents::parse(&raw.unknown_events)
                .map_err(named("UNKNOWN_EVENTS"))?,
            families: policy::parse_families(raw.zego_families.as_deref().unwrap_or_default())
                .map_err(named("ZEGO_FAMILIES"))?,
        };

        validate_callback_path(&raw.callback_path).map_err(named("CALLBACK_PATH"))?;
        let http = HttpLimits {
            callback_path: raw.callback_path,
            max_body_bytes: within("MAX_BODY_BYTES", raw.max_body_bytes as u64, u32::MAX as u64)?
                as usize,
            body_read_timeout: BODY_READ_TIMEOUT,
            max_buffered_bytes: within(
                "MAX_BUFFERED_BYTES",
                raw.max_buffered_bytes as u64,
                MAX_SEMAPHORE_PERMITS,
            )? as usize,
            max_connections: within("MAX_CONNECTIONS", raw.max_connections as u64, 1_000_000)?
                as usize,
        };
        if http.max_buffered_bytes < http.max_body_bytes {
            return Err(ConfigError(format!(
                "MAX_BUFFERED_BYTES ({}) must be at least MAX_BODY_BYTES ({}): otherwise the largest callback could never be read",
                http.max_buffered_bytes, http.max_body_bytes
            )));
        }
        kafka.queue_max_bytes = http.max_buffered_bytes;

        let tls = match (raw.tls_cert_file, raw.tls_key_file) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError(
                    "TLS_KEY_FILE is required when TLS_CERT_FILE is set".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError(
                    "TLS_CERT_FILE is required when TLS_KEY_FILE is set".into(),
                ))
            }
        };
        let spool_max_bytes = within("SPOOL_MAX_BYTES", raw.spool_max_bytes, u64::MAX)?;
        if spool_max_bytes < MIN_SPOOL_BYTES {
            return Err(ConfigError(format!(
                "SPOOL_MAX_BYTES ({spool_max_bytes}) must be at least {MIN_SPOOL_BYTES}: an empty spool database alone takes about 25 KB"
            )));
        }
        let spool = match raw.spool_dir {
            Some(dir) if dir.as_os_str().is_empty() => None,
            Some(dir) => Some(SpoolSettings {
                dir,
                max_bytes: spool_max_bytes,
                drain_rate: raw.spool_drain_rate,
            }),
            None => None,
        };
        let refused = match raw.kafka_topic_refused {
            Some(topic) if topic.is_empty() => None,
            Some(topic) => {
                validate_topic(&topic).map_err(named("KAFKA_TOPIC_REFUSED"))?;
                if kafka.topics().any(|t| t == topic) {
                    return Err(ConfigError(format!(
                        "KAFKA_TOPIC_REFUSED ({topic}) must differ from every callback topic: refused callbacks are unauthenticated bytes and never go where verified ones do"
                    )));
                }
                let per_second = within(
                    "KAFKA_REFUSED_PER_SECOND",
                    u64::from(raw.kafka_refused_per_second),
                    1_000_000,
                )? as u32;
                Some(RefusedSettings { topic, per_second })
            }
            None => None,
        };
        Ok(Settings {
            refused,
            spool,
            bind_addr: raw.bind_addr,
            http,
            policy,
            kafka,
            max_in_flight: within("MAX_IN_FLIGHT", raw.max_in_flight as u64, u32::MAX as u64)?
                as usize,
            dedup_ttl: (raw.dedup_ttl_secs > 0).then(|| Duration::from_secs(raw.dedup_ttl_secs)),
            dedup_capacity: within("DEDUP_CAPACITY", raw.dedup_capacity as u64, u32::MAX as u64)?
                as usize,
            tls,
        })
    }
}

/// Turns a part's complaint into one line naming the variable.
fn named(var: &'static str) -> impl Fn(String) -> ConfigError {
    move |why| ConfigError(format!("{var} {why}"))
}

fn required(var: &str, value: Option<String>) -> Result<String, ConfigError> {
    match value.map(|v| v.trim().to_string()) {
        None => Err(ConfigError(format!("{var} is required"))),
        Some(v) if v.is_empty() => Err(ConfigError(format!("{var} must not be empty"))),
        Some(v) => Ok(v),
    }
}

/// A number from 1 to `max`.
fn within(var: &str, value: u64, max: u64) -> Result<u64, ConfigError> {
    if value == 0 {
        return Err(ConfigError(format!("{var} must be greater than 0")));
    }
    if value > max {
        return Err(ConfigError(format!(
            "{var} must be at most {max}, got {value}"
        )));
    }
    Ok(value)
}

/// `KAFKA_TOPIC_<EVENT>` and `KAFKA_TOPIC_<FAMILY>`: event names and family names never
/// collide (the catalogue's tests say so), so the suffix alone tells which.
fn topic_overrides(vars: &[(String, String)]) -> Result<TopicOverrides, ConfigError> {
    let (mut by_event, mut by_family) = (BTreeMap::new(), BTreeMap::new());
    for (name, value) in vars {
        let Some(suffix) = name.strip_prefix(TOPIC_PREFIX) else {
            continue;
        };
        // These are fixed variables, not routing overrides.
        if [
            "KAFKA_TOPIC_REFUSED",
            "KAFKA_TOPIC_PARTITIONS",
            "KAFKA_TOPIC_REPLICATION",
        ]
        .contains(&name.as_str())
        {
            continue;
        }
        let suffix = suffix.to_lowercase();
        let is_event = EventKind::named(&suffix).is_some();
        let family = Family::from_name(&suffix);
        if !is_event && family.is_none() {
            let events: BTreeSet<&str> = EventKind::all()
                .filter(|k| !k.spec().any_name)
                .map(|k| k.name())
                .collect();
            let families: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
            return Err(ConfigError(format!(
                "{name}: {suffix:?} is neither an event nor a family; families: {}; events: {}",
                families.join(", "),
                events.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        validate_topic(value).map_err(|why| ConfigError(format!("{name} {why}")))?;
        match family {
            Some(family) => by_family.insert(family, value.clone()),
            None => by_event.insert(suffix, value.clone()),
        };
    }
    Ok((by_event, by_family))
}

/// A variable starting with one of these looks like the bridge's: if the bridge does not read
/// it, start-up warns (a typo like `ZEGO_APPIDS` or `SPOOLDIR` would otherwise silently turn
/// a protection off).
const WATCHED_PREFIXES: &[&str] = &[
    "KAFKA",
    "ZEGO",
    "SPOOL",
    "TLS_",
    "BIND",
    "CALLBACK",
    "MAX_",
    "DEDUP",
    "TIMESTAMP",
    "UNKNOWN_EVENT",
    "LOG_FORMAT",
];

/// Variables that look like the bridge's but are not read by it, each with the known variable
/// closest to it.
pub fn unknown_variables(vars: &[(String, String)]) -> Vec<(String, &'static str)> {
    let mut unknown: Vec<(String, &'static str)> = vars
        .iter()
        .map(|(name, _)| name)
        .filter(|name| WATCHED_PREFIXES.iter().any(|p| name.starts_with(p)))
        .filter(|name| !VARIABLES.contains(&name.as_str()))
        .filter(|name| !name.starts_with(TOPIC_PREFIX) && !name.starts_with(OPT_PREFIX))
        .map(|name| {
            let closest = VARIABLES
                .iter()
                .copied()
                .max_by(|a, b| {
                    strsim::jaro_winkler(name, a).total_cmp(&strsim::jaro_winkler(name, b))
                })
                .unwrap_or("KAFKA_BROKERS");
            (name.clone(), closest)
        })
        .collect();
    unknown.sort();
    unknown
}

/// Names the bridge reads, by prefix: a value of one of these that is not UTF-8 is a
/// configuration error naming it.
const OWN_PREFIXES: &[&str] = &[
    "KAFKA_",
    "ZEGO_",
    "SPOOL_",
    "TLS_",
    "BIND_ADDR",
    "CALLBACK_PATH",
    "MAX_",
    "DEDUP_",
    "TIMESTAMP_",
    "UNKNOWN_EVENTS",
    "RUST_LOG",
    "LOG_FORMAT",
];

/// The process environment as text. `std::env::vars()` panics on any variable that is not
/// UTF-8, even one the bridge never reads: such a variable is skipped, unless its name is one
/// of the bridge's, which stops start-up with a line naming it.
pub fn environment() -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Ok(name) = name.into_string() else {
            continue;
        };
        match value.into_string() {
            Ok(value) => vars.push((name, value)),
            Err(_) if OWN_PREFIXES.iter().any(|p| name.starts_with(p)) => {
                return Err(ConfigError(format!("{name} is not valid UTF-8")));
            }
            Err(_) => {}
        }
    }
    Ok(vars)
}

impl Settings {
    /// The effective configuration in one line for the start-up log: every setting that
    /// changes behaviour, secrets and sensitive options never shown (only how many secrets).
    pub fn describe(&self) -> String {
        let policy = &self.policy;
        let app_ids = policy.app_ids.as_ref().map_or("any".to_string(), |ids| {
            let mut ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            ids.sort_unstable();
            ids.join(",")
        });
        let families: Vec<&str> = policy.families.iter().map(|f| f.name()).collect();
        let secs = |d: Option<Duration>| d.map_or("off".to_string(), |d| d.as_secs().to_string());
        let spool = self.spool.as_ref().map_or("off".to_string(), |s| {
            format!(
                "{} SPOOL_MAX_BYTES={} SPOOL_DRAIN_RATE={}",
                s.dir.display(),
                s.max_bytes,
                s.drain_rate
            )
        });
        let refused = self.refused.as_ref().map_or("off".to_string(), |r| {
            format!("{} KAFKA_REFUSED_PER_SECOND={}", r.topic, r.per_second)
        });
        format!(
            "configuration: ZEGO_CALLBACK_SECRET=({} secrets) ZEGO_APP_IDS={app_ids} ZEGO_FAMILIES={} TIMESTAMP_TOLERANCE_SECS={} UNKNOWN_EVENTS={:?} CALLBACK_PATH={} MAX_BODY_BYTES={} MAX_BUFFERED_BYTES={} MAX_CONNECTIONS={} MAX_IN_FLIGHT={} DEDUP_TTL_SECS={} DEDUP_CAPACITY={} KAFKA_DELIVERY_TIMEOUT_MS={} SPOOL_DIR={spool} KAFKA_TOPIC_REFUSED={refused} TLS={}",
            policy.secrets.len(),
            families.join(","),
            secs(policy.timestamp_tolerance),
            policy.unknown_events,
            self.http.callback_path,
            self.http.max_body_bytes,
            self.http.max_buffered_bytes,
            self.http.max_connections,
            self.max_in_flight,
            secs(self.dedup_ttl),
            self.dedup_capacity,
            self.kafka.delivery_timeout.as_millis(),
            if self.tls.is_some() { "on" } else { "off" },
        )
    }
}

/// The variables as envy reads them.
fn raw_settings(vars: &[(String, String)]) -> Result<RawSettings, ConfigError> {
    envy::from_iter(vars.iter().cloned()).map_err(|e| match e {
        envy::Error::MissingValue(field) => {
            ConfigError(format!("{} is required", field.to_uppercase()))
        }
        envy::Error::Custom(msg) => ConfigError(msg),
    })
}

/// The Kafka part alone: what the tools that talk to Kafka (`spool drain`) need, read and
/// checked exactly as the bridge reads it.
pub fn kafka_from_vars<I>(vars: I) -> Result<KafkaSettings, ConfigError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let vars: Vec<(String, String)> = vars.into_iter().collect();
    kafka_settings(&raw_settings(&vars)?, &vars)
}

fn kafka_settings(
    raw: &RawSettings,
    vars: &[(String, String)],
) -> Result<KafkaSettings, ConfigError> {
    let brokers = required("KAFKA_BROKERS", raw.kafka_brokers.clone())?;
    validate_topic(&raw.kafka_topic).map_err(named("KAFKA_TOPIC"))?;
    let delivery_ms = within(
        "KAFKA_DELIVERY_TIMEOUT_MS",
        raw.kafka_delivery_timeout_ms,
        MAX_DELIVERY_TIMEOUT_MS,
    )?;
    let (event_topics, family_topics) = topic_overrides(vars)?;
    Ok(KafkaSettings {
        queue_max_bytes: DEFAULT_MAX_BUFFERED_BYTES,
        brokers,
        topic: raw.kafka_topic.clone(),
        event_topics,
        family_topics,
        delivery_timeout: Duration::from_millis(delivery_ms),
        options: kafka_options(vars)?,
        create_topics: raw.kafka_create_topics.then_some(TopicSpec {
            partitions: within("KAFKA_TOPIC_PARTITIONS", raw.kafka_topic_partitions, 100_000)?
                as i32,
            replication: match raw.kafka_topic_replication {
                -1 => -1,
                n if (1..=100).contains(&n) => n as i32,
                n => {
                    return Err(ConfigError(format!(
                        "KAFKA_TOPIC_REPLICATION must be -1 (the broker's default) or 1 to 100, got {n}"
                    )))
                }
            },
        }),
    })
}

/// Topics by event name, and by family.
type TopicOverrides = (BTreeMap<String, String>, BTreeMap<Family, String>);

/// Only the connection options (`KAFKA_OPT_*`), each with its variable: what `tail` reads, so
/// that it reaches a secured cluster with the bridge's own settings and nothing else required.
pub fn kafka_options_from_vars(
    vars: &[(String, String)],
) -> Result<BTreeMap<String, PassThroughOption>, ConfigError> {
    kafka_options(vars)
}

fn kafka_options(
    vars: &[(String, String)],
) -> Result<BTreeMap<String, PassThroughOption>, ConfigError> {
    let mut options = BTreeMap::new();
    for (name, value) in vars {
        let Some(suffix) = name.strip_prefix(OPT_PREFIX) else {
            continue;
        };
        let property =
            option_property(suffix).map_err(|why| ConfigError(format!("{name}: {why}")))?;
        options.insert(
            property,
            PassThroughOption {
                variable: name.clone(),
                value: Secret::new(value.clone()),
            },
        );
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::vars;

    fn minimal() -> Vec<(String, String)> {
        vars(&[
            ("KAFKA_BROKERS", "k:9092"),
            ("ZEGO_CALLBACK_SECRET", "s3cret"),
        ])
    }

    fn with(extra: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut all = minimal();
        all.retain(|(name, _)| !extra.iter().any(|(k, _)| k == name));
        all.extend(vars(extra));
        Settings::from_vars(all)
    }

    fn error_of(extra: &[(&str, &str)]) -> String {
        with(extra).unwrap_err().to_string()
    }

    #[test]
    fn defaults_follow_the_contract() {
        let s = Settings::from_vars(minimal()).unwrap();
        assert_eq!(s.kafka.topic, "zego-callbacks");
        assert_eq!(s.kafka.delivery_timeout, Duration::from_millis(5000));
        assert_eq!(s.bind_addr, "0.0.0.0:8080");
        assert_eq!(s.http.callback_path, "/zego/callback");
        assert_eq!(s.policy.timestamp_tolerance, Some(Duration::from_secs(300)));
        assert_eq!(s.http.max_body_bytes, 65536);
        assert_eq!(s.max_in_flight, 10_000);
        assert_eq!(s.http.max_buffered_bytes, 16 << 20);
        assert_eq!(s.kafka.queue_max_bytes, 16 << 20);
        assert_eq!(s.dedup_ttl, Some(Duration::from_secs(600)));
        assert_eq!(s.policy.unknown_events, UnknownEvents::Reject);
        assert!(s.policy.app_ids.is_none());
        assert!(s.tls.is_none());
    }

    #[test]
    fn missing_required_variables_are_named() {
        let err = Settings::from_vars(vars(&[("KAFKA_BROKERS", "k:9092")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration error: ZEGO_CALLBACK_SECRET is required"
        );
        let err = Settings::from_vars(vars(&[("ZEGO_CALLBACK_SECRET", "x")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration error: KAFKA_BROKERS is required"
        );
    }

    #[test]
    fn invalid_numbers_name_the_variable() {
        assert!(error_of(&[("MAX_BODY_BYTES", "lots")]).contains("MAX_BODY_BYTES"));
        assert!(error_of(&[("MAX_IN_FLIGHT", "0")]).contains("MAX_IN_FLIGHT"));
        assert!(
            error_of(&[("KAFKA_DELIVERY_TIMEOUT_MS", "-1")]).contains("KAFKA_DELIVERY_TIMEOUT_MS")
        );
    }

    #[test]
    fn the_byte_budget_must_hold_the_largest_body() {
        let err = error_of(&[("MAX_BUFFERED_BYTES", "1000"), ("MAX_BODY_BYTES", "2000")]);
        assert!(err.contains("MAX_BUFFERED_BYTES"), "{err}");
        let s = with(&[("MAX_BUFFERED_BYTES", "1048576")]).unwrap();
        assert_eq!(
            s.kafka.to_client_config().get("queue.buffering.max.kbytes"),
            Some("1024")
        );
    }

    #[test]
    fn delivery_timeout_beyond_librdkafkas_maximum_is_refused() {
        let err = error_of(&[("KAFKA_DELIVERY_TIMEOUT_MS", "99999999999999")]);
        assert!(
            err.contains("KAFKA_DELIVERY_TIMEOUT_MS must be at most 2147483647"),
            "{err}"
        );
        assert!(with(&[("KAFKA_DELIVERY_TIMEOUT_MS", "2147483647")]).is_ok());
    }

    #[test]
    fn several_secrets_are_split_and_never_shown() {
        let s = with(&[("ZEGO_CALLBACK_SECRET", "old, new ,")]).unwrap();
        let shown: Vec<&str> = s.policy.secrets.iter().map(Secret::expose).collect();
        assert_eq!(shown, ["old", "new"]);
        let debug = format!("{s:?}");
        assert!(!debug.contains("old") && !debug.contains("new"), "{debug}");
        assert!(error_of(&[("ZEGO_CALLBACK_SECRET", " , ")]).contains("ZEGO_CALLBACK_SECRET"));
    }

    #[test]
    fn app_ids_and_zero_meaning_off() {
        let s = with(&[
            ("ZEGO_APP_IDS", "1, 22"),
            ("TIMESTAMP_TOLERANCE_SECS", "0"),
            ("DEDUP_TTL_SECS", "0"),
        ])
        .unwrap();
        let ids = s.policy.app_ids.unwrap();
        assert!(ids.contains("1") && ids.contains("22") && ids.len() == 2);
        assert_eq!(s.policy.timestamp_tolerance, None);
        assert_eq!(s.dedup_ttl, None);
    }

    #[test]
    fn empty_app_ids_mean_any() {
        for value in ["", " , "] {
            assert!(with(&[("ZEGO_APP_IDS", value)])
                .unwrap()
                .policy
                .app_ids
                .is_none());
        }
    }

    #[test]
    fn every_listed_numeric_variable_names_itself_when_invalid() {
        for name in VARIABLES.iter().filter(|n| {
            n.ends_with("_SECS")
                || n.ends_with("_MS")
                || n.ends_with("_BYTES")
                || n.starts_with("MAX_")
                || n.starts_with("DEDUP_")
        }) {
            let err = error_of(&[(name, "not-a-number")]);
            assert!(err.contains(name), "{name}: {err}");
        }
    }

    #[test]
    fn kafka_opt_is_collected_with_its_variable() {
        let s = with(&[
            ("KAFKA_OPT_SECURITY_PROTOCOL", "SASL_SSL"),
            ("KAFKA_OPT_LINGER_MS", "2"),
        ])
        .unwrap();
        let config = s.kafka.to_client_config();
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("linger.ms"), Some("2"));
        assert_eq!(s.kafka.options["linger.ms"].variable, "KAFKA_OPT_LINGER_MS");
        assert!(error_of(&[("KAFKA_OPT_ACKS", "1")]).contains("KAFKA_OPT_ACKS"));
        assert!(error_of(&[("KAFKA_OPT_", "1")]).contains("KAFKA_OPT_"));
    }

    #[test]
    fn per_event_and_per_family_topics_and_unknown_names() {
        let s = with(&[
            ("KAFKA_TOPIC_CALL_ACCEPT", "accepts"),
            ("KAFKA_TOPIC_ROOM_CREATE", "rooms"),
            ("KAFKA_TOPIC_AI_AGENT", "agents"),
            ("KAFKA_TOPIC_RTC", "rtc"),
        ])
        .unwrap();
        assert_eq!(s.kafka.event_topics["call_accept"], "accepts");
        assert_eq!(s.kafka.event_topics["room_create"], "rooms");
        assert_eq!(s.kafka.family_topics[&Family::AiAgent], "agents");
        assert_eq!(s.kafka.family_topics[&Family::Rtc], "rtc");
        assert!(error_of(&[("KAFKA_TOPIC_AI_AGENT_EVENT", "x")]).contains("neither"));
        assert!(error_of(&[("KAFKA_TOPIC_RTC", "a b")]).contains("KAFKA_TOPIC_RTC"));
        assert!(error_of(&[("KAFKA_TOPIC_CALL_DANCE", "x")]).contains("KAFKA_TOPIC_CALL_DANCE"));
        assert!(error_of(&[("KAFKA_TOPIC_CALL_ACCEPT", "a b")]).contains("KAFKA_TOPIC_CALL_ACCEPT"));
        assert!(error_of(&[("KAFKA_TOPIC", "bad topic!")]).contains("KAFKA_TOPIC"));
        // Kafka's own reserved names.
        assert!(error_of(&[("KAFKA_TOPIC", ".")]).contains("KAFKA_TOPIC"));
        assert!(error_of(&[("KAFKA_TOPIC_RTC", "..")]).contains("KAFKA_TOPIC_RTC"));
    }

    #[test]
    fn typos_of_the_bridges_variables_are_named_with_the_closest_known_one() {
        let found = unknown_variables(&vars(&[
            ("ZEGO_APPIDS", "1"),
            ("SPOOLDIR", "/data"),
            ("KAFKA_BROKER", "k:9092"),
            ("KAFKA_TOPIC_CALL_ACCEPT", "accepts"),
            ("KAFKA_OPT_LINGER_MS", "1"),
            ("ZEGO_CALLBACK_SECRET", "s"),
            ("HOME", "/root"),
            ("PATH", "/bin"),
        ]));
        assert_eq!(
            found,
            [
                ("KAFKA_BROKER".to_string(), "KAFKA_BROKERS"),
                ("SPOOLDIR".to_string(), "SPOOL_DIR"),
                ("ZEGO_APPIDS".to_string(), "ZEGO_APP_IDS"),
            ]
        );
    }

    #[test]
    fn the_effective_configuration_names_settings_never_secrets() {
        let line = with(&[("ZEGO_APP_IDS", "7,3"), ("SPOOL_DIR", "/s")])
            .unwrap()
            .describe();
        assert!(line.contains("ZEGO_APP_IDS=3,7"), "{line}");
        assert!(line.contains("SPOOL_DIR=/s "), "{line}");
        assert!(
            line.contains("(1 secrets)") && !line.contains("s3cret"),
            "{line}"
        );
    }

    /// The README's configuration table lists exactly the variables the bridge reads.
    #[test]
    fn help_lists_exactly_the_known_variables() {
        let helped: Vec<&str> = VARIABLE_HELP.iter().map(|(name, ..)| *name).collect();
        assert_eq!(helped, VARIABLES);
        for (name, ..) in VARIABLE_HELP {
            assert!(variables_help().contains(name));
        }
    }

    #[test]
    fn the_readme_table_lists_exactly_the_known_variables() {
        let readme = include_str!("../README.md");
        let table = readme
            .split("## Configuration")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .unwrap();
        let mut listed: Vec<String> = table
            .lines()
            .filter(|l| l.starts_with("| `"))
            .flat_map(|l| {
                let first = l.split('|').nth(1).unwrap_or_default();
                first
                    .split('`')
                    .enumerate()
                    .filter(|(n, _)| n % 2 == 1)
                    .map(|(_, name)| name.to_string())
                    .collect::<Vec<_>>()
            })
            .filter(|name| !name.contains('<'))
            .collect();
        listed.sort();
        let mut known: Vec<String> = VARIABLES.iter().map(|v| v.to_string()).collect();
        known.sort();
        assert_eq!(listed, known);
    }

    #[test]
    fn paths_policies_and_tls_pairs() {
        assert!(error_of(&[("CALLBACK_PATH", "zego")]).contains("CALLBACK_PATH"));
        assert!(error_of(&[("CALLBACK_PATH", "/metrics")]).contains("CALLBACK_PATH"));
        assert!(error_of(&[("UNKNOWN_EVENTS", "drop")]).contains("UNKNOWN_EVENTS"));
        assert!(error_of(&[("ZEGO_FAMILIES", "call,chat")]).contains("ZEGO_FAMILIES"));
        assert!(error_of(&[("ZEGO_FAMILIES", ",")]).contains("ZEGO_FAMILIES"));
        assert!(
            error_of(&[("SPOOL_DIR", "/s"), ("SPOOL_MAX_BYTES", "3000")])
                .contains("SPOOL_MAX_BYTES")
        );
        let calls_only = with(&[("ZEGO_FAMILIES", "call")]).unwrap().policy.families;
        assert_eq!(calls_only.into_iter().collect::<Vec<_>>(), [Family::Call]);
        assert_eq!(
            with(&[("UNKNOWN_EVENTS", "forward")])
                .unwrap()
                .policy
                .unknown_events,
            UnknownEvents::Forward
        );
        assert!(error_of(&[("TLS_CERT_FILE", "/c.pem")]).contains("TLS_KEY_FILE"));
        assert!(
            with(&[("TLS_CERT_FILE", "/c.pem"), ("TLS_KEY_FILE", "/k.pem")])
                .unwrap()
                .tls
                .is_some()
        );
    }
}
