//! Refused callbacks kept for `replay` (`KAFKA_TOPIC_REFUSED`, off by default): a callback
//! refused after its body was read in full is written to that topic with its bytes unchanged
//! and headers saying why, where and when. It never touches a callback topic and never changes
//! the answer (still the refusal: nothing forged ever gets a 200). A rate limit
//! (`KAFKA_REFUSED_PER_SECOND`) and the body limit bound what a flood can write; what is
//! dropped, kept or failed is counted in `zego_refused_kept_total{outcome}`.

use std::num::NonZeroU32;
use std::sync::Arc;

use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use crate::callback::catalogue::Product;
use crate::metrics::{Metrics, RefusedOutcome};
use crate::publish::{Outgoing, Publisher};

pub const HEADER_REFUSED_CODE: &str = "zego-refused-code";
pub const HEADER_REFUSED_STATUS: &str = "zego-refused-status";
pub const HEADER_PRODUCT: &str = "zego-product";
pub const HEADER_PATH: &str = "zego-path";
pub const HEADER_SOURCE: &str = "zego-source";
pub const HEADER_RECEIVED_AT: &str = crate::publish::record::HEADER_RECEIVED_AT;
pub const HEADER_CONTENT_TYPE: &str = crate::publish::record::HEADER_CONTENT_TYPE;

/// The refusals whose callbacks are kept: the body was read in full and a change of
/// configuration (a secret, an app id, a family, the catalogue) could make it pass: 401, 403,
/// 422, and 400 for a field. A malformed body, a wrong media type or an over-long body are not.
pub const KEPT_CODES: [&str; 7] = [
    "invalid_signature",
    "stale_timestamp",
    "unknown_app",
    "unsupported_event",
    "family_disabled",
    "invalid_field",
    "missing_field",
];

/// Whether a refusal with this code is kept.
pub fn is_kept(code: &str) -> bool {
    KEPT_CODES.contains(&code)
}

/// Keeping refused callbacks (README, "Refused callbacks").
#[derive(Debug, Clone)]
pub struct RefusedSettings {
    pub topic: String,
    /// `KAFKA_REFUSED_PER_SECOND`: at most this many a second are kept (bursts of five times
    /// that); the rest are counted and dropped, so a flood cannot fill Kafka.
    pub per_second: u32,
}

/// One refused callback, as the refused topic holds it.
#[derive(Debug, Clone)]
pub struct RefusedRecord {
    pub topic: String,
    pub body: Bytes,
    pub code: &'static str,
    pub status: u16,
    pub product: Product,
    /// The request path as received.
    pub path: String,
    /// The request's `Content-Type`, as sent: `replay` decodes the body by it.
    pub content_type: Option<String>,
    /// The peer's address.
    pub source: String,
    pub received_at_ms: i64,
}

impl Outgoing for RefusedRecord {
    fn topic(&self) -> &str {
        &self.topic
    }

    /// Keyed by product, so one product's refusals keep their order in one partition.
    fn to_future_record(&self) -> FutureRecord<'_, str, [u8]> {
        let status = self.status.to_string();
        let received_at = self.received_at_ms.to_string();
        let headers = [
            (HEADER_REFUSED_CODE, self.code),
            (HEADER_REFUSED_STATUS, status.as_str()),
            (HEADER_PRODUCT, self.product.name()),
            (HEADER_PATH, self.path.as_str()),
            (HEADER_SOURCE, self.source.as_str()),
            (HEADER_RECEIVED_AT, received_at.as_str()),
        ]
        .into_iter()
        .chain(
            self.content_type
                .as_deref()
                .map(|t| (HEADER_CONTENT_TYPE, t)),
        )
        .fold(
            OwnedHeaders::new_with_capacity(7),
            |headers, (key, value)| {
                headers.insert(Header {
                    key,
                    value: Some(value),
                })
            },
        );
        FutureRecord::to(&self.topic)
            .key(self.product.name())
            .payload(&self.body[..])
            .headers(headers)
    }
}

/// Writes refused callbacks to the refused topic, off the request path.
pub struct RefusedKeeper {
    topic: String,
    publisher: Arc<Publisher>,
    limiter: DefaultDirectRateLimiter,
    metrics: Arc<Metrics>,
}

impl RefusedKeeper {
    pub fn new(
        settings: &RefusedSettings,
        publisher: Arc<Publisher>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let rate = NonZeroU32::new(settings.per_second).unwrap_or(NonZeroU32::MIN);
        let burst = rate.saturating_mul(NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN));
        RefusedKeeper {
            topic: settings.topic.clone(),
            publisher,
            limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            metrics,
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Keeps `record` (its topic set here) unless the rate limit says no; returns at once.
    /// The publish runs on its own task: the answer to ZEGOCLOUD never waits for it, and a
    /// refused callback that cannot be kept changes nothing but the count.
    pub fn keep(&self, mut record: RefusedRecord) {
        if self.limiter.check().is_err() {
            self.metrics.refused_offered(RefusedOutcome::Dropped);
            return;
        }
        record.topic.clone_from(&self.topic);
        let (publisher, metrics) = (self.publisher.clone(), self.metrics.clone());
        tokio::spawn(async move {
            match publisher.publish(&record).await {
                Ok(_) => metrics.refused_offered(RefusedOutcome::Kept),
                Err(e) => {
                    metrics.refused_offered(RefusedOutcome::Failed);
                    log::warn!(
                        "could not keep a refused callback ({}) in {}: {e}",
                        record.code,
                        record.topic
                    );
                }
            }
        });
    }
}
