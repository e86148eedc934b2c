//! Whether the broker answers and whether the process is shutting down: written by the
//! broker probe and the shutdown, read by `/readyz` and by delivery (spool at once when the
//! broker is known unreachable).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::unix_ms;

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
