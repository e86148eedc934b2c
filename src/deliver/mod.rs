//! Delivery of a verified callback's record: dedupe, the in-flight bound, publish or spool by
//! the broker's health, and the outcome the answer reports. The HTTP handler reads a request
//! and writes an answer; everything between the record and its outcome is here. Data flows one
//! way: routes → deliver → {dedup, spool → publish}. Refused callbacks, kept for replay when
//! `KAFKA_TOPIC_REFUSED` is set, go through `refused`.

pub mod refused;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::dedup::{self, Claim, DedupCache, Remembered};
use crate::metrics::{InFlight, Metrics, PublishOutcome};
use crate::publish::{Ack, PublishError, Publisher, Record, SpoolStamp};
use crate::readiness::Readiness;
use crate::spool::{Spool, SpoolError};
use refused::RefusedKeeper;

/// How a callback that got a 200 got it.
#[derive(Debug)]
pub enum Delivered {
    /// Published now and acked by the broker.
    Fresh(Ack),
    /// The same callback was acked or spooled before (or was being delivered): answered with
    /// that outcome.
    Duplicate(Remembered),
    /// Kafka could not take it in time: durable in the spool, forwarded when Kafka is back.
    Spooled(SpoolStamp),
}

/// Why a record was not delivered: the answer is 503 (or 500 for a non-retriable publish
/// failure), and ZEGOCLOUD retries.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// ZIM waits at most 2.5 s for a `before_send_msg` verdict; the answer leaves with margin for
/// the network.
pub const VERDICT_DEADLINE: Duration = Duration::from_secs(2);

/// Everything delivery needs, shared by all workers.
pub struct Delivery {
    pub publisher: Arc<Publisher>,
    pub dedup: Arc<DedupCache>,
    /// One permit a callback awaiting its ack: `MAX_IN_FLIGHT`.
    in_flight: Semaphore,
    metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    /// `SPOOL_DIR`: where callbacks Kafka cannot take go; `None` when not configured.
    pub spool: Option<Arc<Spool>>,
    /// `KAFKA_TOPIC_REFUSED`: where refused callbacks are kept; `None` when not configured.
    pub refused: Option<RefusedKeeper>,
}

impl Delivery {
    pub fn new(
        publisher: Arc<Publisher>,
        dedup: Arc<DedupCache>,
        max_in_flight: usize,
        metrics: Arc<Metrics>,
        spool: Option<Arc<Spool>>,
        refused: Option<RefusedKeeper>,
    ) -> Self {
        Delivery {
            publisher,
            dedup,
            in_flight: Semaphore::new(max_in_flight),
            metrics,
            readiness: Arc::new(Readiness::default()),
            spool,
            refused,
        }
    }

    /// Ready: not shutting down, and the broker answers, or the spool accepts callbacks (a
    /// replica that can spool should keep receiving).
    pub fn is_ready(&self) -> bool {
        !self.readiness.is_shutting_down()
            && (self.readiness.broker_reachable()
                || self.spool.as_ref().is_some_and(|spool| spool.accepting()))
    }

    /// `before_send_msg` blocks the user's message until ZIM has an answer, and a failed
    /// answer drops the message: the verdict "send" goes out within `VERDICT_DEADLINE` whatever
    /// Kafka does, and the record is published (or spooled) if that happens in time. Returns
    /// whether it was; one that was not is counted and logged (`send_msg` still reports the
    /// message once it is sent).
    pub async fn verdict(&self, record: &Record) -> bool {
        let published = matches!(
            tokio::time::timeout(VERDICT_DEADLINE, self.deliver(record)).await,
            Ok(Ok(_))
        );
        if !published {
            self.metrics.verdict_unpublished.inc();
            log::warn!(
                "before_send_msg {} answered \"send\" without being published (Kafka did not take it within {} s)",
                record.callback_id,
                VERDICT_DEADLINE.as_secs()
            );
        }
        published
    }

