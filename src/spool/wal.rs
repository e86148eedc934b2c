//! The spool's write-ahead log on disk: segment files of CRC-framed records, a lock file, and a
//! cursor file naming the first record not yet drained.
//!
//! One writer thread appends: it takes every append waiting, writes them with one `write`, and
//! makes them durable with one `fdatasync` (group commit), then answers each. Nothing is answered
//! before its bytes are on stable storage. The drain reads only what is durable, and the cursor
//! moves (and drained segments are deleted) only after Kafka acknowledged.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;

use super::{frame, stored, SpoolError};
use crate::clock::unix_ms;
use crate::metrics::Metrics;
use crate::publish::{Record, SpoolStamp};

/// A segment is closed and a new one started past this size (or a quarter of `SPOOL_MAX_BYTES`,
/// if smaller), so drained space is returned to the file system a segment at a time. A group
/// commit is never split, so a segment may end a little past it.
const SEGMENT_BYTES: u64 = 8 << 20;
/// Most appends written and flushed together.
const MAX_GROUP: usize = 4096;
const LOCK_FILE: &str = "lock";
const CURSOR_FILE: &str = "cursor";
const SEGMENT_SUFFIX: &str = ".seg";

/// Where a record sits: its segment (by first sequence number) and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// A record read back for draining, with where it was and where the next one starts.
pub struct Drained {
    pub record: Record,
    pub next: Position,
}

struct Segment {
    path: PathBuf,
    /// Bytes known durable (everything before the active segment's write position).
    len: u64,
}

/// What the writer, the reader and the metrics share.
struct State {
    segments: BTreeMap<u64, Segment>,
    /// The sequence number the next append gets.
    next_seq: u64,
    /// The first record not yet acknowledged by Kafka (persisted in `cursor`).
    cursor_seq: u64,
    /// Where the drain reads next.
    read_at: Position,
    /// Durable records not yet drained.
    records: u64,
    bytes: u64,
    /// Why the last write or flush failed, until one succeeds again.
    failing: Option<String>,
    /// An append was refused for `SPOOL_MAX_BYTES`, and no space was freed since.
    full: bool,
}

/// One append waiting for the writer.
struct Append {
    record: Record,
    reply: oneshot::Sender<Result<SpoolStamp, SpoolError>>,
}

/// What the writer thread is asked to do.
enum Message {
    Append(Box<Append>),
    /// Everything is drained: replace the active segment by an empty one and delete it, so a
    /// spool that drained gives its space back (only the writer may touch the active segment).
    Compact,
}

/// The open spool directory; dropping it stops the writer after the appends already sent.
pub struct Log {
    dir: PathBuf,
    max_bytes: u64,
    state: Arc<Mutex<State>>,
    appends: Mutex<Option<mpsc::Sender<Message>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    metrics: Arc<Metrics>,
    /// Held for the life of the process: a second bridge on the same directory is refused.
    _lock: File,
}

