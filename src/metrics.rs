//! Prometheus metrics: one registry per application, rendered by `GET /metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every metric the bridge exports.
pub struct Metrics {
    registry: Registry,
    /// Answered callbacks by `event` (a family name, `other` or `unparsed`), HTTP `status`
    /// and `code` (`ok`, `duplicate` or the contract's error code).
    pub callbacks: IntCounterVec,
    /// Request received → broker ack (or failure), by `outcome`.
    pub publish_seconds: HistogramVec,
    /// Callbacks waiting for an ack right now.
    pub in_flight: IntGauge,
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
}

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
                "Callbacks answered, by event, HTTP status and code",
            ),
            &["event", "status", "code"],
        )
        .expect("valid metric");
        let publish_seconds = HistogramVec::new(
            HistogramOpts::new(
                "zego_publish_duration_seconds",
                "Request received to broker ack, by outcome",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["outcome"],
        )
        .expect("valid metric");
        let in_flight = IntGauge::new("zego_in_flight", "Callbacks awaiting a broker ack")
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
                "Producers replaced after fencing or a fatal error",
            ),
            &["reason"],
        )
        .expect("valid metric");
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
            Box::new(duplicates.clone()),
            Box::new(broker_reachable.clone()),
            Box::new(producer_replacements.clone()),
            Box::new(kafka_queue_messages.clone()),
            Box::new(kafka_queue_bytes.clone()),
            Box::new(dedup_entries.clone()),
            Box::new(build_info),
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
            duplicates,
            broker_reachable,
            producer_replacements,
            kafka_queue_messages,
            kafka_queue_bytes,
            dedup_entries,
        }
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
