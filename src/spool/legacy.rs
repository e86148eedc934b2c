//! Migration: a `SPOOL_DIR` written by the previous release (segment files `*.seg` of framed
//! records and a `cursor` file) is imported into the database on first start, then its files
//! are removed. Every intact record on disk is imported, the ones before the old cursor too:
//! that cursor is exactly the bookkeeping that could not be trusted, and a record sent twice
//! is deduped by consumers while a record skipped is lost.

use std::fs;
use std::path::{Path, PathBuf};

use super::store::Store;
use super::{frame, stored};
use crate::metrics::{Metrics, SpoolDamage};

const MARKER: &str = "legacy_segments_imported";
const SEGMENT_SUFFIX: &str = ".seg";
const CURSOR_FILE: &str = "cursor";

/// Imports the old spool in `store`'s directory, if there is one; a failure stops start-up.
pub fn import(store: &mut Store, metrics: &Metrics) -> Result<(), String> {
    let dir = store.dir().to_path_buf();
    let segments = segments(&dir)?;
    if segments.is_empty() {
        return Ok(());
    }
    if store.meta(MARKER)?.is_none() {
        let mut records = Vec::new();
        for path in &segments {
            let bytes = fs::read(path).map_err(|e| {
                format!(
                    "SPOOL_DIR={}: cannot read the old spool file {}: {e}",
                    dir.display(),
                    path.display()
                )
            })?;
            let scan = frame::scan(&bytes);
            if !scan.skipped.is_empty() {
                log::error!(
                    "spool migration: {} has {} damaged stretches; the intact records around them are imported",
                    path.display(),
                    scan.skipped.len()
                );
                metrics.spool_damage(SpoolDamage::Unreadable, scan.skipped.len() as u64);
            }
            for (offset, payload) in &scan.frames {
                match stored::decode(payload) {
                    Some(record) => records.push(record),
                    None => {
                        log::error!(
                            "spool migration: the record at {} offset {offset} cannot be read: not imported",
                            path.display()
                        );
                        metrics.spool_damage(SpoolDamage::Unreadable, 1);
                    }
                }
            }
        }
        store.import(&records, MARKER).map_err(|e| {
            format!(
                "SPOOL_DIR={}: cannot import the old spool's {} records: {e}",
                dir.display(),
                records.len()
            )
        })?;
        log::warn!(
            "spool {}: imported {} records from the previous release's spool files (some may have been forwarded before: consumers dedupe them on zego-callback-id)",
            dir.display(),
            records.len()
        );
    }
    // Imported (now or by a start that crashed before this point): the old files can go.
    for path in segments.iter().cloned().chain([
        dir.join(CURSOR_FILE),
        dir.join(format!("{CURSOR_FILE}.tmp")),
    ]) {
        if let Err(e) = fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::warn!(
                    "spool migration: cannot remove {}: {e} (its records are in the database)",
                    path.display()
                );
            }
        }
    }
    Ok(())
}

/// The old segment files, oldest first (their names are their first sequence numbers).
fn segments(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut found: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .map_err(|e| format!("SPOOL_DIR={}: cannot list it: {e}", dir.display()))?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_str()?;
            let first = name.strip_suffix(SEGMENT_SUFFIX)?.parse().ok()?;
            Some((first, path))
        })
        .collect();
    found.sort();
    Ok(found.into_iter().map(|(_, path)| path).collect())
}
