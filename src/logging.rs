//! The process logger, as text or JSON lines (`LOG_FORMAT`): `RUST_LOG` is checked before anything is logged, so a filter that would
//! hide every line cannot also hide the start-up error that explains it.

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// env_logger's text: `[time LEVEL target] message`.
    Text,
    /// One JSON object a line: `ts`, `level`, `target`, `message`.
    Json,
}

impl LogFormat {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("LOG_FORMAT must be text or json, got {other:?}")),
        }
    }
}

/// Installs the logger from `RUST_LOG` (default `info`) and `LOG_FORMAT` (default `text`), or
/// says which of them is invalid.
pub fn init() -> Result<(), String> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    validate_filter(&filter)?;
    let format = LogFormat::parse(&std::env::var("LOG_FORMAT").unwrap_or_default())?;
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(&filter);
    if format == LogFormat::Json {
        builder.format(|out, record| {
            let line = serde_json::json!({
                "ts": out.timestamp_millis().to_string(),
                "level": record.level().as_str(),
                "target": record.target(),
                "message": record.args().to_string(),
            });
            writeln!(out, "{line}")
        });
    }
    builder.init();
    Ok(())
}

/// env_logger ignores a directive it cannot parse, and reads any other word as a module name
/// (`@@@` would silently log nothing); the bridge refuses both.
pub fn validate_filter(filter: &str) -> Result<(), String> {
    let invalid = |why: String| format!("RUST_LOG {filter:?} is not a valid log filter: {why}");
    env_filter::Builder::new()
        .try_parse(filter)
        .map_err(|e| invalid(e.to_string()))?;
    let directives = filter.split('/').next().unwrap_or_default();
    for directive in directives
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        let target = directive.split('=').next().unwrap_or_default().trim();
        let is_level = target.parse::<log::LevelFilter>().is_ok();
        let is_module_path = !target.is_empty()
            && target
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        if !is_level && !is_module_path {
            return Err(invalid(format!(
                "{target:?} is neither a level (off, error, warn, info, debug, trace) nor a module path"
            )));
        }
    }
    Ok(())
}

use std::io::Write;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_formats() {
        assert_eq!(LogFormat::parse("json"), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse(""), Ok(LogFormat::Text));
        assert!(LogFormat::parse("xml").unwrap_err().contains("LOG_FORMAT"));
    }

    #[test]
    fn invalid_filters_are_named_and_valid_ones_pass() {
        for valid in [
            "info",
            "off",
            "warn,zego_kafka_bridge=debug",
            "rdkafka=trace",
        ] {
            assert!(validate_filter(valid).is_ok(), "{valid}");
        }
        for invalid in ["@@@", "info,@@@", "zego=loud", "a/b/c"] {
            let err = validate_filter(invalid).unwrap_err();
            assert!(err.starts_with("RUST_LOG "), "{err}");
        }
    }
}
