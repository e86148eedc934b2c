//! Wall-clock time as Unix milliseconds: the `received-at` header and the timestamp window.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, as Unix milliseconds (0 if the clock is before 1970).
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
