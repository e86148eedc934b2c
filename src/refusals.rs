//! The operator's log line of refused callbacks: differences between snapshots of
//! `zego_callbacks_total` by code. When an outage outlasts ZEGOCLOUD's retries, these numbers
//! are what must be reconciled with ZEGOCLOUD.

use std::collections::BTreeMap;

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
