//! The domain: decoded body → checks in the contract's order → a verified [`Callback`].
//!
//! Pure and synchronous; a `Callback` exists only once every check passed.

pub mod body;
pub mod catalogue;
pub mod event;
pub mod policy;
pub mod sample;
pub mod schema;
pub mod signature;

use bytes::Bytes;
use serde_json::{Map, Value};

use body::{DecodedBody, Encoding};
use catalogue::{Family, Product};
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
    /// An event of another product's catalogue: the answer names the path it belongs to.
    #[error("event {0:?} is not one of this path's; it is {1} event: post it to CALLBACK_PATH{2}")]
    WrongProduct(String, &'static str, &'static str),
    #[error("event {0:?} belongs to the {1} family, which ZEGO_FAMILIES does not accept")]
    FamilyDisabled(String, &'static str),
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
            Rejection::UnsupportedEvent(_) | Rejection::WrongProduct(..) => "unsupported_event",
            Rejection::FamilyDisabled(..) => "family_disabled",
        }
    }
}

/// How much of an unsupported event's name is repeated in logs and answers.
const MAX_SHOWN_EVENT_CHARS: usize = 64;

/// A callback that passed every check: what gets published.
#[derive(Debug, Clone)]
pub struct Callback {
    /// `None` for an event outside the catalogue that is being forwarded.
    pub kind: Option<EventKind>,
    /// The event name as sent (`recording_status` for cloud recording, which sends none).
    pub event: String,
    pub appid: String,
    /// The record key: the event's natural key (`call_id`, `room_id`, …).
    pub key: Option<String>,
    /// Ordering and dedupe ids the event carries, as `(header, value)`.
    pub headers: Vec<(&'static str, String)>,
    /// `zego-callback-id`: the same for every retry of this callback.
    pub id: String,
    /// The position in `ZEGO_CALLBACK_SECRET` of the secret that signed it, counted from 1:
    /// tells when an old one can go. Never the secret itself.
    pub signed_by_secret_at: usize,
    /// The record value: the JSON as sent, or the decoded fields as a JSON object.
    pub value: Bytes,
}

impl Callback {
    pub fn family(&self) -> Option<Family> {
        self.kind.map(EventKind::family)
    }
}

/// Runs the checks after decoding, in the contract's order: signature → timestamp → appid →
/// event schema. `product` is the URL it came to; `now` is Unix seconds.
pub fn verify(
    body: DecodedBody,
    policy: &CallbackPolicy,
    product: Product,
    now: i64,
) -> Result<Callback, Rejection> {
    let DecodedBody {
        mut fields,
        encoding,
        json_text,
    } = body;
    let names = product.envelope();
    let (timestamp_text, timestamp) = timestamp(&fields, names.timestamp)?;
    let nonce = text_or_integer(&fields, names.nonce)?;
    let signature = fields
        .get(names.signature)
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(signed_by_secret_at) =
        signature::matching_secret(&policy.secrets, &timestamp_text, &nonce, signature)
    else {
        return Err(Rejection::InvalidSignature);
    };
    if let Some(tolerance) = policy.timestamp_tolerance {
        if now.abs_diff(timestamp) > tolerance.as_secs() {
            return Err(Rejection::StaleTimestamp);
        }
    }
    let appid = text_or_integer(&fields, names.appid)?;
    if policy
        .app_ids
        .as_ref()
        .is_some_and(|ids| !ids.contains(&appid))
    {
        return Err(Rejection::UnknownApp);
    }
    let event = match names.event {
        // Cloud recording sends no event name: its one spec applies.
        None => "recording_status".to_string(),
        Some(field) => match fields.get(field) {
            None | Some(Value::Null) => return Err(Rejection::MissingField(field.into())),
            Some(Value::String(name)) => name.clone(),
            Some(_) => {
                return Err(Rejection::InvalidField(
                    field.into(),
                    "must be a string".into(),
                ))
            }
        },
    };
    // The name goes into a log line and the answer: keep an attacker's megabyte out of both.
    let shown = || {
        event
            .chars()
            .take(MAX_SHOWN_EVENT_CHARS)
            .collect::<String>()
    };
    let kind = EventKind::lookup(product, &event);
    if let Some(kind) = kind {
        if !policy.families.contains(&kind.family()) {
            return Err(Rejection::FamilyDisabled(shown(), kind.family().name()));
        }
    } else if policy.unknown_events == UnknownEvents::Reject {
        // A product pointed at another product's path is a console mistake: say where it goes.
        let belongs = Product::ALL
            .into_iter()
            .find(|p| EventKind::lookup(*p, &event).is_some_and(|k| !k.spec().any_name));
        return Err(match belongs {
            Some(other) => Rejection::WrongProduct(shown(), other.title(), other.path_suffix()),
            None => Rejection::UnsupportedEvent(shown()),
        });
    }
    let (key, headers) = match kind {
        Some(kind) => {
            kind.check_fields(&mut fields, encoding == Encoding::Form)?;
            (Some(kind.key(&fields)?), kind.header_values(&fields))
        }
        None => (
            unknown_event_key(&fields, product.unknown_event_key())?,
            Vec::new(),
        ),
    };
    let id = event::callback_id(&fields, [names.nonce, names.timestamp, names.signature]);
    let value = match json_text {
        Some(text) => text,
        // Serialising a Map of Values cannot fail.
        None => Bytes::from(serde_json::to_vec(&fields).unwrap_or_default()),
    };
    // Recorded under the catalogue's name when the body used another spelling a page shows
    // (`Apply_join_group` is `group_join`); open-ended names (AI Agent) as sent.
    let event = match kind {
        Some(kind) if !kind.spec().any_name => kind.name().to_string(),
        _ => event,
    };
    Ok(Callback {
        kind,
        event,
        appid,
        key,
        headers,
        id,
        signed_by_secret_at,
        value,
    })
}

/// A timestamp at or above this is milliseconds: as seconds it would be past the year 5000,
/// as milliseconds it is after March 1973. ZEGOCLOUD's docs disagree on the unit for groups
/// and rooms, and AI Agent sends milliseconds, so the magnitude decides, per callback.
const MILLISECONDS_FROM: i64 = 100_000_000_000;

/// The timestamp field as sent (its text, for the signature) and as seconds (for the window).
///
/// A string must be an integer's plain digits (the published schema's `^-?[0-9]+$`): Rust's
/// parser would also take `+17…`, which a consumer validating the record would not.
fn timestamp(fields: &Map<String, Value>, name: &str) -> Result<(String, i64), Rejection> {
    let invalid = || {
        Rejection::InvalidField(
            name.into(),
            "must be an integer number of seconds or milliseconds".into(),
        )
    };
    let (text, value) = match fields.get(name) {
        None | Some(Value::Null) => return Err(Rejection::MissingField(name.into())),
        Some(Value::Number(n)) => (n.to_string(), n.as_i64().ok_or_else(invalid)?),
        Some(Value::String(text)) if is_plain_integer(text) => {
            (text.clone(), text.parse::<i64>().map_err(|_| invalid())?)
        }
        Some(_) => return Err(invalid()),
    };
    Ok((text, unix_seconds(value)))
}

/// A callback timestamp as Unix seconds, whichever unit it was sent in (`MILLISECONDS_FROM`).
pub fn unix_seconds(timestamp: i64) -> i64 {
    if timestamp.unsigned_abs() >= MILLISECONDS_FROM as u64 {
        timestamp / 1000
    } else {
        timestamp
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

/// The key of a forwarded event the catalogue does not know: the product's usual key field
/// when it is there (and then a non-empty string), else none.
fn unknown_event_key(fields: &Map<String, Value>, name: &str) -> Result<Option<String>, Rejection> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) if id.is_empty() => Err(Rejection::InvalidField(
            name.into(),
            "must not be empty".into(),
        )),
        Some(Value::String(id)) => Ok(Some(id.clone())),
        Some(_) => Err(Rejection::InvalidField(
            name.into(),
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
