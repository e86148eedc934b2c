//! The durable spool (`SPOOL_DIR`, opt-in): when Kafka cannot take a verified callback in time,
//! it is committed to a local SQLite database (`store.rs`) before the 200, then forwarded in
//! order when Kafka is back. Without `SPOOL_DIR` none of this exists.
//!
//! Order: while anything waits in the spool, every new callback goes behind it, and callbacks
//! go straight to Kafka again only once the spool is empty. The switch into spooling waits for
//! the callbacks already being published straight to Kafka to finish (a read-write gate), so a
//! record answered 200 later never lands in Kafka before one answered earlier.

mod frame;
mod legacy;
pub mod store;
mod stored;
#[cfg(test)]
mod tests;
mod writer;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, RwLock, RwLockReadGuard};

use crate::clock::unix_ms;
use crate::metrics::Metrics;
use crate::publish::{PublishError, Publisher, Record, SpoolStamp};
use writer::Log;

/// Records forwarded per drain round, all in flight at once, in order.
const DRAIN_BATCH: usize = 500;
const DRAIN_BATCH_BYTES: usize = 4 << 20;
/// Pause after a failed drain round or while the broker is unreachable.
const DRAIN_BACKOFF: Duration = Duration::from_secs(1);
/// A failing drain says why at most this often (with a count of the rounds in between).
const DRAIN_LOG_EVERY: Duration = Duration::from_secs(30);
/// How often set-aside records are put back in line (a topic created since, a setting fixed).
pub const HELD_RETRY_EVERY: Duration = Duration::from_secs(10);

/// `SPOOL_DIR`, `SPOOL_MAX_BYTES` and `SPOOL_DRAIN_RATE`.
#[derive(Debug, Clone)]
pub struct SpoolSettings {
    pub dir: PathBuf,
    pub max_bytes: u64,
    /// Most records forwarded a second; 0: as fast as Kafka takes them.
    pub drain_rate: u32,
}

/// 1 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// Why a callback could not be spooled: the answer is 503, and ZEGOCLOUD retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpoolError {
    #[error("the spool is full (SPOOL_MAX_BYTES)")]
    Full,
    #[error("the spool cannot write: {0}")]
    Failed(String),
}

/// Whether new callbacks go to the spool, and how many are on their way into it.
#[derive(Default)]
struct Mode {
    active: bool,
    pending: usize,
    /// A record was spooled since callbacks started going to the spool (and the log said so):
    /// a spool that refuses every append does not announce itself once per callback.
    announced: bool,
}

pub struct Spool {
    log: Log,
    /// The last failed drain round's complaint, when it was logged, and rounds since.
    drain_trouble: Mutex<Option<(String, Instant, u64)>>,

    drain_rate: u32,
    /// Held shared by every straight-to-Kafka publish; taken exclusively to switch to spooling.
    gate: RwLock<()>,
    mode: Mutex<Mode>,
    appended: Notify,
    metrics: Arc<Metrics>,
}

/// Lowers `pending` when an append ends, even if its request was dropped mid-way.
struct Pending<'a>(&'a Spool);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.mode().pending -= 1;
    }
}

impl Spool {
    /// Opens the directory (refused if another process holds it, or if its database is
    /// damaged) and counts what it holds; also returns the callback ids it holds, for the
    /// dedupe cache.
    pub fn open(
        settings: &SpoolSettings,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, Vec<(String, SpoolStamp)>), String> {
        let (log, held) = Log::open(&settings.dir, settings.max_bytes, metrics.clone())?;
        let active = log.undrained() > 0;
        let spool = Spool {
            log,
            drain_trouble: Mutex::new(None),
            drain_rate: settings.drain_rate,
            gate: RwLock::new(()),
            mode: Mutex::new(Mode {
                active,
                pending: 0,
                announced: active,
            }),
            appended: Notify::new(),
            metrics,
        };
        Ok((spool, held))
    }

    fn mode(&self) -> std::sync::MutexGuard<'_, Mode> {
        self.mode.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True while callbacks go to the spool (something waits in it, or is on its way).
    pub fn is_active(&self) -> bool {
        self.mode().active
    }

    /// False while the spool is full or its writes fail: `/readyz` then depends on the broker.
    pub fn accepting(&self) -> bool {
        self.log.accepting()
    }

