//! The durable spool (`SPOOL_DIR`, opt-in): when Kafka cannot take a verified callback in time,
//! it is written to a local write-ahead log and flushed to stable storage before the 200, then
//! forwarded in order when Kafka is back. Without `SPOOL_DIR` none of this exists.
//!
//! Order: while anything waits in the spool, every new callback goes behind it, and callbacks
//! go straight to Kafka again only once the spool is empty. The switch into spooling waits for
//! the callbacks already being published straight to Kafka to finish (a read-write gate), so a
//! record answered 200 later never lands in Kafka before one answered earlier.

mod frame;
mod stored;
#[cfg(test)]
mod tests;
mod wal;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, RwLock, RwLockReadGuard};

use crate::clock::unix_ms;
use crate::metrics::Metrics;
use crate::publish::{Publisher, Record, SpoolStamp};
use wal::Log;

/// Records forwarded per drain round, all in flight at once, in order.
const DRAIN_BATCH: usize = 500;
const DRAIN_BATCH_BYTES: usize = 4 << 20;
/// Pause after a failed drain round or while the broker is unreachable.
const DRAIN_BACKOFF: Duration = Duration::from_secs(1);

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
}

pub struct Spool {
    log: Log,
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
    /// Opens the directory (refused if another bridge holds it) and recovers what it holds.
    pub fn open(settings: &SpoolSettings, metrics: Arc<Metrics>) -> Result<Self, String> {
        let log = Log::open(&settings.dir, settings.max_bytes, metrics.clone())?;
        let active = log.undrained() > 0;
        Ok(Spool {
            log,
            drain_rate: settings.drain_rate,
            gate: RwLock::new(()),
            mode: Mutex::new(Mode { active, pending: 0 }),
            appended: Notify::new(),
            metrics,
        })
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
            if !mode.active {
                log::warn!("spooling: callbacks now go to the spool until Kafka takes them");
            }
            mode.active = true;
            mode.pending += 1;
        }
        let _pending = Pending(self);
        let appended = self.log.append(record.clone()).await;
        self.appended.notify_one();
        appended
    }

    /// Forwards the spool to Kafka, in order, whenever the broker is reachable; runs until
    /// aborted. A record leaves the spool only after Kafka acknowledged it.
    pub async fn drain(self: Arc<Self>, publisher: Arc<Publisher>, reachable: impl Fn() -> bool) {
        loop {
            if self.log.undrained() == 0 {
                self.deactivate_if_empty();
                self.log.compact();
                self.metrics.spool_oldest_age_seconds.set(0);
                tokio::select! {
                    () = self.appended.notified() => {}
                    () = tokio::time::sleep(DRAIN_BACKOFF) => {}
                }
                continue;
            }
            if !reachable() {
                // Nothing is read while waiting: peek at the oldest record for its age.
                let spool = self.clone();
                let oldest = tokio::task::spawn_blocking(move || spool.log.oldest_spooled_at())
                    .await
                    .ok()
                    .flatten();
                self.show_oldest(oldest);
                tokio::time::sleep(DRAIN_BACKOFF).await;
                continue;
            }
            let started = std::time::Instant::now();
            match self.drain_once(&publisher).await {
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

    /// One round: a batch published at once (librdkafka keeps their order per partition),
    /// the acknowledged prefix committed. Returns how many were forwarded if the whole batch
    /// got through, 0 if not (the caller backs off).
    async fn drain_once(self: &Arc<Self>, publisher: &Publisher) -> usize {
        let spool = self.clone();
        let batch_size = match self.drain_rate {
            0 => DRAIN_BATCH,
            rate => (rate as usize).clamp(1, DRAIN_BATCH),
        };
        let Ok(batch) = tokio::task::spawn_blocking(move || {
            let start = spool.log.read_position();
            (start, spool.log.read_batch(batch_size, DRAIN_BATCH_BYTES))
        })
        .await
        else {
            return 0;
        };
        let (start, batch) = batch;
        // A batch starts at the oldest record not yet acknowledged.
        self.show_oldest(
            batch
                .first()
                .and_then(|d| d.record.spooled)
                .map(|s| s.at_ms),
        );
        if batch.is_empty() {
            return 0;
        }
        let outcomes =
            futures_util::future::join_all(batch.iter().map(|d| publisher.publish(&d.record)))
                .await;
        let acked = outcomes.iter().take_while(|o| o.is_ok()).count();
        if acked < batch.len() {
            let rewind_to = if acked == 0 {
                start
            } else {
                batch[acked - 1].next
            };
            self.log.rewind(rewind_to);
            if let Some(Err(e)) = outcomes.get(acked) {
                log::warn!(
                    "spool drain: {acked} of {} forwarded, then: {e}; retrying from spool record {}",
                    batch.len(),
                    batch[acked].record.spooled.map_or(0, |s| s.seq)
                );
            }
        }
        if acked > 0 {
            let spool = self.clone();
            let last = acked - 1;
            let committed =
                tokio::task::spawn_blocking(move || spool.log.commit(&batch[last], acked as u64))
                    .await;
            match committed {
                Ok(Ok(())) => self.metrics.spool_drained.inc_by(acked as u64),
                Ok(Err(e)) => {
                    self.metrics.spool_drained.inc_by(acked as u64);
                    log::warn!("spool drain: {e}; forwarded anyway (after a crash before the next cursor write, they would be sent again)");
                }
                Err(e) => log::error!("spool drain: {e}"),
            }
        }
        if acked == outcomes.len() {
            acked
        } else {
            0
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
            log::info!("spool empty: callbacks go straight to Kafka again");
        }
    }

    /// Stops the writer after the appends already sent; blocking.
    pub fn close(&self) {
        self.log.close();
    }
}
