//! What the callback checks accept: secrets, app ids, the timestamp window, unknown events.
//!
//! Parsed here from the text of the settings; `config` only says which variable each came from.

use std::collections::HashSet;
use std::time::Duration;

use crate::secret::Secret;

/// What to do with an `event` outside the known families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownEvents {
    /// Answer 422 `unsupported_event`.
    Reject,
    /// Publish to the default topic, keyed by `call_id` when there is one.
    Forward,
}

impl UnknownEvents {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_lowercase().as_str() {
            "reject" => Ok(UnknownEvents::Reject),
            "forward" => Ok(UnknownEvents::Forward),
            other => Err(format!("must be reject or forward, got {other:?}")),
        }
    }
}

/// The callback policy: everything `verify` needs besides the body and the clock.
#[derive(Debug, Clone)]
pub struct CallbackPolicy {
    /// Every secret accepted (several during a rotation).
    pub secrets: Vec<Secret>,
    /// `None` means any appid is accepted.
    pub app_ids: Option<HashSet<String>>,
    /// `None` means the timestamp window is off.
    pub timestamp_tolerance: Option<Duration>,
    pub unknown_events: UnknownEvents,
}

impl CallbackPolicy {
    /// One secret, any app, a 300 s window, unknown events refused: tests and tools start here.
    pub fn with_secret(secret: &str) -> Self {
        CallbackPolicy {
            secrets: vec![Secret::new(secret)],
            app_ids: None,
            timestamp_tolerance: Some(Duration::from_secs(300)),
            unknown_events: UnknownEvents::Reject,
        }
    }
}

/// Comma-separated secrets; blanks are dropped, at least one must remain.
pub fn parse_secrets(text: &str) -> Result<Vec<Secret>, String> {
    let secrets: Vec<Secret> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Secret::new)
        .collect();
    if secrets.is_empty() {
        return Err("must hold at least one non-empty secret".into());
    }
    Ok(secrets)
}

/// Comma-separated app ids; empty means "any", as when unset (compose passes `${ZEGO_APP_IDS:-}`).
pub fn parse_app_ids(text: &str) -> Option<HashSet<String>> {
    let ids: HashSet<String> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    (!ids.is_empty()).then_some(ids)
}
