//! The producer's librdkafka context: notices fatal errors and feeds queue statistics to metrics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientContext, Statistics};

use crate::kafka_log::LogFolder;
use crate::metrics::Metrics;

/// Called from librdkafka's own threads; keeps only atomics, metric handles and the log folder.
pub struct BridgeContext {
    metrics: Arc<Metrics>,
    logs: LogFolder,
    /// Shared with the publisher, which cannot reach this context through `FutureProducer`.
    fatal: Arc<AtomicBool>,
}

impl BridgeContext {
    /// `fatal` turns true once librdkafka raised a fatal error: that producer never delivers again.
    pub fn new(metrics: Arc<Metrics>, fatal: Arc<AtomicBool>) -> Self {
        BridgeContext {
            metrics,
            fatal,
            logs: LogFolder::default(),
        }
    }
}

impl ClientContext for BridgeContext {
    fn stats(&self, statistics: Statistics) {
        self.metrics
            .kafka_queue_messages
            .set(statistics.msg_cnt as i64);
        self.metrics
            .kafka_queue_bytes
            .set(statistics.msg_size as i64);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // librdkafka reports a fatal error with the underlying code (e.g. the broker's
        // OUT_OF_ORDER_SEQUENCE_NUMBER) rather than _FATAL, so both are looked for.
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal)
            || super::errors::breaks_producer(&error)
        {
            self.fatal.store(true, Ordering::Release);
            log::error!("librdkafka fatal error, the producer will be replaced: {reason}");
        } else {
            self.logs.error(&error, reason);
        }
    }

    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.logs.log(level, facility, message);
    }
}
