//! How `tail` reaches Kafka and what it says about the link. It takes the bridge's own
//! connection settings (`KAFKA_BROKERS`, `KAFKA_OPT_*`) with `-X name=value` on top, so a
//! secured cluster (SASL, TLS) is read with the settings the bridge already has. librdkafka's
//! raw messages are never shown: the link's changes are said once each, in tail's words.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientConfig, ClientContext};

use crate::kafka_log::{describe_error, describe_error_of, describe_tls_failure, LogFolder};
use crate::publish::settings::{KafkaSettings, PassThroughOption};
use crate::secret::Secret;

/// After this long without a first answer, tail says what it is waiting for.
const SAY_WAITING_AFTER: Duration = Duration::from_secs(1);
/// An outage is said once it lasted this long without any answer: librdkafka also reports
/// every broker down for a moment when a cluster's brokers move (the addresses it learned
/// are gone while the bootstrap address answers), which is not worth a line.
const SAY_DOWN_AFTER: Duration = Duration::from_secs(2);

/// The consumer's settings: `KAFKA_OPT_*` from the environment, then each `-X name=value`.
/// Errors name the variable or flag that set the property, never a sensitive value.
pub fn settings(
    brokers: &str,
    topic: &str,
    vars: &[(String, String)],
    flags: &[String],
) -> Result<KafkaSettings, String> {
    // KafkaSettings for its options and their redaction; the delivery timeout is unused here.
    let mut settings = KafkaSettings::new(brokers, topic, Duration::from_secs(30));
    settings.options = crate::config::kafka_options_from_vars(vars).map_err(|e| e.to_string())?;
    for flag in flags {
        let Some((name, value)) = flag.split_once('=') else {
            return Err(format!(
                "-X {flag:?}: expected NAME=VALUE (a librdkafka property)"
            ));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("-X {flag:?}: no property name before ="));
        }
        settings.options.insert(
            name.to_string(),
            PassThroughOption {
                variable: format!("-X {name}"),
                value: Secret::new(value.to_string()),
            },
        );
    }
    Ok(settings)
}

/// A consumer that joins no group (partitions are assigned by hand, so the first record shows
/// at once) and, when a position no longer exists, starts that partition again from its start.
pub fn consumer(settings: &KafkaSettings) -> Result<BaseConsumer<TailContext>, String> {
    let mut config = ClientConfig::new();
    for (name, option) in &settings.options {
        config.set(name, option.value.expose());
    }
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("group.id", "zego-kafka-bridge-tail")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .set("reconnect.backoff.max.ms", "1000")
        .set_log_level(RDKafkaLogLevel::Warning);
    config
        .create_with_context(TailContext::new(&settings.brokers))
        .map_err(|e| settings.explain_config_error(&e.to_string()))
}

/// What tail knows of its link to the brokers.
struct Link {
    started: Instant,
    reached_once: bool,
    /// Since when every broker is down (librdkafka said so) with none answering since.
    down_since: Option<Instant>,
    said_waiting: bool,
    said_down: bool,
    /// The last reason a connection failed, in plain words.
    problem: Option<String>,
    /// Every broker was down at some moment since `take_outage` last asked, however briefly.
    outage: bool,
}

pub struct TailContext {
    brokers: String,
    link: Mutex<Link>,
    /// Problems worth showing that are not about the link (credentials, TLS), folded.
    problems: LogFolder,
}

impl TailContext {
    fn new(brokers: &str) -> Self {
        TailContext {
            brokers: brokers.to_string(),
            link: Mutex::new(Link {
                started: Instant::now(),
                reached_once: false,
                down_since: None,
                said_waiting: false,
                said_down: false,
                problem: None,
                outage: false,
            }),
            problems: LogFolder::default(),
        }
    }

    fn link(&self) -> std::sync::MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A broker answered (a record, the end of a partition, metadata). Returns the line to say
    /// when this ends an outage that was said.
    pub fn reached(&self) -> Option<String> {
        let mut link = self.link();
        link.reached_once = true;
        link.down_since = None;
        link.problem = None;
        std::mem::take(&mut link.said_down)
            .then(|| format!("{} answers again; reading on", self.brokers))
    }

    /// How long tail has waited for a first answer (zero once it had one).
    pub fn waiting_for_first_answer(&self) -> Duration {
        let link = self.link();
        if link.reached_once {
            Duration::ZERO
        } else {
            link.started.elapsed()
        }
    }

