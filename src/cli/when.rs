//! Times given on the command line (`--from-time`, `--to-time`): RFC 3339, Unix seconds or
//! milliseconds, or a duration ago (`10m`, `2h ago`), read the same way by every tool.

use std::time::{SystemTime, UNIX_EPOCH};

/// A time as Unix milliseconds: RFC 3339, Unix seconds or milliseconds, or a duration ago.
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(n) = text.parse::<i64>() {
        return Ok(if n.abs() >= 100_000_000_000 {
            n
        } else {
            n * 1000
        });
    }
    if let Ok(at) = humantime::parse_rfc3339_weak(text) {
        return at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .map_err(|_| "before 1970".to_string());
    }
    let ago = text.strip_suffix("ago").unwrap_or(text).trim();
    humantime::parse_duration(ago)
        .map(|d| now_ms - d.as_millis() as i64)
        .map_err(|_| {
            "not a time: use RFC 3339, Unix seconds or milliseconds, or a duration like 10m".into()
        })
}

pub fn unix_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_are_read_in_every_documented_form() {
        let now = 1_764_583_200_000;
        assert_eq!(parse_time("1764583200", now), Ok(1_764_583_200_000));
        assert_eq!(parse_time("1764583200123", now), Ok(1_764_583_200_123));
        assert_eq!(
            parse_time("2025-12-01T10:00:00Z", now),
            Ok(1_764_583_200_000)
        );
        assert_eq!(parse_time("10m", now), Ok(now - 600_000));
        assert_eq!(parse_time("2h ago", now), Ok(now - 7_200_000));
        assert!(parse_time("yesterday-ish", now).is_err());
    }
}
