//! The process logger: `RUST_LOG` is checked before anything is logged, so a filter that would
//! hide every line cannot also hide the start-up error that explains it.

/// Installs the logger from `RUST_LOG` (default `info`), or says why `RUST_LOG` is invalid.
pub fn init() -> Result<(), String> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    validate_filter(&filter)?;
    env_logger::Builder::new().parse_filters(&filter).init();
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

#[cfg(test)]
mod tests {
    use super::*;

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
