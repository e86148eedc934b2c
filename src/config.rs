//! Settings read from the environment (DESIGN §1), validated once at start-up.
//!
//! `envy` reads the fixed variables; the two families with variable names
//! (`KAFKA_TOPIC_<EVENT>`, `KAFKA_OPT_<NAME>`) are collected by prefix. Every error names the
//! variable and never echoes a secret.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use rdkafka::ClientConfig;
use serde::Deserialize;

use crate::callback::event::EventKind;

/// A start-up configuration problem: one line, naming the variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError(message.into())
    }
}

/// What to do with an `event` outside the call-invitation family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownEvents {
    /// Answer 422 `unsupported_event`.
    Reject,
    /// Publish to `KAFKA_TOPIC`, keyed by `call_id` when there is one.
    Forward,
}

/// A secret string whose `Debug`/`Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Everything the Kafka side needs.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `None` only with `--embedded-kafka`, which fills it in before the producer is built.
    pub brokers: Option<String>,
    pub topic: String,
    pub topic_overrides: BTreeMap<EventKind, String>,
    pub delivery_timeout: Duration,
    /// librdkafka properties from `KAFKA_OPT_*`, already translated to dotted names.
    pub options: BTreeMap<String, Secret>,
}

/// Everything the callback checks need.
#[derive(Debug, Clone)]
pub struct CallbackSettings {
    pub path: String,
    pub secrets: Vec<Secret>,
    /// `None` means any appid is accepted.
    pub app_ids: Option<HashSet<String>>,
    /// `None` means the timestamp window is off.
    pub timestamp_tolerance: Option<Duration>,
    pub max_body_bytes: usize,
    pub unknown_events: UnknownEvents,
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind_addr: String,
    pub max_in_flight: usize,
    pub dedup_ttl: Option<Duration>,
    pub dedup_capacity: usize,
    pub tls: Option<TlsFiles>,
    pub kafka: KafkaSettings,
    pub callback: CallbackSettings,
}

/// Certificate chain and private key for serving HTTPS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
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
    #[serde(default = "default_dedup_ttl_secs")]
    dedup_ttl_secs: u64,
    #[serde(default = "default_dedup_capacity")]
    dedup_capacity: usize,
    #[serde(default = "default_unknown_events")]
    unknown_events: String,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
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
fn default_dedup_ttl_secs() -> u64 {
    600
}
/// About 100 bytes an entry: 100k remembered callbacks cost ~10 MB at most.
fn default_dedup_capacity() -> usize {
    100_000
}
fn default_unknown_events() -> String {
    "reject".into()
}

/// Every fixed variable the bridge reads (the fields of `RawSettings`, upper-cased), for
/// deployment files to be checked against. Keep in step with `RawSettings`.
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
    "DEDUP_TTL_SECS",
    "DEDUP_CAPACITY",
    "UNKNOWN_EVENTS",
    "TLS_CERT_FILE",
    "TLS_KEY_FILE",
    "RUST_LOG",
];
/// Variable families: any name with these prefixes is read too.
pub const VARIABLE_PREFIXES: &[&str] = &[TOPIC_PREFIX, OPT_PREFIX];
/// Variables start-up fails without (`KAFKA_BROKERS` unless `--embedded-kafka`).
pub const REQUIRED_VARIABLES: &[&str] = &["KAFKA_BROKERS", "ZEGO_CALLBACK_SECRET"];

