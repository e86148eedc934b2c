//! The spool's storage: one SQLite database (`SPOOL_DIR/spool.db`) holding one table of records
//! in sequence order. SQLite's atomic commit decides which records exist; no code of ours keeps
//! a cursor, file names or offsets. Synchronous: only the writer thread (`writer.rs`) and the
//! offline tools (`zego-kafka-bridge spool …`) call it.
//!
//! - Append: one transaction per group of callbacks, durable before `commit` returns
//!   (`synchronous=FULL`: the write-ahead log is flushed with `fsync` on every commit).
//! - Ack: the acknowledged records are deleted in one transaction.
//! - Space: `auto_vacuum=INCREMENTAL` gives the pages of deleted records back to the file
//!   system when the spool is drained, and the write-ahead log is truncated then too.
//! - `seq` is `INTEGER PRIMARY KEY AUTOINCREMENT`: SQLite never hands out a number twice, even
//!   after the records holding the highest ones were deleted, so the order survives any restart.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::callback::catalogue::Family;
use crate::publish::{Record, SpoolStamp};

pub const DB_FILE: &str = "spool.db";
const LOCK_FILE: &str = "lock";
/// The write-ahead log is checkpointed into the database past this many pages (SQLite's own
/// default), or a quarter of `SPOOL_MAX_BYTES` if smaller, so it stays inside the limit.
const WAL_PAGES: u64 = 1000;
/// SQLite's default page size, which the spool keeps.
const PAGE_SIZE: u64 = 4096;

/// How large the write-ahead log grows before it is checkpointed and cut back.
pub fn wal_limit_bytes(max_bytes: u64) -> u64 {
    WAL_PAGES.min(max_bytes / 4 / PAGE_SIZE).max(2) * PAGE_SIZE
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    spooled_at_ms INTEGER NOT NULL,
    topic TEXT NOT NULL,
    key TEXT,
    event TEXT NOT NULL,
    family TEXT,
    appid TEXT NOT NULL,
    callback_id TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    ids TEXT NOT NULL,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// The oldest records, as `read_front` found them.
#[derive(Default)]
pub struct Front {
    pub records: Vec<Record>,
    /// Rows that exist but cannot be read back as records: their sequence numbers and why.
    pub unreadable: Vec<(u64, String)>,
}

/// The open spool database and the lock that makes it this process's alone.
pub struct Store {
    conn: Connection,
    dir: PathBuf,
    /// Held for the life of the store: a second bridge (or `spool drain`) on the directory is
    /// refused.
    _lock: File,
}

/// The space the spool takes, for `SPOOL_MAX_BYTES`, metrics and `spool inspect`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes the records take on disk: pages in use plus the write-ahead log.
    pub used_bytes: u64,
    /// Bytes of the files (database and write-ahead log), free pages included.
    pub file_bytes: u64,
    /// Bytes of the write-ahead log alone.
    pub wal_bytes: u64,
}

