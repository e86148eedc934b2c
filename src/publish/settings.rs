//! Everything Kafka: the producer's fixed guarantees, `KAFKA_OPT_*` pass-through and its
//! redaction, and topic routing. `to_client_config()` is the one place a producer config is made.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;

use crate::callback::catalogue::Family;
use crate::callback::Callback;
use crate::secret::Secret;

use super::Record;

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
/// librdkafka's own ceiling for `message.timeout.ms` (a signed 32-bit number of milliseconds).
pub const MAX_DELIVERY_TIMEOUT_MS: u64 = i32::MAX as u64;

/// The producer and routing settings.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub brokers: String,
    /// The default topic: every event without an override goes here.
    pub topic: String,
    /// `KAFKA_TOPIC_<EVENT>`, by event name: applies to that name in every family that has it.
    pub event_topics: BTreeMap<String, String>,
    /// `KAFKA_TOPIC_<FAMILY>`: every event of the family without an event override.
    pub family_topics: BTreeMap<Family, String>,
    pub delivery_timeout: Duration,
    /// librdkafka's own queue bound (`queue.buffering.max.kbytes`), a backstop behind the
    /// HTTP side's byte budget: a record whose request went away still sits in the queue.
    pub queue_max_bytes: usize,
    /// librdkafka properties from `KAFKA_OPT_*`, keyed by dotted name, with the variable each
    /// came from (so an error librdkafka raises about it can name the variable).
    pub options: BTreeMap<String, PassThroughOption>,
    /// `KAFKA_CREATE_TOPICS=true`: create the topics at start (`topics::ensure_topics`).
    pub create_topics: Option<super::topics::TopicSpec>,
}

/// One `KAFKA_OPT_*` setting.
#[derive(Debug, Clone)]
pub struct PassThroughOption {
    pub variable: String,
    pub value: Secret,
}

impl KafkaSettings {
    /// Settings with no overrides and no options: tests and tools start here.
    pub fn new(brokers: &str, topic: &str, delivery_timeout: Duration) -> Self {
        KafkaSettings {
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            event_topics: BTreeMap::new(),
            family_topics: BTreeMap::new(),
            delivery_timeout,
            queue_max_bytes: 16 << 20,
            options: BTreeMap::new(),
            create_topics: None,
        }
    }

    /// Every topic a record may be written to: the default, then the overrides.
    pub fn topics(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.topic.as_str())
            .chain(self.event_topics.values().map(String::as_str))
            .chain(self.family_topics.values().map(String::as_str))
    }

    /// The topic a callback goes to: its event's override, else its family's, else the default.
    /// Only catalogued events are routed by name: a forwarded unknown one takes the default.
    pub fn topic_for(&self, callback: &Callback) -> &str {
        let Some(kind) = callback.kind else {
            return &self.topic;
        };
        let by_event = (!kind.spec().any_name)
            .then(|| self.event_topics.get(kind.name()))
            .flatten();
        by_event
            .or_else(|| self.family_topics.get(&kind.family()))
            .unwrap_or(&self.topic)
    }

    /// The record for a verified callback: routed, keyed and stamped with its arrival time.
    pub fn record_for(&self, callback: Callback, received_at_ms: i64) -> Record {
        let topic = self.topic_for(&callback).to_string();
        Record::new(callback, topic, received_at_ms)
    }

    /// The producer configuration: the bridge's guarantees first, then the operator's options.
    pub fn to_client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
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
            .set("reconnect.backoff.max.ms", "1000")
            // librdkafka's default queue holds up to 1 GiB; past this it answers QueueFull,
            // which the bridge answers 503 `overloaded`. Overridable below.
            .set(
                "queue.buffering.max.kbytes",
                self.queue_max_bytes.div_ceil(1024).max(1).to_string(),
            );
        for (name, option) in &self.options {
            config.set(name, option.value.expose());
        }
        config
    }

    /// The options as they may appear in a log line: sensitive values replaced by `***`.
    pub fn loggable_options(&self) -> BTreeMap<&str, &str> {
        self.options
            .iter()
            .map(|(name, option)| {
                let shown = if is_sensitive(name) {
                    "***"
                } else {
                    option.value.expose()
                };
                (name.as_str(), shown)
            })
            .collect()
    }

    /// Removes every sensitive option value from a message (librdkafka may quote values).
    pub fn redact(&self, message: &str) -> String {
        self.options
            .iter()
            .filter(|(name, option)| is_sensitive(name) && !option.value.expose().is_empty())
            .fold(message.to_string(), |msg, (_, option)| {
                msg.replace(option.value.expose(), "***")
            })
    }

    /// Explains a librdkafka configuration error in the operator's terms: the variable that set
    /// the property it names, and never a sensitive value.
    pub fn explain_config_error(&self, message: &str) -> String {
        let named = self.options.iter().find(|(name, _)| {
            message.contains(&format!("\"{name}\"")) || message.contains(name.as_str())
        });
        let redacted = self.redact(message);
        match named {
            Some((_, option)) => format!("{}: {redacted}", option.variable),
            None => format!("KAFKA_OPT_*: {redacted}"),
        }
    }
}

