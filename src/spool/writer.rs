//! The one thread that owns the spool's database: it commits every append waiting as one
//! transaction (group commit) and answers each once the commit is durable, reads the oldest
//! records for the drain, and deletes what Kafka acknowledged. One thread, one connection: no
//! two writers ever contend, and the async side never blocks on the disk.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::oneshot;

use super::legacy;
use super::store::{self, Front, Store};
use super::SpoolError;
use crate::clock::unix_ms;
use crate::metrics::{Metrics, SpoolDamage};
use crate::publish::{Record, SpoolStamp};

/// Most appends committed together.
const MAX_GROUP: usize = 4096;
/// Free disk space the spool never takes for new records, beside room for the write-ahead log
/// to grow to its limit: what a delete transaction and its checkpoint need (a few pages
/// whatever the number of records), so a spool that filled the disk can still forward, delete
/// and give the space back.
const HEADROOM_SLACK: u64 = 64 << 10;
/// What a record costs on disk beyond its value and names (row header, page slack): only for
/// the `SPOOL_MAX_BYTES` check before a commit; the real size is read after it.
const ROW_OVERHEAD: u64 = 128;

/// What the async side and `/readyz` read without asking the thread.
#[derive(Default)]
struct Shared {
    /// Records in the database not yet acknowledged by Kafka.
    records: u64,
    /// Bytes of the database files (`zego_spool_bytes`).
    file_bytes: u64,
    /// Bytes in use: the files less free pages (which new records reuse).
    used_bytes: u64,
    /// Why the last commit failed, until one succeeds again.
    failing: Option<String>,
    /// An append was refused for `SPOOL_MAX_BYTES`, and no space was freed since.
    full: bool,
}

type Reply<T> = oneshot::Sender<T>;
/// An append waiting for its group's commit, and where its answer goes.
type Waiting = (Box<Record>, Reply<Result<SpoolStamp, SpoolError>>);

enum Command {
    Append(Box<Record>, Reply<Result<SpoolStamp, SpoolError>>),
    Read {
        max_records: usize,
        max_bytes: usize,
        reply: Reply<Result<Vec<Record>, String>>,
    },
    /// Kafka acknowledged these records: delete them (kept out of reads until the delete
    /// commits, so an acknowledged record is never sent again by this process).
    Acked(Vec<u64>, Reply<()>),
    /// These records cannot be delivered now (their topic does not exist, Kafka refuses them
    /// for good): kept, left out of reads and of the count that keeps the spool active.
    SetAside(Vec<(u64, String)>, Reply<usize>),
    /// Put every set-aside record back in line; replies how many.
    RetryHeld(Reply<usize>),
    Oldest(Reply<Option<i64>>),
    /// The spool is empty: give its space back.
    Reclaim,
}

