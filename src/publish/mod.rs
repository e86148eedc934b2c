//! The one shared producer: publish a record and await its ack, probe the broker, replace the
//! producer when it is fenced or fails fatally, flush on shutdown.

mod context;
pub mod errors;
pub mod record;
pub mod settings;
pub mod topics;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::ClientConfig;

use crate::metrics::Metrics;
use context::BridgeContext;
pub use errors::PublishError;
pub use record::{Outgoing, Record, SpoolStamp};
pub use settings::KafkaSettings;

/// Where the broker put an acked record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Why a producer is replaced: the metric's typed label (`zego_producer_replacements_total`).
pub use crate::metrics::ReplaceReason as ReplaceCause;

/// One producer and the number that tells it from its replacements.
struct Generation {
    number: u64,
    producer: FutureProducer<BridgeContext>,
    /// Set by the producer's context on librdkafka's fatal error.
    fatal: Arc<AtomicBool>,
    /// Sends that timed out since this producer's last ack (see `replace_if_stalled`).
    timeouts_since_ack: AtomicU64,
    /// When this producer last had an ack, or was created.
    last_ack: Mutex<Instant>,
}

impl Generation {
    /// librdkafka checks every property here: the error is its own text.
    fn create(number: u64, config: &ClientConfig, metrics: &Arc<Metrics>) -> Result<Self, String> {
        let fatal = Arc::new(AtomicBool::new(false));
        let producer = config
            .create_with_context(BridgeContext::new(metrics.clone(), fatal.clone()))
            .map_err(|e| e.to_string())?;
        Ok(Generation {
            number,
            producer,
            fatal,
            timeouts_since_ack: AtomicU64::new(0),
            last_ack: Mutex::new(Instant::now()),
        })
    }

    fn is_fatal(&self) -> bool {
        self.fatal.load(Ordering::Acquire)
    }

    fn acked(&self) {
        self.timeouts_since_ack.store(0, Ordering::Release);
        *self.last_ack.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn since_ack(&self) -> std::time::Duration {
        self.last_ack
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }

    /// Asks librdkafka itself (a C call and a small allocation: for the probe, not every send).
    fn has_fatal_error(&self) -> bool {
        self.is_fatal() || self.producer.client().fatal_error().is_some()
    }
}

/// Publishes records through one shared producer, swapping in a fresh one when it breaks.
pub struct Publisher {
    config: ClientConfig,
    current: RwLock<Arc<Generation>>,
    delivery_timeout: Duration,
    metrics: Arc<Metrics>,
    /// When a stalled producer was last replaced: at most one every three delivery timeouts
    /// (`STALLED_REPLACE_AT_MOST_EVERY` at least).
    stalled_replaced_at: Mutex<Option<Instant>>,
    /// Held while a replacement is built: one at a time, and never under `current`'s lock.
    replacing: Mutex<()>,
}

/// Sends that must have timed out, with no ack since, before a producer counts as stalled.
const STALLED_AFTER_TIMEOUTS: u64 = 3;
/// A broker that answers metadata but cannot take writes for long (lost replicas) should not
/// cost a new producer every few seconds: at most one every three delivery timeouts, and never
/// more often than this (15 s at the default 5 s timeout).
const STALLED_REPLACE_AT_MOST_EVERY: Duration = Duration::from_secs(10);

/// Extra wait past librdkafka's own `message.timeout.ms`: it fails the message itself, this
/// only guards against a delivery report that never comes.
const ACK_GRACE: Duration = Duration::from_secs(1);

impl Publisher {
    /// Creates the producer. librdkafka rejects bad `KAFKA_OPT_*` values here, at start-up:
    /// the error names the variable that set the property, never a sensitive value.
    pub fn new(settings: &KafkaSettings, metrics: Arc<Metrics>) -> Result<Self, String> {
        let config = settings.to_client_config();
        let first = Generation::create(0, &config, &metrics)
            .map_err(|e| settings.explain_config_error(&e))?;
        Ok(Publisher {
            config,
            current: RwLock::new(Arc::new(first)),
            delivery_timeout: settings.delivery_timeout,
            metrics,
            stalled_replaced_at: Mutex::new(None),
            replacing: Mutex::new(()),
        })
    }