    /// Permission to publish straight to Kafka, held until the ack; `None` when the spool is
    /// active and the callback must go behind what it holds.
    pub async fn straight_to_kafka(&self) -> Option<RwLockReadGuard<'_, ()>> {
        let guard = self.gate.read().await;
        (!self.is_active()).then_some(guard)
    }

    /// Writes `record` behind everything spooled; resolves once it is on stable storage.
    pub async fn append(&self, record: &Record) -> Result<SpoolStamp, SpoolError> {
        let joined = {
            let mut mode = self.mode();
            if mode.active {
                mode.pending += 1;
            }
            mode.active
        };
        if !joined {
            // Wait until no callback is being published straight to Kafka.
            let _switch = self.gate.write().await;
            let mut mode = self.mode();
            mode.active = true;
            mode.pending += 1;
        }
        let _pending = Pending(self);
        let appended = self.log.append(record.clone()).await;
        if appended.is_ok() && !std::mem::replace(&mut self.mode().announced, true) {
            log::warn!("spooling: callbacks now go to the spool until Kafka takes them");
        }
        self.appended.notify_one();
        appended
    }

    /// Forwards the spool to Kafka, in order, whenever the broker is reachable; runs until
    /// aborted. A record leaves the spool only after Kafka acknowledged it. A record that cannot
    /// be delivered now (`topic_missing` says its topic does not exist, or Kafka refuses it for
    /// good) is set aside: kept, counted in `zego_spool_held_records`, and put back in line every
    /// `HELD_RETRY_EVERY` and whenever `topics_back` says a missing topic was created, so it
    /// never holds up the records behind it.
    pub async fn drain(
        self: Arc<Self>,
        publisher: Arc<Publisher>,
        reachable: impl Fn() -> bool,
        topic_missing: impl Fn(&str) -> bool + Sync,
        topics_back: impl Fn() -> u64,
    ) {
        let mut retried_at = Instant::now();
        let mut seen_back = topics_back();
        loop {
            let back_now = topics_back();
            if retried_at.elapsed() >= HELD_RETRY_EVERY || back_now != seen_back {
                retried_at = Instant::now();
                seen_back = back_now;
                let back = self.log.retry_held().await;
                if back > 0 {
                    log::debug!("spool drain: retrying {back} set-aside records");
                }
            }
            if self.log.undrained() == 0 {
                self.deactivate_if_empty();
                self.log.reclaim();
                self.metrics.spool_oldest_age_seconds.set(0);
                tokio::select! {
                    () = self.appended.notified() => {}
                    () = tokio::time::sleep(DRAIN_BACKOFF) => {}
                }
                continue;
            }
            if !reachable() {
                // Nothing is read while waiting: ask for the oldest record's age only.
                self.show_oldest(self.log.oldest_spooled_at().await);
                tokio::time::sleep(DRAIN_BACKOFF).await;
                continue;
            }
            let started = Instant::now();
            match self.drain_once(&publisher, &topic_missing).await {
                0 => tokio::time::sleep(DRAIN_BACKOFF).await,
                forwarded if self.drain_rate > 0 => {
                    let budget =
                        Duration::from_secs_f64(forwarded as f64 / f64::from(self.drain_rate));
                    tokio::time::sleep(budget.saturating_sub(started.elapsed())).await;
                }
                _ => {}
            }
        }
    }

    /// Forwards everything the spool holds, then returns how many records were forwarded; for
    /// `zego-kafka-bridge spool drain`, where no callbacks arrive and no probe runs: after a
    /// round without progress it asks `broker_answers` and lets the publisher replace a stalled
    /// producer. Gives up after `patience` without progress.
    pub async fn drain_until_empty(
        &self,
        publisher: &Publisher,
        broker_answers: impl Fn() -> bool,
        patience: Duration,
    ) -> Result<u64, String> {
        let mut forwarded = 0;
        let mut progress_at = Instant::now();
        while self.log.undrained() > 0 {
            let before = self.log.undrained();
            self.drain_once(publisher, &|_| false).await;
            let after = self.log.undrained();
            forwarded += before.saturating_sub(after);
            if after < before {
                progress_at = Instant::now();
            } else if progress_at.elapsed() > patience {
                return Err(format!(
                    "no record forwarded for {} s ({after} left): is Kafka reachable?",
                    patience.as_secs()
                ));
            } else {
                publisher.replace_if_stalled(broker_answers());
                tokio::time::sleep(DRAIN_BACKOFF).await;
            }
        }
        self.log.reclaim();
        Ok(forwarded)
    }

    /// One round: a batch published at once (librdkafka keeps their order per partition),
    /// every acknowledged record deleted. Returns how many were forwarded if the whole batch
    /// got through, 0 if not (the caller backs off).
    ///
    /// A record acknowledged is never sent again, even when one before it failed: with an
    /// idempotent producer a failed record fails the ones after it in its partition too, so
    /// what got through never overtakes an earlier record of its own key.
    async fn drain_once(
        &self,
        publisher: &Publisher,
        topic_missing: &(dyn Fn(&str) -> bool + Sync),
    ) -> usize {
        let batch_size = match self.drain_rate {
            0 => DRAIN_BATCH,
            rate => (rate as usize).clamp(1, DRAIN_BATCH),
        };
        let batch = match self.log.read_front(batch_size, DRAIN_BATCH_BYTES).await {
            Ok(batch) => batch,
            Err(why) => {
                self.drain_failed(&why, "cannot read the spool");
                return 0;
            }
        };
        // A batch starts at the oldest record not yet acknowledged.
        self.show_oldest(batch.first().and_then(|r| r.spooled).map(|s| s.at_ms));
        if batch.is_empty() {
            return 0;
        }
        // A record whose topic does not exist would only time out: set aside unsent.
        let (batch, unroutable): (Vec<Record>, Vec<Record>) =
            batch.into_iter().partition(|r| !topic_missing(&r.topic));
        let mut held: Vec<(u64, String)> = unroutable
            .iter()
            .filter_map(|r| {
                let seq = r.spooled?.seq;
                Some((seq, format!("topic {} does not exist", r.topic)))
            })
            .collect();
        let outcomes =
            futures_util::future::join_all(batch.iter().map(|r| publisher.publish(r))).await;
        // Refused for good (an unknown topic, a record too large, no authorization): set aside.
        held.extend(batch.iter().zip(&outcomes).filter_map(|(r, o)| match o {
            Err(PublishError::Failed(why)) => Some((r.spooled?.seq, why.clone())),
            _ => None,
        }));
        if !held.is_empty() {
            let reasons: BTreeSet<&str> = held.iter().map(|(_, why)| why.as_str()).collect();
            let newly = self.log.set_aside(held.clone()).await;
            if newly > 0 {
                log::error!(
                    "spool drain: set {newly} records aside that cannot be delivered now ({}); they are kept, the rest goes on, and they are retried every {} s (zego_spool_held_records)",
                    reasons.into_iter().collect::<Vec<_>>().join("; "),
                    HELD_RETRY_EVERY.as_secs()
                );
            }
        }
        let acked: Vec<u64> = batch
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| o.is_ok())
            .filter_map(|(r, _)| r.spooled.map(|s| s.seq))
            .collect();
        let count = acked.len();
        if count > 0 {
            self.log.acked(acked).await;
            self.metrics.spool_drained.inc_by(count as u64);
        }
        let first_failure = batch
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| !matches!(o, Err(PublishError::Failed(_))))
            .find_map(|(r, o)| o.as_ref().err().map(|e| (r, e)));
        let Some((record, error)) = first_failure else {
            self.drain_recovered();
            return count;
        };
        let detail = format!(
            "{count} of {} forwarded; spool record {} ({} key={})",
            batch.len(),
            record.spooled.map_or(0, |s| s.seq),
            record.event,
            record.key.as_deref().unwrap_or("-"),
        );
        self.drain_failed(&error.to_string(), &detail);
        0
    }

    /// Logs a failing drain round: the first at once, then at most every `DRAIN_LOG_EVERY`
    /// (or when `reason` changes; `detail`, the counts of this round, does not count), with how
    /// many rounds failed in between.
    fn drain_failed(&self, reason: &str, detail: &str) {
        let mut trouble = self.drain_trouble.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((last, at, rounds)) = trouble.as_mut() {
            if last == reason && at.elapsed() < DRAIN_LOG_EVERY {
                *rounds += 1;
                return;
            }
        }
        let repeats = trouble.as_ref().map_or(0, |(_, _, rounds)| *rounds);
        let suffix = if repeats > 0 {
            format!(" ({repeats} more failed rounds since the last line)")
        } else {
            String::new()
        };
        log::warn!("spool drain: {detail}: {reason}; retrying{suffix}");
        *trouble = Some((reason.to_string(), Instant::now(), 0));
    }

    fn drain_recovered(&self) {
        if let Some((_, _, rounds)) = self
            .drain_trouble
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            log::info!(
                "spool drain: forwarding again ({rounds} failed rounds since the last line)"
            );
        }
    }

    /// `zego_spool_oldest_age_seconds` from when the oldest waiting record was spooled.
    fn show_oldest(&self, spooled_at_ms: Option<i64>) {
        if let Some(at) = spooled_at_ms {
            let age = (unix_ms() - at).max(0) / 1000;
            self.metrics.spool_oldest_age_seconds.set(age);
        }
    }

    /// Callbacks go straight to Kafka again once the spool is empty and nothing is on its way.
    fn deactivate_if_empty(&self) {
        let mut mode = self.mode();
        if mode.active && mode.pending == 0 && self.log.undrained() == 0 {
            mode.active = false;
            if std::mem::take(&mut mode.announced) {
                log::info!("spool empty: callbacks go straight to Kafka again");
            }
        }
    }

    /// Stops the writer after the appends already sent; blocking.
    pub fn close(&self) {
        self.log.close();
    }
}