fn is_sensitive(option: &str) -> bool {
    SENSITIVE_OPTION_PARTS
        .iter()
        .any(|part| option.contains(part))
}

/// A topic name Kafka accepts (Kafka also refuses `.` and `..`).
pub fn validate_topic(name: &str) -> Result<(), String> {
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not a topic name Kafka accepts"));
    }
    let valid = !name.is_empty()
        && name.len() <= 249
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "must be 1-249 characters of [a-zA-Z0-9._-], got {name:?}"
        ))
    }
}

/// The librdkafka property a `KAFKA_OPT_<SUFFIX>` variable sets (lower case, `_` → `.`),
/// refusing the ones the delivery guarantee depends on.
pub fn option_property(suffix: &str) -> Result<String, String> {
    if suffix.is_empty() {
        return Err("no property name after KAFKA_OPT_".into());
    }
    let property = suffix.to_lowercase().replace('_', ".");
    match FIXED_OPTIONS.iter().find(|(fixed, _)| *fixed == property) {
        Some((_, why)) => Err(format!("{property} cannot be set here: {why}")),
        None => Ok(property),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_options(options: &[(&str, &str, &str)]) -> KafkaSettings {
        let mut settings = KafkaSettings::new("k:9092", "zego-callbacks", Duration::from_secs(5));
        for (variable, property, value) in options {
            settings.options.insert(
                property.to_string(),
                PassThroughOption {
                    variable: variable.to_string(),
                    value: Secret::new(*value),
                },
            );
        }
        settings
    }

    #[test]
    fn guarantees_come_first_and_options_pass_through_redacted() {
        let s = with_options(&[
            (
                "KAFKA_OPT_SECURITY_PROTOCOL",
                "security.protocol",
                "SASL_SSL",
            ),
            ("KAFKA_OPT_SASL_PASSWORD", "sasl.password", "hunter2"),
        ]);
        let config = s.to_client_config();
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("message.timeout.ms"), Some("5000"));
        assert_eq!(config.get("sasl.password"), Some("hunter2"));
        let logged = format!("{:?}", s.loggable_options());
        assert!(
            !logged.contains("hunter2") && logged.contains("SASL_SSL"),
            "{logged}"
        );
        assert_eq!(s.redact("bad value \"hunter2\""), "bad value \"***\"");
    }

    #[test]
    fn a_librdkafka_error_is_explained_by_its_variable() {
        let s = with_options(&[
            ("KAFKA_OPT_LINGER_MS", "linger.ms", "soon"),
            ("KAFKA_OPT_SASL_PASSWORD", "sasl.password", "hunter2"),
        ]);
        let explained = s.explain_config_error(
            "Invalid value \"soon\" for configuration property \"linger.ms\"",
        );
        assert!(
            explained.starts_with("KAFKA_OPT_LINGER_MS: "),
            "{explained}"
        );
        let hidden = s.explain_config_error("bad sasl.password hunter2");
        assert!(
            hidden.starts_with("KAFKA_OPT_SASL_PASSWORD: ") && !hidden.contains("hunter2"),
            "{hidden}"
        );
    }

    #[test]
    fn fixed_properties_are_refused_and_names_translated() {
        assert_eq!(option_property("LINGER_MS").unwrap(), "linger.ms");
        assert!(option_property("ACKS").unwrap_err().contains("acks=all"));
        assert!(option_property("ENABLE_IDEMPOTENCE").is_err());
        assert!(option_property("").is_err());
    }

    fn callback(kind: Option<crate::callback::event::EventKind>) -> Callback {
        Callback {
            kind,
            event: kind.map_or("mystery", |k| k.name()).into(),
            appid: "1".into(),
            key: None,
            headers: Vec::new(),
            id: "id".into(),
            signed_by_secret_at: 1,
            value: bytes::Bytes::new(),
        }
    }

    #[test]
    fn routing_by_event_then_family_then_default() {
        use crate::callback::catalogue::{call, EventKind, Product};
        let mut s = with_options(&[]);
        s.event_topics
            .insert("call_accept".into(), "accepts".into());
        s.event_topics
            .insert("room_create".into(), "rooms-created".into());
        s.family_topics.insert(Family::Call, "calls".into());
        s.family_topics.insert(Family::AiAgent, "agents".into());
        let topic = |kind| s.topic_for(&callback(kind)).to_string();
        assert_eq!(topic(Some(call::accept())), "accepts");
        assert_eq!(topic(Some(call::create())), "calls");
        assert_eq!(
            topic(EventKind::lookup(Product::Zim, "room_create")),
            "rooms-created"
        );
        assert_eq!(
            topic(EventKind::lookup(Product::Rtc, "room_create")),
            "rooms-created"
        );
        assert_eq!(
            topic(EventKind::lookup(Product::Zim, "room_enter")),
            "zego-callbacks"
        );
        assert_eq!(
            topic(EventKind::lookup(Product::AiAgent, "Anything")),
            "agents"
        );
        assert_eq!(topic(None), "zego-callbacks");
        assert_eq!(
            s.topics().collect::<Vec<_>>(),
            [
                "zego-callbacks",
                "accepts",
                "rooms-created",
                "calls",
                "agents"
            ]
        );
        assert!(validate_topic("bad topic!").is_err());
    }
}