    fn current(&self) -> Arc<Generation> {
        // A poisoned lock still holds a valid Arc: keep serving.
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sends one record and waits for the broker's ack. Never blocks the calling thread.
    pub async fn publish(&self, record: &impl Outgoing) -> Result<Ack, PublishError> {
        let mut generation = self.current();
        if generation.is_fatal() {
            self.replace(
                generation.number,
                ReplaceCause::Fatal,
                "librdkafka fatal error",
            );
            generation = self.current();
        }
        let number = generation.number;
        let delivery = match generation.producer.send_result(record.to_future_record()) {
            Ok(delivery) => delivery,
            Err((error, _)) => return Err(self.failed(number, &error)),
        };
        // The delivery future does not need the producer (a replacement may drop it), but
        // its ack or timeout is counted on it, by a weak reference.
        let counted = Arc::downgrade(&generation);
        drop(generation);
        let outcome = tokio::time::timeout(self.delivery_timeout + ACK_GRACE, delivery).await;
        let timed_out = match &outcome {
            Ok(Ok(Err((error, _)))) => {
                error.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageTimedOut)
            }
            Err(_elapsed) => true,
            _ => false,
        };
        if let Some(generation) = counted.upgrade() {
            match &outcome {
                Ok(Ok(Ok(_))) => generation.acked(),
                _ if timed_out => {
                    generation.timeouts_since_ack.fetch_add(1, Ordering::AcqRel);
                }
                _ => {}
            }
        }
        match outcome {
            Ok(Ok(Ok(delivered))) => Ok(Ack {
                topic: record.topic().to_string(),
                partition: delivered.partition,
                offset: delivered.offset,
            }),
            Ok(Ok(Err((error, _)))) => Err(self.failed(number, &error)),
            Ok(Err(_canceled)) => Err(PublishError::Unavailable("the producer was closed".into())),
            Err(_elapsed) => Err(PublishError::Unavailable(
                "no delivery report in time".into(),
            )),
        }
    }

    /// Called after each broker probe: replaces the producer when the broker answers metadata
    /// while every send of the last while timed out (at least `STALLED_AFTER_TIMEOUTS`, none
    /// acknowledged for twice the delivery timeout). That is a broker rebuilt or restored
    /// behind the same address: it no longer knows this producer's idempotence state, and the
    /// producer would wait for it forever; a fresh one starts over, as a fenced one does.
    pub fn replace_if_stalled(&self, broker_answers: bool) {
        if !broker_answers {
            return;
        }
        let generation = self.current();
        let stalled = !generation.is_fatal()
            && generation.timeouts_since_ack.load(Ordering::Acquire) >= STALLED_AFTER_TIMEOUTS
            && generation.since_ack() >= 2 * self.delivery_timeout;
        if !stalled {
            return;
        }
        {
            let mut replaced_at = self
                .stalled_replaced_at
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let every = (self.delivery_timeout * 3).max(STALLED_REPLACE_AT_MOST_EVERY);
            if replaced_at.is_some_and(|at| at.elapsed() < every) {
                return;
            }
            *replaced_at = Some(Instant::now());
        }
        self.replace(
            generation.number,
            ReplaceCause::Stalled,
            &format!(
                "{} sends timed out and none was acknowledged for {} s while the broker answers metadata",
                generation.timeouts_since_ack.load(Ordering::Acquire),
                generation.since_ack().as_secs()
            ),
        );
    }

