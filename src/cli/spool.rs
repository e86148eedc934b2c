//! `zego-kafka-bridge spool inspect|drain --dir DIR`: what an orphaned spool holds (one whose
//! replica is gone), and forwarding it to Kafka with the bridge's own ordering and ack rules.
//! Both take the spool's lock, so neither runs on a directory a bridge holds.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::clock::unix_ms;
use crate::config::kafka_from_vars;
use crate::metrics::Metrics;
use crate::publish::Publisher;
use crate::spool::store::Store;
use crate::spool::{Spool, SpoolSettings};

#[derive(Args, Debug)]
pub struct SpoolArgs {
    #[command(subcommand)]
    pub action: SpoolAction,
}

#[derive(Subcommand, Debug)]
pub enum SpoolAction {
    /// Print how many records the spool holds, the oldest one's age, and its size on disk.
    Inspect {
        /// The spool directory (a replica's SPOOL_DIR).
        #[arg(long)]
        dir: PathBuf,
    },
    /// Forward everything the spool holds to Kafka, in order, deleting each record once Kafka
    /// acknowledged it; exits 0 when the spool is empty. Reads KAFKA_BROKERS, KAFKA_OPT_* and
    /// KAFKA_DELIVERY_TIMEOUT_MS like the bridge (each record keeps the topic it was spooled for).
    Drain {
        /// The spool directory (a replica's SPOOL_DIR).
        #[arg(long)]
        dir: PathBuf,
        /// Give up (exit 1) after this many seconds without a record forwarded.
        #[arg(long, default_value_t = 60)]
        patience_secs: u64,
    },
}

pub async fn run(args: SpoolArgs) -> i32 {
    match args.action {
        SpoolAction::Inspect { dir } => inspect(dir),
        SpoolAction::Drain { dir, patience_secs } => {
            drain(dir, Duration::from_secs(patience_secs)).await
        }
    }
}

fn inspect(dir: PathBuf) -> i32 {
    if !dir.join(crate::spool::store::DB_FILE).exists() {
        eprintln!("{}: no spool here (no spool.db)", dir.display());
        return 1;
    }
    let summary = Store::open(&dir, u64::MAX).and_then(|store| {
        let records = store.count()?;
        let oldest = store.oldest_spooled_at()?;
        let usage = store.usage()?;
        Ok((records, oldest, usage))
    });
    match summary {
        Ok((records, oldest, usage)) => {
            let oldest = oldest.map_or("-".to_string(), |at| {
                format!("{} s ago", (unix_ms() - at).max(0) / 1000)
            });
            println!(
                "{}: {records} records waiting, oldest spooled {oldest}, {} bytes on disk",
                dir.display(),
                usage.file_bytes
            );
            0
        }
        Err(e) => {
            eprintln!("{e}");
            2
        }
    }
}

async fn drain(dir: PathBuf, patience: Duration) -> i32 {
    let kafka = match crate::config::environment().and_then(kafka_from_vars) {
        Ok(kafka) => kafka,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let metrics = Arc::new(Metrics::new());
    let settings = SpoolSettings {
        dir: dir.clone(),
        max_bytes: u64::MAX,
        drain_rate: 0,
    };
    let spool = match Spool::open(&settings, metrics.clone()) {
        Ok((spool, _held)) => spool,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let publisher = match Publisher::new(&kafka, metrics) {
        Ok(publisher) => publisher,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    // The drain replaces a stalled producer only while the broker answers metadata: asked
    // after a failed round (blocking briefly is fine here: nothing else runs on this thread).
    let answers = || publisher.probe_blocking(&kafka.topic, Duration::from_secs(2));
    let drained = spool.drain_until_empty(&publisher, answers, patience).await;
    let code = match drained {
        Ok(forwarded) => {
            println!(
                "{}: {forwarded} records forwarded to Kafka; the spool is empty",
                dir.display()
            );
            0
        }
        Err(e) => {
            eprintln!("{}: {e}", dir.display());
            1
        }
    };
    let publisher = Arc::new(publisher);
    let _ = tokio::task::spawn_blocking(move || {
        publisher.flush_blocking(Duration::from_secs(5));
        spool.close();
    })
    .await;
    code
}