    /// Dedupe, then publish (or spool). A record for a topic the broker says does not exist is
    /// refused at once (500 `publish_failed`): it could only time out, and spooled it would
    /// wait for an operator anyway.
    pub async fn deliver(&self, record: &Record) -> Result<Delivered, DeliveryError> {
        if self.readiness.topic_missing(&record.topic) {
            let error = PublishError::Failed(format!("topic {} does not exist", record.topic));
            answered_non_200(record, &error);
            return Err(error.into());
        }
        let guard = match self.dedup.claim(&record.callback_id) {
            Claim::Acked(ack) => {
                self.metrics.duplicates.inc();
                return Ok(Delivered::Duplicate(ack));
            }
            Claim::Wait(receiver) => {
                let ack = dedup::wait(receiver).await?;
                self.metrics.duplicates.inc();
                return Ok(Delivered::Duplicate(ack));
            }
            Claim::Publish(guard) => guard,
        };
        let Ok(_permit) = self.in_flight.try_acquire() else {
            log::warn!(
                "MAX_IN_FLIGHT reached: refusing callback {}",
                record.callback_id
            );
            return Err(PublishError::Overloaded.into());
        };
        // Lowered when dropped, so a request cancelled mid-publish (client gone, shutdown)
        // does not leave the gauge raised.
        let _in_flight = InFlight::enter(&self.metrics.in_flight);
        if let Some(spool) = &self.spool {
            let delivered = self.publish_or_spool(record, spool).await;
            // A spooled callback is remembered like an acked one: a repeat (concurrent or
            // later) is answered 200 duplicate and lands once.
            guard.finish(match &delivered {
                Ok(Delivered::Fresh(ack)) => Ok(Remembered::Acked(ack.clone())),
                Ok(Delivered::Spooled(stamp)) => Ok(Remembered::Spooled(*stamp)),
                Ok(Delivered::Duplicate(remembered)) => Ok(remembered.clone()),
                Err(DeliveryError::Publish(e)) => Err(e.clone()),
                Err(DeliveryError::Spool(e)) => Err(PublishError::Unavailable(e.to_string())),
            });
            return delivered;
        }
        let outcome = self.publish(record).await;
        guard.finish(outcome.clone().map(Remembered::Acked));
        Ok(Delivered::Fresh(
            outcome.inspect_err(|e| answered_non_200(record, e))?,
        ))
    }

    /// The spool's rule (README, "Durable spool"): spool at once while the spool holds
    /// anything or the broker is known unreachable; otherwise publish, and spool what Kafka
    /// could not take in time. A non-retriable failure is answered 500 as without a spool:
    /// spooling it would only fail again at the drain.
    async fn publish_or_spool(
        &self,
        record: &Record,
        spool: &Spool,
    ) -> Result<Delivered, DeliveryError> {
        if !spool.is_active() && !self.readiness.broker_known_unreachable() {
            if let Some(straight) = spool.straight_to_kafka().await {
                let outcome = self.publish(record).await;
                drop(straight);
                match outcome {
                    Err(PublishError::Unavailable(why)) => log::info!(
                        "Kafka did not take callback {} in time ({why}): spooling it",
                        record.callback_id
                    ),
                    other => {
                        return Ok(Delivered::Fresh(
                            other.inspect_err(|e| answered_non_200(record, e))?,
                        ))
                    }
                }
            }
        }
        let stamp = spool.append(record).await?;
        log::debug!(
            "spooled {} key={} as spool record {}",
            record.event,
            record.key.as_deref().unwrap_or("-"),
            stamp.seq
        );
        Ok(Delivered::Spooled(stamp))
    }

    /// One publish, timed; an ack logged (a failure is logged by the caller, which decides
    /// the answer).
    async fn publish(&self, record: &Record) -> Result<Ack, PublishError> {
        let started = Instant::now();
        let outcome = self.publisher.publish(record).await;
        let ended = match outcome {
            Ok(_) => PublishOutcome::Acked,
            Err(_) => PublishOutcome::Failed,
        };
        self.metrics
            .published(ended, started.elapsed().as_secs_f64());
        if let Ok(ack) = &outcome {
            log::debug!(
                "acked {} key={} at {}/{}/{}",
                record.event,
                record.key.as_deref().unwrap_or("-"),
                ack.topic,
                ack.partition,
                ack.offset
            );
        }
        outcome
    }
}

fn answered_non_200(record: &Record, error: &PublishError) {
    log::warn!(
        "publish failed, answering non-200 so ZEGOCLOUD retries: {} key={} callback_id={}: {error}",
        record.event,
        record.key.as_deref().unwrap_or("-"),
        record.callback_id
    );
}
