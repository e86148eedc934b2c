//! Prometheus metrics: one registry per application, rendered by `GET /metrics`.

use std::collections::BTreeMap;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric the bridge exports.
pub struct Metrics {
    registry: Registry,
    /// Answered callbacks by `event` (a catalogue name, `other` or `unparsed`), `family` (a
    /// catalogue family, `other` or `unknown`: bounded, and it tells In-app Chat's `room_create`
    /// from Express's), HTTP `status` and `code` (`ok`, `duplicate` or the contract's error
    /// code). Counted through `answered`.
    pub callbacks: IntCounterVec,
    /// One publish: record handed to librdkafka → broker ack (or failure), by `outcome`.
    pub publish_seconds: HistogramVec,
    /// Callbacks waiting for an ack right now.
    pub in_flight: IntGauge,
    /// `MAX_IN_FLIGHT`, so alerts can compare `zego_in_flight` with it.
    pub in_flight_limit: IntGauge,
    /// Request bytes held now (`MAX_BUFFERED_BYTES` is the limit), read at each scrape.
    pub buffered_bytes: IntGauge,
    /// Every answer that is not 200, by error code and product path (`unknown` for a path or
    /// method the bridge does not serve): the one place a refused callback is counted.
    pub refusals: IntCounterVec,
    /// `before_send_msg` callbacks answered with the verdict but not published in time.
    pub verdict_unpublished: IntCounter,
    /// Callbacks answered from the dedupe cache.
    pub duplicates: IntCounter,
    /// 1 while the broker answers the readiness probe.
    pub broker_reachable: IntGauge,
    /// Producers replaced after fencing or a fatal error, by `reason`.
    pub producer_replacements: IntCounterVec,
    /// librdkafka's queue: messages and bytes waiting to be sent or acked.
    pub kafka_queue_messages: IntGauge,
    pub kafka_queue_bytes: IntGauge,
    /// Callback ids remembered by the dedupe cache.
    pub dedup_entries: IntGauge,
    /// Verified callbacks by which configured secret signed them (`secret`: its position in
    /// `ZEGO_CALLBACK_SECRET`, from 1): when the old one's count stops growing, it can go.
    pub signed_with: IntCounterVec,
    /// The spool (`SPOOL_DIR`): records and bytes waiting, the oldest one's age.
    pub spool_records: IntGauge,
    pub spool_bytes: IntGauge,
    /// `SPOOL_MAX_BYTES`, so alerts can compare `zego_spool_bytes` with it.
    pub spool_limit_bytes: IntGauge,
    pub spool_oldest_age_seconds: IntGauge,
    /// Records written to the spool, and forwarded from it to Kafka (acknowledged).
    pub spool_appended: IntCounter,
    pub spool_drained: IntCounter,
    /// Damage found on disk, by `kind`: `torn_tail` (a write a crash cut short, never
    /// acknowledged), `skipped` (damaged bytes with intact records after them), `unreadable`.
    pub spool_damaged: IntCounterVec,
    /// One group commit: the write, then the flush to stable storage, and how many records.
    pub spool_write_seconds: Histogram,
    pub spool_group_records: Histogram,
    /// Groups whose write or flush failed (their callbacks were answered 503).
    pub spool_write_failures: IntCounter,
    /// Refused callbacks offered to `KAFKA_TOPIC_REFUSED`, by `outcome`: `kept`, `dropped`
    /// (over `KAFKA_REFUSED_PER_SECOND`), `failed` (Kafka did not take it).
    pub refused_kept: IntCounterVec,
}

/// Every error code an answer can carry (README, "HTTP interface"); `routes::errors` has a
/// test that each one it produces is here.
pub const REFUSAL_CODES: [&str; 18] = [
    "body_too_large",
    "body_timeout",
    "unsupported_media_type",
    "malformed_body",
    "missing_field",
    "invalid_field",
    "invalid_signature",
    "stale_timestamp",
    "unknown_app",
    "unsupported_event",
    "family_disabled",
    "overloaded",
    "broker_unavailable",
    "publish_failed",
    "spool_full",
    "spool_failed",
    "not_found",
    "method_not_allowed",
];

/// The `path` label of `zego_refusals_total`: each product's path, or `unknown`.
pub const REFUSAL_PATHS: [&str; 5] = ["zim", "rtc", "recording", "ai-agent", "unknown"];

/// The `outcome` label of `zego_refused_kept_total`.
pub const REFUSED_KEPT_OUTCOMES: [&str; 3] = ["kept", "dropped", "failed"];

/// Position labels for `signed_with`, so no label string is made per request.
const SECRET_POSITIONS: [&str; 9] = ["1", "2", "3", "4", "5", "6", "7", "8", "9+"];