/// The spool's database behind its thread; dropping it stops the thread after the commands
/// already sent.
pub struct Log {
    max_bytes: u64,
    shared: Arc<Mutex<Shared>>,
    commands: Mutex<Option<mpsc::Sender<Command>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Sets `shared` from the store after a change: records and file bytes.
fn show(shared: &mut Shared, store: &Store, metrics: &Metrics) {
    if let Ok(usage) = store.usage() {
        shared.file_bytes = usage.file_bytes;
        shared.used_bytes = usage.used_bytes;
    }
    metrics.spool_records.set(shared.records as i64);
    metrics.spool_bytes.set(shared.file_bytes as i64);
}

impl Log {
    /// Opens the spool in `dir` (see `Store::open`), imports an old-format spool found there,
    /// and starts the thread. Returns the callback ids it holds, for the dedupe cache.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        metrics: Arc<Metrics>,
    ) -> Result<(Log, Vec<(String, SpoolStamp)>), String> {
        let mut store = Store::open(dir, max_bytes)?;
        legacy::import(&mut store, &metrics)?;
        let records = store.count()?;
        let held = store.callback_ids()?;
        let mut shared = Shared {
            records,
            ..Shared::default()
        };
        show(&mut shared, &store, &metrics);
        metrics
            .spool_limit_bytes
            .set(i64::try_from(max_bytes).unwrap_or(i64::MAX));
        if records > 0 {
            log::warn!(
                "spool {}: {records} records from before the restart wait to be forwarded",
                dir.display()
            );
        }
        let shared = Arc::new(Mutex::new(shared));
        let (sender, receiver) = mpsc::channel();
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("spool-writer".into())
                .spawn(move || {
                    Worker {
                        store,
                        shared,
                        metrics,
                        max_bytes,
                        wal_limit: store::wal_limit_bytes(max_bytes),
                        acked: BTreeSet::new(),
                        unreadable: BTreeSet::new(),
                        held: BTreeMap::new(),
                        reported: BTreeSet::new(),
                        delete_failing: false,
                        deleted_since_reclaim: true,
                    }
                    .run(&receiver)
                })
                .map_err(|e| format!("cannot start the spool writer: {e}"))?
        };
        Ok((
            Log {
                max_bytes,
                shared,
                commands: Mutex::new(Some(sender)),
                thread: Mutex::new(Some(thread)),
            },
            held,
        ))
    }

    fn shared(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a command and awaits its reply; `None` if the thread has stopped.
    async fn ask<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        let sent = self
            .commands
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|commands| commands.send(command(reply)).is_ok());
        if !sent {
            return None;
        }
        answer.await.ok()
    }

    /// Writes `record` durably behind everything spooled; resolves once its transaction
    /// committed (or with why it did not).
    pub async fn append(&self, record: Record) -> Result<SpoolStamp, SpoolError> {
        self.ask(|reply| Command::Append(Box::new(record), reply))
            .await
            .unwrap_or_else(|| Err(SpoolError::Failed("the spool is closed".into())))
    }

    /// The oldest records not yet acknowledged, in order.
    pub async fn read_front(
        &self,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>, String> {
        self.ask(|reply| Command::Read {
            max_records,
            max_bytes,
            reply,
        })
        .await
        .unwrap_or_else(|| Err("the spool is closed".into()))
    }

    /// Kafka acknowledged these records: they leave the spool.
    pub async fn acked(&self, seqs: Vec<u64>) {
        let _ = self.ask(|reply| Command::Acked(seqs, reply)).await;
    }

    /// These records cannot be delivered now (`(seq, why)`): set aside until `retry_held`.
    /// Returns how many were never set aside before (a retried one that fails again was).
    pub async fn set_aside(&self, held: Vec<(u64, String)>) -> usize {
        self.ask(|reply| Command::SetAside(held, reply))
            .await
            .unwrap_or(0)
    }

    /// Puts the set-aside records back in line; returns how many.
    pub async fn retry_held(&self) -> usize {
        self.ask(Command::RetryHeld).await.unwrap_or(0)
    }

    /// When the oldest record waiting was spooled (Unix ms).
    pub async fn oldest_spooled_at(&self) -> Option<i64> {
        self.ask(Command::Oldest).await.flatten()
    }

    /// Asks the thread to give back the space of an empty spool.
    pub fn reclaim(&self) {
        if let Some(commands) = self
            .commands
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            let _ = commands.send(Command::Reclaim);
        }
    }

    /// Records not yet acknowledged by Kafka.
    pub fn undrained(&self) -> u64 {
        self.shared().records
    }

    /// Bytes of the database files (the metric shows them; tests compare the two).
    #[cfg(test)]
    pub fn file_bytes(&self) -> u64 {
        self.shared().file_bytes
    }

    /// False while commits fail or the spool is full: `/readyz` reads it.
    pub fn accepting(&self) -> bool {
        let shared = self.shared();
        shared.failing.is_none() && !shared.full && shared.used_bytes < self.max_bytes
    }

    /// Stops the thread after the commands already sent; blocking.
    pub fn close(&self) {
        drop(
            self.commands
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.close();
    }
}

/// The thread's own state.
struct Worker {
    store: Store,
    shared: Arc<Mutex<Shared>>,
    metrics: Arc<Metrics>,
    max_bytes: u64,
    /// How large the write-ahead log may grow before it is checkpointed.
    wal_limit: u64,
    /// Acknowledged by Kafka, delete not yet committed (a failing disk): never read again.
    acked: BTreeSet<u64>,
    /// Rows that cannot be read back as records: reported once, kept, never published.
    unreadable: BTreeSet<u64>,
    /// Records that cannot be delivered now, with why: kept, left out of reads until retried.
    held: BTreeMap<u64, String>,
    /// Every record ever set aside: one set aside again after a retry is not news.
    reported: BTreeSet<u64>,
    /// The last delete failed (logged once until one succeeds).
    delete_failing: bool,
    /// Records were deleted since the space was last given back.
    deleted_since_reclaim: bool,
}

