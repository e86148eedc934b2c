//! Which SQLite journal the spool uses, measured: durable group commits a second with the
//! write-ahead log (WAL) against the rollback journal (DELETE), both `synchronous=FULL`, for
//! groups of 1 and 16 records of 500 bytes, on the disk that `BENCH_DIR` (default: the system
//! temp dir) is on. Run: `cargo run --release --example spool_journal`.

use std::time::{Duration, Instant};

use rusqlite::{params, Connection};

const RUN: Duration = Duration::from_secs(5);

fn commits_per_second(journal: &str, group: usize) -> (f64, f64) {
    let base = std::env::var_os("BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!(
        "spool-journal-{journal}-{group}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut conn = Connection::open(dir.join("spool.db")).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA locking_mode = EXCLUSIVE;
         PRAGMA journal_mode = {journal}; PRAGMA synchronous = FULL;
         CREATE TABLE records (seq INTEGER PRIMARY KEY AUTOINCREMENT, value BLOB NOT NULL);"
    ))
    .unwrap();
    let value = vec![b'x'; 500];
    let started = Instant::now();
    let mut commits = 0u64;
    while started.elapsed() < RUN {
        let tx = conn.transaction().unwrap();
        for _ in 0..group {
            tx.execute("INSERT INTO records (value) VALUES (?1)", params![value])
                .unwrap();
        }
        tx.commit().unwrap();
        commits += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(conn);
    let _ = std::fs::remove_dir_all(&dir);
    let per_second = commits as f64 / seconds;
    (per_second, per_second * group as f64)
}

fn main() {
    println!("| journal | records a commit | commits/s | records/s |");
    println!("|---|---|---|---|");
    for group in [1, 16] {
        for journal in ["WAL", "DELETE"] {
            let (commits, records) = commits_per_second(journal, group);
            println!("| {journal} | {group} | {commits:.0} | {records:.0} |");
        }
    }
}
