//! What every request handler shares: settings, the publisher, the dedupe cache, limits, metrics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::limits::HttpLimits;
use crate::callback::policy::CallbackPolicy;
use crate::clock::unix_ms;
use crate::dedup::DedupCache;
use crate::metrics::Metrics;
use crate::publish::{KafkaSettings, Publisher};

/// Shared by all actix workers through `web::Data`.
pub struct AppState {
    pub limits: HttpLimits,
    pub policy: CallbackPolicy,
    pub kafka: KafkaSettings,
    pub publisher: Arc<Publisher>,
    pub dedup: Arc<DedupCache>,
    /// One permit a callback awaiting its ack: `MAX_IN_FLIGHT`.
    pub in_flight: Semaphore,
    /// One permit a byte of request held: `MAX_BUFFERED_BYTES`.
    pub buffered: Semaphore,
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
}

/// How long a successful broker probe keeps `/readyz` at 200.
pub const READY_WINDOW: Duration = Duration::from_secs(3);

/// Readiness: the broker answered recently and the process is not shutting down.
#[derive(Default)]
pub struct Readiness {
    /// Unix milliseconds of the last successful probe; 0 = never.
    last_ok_ms: AtomicU64,
    shutting_down: AtomicBool,
}

impl Readiness {
    pub fn probe_succeeded(&self) {
        self.last_ok_ms.store(unix_ms() as u64, Ordering::Release);
    }

    /// From now on `/readyz` answers 503, so load balancers stop sending before we stop.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    pub fn is_ready(&self) -> bool {
        let last = self.last_ok_ms.load(Ordering::Acquire);
        !self.is_shutting_down()
            && last > 0
            && (unix_ms() as u64).saturating_sub(last) < READY_WINDOW.as_millis() as u64
    }
}
