//! librdkafka's messages, folded: with a broker down it repeats the same complaint many times a
//! second (`AllBrokersDown` twice per attempt, one line per reconnect). Each kind of message is
//! logged once per window, in words that say what is wrong, with a count of what was folded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// How long one kind of message stays folded after it was logged.
pub const FOLD_WINDOW: Duration = Duration::from_secs(10);

/// Kinds remembered before the stale ones are forgotten.
const MAX_KINDS: usize = 256;

struct Window {
    started: Instant,
    folded: u64,
}

/// Remembers, per kind of message, when it was last logged and how many were folded since.
#[derive(Default)]
pub struct LogFolder {
    windows: Mutex<HashMap<String, Window>>,
}

impl LogFolder {
    /// The line to log for `message` at `now`, or `None` while its kind is folded.
    pub fn observe(&self, message: &str, now: Instant) -> Option<String> {
        // Numbers (ports, counts, milliseconds) differ between repeats of one complaint.
        let kind: String = message.chars().filter(|c| !c.is_ascii_digit()).collect();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        match windows.get_mut(&kind) {
            Some(window) if now.duration_since(window.started) < FOLD_WINDOW => {
                window.folded += 1;
                None
            }
            Some(window) => {
                let folded = std::mem::replace(
                    window,
                    Window {
                        started: now,
                        folded: 0,
                    },
                )
                .folded;
                Some(match folded {
                    0 => message.to_string(),
                    n => format!(
                        "{message} ({n} more like this in the last {}s)",
                        FOLD_WINDOW.as_secs()
                    ),
                })
            }
            None => {
                // Kinds not seen for a while are forgotten (what they had folded is stale):
                // messages carrying ever-new text (topic or host names) cannot grow the map
                // without bound.
                if windows.len() >= MAX_KINDS {
                    windows.retain(|_, w| now.duration_since(w.started) < FOLD_WINDOW);
                }
                windows.insert(
                    kind,
                    Window {
                        started: now,
                        folded: 0,
                    },
                );
                Some(message.to_string())
            }
        }
    }

    /// Logs a librdkafka global error, folded and in plain words.
    pub fn error(&self, error: &KafkaError, reason: &str) {
        if let Some(line) = self.observe(&describe_error(error, reason), Instant::now()) {
            log::warn!(target: "librdkafka", "{line}");
        }
    }

    /// Logs one of librdkafka's own log lines, folded.
    pub fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        let Some(line) = self.observe(&format!("{facility}: {message}"), Instant::now()) else {
            return;
        };
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => log::error!(target: "librdkafka", "{line}"),
            RDKafkaLogLevel::Warning => log::warn!(target: "librdkafka", "{line}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                log::info!(target: "librdkafka", "{line}")
            }
            RDKafkaLogLevel::Debug => log::debug!(target: "librdkafka", "{line}"),
        }
    }
}

/// What a global error means, for an operator: "cannot reach 127.0.0.1:9092 (Connection
/// refused), retrying" rather than librdkafka's internal wording.
pub fn describe_error(error: &KafkaError, reason: &str) -> String {
    describe_error_of("the bridge's", error, reason)
}

/// The same, for a client other than the bridge (`whose` credentials were refused: `tail's`).
pub fn describe_error_of(whose: &str, error: &KafkaError, reason: &str) -> String {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::AllBrokersDown) => {
            "no Kafka broker is reachable, retrying".to_string()
        }
        Some(RDKafkaErrorCode::Authentication) => format!(
            "Kafka refused {whose} credentials ({}): check KAFKA_OPT_SASL_USERNAME, KAFKA_OPT_SASL_PASSWORD and KAFKA_OPT_SASL_MECHANISM; retrying",
            why(reason)
        ),
        Some(RDKafkaErrorCode::BrokerTransportFailure) => match reason.split_once("Connect to ") {
            Some((_, rest)) => {
                let (target, why) = rest.split_once(" failed: ").unwrap_or((rest, "failed"));
                let address = target.split_once('#').map_or(target, |(_, a)| a);
                let why = why.split(" (after").next().unwrap_or(why);
                format!("cannot reach Kafka at {address} ({why}), retrying")
            }
            None => format!("lost a Kafka connection ({reason}), retrying"),
        },
        _ => format!("librdkafka: {error}: {reason}"),
    }
}