const TOPIC_PREFIX: &str = "KAFKA_TOPIC_";
const OPT_PREFIX: &str = "KAFKA_OPT_";
/// librdkafka properties the bridge owns: weakening them would break "200 means in Kafka".
const FIXED_OPTIONS: &[(&str, &str)] = &[
    ("bootstrap.servers", "use KAFKA_BROKERS"),
    ("acks", "the bridge always uses acks=all"),
    ("request.required.acks", "the bridge always uses acks=all"),
    (
        "enable.idempotence",
        "the bridge always uses an idempotent producer",
    ),
    ("message.timeout.ms", "use KAFKA_DELIVERY_TIMEOUT_MS"),
    ("delivery.timeout.ms", "use KAFKA_DELIVERY_TIMEOUT_MS"),
];
/// Substrings of property names whose values must never be logged.
const SENSITIVE_OPTION_PARTS: &[&str] = &["password", "secret", "key", "token", "jaas"];

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Reads any set of variables: the tests pass their own.
    pub fn from_vars<I>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let raw: RawSettings = envy::from_iter(vars.iter().cloned()).map_err(|e| match e {
            envy::Error::MissingValue(field) => {
                ConfigError(format!("{} is required", field.to_uppercase()))
            }
            envy::Error::Custom(msg) => ConfigError(msg),
        })?;
        let kafka = KafkaSettings {
            brokers: non_empty("KAFKA_BROKERS", raw.kafka_brokers)?,
            topic: topic_name("KAFKA_TOPIC", raw.kafka_topic)?,
            topic_overrides: topic_overrides(&vars)?,
            delivery_timeout: Duration::from_millis(positive(
                "KAFKA_DELIVERY_TIMEOUT_MS",
                raw.kafka_delivery_timeout_ms,
            )?),
            options: kafka_options(&vars)?,
        };
        let callback = CallbackSettings {
            path: callback_path(raw.callback_path)?,
            secrets: secrets(raw.zego_callback_secret)?,
            app_ids: app_ids(raw.zego_app_ids)?,
            timestamp_tolerance: (raw.timestamp_tolerance_secs > 0)
                .then(|| Duration::from_secs(raw.timestamp_tolerance_secs)),
            max_body_bytes: positive("MAX_BODY_BYTES", raw.max_body_bytes as u64)? as usize,
            unknown_events: unknown_events(&raw.unknown_events)?,
        };
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
        Ok(Settings {
            bind_addr: raw.bind_addr,
            max_in_flight: positive("MAX_IN_FLIGHT", raw.max_in_flight as u64)? as usize,
            dedup_ttl: (raw.dedup_ttl_secs > 0).then(|| Duration::from_secs(raw.dedup_ttl_secs)),
            dedup_capacity: positive("DEDUP_CAPACITY", raw.dedup_capacity as u64)? as usize,
            tls,
            kafka,
            callback,
        })
    }
}

impl KafkaSettings {
    /// The topic a callback of `kind` goes to (`None`: an event outside the family).
    pub fn topic_for(&self, kind: Option<EventKind>) -> &str {
        kind.and_then(|k| self.topic_overrides.get(&k))
            .unwrap_or(&self.topic)
    }

    /// The producer configuration: the bridge's guarantees first, then the operator's options.
    pub fn to_client_config(&self) -> Result<ClientConfig, ConfigError> {
        let brokers = self
            .brokers
            .as_deref()
            .ok_or_else(|| ConfigError("KAFKA_BROKERS is required".into()))?;
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set(
                "message.timeout.ms",
                self.delivery_timeout.as_millis().to_string(),
            )
            // Queue statistics feed the /metrics gauges; cheap at this interval.
            .set("statistics.interval.ms", "5000")
            // librdkafka's default backs off up to 10 s between reconnects; after an outage
            // that would waste ZEGOCLOUD's first retries (2 s, 4 s). Overridable below.
            .set("reconnect.backoff.max.ms", "1000");
        for (name, value) in &self.options {
            config.set(name, value.expose());
        }
        Ok(config)
    }

    /// The options as they may appear in a log line: sensitive values replaced by `***`.
    pub fn loggable_options(&self) -> BTreeMap<&str, &str> {
        self.options
            .iter()
            .map(|(name, value)| {
                let shown = if is_sensitive(name) {
                    "***"
                } else {
                    value.expose()
                };
                (name.as_str(), shown)
            })
            .collect()
    }

    /// Removes every sensitive option value from a message (librdkafka may quote values).
    pub fn redact(&self, message: &str) -> String {
        self.options
            .iter()
            .filter(|(name, value)| is_sensitive(name) && !value.expose().is_empty())
            .fold(message.to_string(), |msg, (_, value)| {
                msg.replace(value.expose(), "***")
            })
    }
}

fn is_sensitive(option: &str) -> bool {
    SENSITIVE_OPTION_PARTS
        .iter()
        .any(|part| option.contains(part))
}

fn non_empty(var: &str, value: Option<String>) -> Result<Option<String>, ConfigError> {
    match value {
        Some(v) if v.trim().is_empty() => Err(ConfigError(format!("{var} must not be empty"))),
        other => Ok(other.map(|v| v.trim().to_string())),
    }
}

fn positive(var: &str, value: u64) -> Result<u64, ConfigError> {
    if value == 0 {
        return Err(ConfigError(format!("{var} must be greater than 0")));
    }
    Ok(value)
}

