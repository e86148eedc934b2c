//! What the callback checks accept: secrets, app ids, the timestamp window, unknown events.
//!
//! Parsed here from the text of the settings; `config` only says which variable each came from.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use super::catalogue::Family;
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
    /// The families accepted (`ZEGO_FAMILIES`); the others are answered 422 `family_disabled`.
    pub families: BTreeSet<Family>,
}

impl CallbackPolicy {
    /// One secret, any app, a 300 s window, unknown events refused, every family: tests and
    /// tools start here.
    pub fn with_secret(secret: &str) -> Self {
        CallbackPolicy {
            secrets: vec![Secret::new(secret)],
            app_ids: None,
            timestamp_tolerance: Some(Duration::from_secs(300)),
            unknown_events: UnknownEvents::Reject,
            families: Family::ALL.into_iter().collect(),
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

/// Comma-separated family names; empty or `all` means every family.
pub fn parse_families(text: &str) -> Result<BTreeSet<Family>, String> {
    let names: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() && !text.trim().is_empty() {
        // `,` or `, ,`: a list that names nothing is a mistake, not "all".
        return Err(format!(
            "{text:?} names no family; leave it unset or say all"
        ));
    }
    if names.is_empty() || names == ["all"] {
        return Ok(Family::ALL.into_iter().collect());
    }
    names
        .iter()
        .map(|name| {
            Family::from_name(&name.to_lowercase()).ok_or_else(|| {
                let known: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
                format!("{name:?} is not a family; known: all, {}", known.join(", "))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_parse_by_name_with_all_as_default() {
        assert_eq!(parse_families("").unwrap().len(), Family::ALL.len());
        assert_eq!(parse_families("all").unwrap().len(), Family::ALL.len());
        assert_eq!(
            parse_families(" call , RTC")
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            [Family::Call, Family::Rtc]
        );
        assert!(parse_families("call,chat")
            .unwrap_err()
            .contains("\"chat\""));
        // A list that names nothing is a typo, not "all".
        assert!(parse_families(",").unwrap_err().contains("names no family"));
        assert!(parse_families(" , ").is_err());
    }
}
