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
use crate::refusals::RefusalLog;
use crate::spool::Spool;

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
    /// `SPOOL_DIR`: where callbacks Kafka cannot take go; `None` when not configured.
    pub spool: Option<Arc<Spool>>,
    /// One log line per refusal reason a minute, with an example.
    pub refusal_log: RefusalLog,
}

/// How often each refusal reason may have a log line of its own.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);

impl AppState {
    /// Counts a refusal and explains it in the log (at most one line a reason a minute).
    pub fn refused(
        &self,
        code: &'static str,
        path: &'static str,
        example: impl FnOnce() -> String,
    ) {
        self.metrics.refusals.with_label_values(&[code, path]).inc();
        if let Some(line) = self
            .refusal_log
            .note(&format!("{code} on path {path}"), example)
        {
            log::warn!("{line}");
        }
    }

    /// Ready: not shutting down, and the broker answers, or the spool accepts callbacks (a
    /// replica that can spool should keep receiving).
    pub fn is_ready(&self) -> bool {
        !self.readiness.is_shutting_down()
            && (self.readiness.broker_reachable()
                || self.spool.as_ref().is_some_and(|spool| spool.accepting()))
    }
}

/// How long a successful broker probe keeps `/readyz` at 200.
pub const READY_WINDOW: Duration = Duration::from_secs(3);

/// Readiness: the broker answered recently and the process is not shutting down.
#[derive(Default)]
pub struct Readiness {
    /// Unix milliseconds of the last successful probe; 0 = never.
    last_ok_ms: AtomicU64,
    /// The last probe failed (false until a probe has run).
    last_failed: AtomicBool,
    shutting_down: AtomicBool,
}

impl Readiness {
    pub fn probe_succeeded(&self) {
        self.last_ok_ms.store(unix_ms() as u64, Ordering::Release);
        self.last_failed.store(false, Ordering::Release);
    }

    pub fn probe_failed(&self) {
        self.last_failed.store(true, Ordering::Release);
    }

    /// The last probe failed and none succeeded within `READY_WINDOW`: the spool takes
    /// callbacks at once instead of letting each wait for a delivery timeout. Before the first
    /// probe the broker is not known to be unreachable.
    pub fn broker_known_unreachable(&self) -> bool {
        self.last_failed.load(Ordering::Acquire) && !self.broker_reachable()
    }

    /// From now on `/readyz` answers 503, so load balancers stop sending before we stop.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// The broker answered a probe within `READY_WINDOW`.
    pub fn broker_reachable(&self) -> bool {
        let last = self.last_ok_ms.load(Ordering::Acquire);
        last > 0 && (unix_ms() as u64).saturating_sub(last) < READY_WINDOW.as_millis() as u64
    }
}