fn topic_name(var: &str, value: String) -> Result<String, ConfigError> {
    let valid = !value.is_empty()
        && value.len() <= 249
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid {
        return Err(ConfigError(format!(
            "{var} must be 1-249 characters of [a-zA-Z0-9._-], got {value:?}"
        )));
    }
    Ok(value)
}

fn topic_overrides(vars: &[(String, String)]) -> Result<BTreeMap<EventKind, String>, ConfigError> {
    let mut overrides = BTreeMap::new();
    for (name, value) in vars {
        let Some(event) = name.strip_prefix(TOPIC_PREFIX) else {
            continue;
        };
        let kind = EventKind::from_name(&event.to_lowercase()).ok_or_else(|| {
            ConfigError(format!(
                "{name}: unknown event {:?}; known events: {}",
                event.to_lowercase(),
                EventKind::ALL.map(|k| k.name()).join(", ")
            ))
        })?;
        overrides.insert(kind, topic_name(name, value.clone())?);
    }
    Ok(overrides)
}

fn kafka_options(vars: &[(String, String)]) -> Result<BTreeMap<String, Secret>, ConfigError> {
    let mut options = BTreeMap::new();
    for (name, value) in vars {
        let Some(suffix) = name.strip_prefix(OPT_PREFIX) else {
            continue;
        };
        if suffix.is_empty() {
            return Err(ConfigError(format!(
                "{name}: no property name after {OPT_PREFIX}"
            )));
        }
        let property = suffix.to_lowercase().replace('_', ".");
        if let Some((_, why)) = FIXED_OPTIONS.iter().find(|(fixed, _)| *fixed == property) {
            return Err(ConfigError(format!(
                "{name}: {property} cannot be set here: {why}"
            )));
        }
        options.insert(property, Secret::new(value.clone()));
    }
    Ok(options)
}

fn callback_path(path: String) -> Result<String, ConfigError> {
    if !path.starts_with('/') || path.len() < 2 {
        return Err(ConfigError(format!(
            "CALLBACK_PATH must start with '/' and name a path, got {path:?}"
        )));
    }
    if ["/healthz", "/readyz", "/metrics"].contains(&path.as_str()) {
        return Err(ConfigError(format!(
            "CALLBACK_PATH must not be {path}: that path is the bridge's own"
        )));
    }
    Ok(path)
}

fn secrets(value: Option<String>) -> Result<Vec<Secret>, ConfigError> {
    let value = value.ok_or_else(|| ConfigError("ZEGO_CALLBACK_SECRET is required".into()))?;
    let secrets: Vec<Secret> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Secret::new)
        .collect();
    if secrets.is_empty() {
        return Err(ConfigError(
            "ZEGO_CALLBACK_SECRET must hold at least one non-empty secret".into(),
        ));
    }
    Ok(secrets)
}

fn app_ids(value: Option<String>) -> Result<Option<HashSet<String>>, ConfigError> {
    let Some(value) = value else { return Ok(None) };
    let ids: HashSet<String> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    // Empty means "any", as when unset: docker-compose passes `${ZEGO_APP_IDS:-}` through.
    Ok((!ids.is_empty()).then_some(ids))
}