impl Store {
    /// Opens (or creates) the spool in `dir`: takes its lock, opens the database with the
    /// settings above, and checks it (`PRAGMA quick_check`). A damaged database stops here with
    /// one line saying which file and what to do.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Store, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("SPOOL_DIR={}: cannot create it: {e}", dir.display()))?;
        let lock = take_lock(dir)?;
        let path = dir.join(DB_FILE);
        let damaged = |e: &dyn std::fmt::Display| {
            // One line, whatever SQLite's message holds.
            let e = e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            format!(
                "SPOOL_DIR={}: {} is damaged ({e}); the bridge will not guess which records it held. Stop, move {DB_FILE} aside (keep it: `sqlite3 {DB_FILE} .recover` salvages what is readable) and start again with an empty spool",
                dir.display(),
                path.display()
            )
        };
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| format!("SPOOL_DIR={}: cannot open {DB_FILE}: {e}", dir.display()))?;
        let wal_pages = wal_limit_bytes(max_bytes) / PAGE_SIZE;
        // auto_vacuum must be chosen before the first table exists; on an existing database
        // it is a no-op. EXCLUSIVE locking: one process, and no shared-memory file beside it.
        conn.execute_batch(&format!(
            "PRAGMA auto_vacuum = INCREMENTAL;
             PRAGMA locking_mode = EXCLUSIVE;
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA wal_autocheckpoint = {wal_pages};
             PRAGMA journal_size_limit = {};",
            wal_pages * PAGE_SIZE
        ))
        .map_err(|e| damaged(&e))?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| damaged(&e))?;
        if check != "ok" {
            return Err(damaged(&format!("quick_check: {check}")));
        }
        conn.execute_batch(SCHEMA).map_err(|e| {
            format!(
                "SPOOL_DIR={}: cannot create the spool's table: {e}",
                dir.display()
            )
        })?;
        Ok(Store {
            conn,
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `records` (stamped `at_ms`) in one transaction; returns their stamps once the
    /// transaction is durable. On any error nothing of the group is kept and nothing is claimed.
    pub fn append(&mut self, records: &[&Record], at_ms: i64) -> Result<Vec<SpoolStamp>, String> {
        let outcome = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut stamps = Vec::with_capacity(records.len());
            for record in records {
                insert(&tx, record, at_ms)?;
                stamps.push(SpoolStamp {
                    seq: tx.last_insert_rowid() as u64,
                    at_ms,
                });
            }
            tx.commit()?;
            Ok::<_, rusqlite::Error>(stamps)
        })();
        outcome.map_err(|e| self.after_failure(e))
    }

    /// A failed statement or commit: make sure no transaction is left open (SQLite rolls some
    /// back by itself, not all), so the next one starts clean.
    fn after_failure(&mut self, error: rusqlite::Error) -> String {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        error.to_string()
    }

    /// Up to `max_records` records (about `max_bytes` of values) in sequence order, skipping
    /// `skip` (acknowledged with their delete not yet committed, or unreadable). A row that
    /// cannot be read back is returned apart with why, never published half-read.
    pub fn read_front(
        &self,
        max_records: usize,
        max_bytes: usize,
        skip: &BTreeSet<u64>,
    ) -> Result<Front, String> {
        let mut select = self
            .conn
            .prepare_cached(
                "SELECT seq, spooled_at_ms, topic, key, event, family, appid, callback_id,
                 received_at_ms, ids, value FROM records ORDER BY seq",
            )
            .map_err(|e| e.to_string())?;
        let mut rows = select.query([]).map_err(|e| e.to_string())?;
        let mut front = Front::default();
        let mut bytes = 0;
        while front.records.len() < max_records && bytes < max_bytes {
            let Some(row) = rows.next().map_err(|e| e.to_string())? else {
                break;
            };
            let seq = row.get::<_, i64>(0).map_err(|e| e.to_string())? as u64;
            if skip.contains(&seq) {
                continue;
            }
            match record_of(row) {
                Ok(record) => {
                    bytes += record.value.len();
                    front.records.push(record);
                }
                Err(why) => front.unreadable.push((seq, why)),
            }
        }
        Ok(front)
    }

    /// Deletes the records Kafka acknowledged, in one transaction.
    pub fn delete(&mut self, seqs: &[u64]) -> Result<(), String> {
        let outcome = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut delete = tx.prepare_cached("DELETE FROM records WHERE seq = ?1")?;
                for seq in seqs {
                    delete.execute([*seq as i64])?;
                }
            }
            tx.commit()
        })();
        outcome.map_err(|e| self.after_failure(e))
    }

    /// Gives the pages of deleted records back to the file system and truncates the
    /// write-ahead log; called when the spool is empty.
    pub fn reclaim(&mut self) -> Result<(), String> {
        // incremental_vacuum frees one page per step: step it to the end.
        let vacuumed = (|| {
            let mut vacuum = self.conn.prepare("PRAGMA incremental_vacuum")?;
            let mut rows = vacuum.query([])?;
            while rows.next()?.is_some() {}
            Ok::<_, rusqlite::Error>(())
        })();
        vacuumed.map_err(|e| self.after_failure(e))?;
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| e.to_string())
    }

    /// Records held (a full count: at start-up and for `spool inspect`, not per append).
    pub fn count(&self) -> Result<u64, String> {
        self.conn
            .query_row("SELECT COUNT(*) FROM records", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| e.to_string())
    }

    /// The bytes the records and the files take (three pragmas and a `stat`: cheap).
    pub fn usage(&self) -> Result<Usage, String> {
        let pragma = |name: &str| -> Result<u64, String> {
            self.conn
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
                .map(|v| v as u64)
                .map_err(|e| e.to_string())
        };
        let (page_size, pages, free) = (
            pragma("page_size")?,
            pragma("page_count")?,
            pragma("freelist_count")?,
        );
        let wal = file_len(&self.dir.join(format!("{DB_FILE}-wal")));
        Ok(Usage {
            used_bytes: (pages - free) * page_size + wal,
            file_bytes: pages * page_size + wal,
            wal_bytes: wal,
        })
    }

    /// When the oldest record was spooled (Unix ms), if there is one.
    pub fn oldest_spooled_at(&self) -> Result<Option<i64>, String> {
        self.conn
            .query_row(
                "SELECT spooled_at_ms FROM records ORDER BY seq LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| e.to_string())
    }

    /// The callback ids of every record held, oldest first: the dedupe cache learns them at
    /// start-up, so a retry of a callback spooled before a restart is not spooled twice.
    pub fn callback_ids(&self) -> Result<Vec<(String, SpoolStamp)>, String> {
        let mut select = self
            .conn
            .prepare("SELECT callback_id, seq, spooled_at_ms FROM records ORDER BY seq")
            .map_err(|e| e.to_string())?;
        let rows = select
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    SpoolStamp {
                        seq: r.get::<_, i64>(1)? as u64,
                        at_ms: r.get(2)?,
                    },
                ))
            })
            .map_err(|e| e.to_string())?;
        rows.collect::<Result<_, _>>().map_err(|e| e.to_string())
    }

    /// A value of the `meta` table (the legacy import's marker).
    pub fn meta(&self, name: &str) -> Result<Option<String>, String> {
        self.conn
            .query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| e.to_string())
    }

    /// Imports records read from an old spool, in order, and sets `marker` in the same
    /// transaction, so the import happens once.
    pub fn import(&mut self, records: &[Record], marker: &str) -> Result<(), String> {
        let outcome = (|| {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            for record in records {
                insert(&tx, record, record.spooled.map_or(0, |s| s.at_ms))?;
            }
            tx.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)",
                [marker, &records.len().to_string()],
            )?;
            tx.commit()
        })();
        outcome.map_err(|e| self.after_failure(e))
    }
}