/// A TLS failure in plain words (librdkafka's `SSL` error): its reason without the broker
/// prefix and the connection state.
pub fn describe_tls_failure(reason: &str) -> String {
    format!(
        "TLS with Kafka failed ({}): check KAFKA_OPT_SSL_CA_LOCATION and KAFKA_OPT_SECURITY_PROTOCOL; retrying",
        why(reason)
    )
}

/// librdkafka's reason without the broker it names first and the state it ends with:
/// `ssl://host:9093/bootstrap: SSL handshake failed: … (after 3ms in state SSL_HANDSHAKE)`.
fn why(reason: &str) -> String {
    let why = reason.split(": ").skip(1).collect::<Vec<_>>().join(": ");
    why.split(" (after").next().unwrap_or(&why).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_folded_and_counted_per_window() {
        let folder = LogFolder::default();
        let start = Instant::now();
        assert_eq!(
            folder.observe("1/1 brokers are down", start).as_deref(),
            Some("1/1 brokers are down")
        );
        for n in 1..=5 {
            let at = start + Duration::from_millis(n * 100);
            assert_eq!(folder.observe("0/1 brokers are down", at), None);
        }
        assert_eq!(
            folder.observe("other", start).as_deref(),
            Some("other"),
            "another kind is not folded with it"
        );
        let later = start + FOLD_WINDOW + Duration::from_millis(1);
        assert_eq!(
            folder.observe("1/1 brokers are down", later).as_deref(),
            Some("1/1 brokers are down (5 more like this in the last 10s)")
        );
    }

    #[test]
    fn kinds_not_seen_for_a_window_are_forgotten_when_many() {
        let folder = LogFolder::default();
        let start = Instant::now();
        for n in 0..MAX_KINDS {
            let name: String = std::iter::repeat_n('a', n + 1).collect();
            folder.observe(&format!("cannot reach {name}"), start);
        }
        let later = start + FOLD_WINDOW * 2;
        folder.observe("a new complaint", later);
        let windows = folder.windows.lock().unwrap();
        assert_eq!(windows.len(), 1, "only the fresh kind is kept");
    }

    #[test]
    fn transport_failures_name_the_address_and_the_cause() {
        let error = KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure);
        let reason = "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT)";
        assert_eq!(
            describe_error(&error, reason),
            "cannot reach Kafka at 127.0.0.1:1 (Connection refused), retrying"
        );
        let auth = KafkaError::Global(RDKafkaErrorCode::Authentication);
        let reason = "sasl_plaintext://127.0.0.1:29092/bootstrap: SASL authentication error: SASL SCRAM authentication failed: broker responded with invalid-proof (after 12ms in state AUTH_REQ)";
        assert_eq!(
            describe_error(&auth, reason),
            "Kafka refused the bridge's credentials (SASL authentication error: SASL SCRAM authentication failed: broker responded with invalid-proof): check KAFKA_OPT_SASL_USERNAME, KAFKA_OPT_SASL_PASSWORD and KAFKA_OPT_SASL_MECHANISM; retrying"
        );
        let down = KafkaError::Global(RDKafkaErrorCode::AllBrokersDown);
        assert_eq!(
            describe_error(&down, "1/1 brokers are down"),
            "no Kafka broker is reachable, retrying"
        );
    }

    #[test]
    fn tls_failures_and_another_clients_credentials_are_said_in_words() {
        let reason = "ssl://localhost:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed (after 3ms in state SSL_HANDSHAKE)";
        assert_eq!(
            describe_tls_failure(reason),
            "TLS with Kafka failed (SSL handshake failed: error:0A000086:SSL routines::certificate verify failed): check KAFKA_OPT_SSL_CA_LOCATION and KAFKA_OPT_SECURITY_PROTOCOL; retrying"
        );
        let auth = KafkaError::Global(RDKafkaErrorCode::Authentication);
        let said = describe_error_of(
            "tail's",
            &auth,
            "k:1/bootstrap: SASL authentication error: bad (after 1ms in state AUTH_REQ)",
        );
        assert!(
            said.starts_with("Kafka refused tail's credentials (SASL authentication error: bad)"),
            "{said}"
        );
    }
}
