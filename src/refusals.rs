//! Counts of callbacks answered non-200, by error code, for the operator's log: when an outage
//! outlasts ZEGOCLOUD's retries, these numbers are what must be reconciled with ZEGOCLOUD.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Answers by error code.
type Counts = BTreeMap<&'static str, u64>;

/// Non-200 answers by error code: since start, and since the last report.
#[derive(Default)]
pub struct Refusals {
    counts: Mutex<(Counts, Counts)>,
}

impl Refusals {
    pub fn record(&self, code: &'static str) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts.0.entry(code).or_insert(0) += 1;
        *counts.1.entry(code).or_insert(0) += 1;
    }

    /// The line for the periodic report, if anything was refused since the last one.
    pub fn take_recent(&self) -> Option<String> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let recent = std::mem::take(&mut counts.1);
        (!recent.is_empty()).then(|| describe(&recent))
    }

    /// The line for shutdown: everything refused since start.
    pub fn total(&self) -> String {
        describe(&self.counts.lock().unwrap_or_else(|p| p.into_inner()).0)
    }
}

fn describe(counts: &Counts) -> String {
    let total: u64 = counts.values().sum();
    let parts: Vec<String> = counts
        .iter()
        .map(|(code, n)| format!("{code}={n}"))
        .collect();
    format!("{total} callbacks refused ({})", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_counts_reset_and_totals_do_not() {
        let refusals = Refusals::default();
        assert_eq!(refusals.take_recent(), None);
        refusals.record("broker_unavailable");
        refusals.record("broker_unavailable");
        refusals.record("invalid_signature");
        assert_eq!(
            refusals.take_recent().as_deref(),
            Some("3 callbacks refused (broker_unavailable=2, invalid_signature=1)")
        );
        assert_eq!(refusals.take_recent(), None);
        refusals.record("overloaded");
        assert_eq!(
            refusals.total(),
            "4 callbacks refused (broker_unavailable=2, invalid_signature=1, overloaded=1)"
        );
    }
}
