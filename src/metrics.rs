//! Prometheus metrics: one registry per application, rendered by `GET /metrics`.

use std::collections::BTreeMap;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every value a label can take, so each combination is registered at 0 before the first
/// event (a dashboard or `increase()` sees it from the start).
pub trait LabelValue: Copy + 'static {
    const ALL: &'static [Self];
    fn label(self) -> &'static str;
}

/// Declares typed label values: `enum Name { Variant => "label", … }`.
macro_rules! label_values {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $label:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$vdoc])* $variant),+ }
        impl LabelValue for $name {
            const ALL: &'static [Self] = &[$($name::$variant),+];
            fn label(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }
        }
    };
}

label_values!(
    /// How one publish ended (`zego_publish_duration_seconds{outcome}`).
    PublishOutcome { Acked => "acked", Failed => "failed" }
);
label_values!(
    /// Why a producer was replaced (`zego_producer_replacements_total{reason}`).
    ReplaceReason {
        /// A delivery error said the broker fenced this producer's id or epoch.
        Fenced => "fenced",
        /// librdkafka raised its fatal error: the producer never delivers again.
        Fatal => "fatal",
        /// Nothing it sent was acknowledged in time while the broker answered metadata.
        Stalled => "stalled",
    }
);
label_values!(
    /// What became of a refused callback offered to `KAFKA_TOPIC_REFUSED`.
    RefusedOutcome { Kept => "kept", Dropped => "dropped", Failed => "failed" }
);
label_values!(
    /// Damage found in the spool (`zego_spool_damaged_total{kind}`).
    SpoolDamage {
        /// A record (or a stretch of an imported old spool) that cannot be read back.
        Unreadable => "unreadable",
    }
);

/// How a metric of one prometheus type is built from its declaration.
trait Declared: Sized + Clone + Collector + 'static {
    fn declare(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> Self;
}
impl Declared for IntGauge {
    fn declare(name: &str, help: &str, _: &[&str], _: &[f64]) -> Self {
        IntGauge::new(name, help).expect("valid metric")
    }
}
impl Declared for IntCounter {
    fn declare(name: &str, help: &str, _: &[&str], _: &[f64]) -> Self {
        IntCounter::new(name, help).expect("valid metric")
    }
}
impl Declared for Histogram {
    fn declare(name: &str, help: &str, _: &[&str], buckets: &[f64]) -> Self {
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
            .expect("valid metric")
    }
}
impl Declared for IntCounterVec {
    fn declare(name: &str, help: &str, labels: &[&str], _: &[f64]) -> Self {
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
    }
}
impl Declared for IntGaugeVec {
    fn declare(name: &str, help: &str, labels: &[&str], _: &[f64]) -> Self {
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
    }
}
impl Declared for HistogramVec {
    fn declare(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> Self {
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            labels,
        )
        .expect("valid metric")
    }
}

/// Registers every label combination of a vector metric at 0.
trait Zeroed {
    fn zero(&self, combinations: &[Vec<&str>]);
}
impl<T: prometheus::core::MetricVecBuilder> Zeroed for prometheus::core::MetricVec<T> {
    fn zero(&self, combinations: &[Vec<&str>]) {
        for values in combinations {
            self.with_label_values(values);
        }
    }
}

/// Each label value of `T`, as a one-label combination.
fn each<T: LabelValue>() -> Vec<Vec<&'static str>> {
    T::ALL.iter().map(|v| vec![v.label()]).collect()
}

