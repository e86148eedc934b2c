//! The domain: decoded body → checks in the contract's order → a verified [`Callback`].
//!
//! Pure and synchronous; a `Callback` exists only once every check passed.

pub mod body;
pub mod event;
pub mod policy;
pub mod sample;
pub mod signature;

use bytes::Bytes;
use serde_json::{Map, Value};

use body::{DecodedBody, Encoding};
use event::EventKind;
use policy::{CallbackPolicy, UnknownEvents};

/// Why a callback was refused before any publish. Each maps to one contract error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("body is larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("the body did not arrive in time")]
    BodyTimeout,
    #[error("Content-Type must be application/json or application/x-www-form-urlencoded")]
    UnsupportedMediaType,
    #[error("Content-Encoding {0:?} is not supported: send the body unencoded")]
    UnsupportedEncoding(String),
    #[error("more than one Content-Type header")]
    AmbiguousMediaType,
    #[error("{0}")]
    MalformedBody(String),
    #[error("required field {0:?} is missing")]
    MissingField(String),
    #[error("field {0:?} {1}")]
    InvalidField(String, String),
    #[error("signature is missing or does not match")]
    InvalidSignature,
    #[error("timestamp is outside the accepted window")]
    StaleTimestamp,
    #[error("appid is not allowed")]
    UnknownApp,
    #[error("event {0:?} is not supported")]
    UnsupportedEvent(String),
}

impl Rejection {
    /// The contract's error code (README, "HTTP interface").
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::BodyTooLarge(_) => "body_too_large",
            Rejection::BodyTimeout => "body_timeout",
            Rejection::UnsupportedMediaType
            | Rejection::UnsupportedEncoding(_)
            | Rejection::AmbiguousMediaType => "unsupported_media_type",
            Rejection::MalformedBody(_) => "malformed_body",
            Rejection::MissingField(_) => "missing_field",
            Rejection::InvalidField(..) => "invalid_field",
            Rejection::InvalidSignature => "invalid_signature",
            Rejection::StaleTimestamp => "stale_timestamp",
            Rejection::UnknownApp => "unknown_app",
            Rejection::UnsupportedEvent(_) => "unsupported_event",
        }
    }
}

/// How much of an unsupported event's name is repeated in logs and answers.
const MAX_SHOWN_EVENT_CHARS: usize = 64;

/// A callback that passed every check: what gets published.
#[derive(Debug, Clone)]
pub struct Callback {
    /// `None` for an event outside the family that is being forwarded.
    pub kind: Option<EventKind>,
    pub event: String,
    pub appid: String,
    pub call_id: Option<String>,
    /// `zego-callback-id`: the same for every retry of this callback.
    pub id: String,
    /// Which configured secret signed it, counted from 1: tells when an old one can go.
    pub secret: usize,
    /// The record value: the JSON as sent, or the decoded fields as a JSON object.
    pub value: Bytes,
}

/// Runs the checks after decoding, in the contract's order: signature → timestamp → appid →
/// event schema. `now` is Unix seconds.
pub fn verify(body: DecodedBody, policy: &CallbackPolicy, now: i64) -> Result<Callback, Rejection> {
    let DecodedBody {
        mut fields,
        encoding,
        json_text,
    } = body;
    let (timestamp_text, timestamp) = timestamp(&fields)?;
    let nonce = text_or_integer(&fields, "nonce")?;
    let signature = fields
        .get("signature")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(secret) =
        signature::matching_secret(&policy.secrets, &timestamp_text, &nonce, signature)
    else {
        return Err(Rejection::InvalidSignature);
    };
    if let Some(tolerance) = policy.timestamp_tolerance {
        if now.abs_diff(timestamp) > tolerance.as_secs() {
            return Err(Rejection::StaleTimestamp);
        }
    }
    let appid = text_or_integer(&fields, "appid")?;
    if policy
        .app_ids
        .as_ref()
        .is_some_and(|ids| !ids.contains(&appid))
    {
        return Err(Rejection::UnknownApp);
    }
    let event = match fields.get("event") {
        None | Some(Value::Null) => return Err(Rejection::MissingField("event".into())),
        Some(Value::String(name)) => name.clone(),
        Some(_) => {
            return Err(Rejection::InvalidField(
                "event".into(),
                "must be a string".into(),
            ))
        }
    };
    let kind = EventKind::from_name(&event);
    if kind.is_none() && policy.unknown_events == UnknownEvents::Reject {
        // The name goes into a log line and the answer: keep an attacker's megabyte out of both.
        let shown: String = event.chars().take(MAX_SHOWN_EVENT_CHARS).collect();
        return Err(Rejection::UnsupportedEvent(shown));
    }
    let call_id = call_id(&fields, kind.is_some())?;
    if let Some(kind) = kind {
        kind.check_fields(&mut fields, encoding == Encoding::Form)?;
    }
    let id = event::callback_id(&fields);
    let value = match json_text {
        Some(text) => text,
        // Serialising a Map of Values cannot fail.
        None => Bytes::from(serde_json::to_vec(&fields).unwrap_or_default()),
    };
    Ok(Callback {
        kind,
        event,
        appid,
        call_id,
        id,
        secret,
        value,
    })
}

/// `timestamp` as sent (its text, for the signature) and as seconds (for the window).
///
/// A string must be an integer's plain digits (the published schema's `^-?[0-9]+$`): Rust's
/// parser would also take `+17…`, which a consumer validating the record would not.
fn timestamp(fields: &Map<String, Value>) -> Result<(String, i64), Rejection> {
    let invalid = || {
        Rejection::InvalidField(
            "timestamp".into(),
            "must be an integer number of seconds".into(),
        )
    };
    match fields.get("timestamp") {
        None | Some(Value::Null) => Err(Rejection::MissingField("timestamp".into())),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(|secs| (n.to_string(), secs))
            .ok_or_else(invalid),
        Some(Value::String(text)) if is_plain_integer(text) => text
            .parse::<i64>()
            .map(|secs| (text.clone(), secs))
            .map_err(|_| invalid()),
        Some(_) => Err(invalid()),
    }
}

/// An optional minus sign, then one or more ASCII digits, and nothing else.
fn is_plain_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A field ZEGOCLOUD may send as a string or an integer (`appid`, `nonce`), as text.
fn text_or_integer(fields: &Map<String, Value>, name: &str) -> Result<String, Rejection> {
    match fields.get(name) {
        None | Some(Value::Null) => Err(Rejection::MissingField(name.into())),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        Some(_) => Err(Rejection::InvalidField(
            name.into(),
            "must be a string or an integer".into(),
        )),
    }
}

/// `call_id`: required and non-empty for the family; optional for forwarded unknown events.
fn call_id(fields: &Map<String, Value>, required: bool) -> Result<Option<String>, Rejection> {
    match fields.get("call_id") {
        None | Some(Value::Null) if required => Err(Rejection::MissingField("call_id".into())),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) if id.is_empty() => Err(Rejection::InvalidField(
            "call_id".into(),
            "must not be empty".into(),
        )),
        Some(Value::String(id)) => Ok(Some(id.clone())),
        Some(_) => Err(Rejection::InvalidField(
            "call_id".into(),
            "must be a string".into(),
        )),
    }
}

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod schema_tests;
#[cfg(test)]
mod tests;