#[cfg(test)]
impl Store {
    /// Makes commits that need the database to grow fail with `SQLITE_FULL`, as a full disk
    /// does (`full`), or lifts that limit again.
    pub fn limit_pages_for_tests(&self, full: bool) -> Result<(), String> {
        let pages: i64 = if full {
            self.conn
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .map_err(|e| e.to_string())?
        } else {
            i64::from(u32::MAX - 1)
        };
        self.conn
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .map_err(|e| e.to_string())
    }
}

/// Inserts one record, stamped `at_ms`, in `tx`; SQLite gives it the next sequence number.
fn insert(tx: &rusqlite::Transaction<'_>, record: &Record, at_ms: i64) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO records (spooled_at_ms, topic, key, event, family, appid, callback_id,
         received_at_ms, ids, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    insert.execute(params![
        at_ms,
        record.topic,
        record.key,
        record.event,
        record.family.map(Family::name),
        record.appid,
        record.callback_id,
        record.received_at_ms,
        ids_json(record),
        &record.value[..],
    ])?;
    Ok(())
}

/// Refuses a directory another process holds; the lock lasts as long as the returned file.
fn take_lock(dir: &Path) -> Result<File, String> {
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .map_err(|e| {
            format!(
                "SPOOL_DIR={}: cannot open its lock file: {e}",
                dir.display()
            )
        })?;
    lock.try_lock().map_err(|_| {
        format!(
            "SPOOL_DIR={} is in use by another running bridge or spool tool (its lock file is held): give each replica its own SPOOL_DIR",
            dir.display()
        )
    })?;
    Ok(lock)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn ids_json(record: &Record) -> String {
    let ids: Vec<(&str, &str)> = record
        .ids
        .iter()
        .map(|(h, v)| (h.as_ref(), v.as_str()))
        .collect();
    // A list of string pairs always serialises.
    serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into())
}

fn record_of(row: &rusqlite::Row<'_>) -> Result<Record, String> {
    let get_err = |e: rusqlite::Error| e.to_string();
    let ids: String = row.get(9).map_err(get_err)?;
    let ids: Vec<(String, String)> =
        serde_json::from_str(&ids).map_err(|e| format!("its ids are not readable: {e}"))?;
    let family: Option<String> = row.get(5).map_err(get_err)?;
    let value: Vec<u8> = row.get(10).map_err(get_err)?;
    Ok(Record {
        topic: row.get(2).map_err(get_err)?,
        key: row.get(3).map_err(get_err)?,
        value: Bytes::from(value),
        event: row.get(4).map_err(get_err)?,
        // Family names are the catalogue's: map back to its static names.
        family: family.as_deref().and_then(Family::from_name),
        ids: ids.into_iter().map(|(h, v)| (Cow::Owned(h), v)).collect(),
        appid: row.get(6).map_err(get_err)?,
        callback_id: row.get(7).map_err(get_err)?,
        received_at_ms: row.get(8).map_err(get_err)?,
        spooled: Some(SpoolStamp {
            seq: row.get::<_, i64>(0).map_err(get_err)? as u64,
            at_ms: row.get(1).map_err(get_err)?,
        }),
    })
}