impl Worker {
    fn shared(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn run(mut self, commands: &mpsc::Receiver<Command>) {
        while let Ok(first) = commands.recv() {
            let mut group = Vec::new();
            let mut others = Vec::new();
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Append(record, reply) => group.push((record, reply)),
                    other => others.push(other),
                }
                if group.len() < MAX_GROUP {
                    next = commands.try_recv().ok();
                }
            }
            if !group.is_empty() {
                self.commit_group(group);
            }
            for command in others {
                self.serve(command);
            }
        }
    }

    fn serve(&mut self, command: Command) {
        match command {
            Command::Append(..) => unreachable!("appends are grouped in run"),
            Command::Read {
                max_records,
                max_bytes,
                reply,
            } => {
                let _ = reply.send(self.read(max_records, max_bytes));
            }
            Command::Acked(seqs, reply) => {
                self.acked(seqs);
                let _ = reply.send(());
            }
            Command::SetAside(held, reply) => {
                let _ = reply.send(self.set_aside(held));
            }
            Command::RetryHeld(reply) => {
                let count = self.held.len();
                {
                    let mut shared = self.shared();
                    shared.records += count as u64;
                    self.metrics.spool_records.set(shared.records as i64);
                }
                self.held.clear();
                self.metrics.spool_held_records.set(0);
                let _ = reply.send(count);
            }
            Command::Oldest(reply) => {
                let _ = reply.send(self.store.oldest_spooled_at().ok().flatten());
            }
            Command::Reclaim => self.reclaim(),
        }
    }

    /// Commits a group as one transaction, refusing first what would pass `SPOOL_MAX_BYTES`.
    fn commit_group(&mut self, group: Vec<Waiting>) {
        let usage = self.store.usage().unwrap_or_default();
        let mut used = usage.used_bytes;
        // Kept free: room for the write-ahead log to grow to its limit, and the slack for
        // deletes. A record then takes about one and a half times its bytes in the database's
        // pages (rows share pages).
        let headroom = self.wal_limit.saturating_sub(usage.wal_bytes) + HEADROOM_SLACK;
        let mut free = free_bytes(self.store.dir()).map(|f| f.saturating_sub(headroom));
        let mut taken = Vec::with_capacity(group.len());
        for (record, reply) in group {
            let cost = record_cost(&record);
            let disk_low = free.is_some_and(|f| f < cost * 3 / 2);
            if used + cost > self.max_bytes || disk_low {
                if !std::mem::replace(&mut self.shared().full, true) {
                    if disk_low {
                        log::error!(
                            "spool full: the disk under {} is nearly full (about {headroom} bytes are kept free for forwarding what the spool holds): answering 503 until the drain frees space",
                            self.store.dir().display(),
                        );
                    } else {
                        log::error!(
                            "spool full (SPOOL_MAX_BYTES={}): answering 503 until the drain frees space",
                            self.max_bytes
                        );
                    }
                }
                let _ = reply.send(Err(SpoolError::Full));
                continue;
            }
            used += cost;
            free = free.map(|f| f - cost * 3 / 2);
            taken.push((record, reply));
        }
        if taken.is_empty() {
            return;
        }
        let started = Instant::now();
        let records: Vec<&Record> = taken.iter().map(|(r, _)| r.as_ref()).collect();
        let committed = self.store.append(&records, unix_ms());
        self.metrics
            .spool_write_seconds
            .observe(started.elapsed().as_secs_f64());
        match committed {
            Ok(stamps) => {
                self.metrics
                    .spool_group_records
                    .observe(stamps.len() as f64);
                self.metrics.spool_appended.inc_by(stamps.len() as u64);
                {
                    let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
                    shared.records += stamps.len() as u64;
                    if let Some(why) = shared.failing.take() {
                        log::info!("spool writes succeed again (they failed with: {why})");
                    }
                    show(&mut shared, &self.store, &self.metrics);
                }
                for ((_, reply), stamp) in taken.into_iter().zip(stamps) {
                    let _ = reply.send(Ok(stamp));
                }
            }
            Err(why) => {
                self.metrics.spool_write_failures.inc();
                let why = format!("the spool's commit failed: {why}");
                {
                    let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
                    if shared.failing.is_none() {
                        log::error!("{why}: answering 503 until a commit succeeds");
                    }
                    shared.failing = Some(why.clone());
                    show(&mut shared, &self.store, &self.metrics);
                }
                for (_, reply) in taken {
                    let _ = reply.send(Err(SpoolError::Failed(why.clone())));
                }
            }
        }
    }

    fn read(&mut self, max_records: usize, max_bytes: usize) -> Result<Vec<Record>, String> {
        let skip: BTreeSet<u64> = self
            .acked
            .union(&self.unreadable)
            .copied()
            .chain(self.held.keys().copied())
            .collect();
        let Front {
            records,
            unreadable,
        } = self.store.read_front(max_records, max_bytes, &skip)?;
        for (seq, why) in unreadable {
            // Once per row: it stays in the database (nothing is deleted unread) and is counted.
            log::error!(
                "spool record {seq} cannot be read back ({why}): kept in {}, not forwarded",
                self.store.dir().display()
            );
            self.metrics.spool_damage(SpoolDamage::Unreadable, 1);
            self.unreadable.insert(seq);
            let mut shared = self.shared();
            shared.records = shared.records.saturating_sub(1);
        }
        Ok(records)
    }

    /// Leaves records out of reads and out of the count. Returns how many were newly held.
    fn set_aside(&mut self, held: Vec<(u64, String)>) -> usize {
        let mut newly = 0;
        for (seq, why) in held {
            if self.acked.contains(&seq) || self.unreadable.contains(&seq) {
                continue;
            }
            if self.held.insert(seq, why).is_none() {
                let mut shared = self.shared();
                shared.records = shared.records.saturating_sub(1);
                self.metrics.spool_records.set(shared.records as i64);
            }
            if self.reported.insert(seq) {
                newly += 1;
            }
        }
        self.metrics.spool_held_records.set(self.held.len() as i64);
        newly
    }

    /// Deletes what Kafka acknowledged, with any earlier deletes that failed; until a delete
    /// commits, the records stay out of reads so none is sent twice by this process (after a
    /// restart they would be: duplicates, never gaps).
    fn acked(&mut self, seqs: Vec<u64>) {
        {
            let mut shared = self.shared();
            shared.records = shared.records.saturating_sub(seqs.len() as u64);
        }
        self.acked.extend(seqs);
        let pending: Vec<u64> = self.acked.iter().copied().collect();
        match self.store.delete(&pending) {
            Ok(()) => {
                if std::mem::take(&mut self.delete_failing) {
                    log::info!("spool: deleting forwarded records succeeds again");
                }
                self.acked.clear();
                self.deleted_since_reclaim = true;
                let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
                shared.full = false;
                show(&mut shared, &self.store, &self.metrics);
            }
            Err(why) => {
                {
                    let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
                    show(&mut shared, &self.store, &self.metrics);
                }
                if !std::mem::replace(&mut self.delete_failing, true) {
                    log::warn!(
                        "spool: cannot delete {} forwarded records yet ({why}); retrying with the next ones. They are not sent again unless the bridge restarts first",
                        pending.len()
                    );
                }
            }
        }
    }

    fn reclaim(&mut self) {
        if !self.acked.is_empty() {
            // A failed delete waits for its retry: try it now.
            self.acked(Vec::new());
        }
        if self.shared().records > 0 || !self.acked.is_empty() || !self.deleted_since_reclaim {
            return;
        }
        match self.store.reclaim() {
            Ok(()) => self.deleted_since_reclaim = false,
            Err(why) => log::warn!("spool: cannot give the drained spool's space back yet: {why}"),
        }
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        shared.full = false;
        show(&mut shared, &self.store, &self.metrics);
    }
}

/// Bytes free for an unprivileged writer on the file system holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

fn record_cost(record: &Record) -> u64 {
    let names = record.topic.len()
        + record.key.as_ref().map_or(0, String::len)
        + record.event.len()
        + record.appid.len()
        + record.callback_id.len()
        + record
            .ids
            .iter()
            .map(|(h, v)| h.len() + v.len() + 6)
            .sum::<usize>();
    (record.value.len() + names) as u64 + ROW_OVERHEAD
}
