//! The operator's log lines of refused callbacks: one line per reason and path at most once a
//! minute, with a count and one example (`RefusalLog`); and every 10 s the differences between
//! snapshots of `zego_callbacks_total` by code (`RefusalReport`). When an outage outlasts
//! ZEGOCLOUD's retries, these numbers are what must be reconciled with ZEGOCLOUD.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Explains refusals in the log without a line per refusal: the first of a reason at once, then
/// at most one line per `interval` saying how many there were, each with the latest example.
pub struct RefusalLog {
    interval: Duration,
    by_reason: Mutex<HashMap<String, Seen>>,
}

struct Seen {
    logged_at: Instant,
    /// Refusals of this reason since its last line.
    since: u64,
}

impl RefusalLog {
    pub fn new(interval: Duration) -> Self {
        RefusalLog {
            interval,
            by_reason: Mutex::new(HashMap::new()),
        }
    }

    /// Notes one refusal for `reason` (a bounded text: code and path); returns the line to log
    /// when one is due. `example` describes this request (never a signature or a secret).
    pub fn note(&self, reason: &str, example: impl FnOnce() -> String) -> Option<String> {
        self.note_at(Instant::now(), reason, example)
    }

    fn note_at(
        &self,
        now: Instant,
        reason: &str,
        example: impl FnOnce() -> String,
    ) -> Option<String> {
        let mut by_reason = self.by_reason.lock().unwrap_or_else(|p| p.into_inner());
        match by_reason.get_mut(reason) {
            Some(seen) if now.duration_since(seen.logged_at) < self.interval => {
                seen.since += 1;
                None
            }
            Some(seen) => {
                let count = seen.since + 1;
                *seen = Seen {
                    logged_at: now,
                    since: 0,
                };
                Some(format!(
                    "refused {count} callbacks ({reason}) since the last such line; latest: {}",
                    example()
                ))
            }
            None => {
                by_reason.insert(
                    reason.to_string(),
                    Seen {
                        logged_at: now,
                        since: 0,
                    },
                );
                Some(format!(
                    "refused a callback ({reason}): {}; more like it are summed in one line a minute",
                    example()
                ))
            }
        }
    }
}

/// Counts by error code.
pub type Counts = BTreeMap<String, u64>;

/// Remembers the last snapshot reported, to report only what is new.
#[derive(Default)]
pub struct RefusalReport {
    reported: Counts,
}

impl RefusalReport {
    /// The line for what was refused since the last call, if anything was.
    pub fn since_last(&mut self, now: &Counts) -> Option<String> {
        let recent: Counts = now
            .iter()
            .map(|(code, n)| {
                (
                    code.clone(),
                    n - self.reported.get(code).copied().unwrap_or(0),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        self.reported = now.clone();
        (!recent.is_empty()).then(|| describe(&recent))
    }
}

/// "N callbacks refused (code=n, …)", or "no callbacks refused".
pub fn describe(counts: &Counts) -> String {
    let total: u64 = counts.values().sum();
    if total == 0 {
        return "no callbacks refused".into();
    }
    let parts: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(code, n)| format!("{code}={n}"))
        .collect();
    format!("{total} callbacks refused ({})", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, u64)]) -> Counts {
        pairs.iter().map(|(c, n)| (c.to_string(), *n)).collect()
    }

    #[test]
    fn a_reason_is_logged_at_once_then_summed_once_an_interval() {
        let log = RefusalLog::new(Duration::from_secs(60));
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        let reason = "invalid_signature on rtc";
        let first = log.note_at(at(0), reason, || "POST /zego/callback/rtc".into());
        assert!(first
            .unwrap()
            .contains("refused a callback (invalid_signature on rtc)"));
        for second in 1..=5 {
            assert_eq!(log.note_at(at(second), reason, || unreachable!()), None);
        }
        // Another reason has its own line.
        assert!(log
            .note_at(at(6), "not_found on unknown", || "GET /x".into())
            .is_some());
        let summed = log.note_at(at(61), reason, || "POST again".into()).unwrap();
        assert!(
            summed.starts_with("refused 6 callbacks (invalid_signature on rtc)"),
            "{summed}"
        );
        assert!(summed.ends_with("latest: POST again"), "{summed}");
    }

    #[test]
    fn reports_only_what_is_new_and_says_none_plainly() {
        let mut report = RefusalReport::default();
        assert_eq!(report.since_last(&counts(&[])), None);
        let first = counts(&[("broker_unavailable", 2), ("invalid_signature", 1)]);
        assert_eq!(
            report.since_last(&first).as_deref(),
            Some("3 callbacks refused (broker_unavailable=2, invalid_signature=1)")
        );
        assert_eq!(report.since_last(&first), None);
        let later = counts(&[
            ("broker_unavailable", 2),
            ("invalid_signature", 1),
            ("overloaded", 1),
        ]);
        assert_eq!(
            report.since_last(&later).as_deref(),
            Some("1 callbacks refused (overloaded=1)")
        );
        assert_eq!(describe(&counts(&[])), "no callbacks refused");
    }
}