    /// The line to say now about the link, at most once per state: waiting for a first
    /// answer, or an outage after one.
    pub fn notice(&self, give_up_after: Duration) -> Option<String> {
        let mut link = self.link();
        let why = link
            .problem
            .as_ref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default();
        if !link.reached_once {
            if link.said_waiting || link.started.elapsed() < SAY_WAITING_AFTER {
                return None;
            }
            link.said_waiting = true;
            return Some(format!(
                "waiting for a broker at {}{why}; giving up after {}s",
                self.brokers,
                give_up_after.as_secs()
            ));
        }
        let down_long = link
            .down_since
            .is_some_and(|since| since.elapsed() >= SAY_DOWN_AFTER);
        if down_long && !link.said_down {
            link.said_down = true;
            return Some(format!(
                "lost the brokers at {}{why}; waiting for them, records resume when they are back",
                self.brokers
            ));
        }
        None
    }

    /// Whether every broker was down since the last call: what tail read may no longer be
    /// there when they answer again.
    pub fn take_outage(&self) -> bool {
        std::mem::take(&mut self.link().outage)
    }

    /// The last reason a connection failed, for the line that gives up.
    pub fn problem(&self) -> Option<String> {
        self.link().problem.clone()
    }
}

impl ClientContext for TailContext {
    fn log(&self, _level: RDKafkaLogLevel, facility: &str, message: &str) {
        // For debugging tail itself (`RUST_LOG=librdkafka=debug`): the link's state is said
        // in tail's own words instead.
        log::debug!(target: "librdkafka", "{facility}: {message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::AllBrokersDown) => {
                let mut link = self.link();
                link.down_since.get_or_insert_with(Instant::now);
                link.outage = true;
            }
            Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::Resolve) => {
                let said = describe_error(&error, reason);
                self.link().problem = Some(said.trim_end_matches(", retrying").to_string());
            }
            Some(code @ (RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SSL)) => {
                let said = match code {
                    RDKafkaErrorCode::SSL => describe_tls_failure(reason),
                    _ => describe_error_of("tail's", &error, reason),
                };
                self.link().problem = Some(said.trim_end_matches("; retrying").to_string());
                if let Some(line) = self.problems.observe(&said, Instant::now()) {
                    eprintln!("tail: {line}");
                }
            }
            _ => log::debug!(target: "librdkafka", "{error}: {reason}"),
        }
    }
}

impl ConsumerContext for TailContext {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::vars;

    #[test]
    fn flags_come_after_the_environment_and_name_themselves() {
        let env = vars(&[
            ("KAFKA_OPT_SECURITY_PROTOCOL", "SASL_SSL"),
            ("KAFKA_OPT_SASL_PASSWORD", "from-env"),
            ("ZEGO_CALLBACK_SECRET", "not needed by tail"),
        ]);
        let flags = [
            "sasl.password=from-flag".to_string(),
            "ssl.ca.location=/ca.pem".to_string(),
        ];
        let read = settings("k:9092", "t", &env, &flags).unwrap();
        assert_eq!(read.options["security.protocol"].value.expose(), "SASL_SSL");
        assert_eq!(read.options["sasl.password"].value.expose(), "from-flag");
        assert_eq!(read.options["sasl.password"].variable, "-X sasl.password");
        assert_eq!(read.loggable_options()["sasl.password"], "***");
        assert!(settings("k", "t", &[], &["no-equals".into()])
            .unwrap_err()
            .contains("NAME=VALUE"));
        assert!(settings("k", "t", &vars(&[("KAFKA_OPT_", "1")]), &[])
            .unwrap_err()
            .contains("KAFKA_OPT_"));
    }

    #[test]
    fn a_bad_property_is_named_by_its_flag_without_its_value() {
        let flags = [
            "sasl.password=hunter2".to_string(),
            "no.such.property=1".to_string(),
        ];
        let error = consumer(&settings("k:9092", "t", &[], &flags).unwrap())
            .err()
            .expect("librdkafka refuses an unknown property");
        assert!(error.starts_with("-X no.such.property"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn an_outage_after_contact_is_said_once_and_its_end_too() {
        let context = TailContext::new("k:9092");
        assert_eq!(context.reached(), None);
        context.error(
            KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure),
            "k:9092/1: Connect to ipv4#127.0.0.1:9092 failed: Connection refused (after 0ms in state CONNECT)",
        );
        context.error(
            KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down",
        );
        assert_eq!(
            context.notice(Duration::from_secs(30)),
            None,
            "a blink is not said"
        );
        context.link().down_since = Instant::now().checked_sub(SAY_DOWN_AFTER);
        let said = context
            .notice(Duration::from_secs(30))
            .expect("the outage is said");
        assert_eq!(
            said,
            "lost the brokers at k:9092 (cannot reach Kafka at 127.0.0.1:9092 (Connection refused)); waiting for them, records resume when they are back"
        );
        assert_eq!(context.notice(Duration::from_secs(30)), None, "once");
        assert_eq!(
            context.reached().as_deref(),
            Some("k:9092 answers again; reading on")
        );
        assert_eq!(context.reached(), None);
    }
}