/// Buckets from 0.5 ms to 10 s: an ack on loopback takes ~1 ms, a timeout 5 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let callbacks = IntCounterVec::new(
            Opts::new(
                "zego_callbacks_total",
                "Callbacks answered, by event, family, HTTP status and code",
            ),
            &["event", "family", "status", "code"],
        )
        .expect("valid metric");
        let publish_seconds = HistogramVec::new(
            HistogramOpts::new(
                "zego_publish_duration_seconds",
                "One publish, from handing the record to the producer to the broker's ack or the failure, by outcome",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["outcome"],
        )
        .expect("valid metric");
        let in_flight = IntGauge::new("zego_in_flight", "Callbacks awaiting a broker ack")
            .expect("valid metric");
        let in_flight_limit = IntGauge::new(
            "zego_in_flight_limit",
            "MAX_IN_FLIGHT: callbacks awaiting an ack beyond which the answer is 503",
        )
        .expect("valid metric");
        let buffered_bytes = IntGauge::new(
            "zego_buffered_bytes",
            "Request bytes held now, of MAX_BUFFERED_BYTES (bodies being read, verified or awaiting their ack)",
        )
        .expect("valid metric");
        let refusals = IntCounterVec::new(
            Opts::new(
                "zego_refusals_total",
                "Answers other than 200, by error code and product path (path=\"unknown\": a path or method the bridge does not serve)",
            ),
            &["code", "path"],
        )
        .expect("valid metric");
        // Every combination at 0 from the start: increase() and alerts see the first one.
        for code in REFUSAL_CODES {
            for path in REFUSAL_PATHS {
                refusals.with_label_values(&[code, path]);
            }
        }
        let verdict_unpublished = IntCounter::new(
            "zego_before_send_msg_unpublished_total",
            "before_send_msg callbacks answered \"send\" within ZIM's deadline but not published or spooled in time",
        )
        .expect("valid metric");
        let duplicates = IntCounter::new(
            "zego_duplicates_total",
            "Callbacks answered from the dedupe cache",
        )
        .expect("valid metric");
        let broker_reachable = IntGauge::new(
            "zego_broker_reachable",
            "1 while the broker answers metadata requests",
        )
        .expect("valid metric");
        let producer_replacements = IntCounterVec::new(
            Opts::new(
                "zego_producer_replacements_total",
                "Producers replaced after fencing, a fatal error, or a drain stalled while the broker answers",
            ),
            &["reason"],
        )
        .expect("valid metric");
        // Every reason present from the start, at 0: `increase()` sees the first replacement.
        for reason in ["fenced", "fatal", "stalled"] {
            producer_replacements.with_label_values(&[reason]);
        }
        let kafka_queue_messages = IntGauge::new(
            "zego_kafka_queue_messages",
            "Messages in librdkafka's queue",
        )
        .expect("valid metric");
        let kafka_queue_bytes =
            IntGauge::new("zego_kafka_queue_bytes", "Bytes in librdkafka's queue")
                .expect("valid metric");
        let dedup_entries = IntGauge::new(
            "zego_dedup_entries",
            "Callback ids held by the dedupe cache",
        )
        .expect("valid metric");
        let signed_with = IntCounterVec::new(
            Opts::new(
                "zego_signature_secret_total",
                "Verified callbacks by the position of the secret that signed them",
            ),
            &["secret"],
        )
        .expect("valid metric");
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
                .expect("valid metric")
        };
        let spool_records = gauge(
            "zego_spool_records",
            "Records in the spool not yet acknowledged by Kafka",
        );
        let spool_bytes = gauge(
            "zego_spool_bytes",
            "Bytes of the spool's database files (database and write-ahead log)",
        );
        let spool_limit_bytes = gauge(
            "zego_spool_limit_bytes",
            "SPOOL_MAX_BYTES: spool bytes beyond which callbacks get 503 spool_full",
        );
        let spool_oldest_age_seconds = gauge(
            "zego_spool_oldest_age_seconds",
            "Age of the oldest record waiting in the spool; 0 when it is empty",
        );
        let spool_appended = counter("zego_spool_appended_total", "Records written to the spool");
        let spool_drained = counter(
            "zego_spool_drained_total",
            "Records forwarded from the spool and acknowledged by Kafka",
        );
        let spool_damaged = IntCounterVec::new(
            Opts::new(
                "zego_spool_damaged_total",
                "Spooled records that could not be read back (kept, not forwarded), by kind",
            ),
            &["kind"],
        )
        .expect("valid metric");
        // Every kind present from the start, at 0: an alert on `increase` sees the first one.
        spool_damaged.with_label_values(&["unreadable"]);
        let spool_write_seconds = histogram(
            "zego_spool_write_duration_seconds",
            "Committing one group of spooled records (one SQLite transaction, durable when it returns)",
            LATENCY_BUCKETS,
        );
        let spool_group_records = histogram(
            "zego_spool_group_records",
            "Records written and flushed together (group commit)",
            &[
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0,
            ],
        );
        let spool_write_failures = counter(
            "zego_spool_write_failures_total",
            "Groups of spooled records whose write or flush failed (answered 503)",
        );
        let refused_kept = IntCounterVec::new(
            Opts::new(
                "zego_refused_kept_total",
                "Refused callbacks offered to KAFKA_TOPIC_REFUSED, by outcome: kept, dropped (over KAFKA_REFUSED_PER_SECOND) or failed",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        for outcome in REFUSED_KEPT_OUTCOMES {
            refused_kept.with_label_values(&[outcome]);
        }
        let build_info = IntGaugeVec::new(
            Opts::new("zego_build_info", "Build information; always 1"),
            &["version", "librdkafka"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                &rdkafka::util::get_rdkafka_version().1,
            ])
            .set(1);

        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(callbacks.clone()),
            Box::new(publish_seconds.clone()),
            Box::new(in_flight.clone()),
            Box::new(in_flight_limit.clone()),
            Box::new(buffered_bytes.clone()),
            Box::new(verdict_unpublished.clone()),
            Box::new(refusals.clone()),
            Box::new(duplicates.clone()),
            Box::new(broker_reachable.clone()),
            Box::new(producer_replacements.clone()),
            Box::new(kafka_queue_messages.clone()),
            Box::new(kafka_queue_bytes.clone()),
            Box::new(dedup_entries.clone()),
            Box::new(signed_with.clone()),
            Box::new(build_info),
            Box::new(spool_records.clone()),
            Box::new(spool_bytes.clone()),
            Box::new(spool_limit_bytes.clone()),
            Box::new(spool_oldest_age_seconds.clone()),
            Box::new(spool_appended.clone()),
            Box::new(spool_drained.clone()),
            Box::new(spool_damaged.clone()),
            Box::new(spool_write_seconds.clone()),
            Box::new(spool_group_records.clone()),
            Box::new(spool_write_failures.clone()),
            Box::new(refused_kept.clone()),
        ];
        for collector in collectors {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Metrics {
            registry,
            callbacks,
            publish_seconds,
            in_flight,
            in_flight_limit,
            buffered_bytes,
            verdict_unpublished,
            refusals,
            duplicates,
            broker_reachable,
            producer_replacements,
            kafka_queue_messages,
            kafka_queue_bytes,
            dedup_entries,
            signed_with,
            spool_records,
            spool_bytes,
            spool_limit_bytes,
            spool_oldest_age_seconds,
            spool_appended,
            spool_drained,
            spool_damaged,
            spool_write_seconds,
            spool_group_records,
            spool_write_failures,
            refused_kept,
        }
    }

    /// Counts one refused callback offered to the refused topic.
    pub fn refused_offered(&self, outcome: &'static str) {
        self.refused_kept.with_label_values(&[outcome]).inc();
    }

    /// Counts a callback verified with the secret at `position` (from 1).
    pub fn signed_with_secret(&self, position: usize) {
        let label = SECRET_POSITIONS[position.clamp(1, SECRET_POSITIONS.len()) - 1];
        self.signed_with.with_label_values(&[label]).inc();
    }

    /// Counts one answer in `zego_callbacks_total`.
    pub fn answered(&self, event: &str, family: &str, status: &str, code: &str) {
        self.callbacks
            .with_label_values(&[event, family, status, code])
            .inc();
    }

    /// Callbacks answered non-200 since start, by error code: summed from `zego_callbacks_total`,
    /// the one count of answers.
    pub fn refusals_by_code(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for family in self.callbacks.collect() {
            for metric in family.get_metric() {
                let label = |name: &str| {
                    metric
                        .get_label()
                        .iter()
                        .find(|l| l.name() == name)
                        .map(|l| l.value().to_string())
                        .unwrap_or_default()
                };
                if label("status") != "200" {
                    *counts.entry(label("code")).or_insert(0) +=
                        metric.get_counter().get_value() as u64;
                }
            }
        }
        counts
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding in-memory metrics into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Holds a gauge one higher while alive: entered before an `.await`, it is lowered even when the
/// request is cancelled there.
pub struct InFlight<'a>(&'a IntGauge);

impl<'a> InFlight<'a> {
    pub fn enter(gauge: &'a IntGauge) -> Self {
        gauge.inc();
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_guard_lowers_the_gauge_when_dropped_early() {
        let metrics = Metrics::new();
        let guard = InFlight::enter(&metrics.in_flight);
        assert_eq!(metrics.in_flight.get(), 1);
        drop(guard);
        assert_eq!(metrics.in_flight.get(), 0);
    }

    #[test]
    fn refusals_are_summed_by_code_from_the_answer_counter() {
        let metrics = Metrics::new();
        let answer = |event, status, code| metrics.answered(event, "call", status, code);
        answer("call_accept", "200", "ok");
        answer("call_accept", "503", "broker_unavailable");
        answer("call_create", "503", "broker_unavailable");
        answer("unparsed", "401", "invalid_signature");
        let counts = metrics.refusals_by_code();
        assert_eq!(counts.get("broker_unavailable"), Some(&2));
        assert_eq!(counts.get("invalid_signature"), Some(&1));
        assert_eq!(counts.get("ok"), None);
    }
}