    /// Classifies a failure, replacing the producer first when the error says it is broken.
    fn failed(&self, number: u64, error: &rdkafka::error::KafkaError) -> PublishError {
        if errors::breaks_producer(error) {
            let cause = match error.rdkafka_error_code() {
                Some(RDKafkaErrorCode::Fatal) => ReplaceCause::Fatal,
                _ => ReplaceCause::Fenced,
            };
            self.replace(number, cause, &error.to_string());
        }
        errors::classify(error)
    }

    /// Swaps in a fresh producer unless generation `number` was already replaced.
    ///
    /// The old producer is dropped on its own thread: dropping purges its queue (failing its
    /// in-flight sends, which then answer 503 so ZEGOCLOUD retries) and joins its poll thread,
    /// which must not happen on an actix worker.
    pub fn replace(&self, number: u64, cause: ReplaceCause, reason: &str) {
        // One replacement at a time; the producer is built outside the lock publishers read
        // through, so sends keep going (to the old producer) while it starts.
        let _replacing = self.replacing.lock().unwrap_or_else(|p| p.into_inner());
        if self.current().number != number {
            return;
        }
        let fresh = match Generation::create(number + 1, &self.config, &self.metrics) {
            Ok(fresh) => fresh,
            Err(e) => {
                log::error!("could not replace the broken producer ({reason}): {e}");
                return;
            }
        };
        let old = {
            let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *current, Arc::new(fresh))
        };
        log::warn!(
            "replaced producer {number} with a fresh one (generation {}): {reason}",
            number + 1
        );
        self.metrics.producer_replaced(cause);
        std::thread::spawn(move || drop(old));
    }

    /// Asks the broker for the topic's metadata; blocking, for the readiness probe's thread.
    pub fn probe_blocking(&self, topic: &str, timeout: Duration) -> bool {
        let generation = self.current();
        if generation.has_fatal_error() {
            self.replace(
                generation.number,
                ReplaceCause::Fatal,
                "librdkafka fatal error",
            );
            return false;
        }
        match generation
            .producer
            .client()
            .fetch_metadata(Some(topic), timeout)
        {
            Ok(metadata) => metadata
                .topics()
                .iter()
                .any(|t| t.name() == topic && t.error().is_none()),
            Err(_) => false,
        }
    }

    /// Which of `topics` the broker says do not exist; `None` when it does not answer. One
    /// metadata request a topic (the bridge writes a handful), blocking, for the probe's thread.
    pub fn missing_topics_blocking(
        &self,
        topics: &[String],
        timeout: Duration,
    ) -> Option<std::collections::BTreeSet<String>> {
        let generation = self.current();
        let client = generation.producer.client();
        let mut missing = std::collections::BTreeSet::new();
        for topic in topics {
            let metadata = client.fetch_metadata(Some(topic), timeout).ok()?;
            let found = metadata
                .topics()
                .iter()
                .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
            if !found {
                missing.insert(topic.clone());
            }
        }
        Some(missing)
    }

    /// Makes librdkafka raise a fatal error on the current producer, exactly as it does when an
    /// idempotent producer loses its sequence state. Only tests call this: the mock cluster has
    /// no other way to cause a fatal error that no delivery reports.
    #[cfg(any(test, feature = "test-support"))]
    pub fn raise_fatal_error_for_tests(&self, reason: &str) {
        let generation = self.current();
        let reason = std::ffi::CString::new(reason).unwrap_or_default();
        // SAFETY: the producer (and so its native handle) outlives this call via `generation`,
        // and `reason` is a valid C string for its duration.
        unsafe {
            rdkafka::bindings::rd_kafka_test_fatal_error(
                generation.producer.client().native_ptr(),
                rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                reason.as_ptr(),
            );
        }
    }

    /// Waits up to `timeout` for every queued record's delivery report; blocking.
    pub fn flush_blocking(&self, timeout: Duration) {
        let generation = self.current();
        match generation.producer.flush(timeout) {
            Ok(()) => log::info!("producer flushed"),
            Err(e) => log::warn!(
                "producer flush incomplete ({e}): {} records still unacknowledged",
                generation.producer.in_flight_count()
            ),
        }
    }
}