/// Every metric the bridge exports, each declared once: its field, type, name, help, labels,
/// buckets and the label combinations present at 0 from the start. `Metrics::new` builds and
/// registers them all from this list.
macro_rules! declare_metrics {
    ($(
        $(#[$doc:meta])*
        $field:ident: $ty:ty = $name:literal, $help:literal
            $(, labels: [$($label:literal),+])?
            $(, buckets: $buckets:expr)?
            $(, zero: $zero:expr)?;
    )+) => {
        /// Every metric the bridge exports.
        pub struct Metrics {
            registry: Registry,
            $($(#[$doc])* pub $field: $ty,)+
        }

        impl Metrics {
            pub fn new() -> Self {
                let registry = Registry::new();
                $(
                    let $field = <$ty as Declared>::declare(
                        $name,
                        $help,
                        &[$($($label),+)?],
                        declare_metrics!(@buckets $($buckets)?),
                    );
                    $( Zeroed::zero(&$field, &$zero); )?
                    registry
                        .register(Box::new($field.clone()))
                        .expect("metric names are unique");
                )+
                let metrics = Metrics { registry, $($field),+ };
                metrics.after_declaration();
                metrics
            }
        }
    };
    (@buckets $buckets:expr) => { $buckets };
    (@buckets) => { &[] };
}

declare_metrics! {
    /// Answered callbacks by `event` (a catalogue name, `other` or `unparsed`), `family` (a
    /// catalogue family, `other` or `unknown`: bounded, and it tells In-app Chat's `room_create`
    /// from Express's), HTTP `status` and `code` (`ok`, `duplicate` or the contract's error
    /// code). Counted through `answered`; its combinations are many and appear as they happen
    /// (`zego_refusals_total` has every refusal from 0).
    callbacks: IntCounterVec = "zego_callbacks_total",
        "Callbacks answered, by event, family, HTTP status and code",
        labels: ["event", "family", "status", "code"];
    /// One publish: record handed to librdkafka → broker ack (or failure), by `outcome`.
    publish_seconds: HistogramVec = "zego_publish_duration_seconds",
        "One publish, from handing the record to the producer to the broker's ack or the failure, by outcome",
        labels: ["outcome"], buckets: LATENCY_BUCKETS, zero: each::<PublishOutcome>();
    /// Callbacks waiting for an ack right now.
    in_flight: IntGauge = "zego_in_flight", "Callbacks awaiting a broker ack";
    /// `MAX_IN_FLIGHT`, so alerts can compare `zego_in_flight` with it.
    in_flight_limit: IntGauge = "zego_in_flight_limit",
        "MAX_IN_FLIGHT: callbacks awaiting an ack beyond which the answer is 503";
    /// Request bytes held now (`MAX_BUFFERED_BYTES` is the limit), read at each scrape.
    buffered_bytes: IntGauge = "zego_buffered_bytes",
        "Request bytes held now, of MAX_BUFFERED_BYTES (bodies being read, verified or awaiting their ack)";
    /// Every answer that is not 200, by error code and product path (`unknown` for a path or
    /// method the bridge does not serve): the one place a refused callback is counted.
    refusals: IntCounterVec = "zego_refusals_total",
        "Answers other than 200, by error code and product path (path=\"unknown\": a path or method the bridge does not serve)",
        labels: ["code", "path"], zero: refusal_combinations();
    /// `before_send_msg` callbacks answered with the verdict but not published in time.
    verdict_unpublished: IntCounter = "zego_before_send_msg_unpublished_total",
        "before_send_msg callbacks answered \"send\" within ZIM's deadline but not published or spooled in time";
    /// Callbacks answered from the dedupe cache.
    duplicates: IntCounter = "zego_duplicates_total", "Callbacks answered from the dedupe cache";
    /// 1 while the broker answers the readiness probe.
    broker_reachable: IntGauge = "zego_broker_reachable",
        "1 while the broker answers metadata requests";
    /// Producers replaced, by `reason`.
    producer_replacements: IntCounterVec = "zego_producer_replacements_total",
        "Producers replaced after fencing, a fatal error, or a drain stalled while the broker answers",
        labels: ["reason"], zero: each::<ReplaceReason>();
    /// librdkafka's queue: messages and bytes waiting to be sent or acked.
    kafka_queue_messages: IntGauge = "zego_kafka_queue_messages", "Messages in librdkafka's queue";
    kafka_queue_bytes: IntGauge = "zego_kafka_queue_bytes", "Bytes in librdkafka's queue";
    /// Callback ids remembered by the dedupe cache.
    dedup_entries: IntGauge = "zego_dedup_entries", "Callback ids held by the dedupe cache";
    /// Verified callbacks by which configured secret signed them (`secret`: its position in
    /// `ZEGO_CALLBACK_SECRET`, from 1): when the old one's count stops growing, it can go.
    signed_with: IntCounterVec = "zego_signature_secret_total",
        "Verified callbacks by the position of the secret that signed them",
        labels: ["secret"], zero: SECRET_POSITIONS.iter().map(|p| vec![*p]).collect::<Vec<_>>();
    /// The spool (`SPOOL_DIR`): records and bytes waiting, the oldest one's age.
    spool_records: IntGauge = "zego_spool_records",
        "Records in the spool not yet acknowledged by Kafka";
    spool_bytes: IntGauge = "zego_spool_bytes",
        "Bytes of the spool's database files (database and write-ahead log)";
    /// `SPOOL_MAX_BYTES`, so alerts can compare `zego_spool_bytes` with it.
    spool_limit_bytes: IntGauge = "zego_spool_limit_bytes",
        "SPOOL_MAX_BYTES: spool bytes beyond which callbacks get 503 spool_full";
    spool_oldest_age_seconds: IntGauge = "zego_spool_oldest_age_seconds",
        "Age of the oldest record waiting in the spool; 0 when it is empty";
    /// Records written to the spool, and forwarded from it to Kafka (acknowledged).
    spool_appended: IntCounter = "zego_spool_appended_total", "Records written to the spool";
    spool_drained: IntCounter = "zego_spool_drained_total",
        "Records forwarded from the spool and acknowledged by Kafka";
    /// Damage found on disk, by `kind`.
    spool_damaged: IntCounterVec = "zego_spool_damaged_total",
        "Spooled records that could not be read back (kept, not forwarded), by kind",
        labels: ["kind"], zero: each::<SpoolDamage>();
    /// One group commit, and how many records it held.
    spool_write_seconds: Histogram = "zego_spool_write_duration_seconds",
        "Committing one group of spooled records (one SQLite transaction, durable when it returns)",
        buckets: LATENCY_BUCKETS;
    spool_group_records: Histogram = "zego_spool_group_records",
        "Records written and flushed together (group commit)",
        buckets: &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0];
    /// Spooled records set aside: they cannot be delivered now (their topic does not exist,
    /// Kafka refuses them for good); kept, retried every `spool::HELD_RETRY_EVERY`.
    spool_held_records: IntGauge = "zego_spool_held_records",
        "Spooled records set aside because they cannot be delivered now (missing topic, refused for good); kept and retried";
    /// Groups whose write or flush failed (their callbacks were answered 503).
    spool_write_failures: IntCounter = "zego_spool_write_failures_total",
        "Groups of spooled records whose write or flush failed (answered 503)";
    /// Refused callbacks offered to `KAFKA_TOPIC_REFUSED`, by `outcome`.
    refused_kept: IntCounterVec = "zego_refused_kept_total",
        "Refused callbacks offered to KAFKA_TOPIC_REFUSED, by outcome: kept, dropped (over KAFKA_REFUSED_PER_SECOND) or failed",
        labels: ["outcome"], zero: each::<RefusedOutcome>();
    /// Build information; always 1.
    build_info: IntGaugeVec = "zego_build_info", "Build information; always 1",
        labels: ["version", "librdkafka"];
}

/// Every refusal code on every path.
fn refusal_combinations() -> Vec<Vec<&'static str>> {
    REFUSAL_CODES
        .iter()
        .flat_map(|code| REFUSAL_PATHS.iter().map(move |path| vec![*code, *path]))
        .collect()
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

/// Position labels for `signed_with`, so no label string is made per request.
const SECRET_POSITIONS: [&str; 9] = ["1", "2", "3", "4", "5", "6", "7", "8", "9+"];

/// Buckets from 0.5 ms to 10 s: an ack on loopback takes ~1 ms, a timeout 5 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

impl Metrics {
    /// What the declarations cannot say: the build's versions.
    fn after_declaration(&self) {
        self.build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                &rdkafka::util::get_rdkafka_version().1,
            ])
            .set(1);
    }

    /// Times one publish.
    pub fn published(&self, outcome: PublishOutcome, seconds: f64) {
        self.publish_seconds
            .with_label_values(&[outcome.label()])
            .observe(seconds);
    }

    /// Counts one producer replacement.
    pub fn producer_replaced(&self, reason: ReplaceReason) {
        self.producer_replacements
            .with_label_values(&[reason.label()])
            .inc();
    }

    /// Counts spool damage.
    pub fn spool_damage(&self, kind: SpoolDamage, count: u64) {
        self.spool_damaged
            .with_label_values(&[kind.label()])
            .inc_by(count);
    }

    /// Counts one refusal by code and product path.
    pub fn refused(&self, code: &str, path: &str) {
        self.refusals.with_label_values(&[code, path]).inc();
    }

    /// Counts one refused callback offered to the refused topic.
    pub fn refused_offered(&self, outcome: RefusedOutcome) {
        self.refused_kept
            .with_label_values(&[outcome.label()])
            .inc();
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
