//! What every request handler shares: HTTP limits, the callback policy, routing, delivery,
//! the byte budget, metrics and the refusal log.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::limits::HttpLimits;
use crate::callback::policy::CallbackPolicy;
use crate::deliver::Delivery;
use crate::metrics::Metrics;
use crate::publish::KafkaSettings;
use crate::refusals::RefusalLog;

/// Shared by all actix workers through `web::Data`.
pub struct AppState {
    pub limits: HttpLimits,
    pub policy: CallbackPolicy,
    pub kafka: KafkaSettings,
    /// Everything between a verified record and its outcome.
    pub delivery: Delivery,
    /// One permit a byte of request held: `MAX_BUFFERED_BYTES`.
    pub buffered: Semaphore,
    pub metrics: Arc<Metrics>,
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
        self.metrics.refused(code, path);
        if let Some(line) = self
            .refusal_log
            .note(&format!("{code} on path {path}"), example)
        {
            log::warn!("{line}");
        }
    }

    /// See `Delivery::is_ready`.
    pub fn is_ready(&self) -> bool {
        self.delivery.is_ready()
    }
}
