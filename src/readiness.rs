//! Whether the broker answers and whether the process is shutting down: written by the
//! broker probe and the shutdown, read by `/readyz` and by delivery (spool at once when the
//! broker is known unreachable). Ages are measured on the monotonic clock: a wall clock
//! stepped by NTP must not make a dead broker look alive or a live one dead.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a successful broker probe keeps `/readyz` at 200.
pub const READY_WINDOW: Duration = Duration::from_secs(3);

/// Readiness: the broker answered recently and the process is not shutting down.
pub struct Readiness {
    /// What the probe times are measured from.
    started: Instant,
    /// Milliseconds after `started` of the last successful probe, plus one; 0 = never.
    last_ok: AtomicU64,
    /// The last probe failed (false until a probe has run).
    last_failed: AtomicBool,
    shutting_down: AtomicBool,
    /// Topics the bridge writes that the broker said do not exist, at the last probe.
    missing_topics: Mutex<BTreeSet<String>>,
    /// Counts topics that came back (created since they were found missing): the spool's
    /// drain retries what it set aside at once instead of at its next round.
    topics_back: AtomicU64,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            started: Instant::now(),
            last_ok: AtomicU64::new(0),
            last_failed: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            missing_topics: Mutex::new(BTreeSet::new()),
            topics_back: AtomicU64::new(0),
        }
    }
}

impl Readiness {
    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn probe_succeeded(&self) {
        self.last_ok.store(self.elapsed_ms() + 1, Ordering::Release);
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

    /// What the last probe that reached the broker found missing. Returns the topics that
    /// went missing and those that came back since the probe before.
    pub fn set_missing_topics(&self, now: BTreeSet<String>) -> (Vec<String>, Vec<String>) {
        let mut missing = self
            .missing_topics
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let gone = now.difference(&missing).cloned().collect();
        let back: Vec<String> = missing.difference(&now).cloned().collect();
        *missing = now;
        if !back.is_empty() {
            self.topics_back.fetch_add(1, Ordering::AcqRel);
        }
        (gone, back)
    }

    /// How many times a missing topic came back, so far.
    pub fn topics_back(&self) -> u64 {
        self.topics_back.load(Ordering::Acquire)
    }

    /// The broker said this topic does not exist: a record for it would only time out.
    pub fn topic_missing(&self, topic: &str) -> bool {
        self.missing_topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(topic)
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
        let last = self.last_ok.load(Ordering::Acquire);
        last > 0 && (self.elapsed_ms() + 1).saturating_sub(last) < READY_WINDOW.as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_keeps_the_broker_reachable_for_the_window_only() {
        let readiness = Readiness::default();
        assert!(!readiness.broker_reachable());
        assert!(!readiness.broker_known_unreachable(), "no probe yet");
        readiness.probe_succeeded();
        assert!(readiness.broker_reachable());
        readiness.probe_failed();
        assert!(
            !readiness.broker_known_unreachable(),
            "a success within the window"
        );
        // A success older than the window.
        let aged = Readiness {
            started: Instant::now() - READY_WINDOW - Duration::from_millis(10),
            ..Readiness::default()
        };
        aged.last_ok.store(1, Ordering::Release);
        aged.probe_failed();
        assert!(!aged.broker_reachable());
        assert!(aged.broker_known_unreachable());
    }
}