fn unknown_events(value: &str) -> Result<UnknownEvents, ConfigError> {
    match value.trim().to_lowercase().as_str() {
        "reject" => Ok(UnknownEvents::Reject),
        "forward" => Ok(UnknownEvents::Forward),
        other => Err(ConfigError(format!(
            "UNKNOWN_EVENTS must be reject or forward, got {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

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
    fn defaults_follow_the_design() {
        let s = Settings::from_vars(minimal()).unwrap();
        assert_eq!(s.kafka.topic, "zego-callbacks");
        assert_eq!(s.kafka.delivery_timeout, Duration::from_millis(5000));
        assert_eq!(s.bind_addr, "0.0.0.0:8080");
        assert_eq!(s.callback.path, "/zego/callback");
        assert_eq!(
            s.callback.timestamp_tolerance,
            Some(Duration::from_secs(300))
        );
        assert_eq!(s.callback.max_body_bytes, 65536);
        assert_eq!(s.max_in_flight, 10_000);
        assert_eq!(s.dedup_ttl, Some(Duration::from_secs(600)));
        assert_eq!(s.callback.unknown_events, UnknownEvents::Reject);
        assert!(s.callback.app_ids.is_none());
        assert!(s.tls.is_none());
    }

    #[test]
    fn missing_secret_names_the_variable() {
        let err = Settings::from_vars(vars(&[("KAFKA_BROKERS", "k:9092")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration error: ZEGO_CALLBACK_SECRET is required"
        );
    }

    #[test]
    fn brokers_may_be_absent_until_the_producer_is_built() {
        let s = Settings::from_vars(vars(&[("ZEGO_CALLBACK_SECRET", "x")])).unwrap();
        let err = s.kafka.to_client_config().unwrap_err();
        assert!(err.to_string().contains("KAFKA_BROKERS"));
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
    fn several_secrets_are_split_and_never_shown() {
        let s = with(&[("ZEGO_CALLBACK_SECRET", "old, new ,")]).unwrap();
        let shown: Vec<&str> = s.callback.secrets.iter().map(Secret::expose).collect();
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
        let ids = s.callback.app_ids.unwrap();
        assert!(ids.contains("1") && ids.contains("22") && ids.len() == 2);
        assert_eq!(s.callback.timestamp_tolerance, None);
        assert_eq!(s.dedup_ttl, None);
    }

    #[test]
    fn empty_app_ids_mean_any() {
        assert!(with(&[("ZEGO_APP_IDS", "")])
            .unwrap()
            .callback
            .app_ids
            .is_none());
        assert!(with(&[("ZEGO_APP_IDS", " , ")])
            .unwrap()
            .callback
            .app_ids
            .is_none());
    }

    #[test]
    fn every_listed_variable_is_a_settings_field() {
        // envy names fields after variables; a listed name with an invalid value must fail
        // with its own name, or be accepted as text.
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
    fn kafka_opt_translates_names_and_redacts_secrets() {
        let s = with(&[
            ("KAFKA_OPT_SECURITY_PROTOCOL", "SASL_SSL"),
            ("KAFKA_OPT_SASL_PASSWORD", "hunter2"),
            ("KAFKA_OPT_LINGER_MS", "2"),
        ])
        .unwrap();
        let config = s.kafka.to_client_config().unwrap();
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.get("sasl.password"), Some("hunter2"));
        assert_eq!(config.get("linger.ms"), Some("2"));
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("message.timeout.ms"), Some("5000"));
        let logged = format!("{:?}", s.kafka.loggable_options());
        assert!(
            !logged.contains("hunter2") && logged.contains("SASL_SSL"),
            "{logged}"
        );
        assert_eq!(s.kafka.redact("bad value \"hunter2\""), "bad value \"***\"");
    }

    #[test]
    fn kafka_opt_cannot_weaken_the_delivery_guarantee() {
        assert!(error_of(&[("KAFKA_OPT_ACKS", "1")]).contains("KAFKA_OPT_ACKS"));
        assert!(error_of(&[("KAFKA_OPT_ENABLE_IDEMPOTENCE", "false")])
            .contains("KAFKA_OPT_ENABLE_IDEMPOTENCE"));
    }

    #[test]
    fn per_event_topics_and_unknown_event_names() {
        let s = with(&[("KAFKA_TOPIC_CALL_ACCEPT", "accepts")]).unwrap();
        assert_eq!(s.kafka.topic_for(Some(EventKind::CallAccept)), "accepts");
        assert_eq!(
            s.kafka.topic_for(Some(EventKind::CallCreate)),
            "zego-callbacks"
        );
        assert_eq!(s.kafka.topic_for(None), "zego-callbacks");
        assert!(error_of(&[("KAFKA_TOPIC_CALL_DANCE", "x")]).contains("KAFKA_TOPIC_CALL_DANCE"));
        assert!(error_of(&[("KAFKA_TOPIC", "bad topic!")]).contains("KAFKA_TOPIC"));
    }

    #[test]
    fn paths_policies_and_tls_pairs() {
        assert!(error_of(&[("CALLBACK_PATH", "zego")]).contains("CALLBACK_PATH"));
        assert!(error_of(&[("CALLBACK_PATH", "/metrics")]).contains("CALLBACK_PATH"));
        assert!(error_of(&[("UNKNOWN_EVENTS", "drop")]).contains("UNKNOWN_EVENTS"));
        assert_eq!(
            with(&[("UNKNOWN_EVENTS", "forward")])
                .unwrap()
                .callback
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