impl Log {
    /// Opens (or creates) the spool in `dir`: takes its lock, reads the cursor, checks every
    /// segment (cutting off a torn tail, reporting damage), and starts the writer.
    pub fn open(dir: &Path, max_bytes: u64, metrics: Arc<Metrics>) -> Result<Log, String> {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(|e| format!("cannot open {}/{LOCK_FILE}: {e}", dir.display()))?;
        lock.try_lock().map_err(|_| {
            format!(
                "{} is in use by another running bridge (its lock file is held): give each replica its own SPOOL_DIR",
                dir.display()
            )
        })?;
        let cursor_seq = read_cursor(dir)?;
        let mut state = recover(dir, cursor_seq, &metrics)?;
        if state.segments.is_empty() {
            let first = state.next_seq;
            let path = segment_path(dir, first);
            File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            sync_dir(dir).map_err(|e| format!("cannot sync {}: {e}", dir.display()))?;
            state.segments.insert(first, Segment { path, len: 0 });
            state.read_at = Position {
                segment: first,
                offset: 0,
            };
        }
        metrics.spool_records.set(state.records as i64);
        metrics.spool_bytes.set(state.bytes as i64);
        metrics
            .spool_limit_bytes
            .set(i64::try_from(max_bytes).unwrap_or(i64::MAX));
        if state.records > 0 {
            log::warn!(
                "spool {}: {} records from before the restart wait to be forwarded",
                dir.display(),
                state.records
            );
        }
        let state = Arc::new(Mutex::new(state));
        let (sender, receiver) = mpsc::channel();
        let writer = {
            let (state, metrics, dir) = (state.clone(), metrics.clone(), dir.to_path_buf());
            std::thread::Builder::new()
                .name("spool-writer".into())
                .spawn(move || write_loop(&dir, max_bytes, &state, &metrics, &receiver))
                .map_err(|e| format!("cannot start the spool writer: {e}"))?
        };
        Ok(Log {
            dir: dir.to_path_buf(),
            max_bytes,
            state,
            appends: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            metrics,
            _lock: lock,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `record` durably; resolves once it is on stable storage (or why it is not).
    pub async fn append(&self, record: Record) -> Result<SpoolStamp, SpoolError> {
        let (reply, answer) = oneshot::channel();
        let sent = self
            .appends
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|appends| {
                appends
                    .send(Message::Append(Box::new(Append { record, reply })))
                    .is_ok()
            });
        match sent {
            true => answer
                .await
                .unwrap_or_else(|_| Err(SpoolError::Failed("the spool writer stopped".into()))),
            false => Err(SpoolError::Failed("the spool is closed".into())),
        }
    }

    /// Asks the writer to give back the space of a fully drained spool (see `Message::Compact`).
    pub fn compact(&self) {
        let drained_with_bytes = {
            let state = self.state();
            state.records == 0 && state.bytes > 0
        };
        if drained_with_bytes {
            if let Some(appends) = self
                .appends
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
            {
                let _ = appends.send(Message::Compact);
            }
        }
    }

    /// Durable records not yet acknowledged by Kafka.
    pub fn undrained(&self) -> u64 {
        self.state().records
    }

    /// False while a write or flush is failing or the spool is full: `/readyz` reads it.
    pub fn accepting(&self) -> bool {
        let state = self.state();
        state.failing.is_none() && !state.full && state.bytes < self.max_bytes
    }

    /// Up to `max_records` durable records (about `max_bytes`) from the drain's position, in
    /// order; blocking.
    pub fn read_batch(&self, max_records: usize, max_bytes: usize) -> Vec<Drained> {
        let (mut at, cursor_seq, segments) = {
            let state = self.state();
            let segments: Vec<(u64, PathBuf, u64)> = state
                .segments
                .range(state.read_at.segment..)
                .map(|(first, s)| (*first, s.path.clone(), s.len))
                .collect();
            (state.read_at, state.cursor_seq, segments)
        };
        let mut batch = Vec::new();
        let mut budget = max_bytes;
        for (first, path, len) in segments {
            if first != at.segment {
                at = Position {
                    segment: first,
                    offset: 0,
                };
            }
            while at.offset < len && batch.len() < max_records && budget > 0 {
                let Ok(bytes) = read_chunk(&path, at.offset, budget, len) else {
                    log::warn!("spool: cannot read {}: retrying", path.display());
                    self.state().read_at = at;
                    return batch;
                };
                let mut offset = 0;
                while offset < bytes.len() && batch.len() < max_records {
                    match frame::read_at(&bytes, offset) {
                        frame::Found::Frame { payload, end } => {
                            let next = Position {
                                segment: first,
                                offset: at.offset + end as u64,
                            };
                            self.take(payload, next, cursor_seq, &mut batch);
                            budget = budget.saturating_sub(end - offset);
                            offset = end;
                        }
                        // The rest of the frame lies past this chunk: the next chunk starts at it.
                        frame::Found::Incomplete if offset > 0 => break,
                        frame::Found::Incomplete | frame::Found::Damaged => {
                            // Damage inside durable data (the disk, not a crash): find the next
                            // intact frame in the whole rest of the segment and go on from it.
                            let from = at.offset + offset as u64;
                            let skip = read_range(&path, from, (len - from) as usize, len)
                                .ok()
                                .and_then(|rest| frame::resync(&rest, 0))
                                .unwrap_or((len - from) as usize);
                            log::error!(
                                "spool: {skip} damaged bytes at {} offset {from} skipped",
                                path.display()
                            );
                            self.metrics
                                .spool_damaged
                                .with_label_values(&["skipped"])
                                .inc();
                            offset += skip;
                            break;
                        }
                    }
                }
                at.offset += offset as u64;
                if offset == 0 {
                    break;
                }
            }
            self.state().read_at = at;
            if batch.len() >= max_records || budget == 0 || at.offset < len {
                break;
            }
        }
        batch
    }

    /// Adds a frame's record to `batch` unless it was drained before a restart.
    fn take(&self, payload: &[u8], next: Position, cursor_seq: u64, batch: &mut Vec<Drained>) {
        match stored::decode(payload) {
            Some(record) if record.spooled.is_some_and(|s| s.seq >= cursor_seq) => {
                batch.push(Drained { record, next });
            }
            Some(_) => {}
            None => {
                log::error!(
                    "spool {}: an intact record this version cannot read: kept on disk, not forwarded",
                    self.dir.display()
                );
                self.metrics
                    .spool_damaged
                    .with_label_values(&["unreadable"])
                    .inc();
            }
        }
    }

    /// Kafka acknowledged every record up to and including `last`: move the cursor past it,
    /// and delete segments that hold nothing undrained; blocking.
    ///
    /// If the cursor cannot be written (a full disk), the drain still moves on and drained
    /// segments are still deleted (that is what frees the disk): after a crash before the next
    /// successful write, the records of the segment it points into are sent again, never lost.
    pub fn commit(&self, last: &Drained, count: u64) -> Result<(), String> {
        let seq = last.record.spooled.map_or(0, |s| s.seq);
        let persisted = write_cursor(&self.dir, seq + 1);
        let removable: Vec<(u64, PathBuf)> = {
            let mut state = self.state();
            state.cursor_seq = seq + 1;
            state.records = state.records.saturating_sub(count);
            let active = state.segments.keys().next_back().copied();
            state
                .segments
                .range(..last.next.segment)
                .filter(|(first, _)| Some(**first) != active)
                .map(|(first, s)| (*first, s.path.clone()))
                .collect()
        };
        for (first, path) in removable {
            if let Err(e) = fs::remove_file(&path) {
                log::warn!("spool: cannot delete drained {}: {e}", path.display());
                continue;
            }
            let mut state = self.state();
            if let Some(segment) = state.segments.remove(&first) {
                state.bytes = state.bytes.saturating_sub(segment.len);
                state.full = false;
            }
        }
        let state = self.state();
        self.metrics.spool_records.set(state.records as i64);
        self.metrics.spool_bytes.set(state.bytes as i64);
        persisted
    }

    /// The drain failed part-way: read again from `at` (the first record not acknowledged).
    pub fn rewind(&self, at: Position) {
        self.state().read_at = at;
    }

    /// Where the drain reads next.
    pub fn read_position(&self) -> Position {
        self.state().read_at
    }

    /// When the oldest undrained record was spooled (Unix ms), by reading it; blocking.
    pub fn oldest_spooled_at(&self) -> Option<i64> {
        if self.undrained() == 0 {
            return None;
        }
        let at = self.read_position();
        let batch = self.read_batch(1, 64 << 10);
        self.rewind(at);
        batch
            .first()
            .and_then(|d| d.record.spooled)
            .map(|s| s.at_ms)
    }

    /// Stops the writer after the appends already sent; blocking.
    pub fn close(&self) {
        drop(
            self.appends
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        if let Some(writer) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = writer.join();
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.close();
    }
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}{SEGMENT_SUFFIX}"))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn read_cursor(dir: &Path) -> Result<u64, String> {
    match fs::read_to_string(dir.join(CURSOR_FILE)) {
        Ok(text) => text.trim().parse().map_err(|_| {
            format!(
                "{}/{CURSOR_FILE} holds {:?}, not a sequence number",
                dir.display(),
                text.trim()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(format!("cannot read {}/{CURSOR_FILE}: {e}", dir.display())),
    }
}

/// Replaces the cursor atomically and durably: a crash leaves the old one or the new one.
fn write_cursor(dir: &Path, seq: u64) -> Result<(), String> {
    let tmp = dir.join(format!("{CURSOR_FILE}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(seq.to_string().as_bytes())?;
        file.sync_data()?;
        fs::rename(&tmp, dir.join(CURSOR_FILE))?;
        sync_dir(dir)
    };
    write().map_err(|e| format!("cannot write {}/{CURSOR_FILE}: {e}", dir.display()))
}

/// Reads about `budget` bytes from `offset` (never past `limit`, the durable length), and at
/// least the whole frame that starts there.
fn read_chunk(path: &Path, offset: u64, budget: usize, limit: u64) -> std::io::Result<Vec<u8>> {
    let available = (limit - offset) as usize;
    let bytes = read_range(
        path,
        offset,
        budget.max(frame::HEADER_LEN).min(available),
        limit,
    )?;
    match frame::announced_len(&bytes) {
        Some(whole) if whole > bytes.len() && whole <= available => {
            read_range(path, offset, whole, limit)
        }
        _ => Ok(bytes),
    }
}

/// Reads `want` bytes from `offset`, never past `limit` (the durable length).
fn read_range(path: &Path, offset: u64, want: usize, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let want = want.min((limit - offset) as usize);
    let mut bytes = vec![0; want];
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// Reads every segment back: intact records counted, a torn tail cut off, damage reported.
fn recover(dir: &Path, cursor_seq: u64, metrics: &Metrics) -> Result<State, String> {
    let mut firsts: Vec<u64> = fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(SEGMENT_SUFFIX)?.parse().ok()
        })
        .collect();
    firsts.sort_unstable();
    let mut state = State {
        segments: BTreeMap::new(),
        next_seq: cursor_seq,
        cursor_seq,
        read_at: Position {
            segment: firsts.first().copied().unwrap_or(cursor_seq),
            offset: 0,
        },
        records: 0,
        bytes: 0,
        failing: None,
        full: false,
    };
    for first in firsts {
        let path = segment_path(dir, first);
        let bytes = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let scan = frame::scan(&bytes);
        for (offset, length) in &scan.skipped {
            log::error!(
                "spool: {} damaged bytes at {} offset {offset} skipped; the intact records after them are kept",
                length,
                path.display()
            );
            metrics.spool_damaged.with_label_values(&["skipped"]).inc();
        }
        let mut len = bytes.len() as u64;
        if scan.torn_tail {
            log::warn!(
                "spool: {} ends in a record cut short ({} bytes, a write the crash interrupted, never acknowledged): cut off",
                path.display(),
                bytes.len() - scan.valid_len
            );
            metrics
                .spool_damaged
                .with_label_values(&["torn_tail"])
                .inc();
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            file.set_len(scan.valid_len as u64)
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("cannot cut the torn tail of {}: {e}", path.display()))?;
            len = scan.valid_len as u64;
        }
        let mut undrained_here = 0;
        for (_, payload) in &scan.frames {
            match stored::seq_of(payload) {
                Some(seq) => {
                    state.next_seq = state.next_seq.max(seq + 1);
                    if seq >= cursor_seq {
                        undrained_here += 1;
                    }
                }
                None => metrics
                    .spool_damaged
                    .with_label_values(&["unreadable"])
                    .inc(),
            }
        }
        state.records += undrained_here;
        state.bytes += len;
        state.segments.insert(first, Segment { path, len });
    }
    Ok(state)
}

/// The writer thread: group commit until the log is dropped.
fn write_loop(
    dir: &Path,
    max_bytes: u64,
    state: &Mutex<State>,
    metrics: &Metrics,
    appends: &mpsc::Receiver<Message>,
) {
    let lock = || state.lock().unwrap_or_else(|p| p.into_inner());
    let mut file: Option<(u64, File)> = None;
    while let Ok(first) = appends.recv() {
        let mut group = Vec::new();
        let mut compact = false;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Append(append) => group.push(*append),
                Message::Compact => compact = true,
            }
            if group.len() < MAX_GROUP {
                next = appends.try_recv().ok();
            }
        }
        if compact && group.is_empty() {
            if compact_drained(dir, state, metrics) {
                file = None;
            }
            continue;
        }
        if group.is_empty() {
            continue;
        }
        let (active, active_len, mut seq, bytes) = {
            let state = lock();
            let (active, segment) = state
                .segments
                .iter()
                .next_back()
                .map(|(first, s)| (*first, s.len))
                .unwrap_or((state.next_seq, 0));
            (active, segment, state.next_seq, state.bytes)
        };
        // Encode, refusing what would pass SPOOL_MAX_BYTES.
        let now = unix_ms();
        let mut buffer = Vec::new();
        let mut written = Vec::with_capacity(group.len());
        for append in group {
            let stamp = SpoolStamp { seq, at_ms: now };
            let framed = frame::encode(&stored::encode(&append.record, stamp));
            if bytes + (buffer.len() + framed.len()) as u64 > max_bytes {
                if !std::mem::replace(&mut lock().full, true) {
                    log::error!("spool full (SPOOL_MAX_BYTES={max_bytes}): answering 503 until the drain frees space");
                }
                let _ = append.reply.send(Err(SpoolError::Full));
                continue;
            }
            buffer.extend_from_slice(&framed);
            written.push((append.reply, stamp));
            seq += 1;
        }
        if written.is_empty() {
            continue;
        }
        // A full segment is closed; the group starts a new one named by its first record.
        let (segment, offset) = if active_len >= SEGMENT_BYTES.min(max_bytes / 4).max(1) {
            let first_seq = written[0].1.seq;
            let path = segment_path(dir, first_seq);
            let created = File::create(&path).and_then(|_| sync_dir(dir));
            if let Err(e) = created {
                fail(
                    state,
                    metrics,
                    written,
                    &format!("cannot start {}: {e}", path.display()),
                );
                continue;
            }
            lock().segments.insert(first_seq, Segment { path, len: 0 });
            (first_seq, 0)
        } else {
            (active, active_len)
        };
        if file.as_ref().is_none_or(|(open, _)| *open != segment) {
            let path = segment_path(dir, segment);
            match OpenOptions::new().append(true).open(&path) {
                Ok(opened) => file = Some((segment, opened)),
                Err(e) => {
                    fail(
                        state,
                        metrics,
                        written,
                        &format!("cannot open {}: {e}", path.display()),
                    );
                    continue;
                }
            }
        }
        let Some((_, out)) = file.as_mut() else {
            continue;
        };
        let started = Instant::now();
        let result = out
            .write_all(&buffer)
            .map(|()| Instant::now())
            .and_then(|wrote| out.sync_data().map(|()| wrote));
        match result {
            Ok(wrote) => {
                metrics
                    .spool_write_seconds
                    .observe((wrote - started).as_secs_f64());
                metrics
                    .spool_fsync_seconds
                    .observe(wrote.elapsed().as_secs_f64());
                metrics.spool_group_records.observe(written.len() as f64);
                let count = written.len() as u64;
                {
                    let mut state = lock();
                    if let Some(s) = state.segments.get_mut(&segment) {
                        s.len = offset + buffer.len() as u64;
                    }
                    state.next_seq = seq;
                    state.records += count;
                    state.bytes += buffer.len() as u64;
                    if state.failing.take().is_some() {
                        log::info!("spool writes succeed again");
                    }
                    metrics.spool_records.set(state.records as i64);
                    metrics.spool_bytes.set(state.bytes as i64);
                }
                metrics.spool_appended.inc_by(count);
                for (reply, stamp) in written {
                    let _ = reply.send(Ok(stamp));
                }
            }
            Err(e) => {
                // After a failed write or flush the file's tail cannot be trusted: cut it back to
                // what was durable, and reopen it next time.
                let restored = out.set_len(offset).and_then(|()| out.sync_all());
                file = None;
                let why = match restored {
                    Ok(()) => format!("write or flush failed: {e}"),
                    Err(cut) => format!(
                        "write or flush failed: {e}; cutting the segment back also failed: {cut}"
                    ),
                };
                fail(state, metrics, written, &why);
            }
        }
    }
}

/// Replaces a fully drained spool's segments by one empty segment; true if it did.
fn compact_drained(dir: &Path, state: &Mutex<State>, metrics: &Metrics) -> bool {
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    if state.records > 0 || state.bytes == 0 {
        return false;
    }
    let first = state.next_seq;
    let path = segment_path(dir, first);
    // The new segment first: a spool always has one to append to.
    if let Err(e) = File::create(&path).and_then(|_| sync_dir(dir)) {
        log::warn!(
            "spool: cannot start {}: {e}; keeping the drained segments",
            path.display()
        );
        return false;
    }
    let old = std::mem::take(&mut state.segments);
    state.segments.insert(first, Segment { path, len: 0 });
    state.read_at = Position {
        segment: first,
        offset: 0,
    };
    state.bytes = 0;
    state.full = false;
    for (_, segment) in old {
        if let Err(e) = fs::remove_file(&segment.path) {
            log::warn!(
                "spool: cannot delete drained {}: {e}",
                segment.path.display()
            );
            state.bytes += segment.len;
        }
    }
    metrics.spool_bytes.set(state.bytes as i64);
    true
}

/// Answers every append of a failed group with the failure, and remembers it for `/readyz`.
fn fail(
    state: &Mutex<State>,
    metrics: &Metrics,
    written: Vec<(oneshot::Sender<Result<SpoolStamp, SpoolError>>, SpoolStamp)>,
    why: &str,
) {
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    if state.failing.is_none() {
        log::error!("spool: {why}: answering 503 until a write succeeds");
    }
    state.failing = Some(why.to_string());
    metrics.spool_write_failures.inc();
    for (reply, _) in written {
        let _ = reply.send(Err(SpoolError::Failed(why.to_string())));
    }
}
