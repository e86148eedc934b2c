//! Duplicate suppression: acked callback ids are remembered for `DEDUP_TTL_SECS`, bounded by
//! `DEDUP_CAPACITY` (oldest evicted first); a repeat of one still awaiting its ack waits for it.
//!
//! Per process: replicas do not share it, so consumers still dedupe on `zego-callback-id`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::publish::{Ack, PublishError, SpoolStamp};

/// A callback id in binary: half the memory of its hex text.
type Key = [u8; 20];
/// What the first publish of an id ended with, shared with repeats that waited for it.
type Outcome = Option<Result<Remembered, PublishError>>;

/// Why a callback is known to be safe: acknowledged by Kafka, or committed to the spool (from
/// where it reaches Kafka). A repeat of either is answered 200 `"duplicate":true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remembered {
    Acked(Ack),
    Spooled(SpoolStamp),
}

impl From<Ack> for Remembered {
    fn from(ack: Ack) -> Self {
        Remembered::Acked(ack)
    }
}

enum Entry {
    /// Being published now; repeats subscribe and wait.
    Pending(watch::Receiver<Outcome>),
    /// Acked (or spooled) at `at`; answered from here until `at + ttl`.
    Acked { ack: Remembered, at: Instant },
}

#[derive(Default)]
struct Entries {
    by_id: HashMap<Key, Entry>,
    /// Acked ids oldest first, with their ack time: expiry and eviction both pop the front.
    acked_order: VecDeque<(Key, Instant)>,
}

/// The cache, shared by every worker.
pub struct DedupCache {
    entries: Mutex<Entries>,
    ttl: Option<Duration>,
    capacity: usize,
}

/// What a callback should do, given its id.
pub enum Claim {
    /// First of its kind (or dedupe is off): publish, then report through the guard.
    Publish(PendingGuard),
    /// Acked (or spooled) within the TTL: answer 200 with this.
    Acked(Remembered),
    /// Another request is publishing it: wait for that outcome.
    Wait(watch::Receiver<Outcome>),
}

/// Held while a publish is under way; dropping it without `finish` counts as a failure, so a
/// cancelled request never leaves its id stuck as pending.
pub struct PendingGuard {
    cache: Option<(Arc<DedupCache>, Key)>,
    sender: Option<watch::Sender<Outcome>>,
}

impl DedupCache {
    /// `ttl = None` turns dedupe off.
    pub fn new(ttl: Option<Duration>, capacity: usize) -> Arc<Self> {
        Arc::new(DedupCache {
            entries: Mutex::new(Entries::default()),
            ttl,
            capacity,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // The map stays consistent between statements, so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of ids held (pending and acked).
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decides what a callback with id `callback_id` (40 hex digits) does.
    pub fn claim(self: &Arc<Self>, callback_id: &str) -> Claim {
        let (Some(ttl), Some(key)) = (self.ttl, parse_key(callback_id)) else {
            return Claim::Publish(PendingGuard {
                cache: None,
                sender: None,
            });
        };
        let now = Instant::now();
        let mut entries = self.lock();
        entries.expire(now, ttl);
        match entries.by_id.get(&key) {
            Some(Entry::Acked { ack, .. }) => Claim::Acked(ack.clone()),
            Some(Entry::Pending(receiver)) => Claim::Wait(receiver.clone()),
            None => {
                let (sender, receiver) = watch::channel(None);
                entries.by_id.insert(key, Entry::Pending(receiver));
                Claim::Publish(PendingGuard {
                    cache: Some((self.clone(), key)),
                    sender: Some(sender),
                })
            }
        }
    }

    /// Remembers callbacks the spool holds from before a restart, so their retries are
    /// answered as duplicates instead of being spooled again.
    pub fn remember_spooled(&self, held: impl IntoIterator<Item = (String, SpoolStamp)>) {
        if self.ttl.is_none() {
            return;
        }
        for (callback_id, stamp) in held {
            if let Some(key) = parse_key(&callback_id) {
                self.settle(key, &Ok(Remembered::Spooled(stamp)));
            }
        }
    }

    fn settle(&self, key: Key, outcome: &Result<Remembered, PublishError>) {
        let mut entries = self.lock();
        match outcome {
            Ok(ack) => {
                let at = Instant::now();
                entries.by_id.insert(
                    key,
                    Entry::Acked {
                        ack: ack.clone(),
                        at,
                    },
                );
                entries.acked_order.push_back((key, at));
                entries.evict_beyond(self.capacity);
            }
            // A failed publish is forgotten: its retry must publish again.
            Err(_) => {
                entries.by_id.remove(&key);
            }
        }
    }
}

impl Entries {
    /// Drops acked ids older than `ttl`; they are in ack order, so only the front is looked at.
    fn expire(&mut self, now: Instant, ttl: Duration) {
        while let Some(&(key, at)) = self.acked_order.front() {
            if now.duration_since(at) < ttl {
                break;
            }
            self.acked_order.pop_front();
            self.remove_acked(key, at);
        }
    }

    fn evict_beyond(&mut self, capacity: usize) {
        while self.acked_order.len() > capacity {
            if let Some((key, at)) = self.acked_order.pop_front() {
                self.remove_acked(key, at);
            }
        }
    }

    /// Removes `key` only if it is still the ack made at `at` (not a later publish of it).
    fn remove_acked(&mut self, key: Key, at: Instant) {
        if matches!(self.by_id.get(&key), Some(Entry::Acked { at: acked_at, .. }) if *acked_at == at)
        {
            self.by_id.remove(&key);
        }
    }
}

impl PendingGuard {
    /// Records the outcome and wakes every repeat waiting for it.
    pub fn finish(mut self, outcome: Result<Remembered, PublishError>) {
        self.settle(outcome);
    }

    /// Settles once: later calls (the drop after `finish`) find nothing left to do.
    fn settle(&mut self, outcome: Result<Remembered, PublishError>) {
        if let Some((cache, key)) = self.cache.take() {
            cache.settle(key, &outcome);
        }
        if let Some(sender) = self.sender.take() {
            sender.send_replace(Some(outcome));
        }
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if self.cache.is_some() || self.sender.is_some() {
            self.settle(Err(abandoned()));
        }
    }
}

/// The outcome of a publish whose request went away before it ended: retriable.
fn abandoned() -> PublishError {
    PublishError::Unavailable("the first request for this callback was abandoned".into())
}

/// Waits for the outcome of the publish a repeat is waiting on.
pub async fn wait(mut receiver: watch::Receiver<Outcome>) -> Result<Remembered, PublishError> {
    match receiver.wait_for(Option::is_some).await {
        // `wait_for` returned, so the outcome is there.
        Ok(outcome) => outcome.clone().unwrap_or_else(|| Err(abandoned())),
        // The sender went away without an outcome.
        Err(_) => Err(abandoned()),
    }
}

fn parse_key(callback_id: &str) -> Option<Key> {
    let mut key = [0u8; 20];
    hex::decode_to_slice(callback_id, &mut key).ok()?;
    Some(key)
}

#[cfg(test)]
mod tests;
