//! Correctly signed callbacks of every catalogued event, made from the catalogue's samples
//! (each its page's, see `catalogue::Sample`): what `simulate` sends and what the tests and the
//! benchmark start from. Only the envelope's values and the key change; each keeps the type and
//! unit its page gives it (seconds or milliseconds, text or number).

use serde_json::{Map, Value};

use super::catalogue::{Envelope, EventKind, Product};
use super::signature;

/// The seed callback's call id.
pub const SEED_CALL_ID: &str = "3501761173612493269";

/// The catalogue's sample of `kind`, parsed. The samples are checked by a test: each parses to
/// an object.
pub fn page_sample(kind: EventKind) -> Map<String, Value> {
    match serde_json::from_str(kind.spec().sample.text()) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// A whole callback of `kind`: its sample with `appid`, `nonce`, a signature by `secret` and
/// `timestamp` (Unix seconds; given in milliseconds where the sample's is) filled in, and each
/// of its key fields the sample carries set to `key`.
pub fn callback(
    kind: EventKind,
    appid: &str,
    key: &str,
    timestamp: i64,
    nonce: &str,
    secret: &str,
) -> Value {
    let names = kind.family().product().envelope();
    let mut body = page_sample(kind);
    let number_or_text = |text: &str| {
        text.parse::<i64>()
            .map_or_else(|_| Value::from(text), Value::from)
    };
    let appid = match body.get(names.appid) {
        Some(Value::Number(_)) => number_or_text(appid),
        _ => Value::from(appid),
    };
    body.insert(names.appid.into(), appid);
    body.insert(names.nonce.into(), Value::from(nonce));
    let stamped = match body.get(names.timestamp) {
        Some(sample) => restamp(sample, timestamp),
        None => Value::from(timestamp),
    };
    body.insert(names.timestamp.into(), stamped);
    let spec = kind.spec();
    let mut keyed = false;
    for field in spec.key {
        if body.get(*field).is_some_and(Value::is_string) {
            body.insert((*field).into(), Value::from(key));
            keyed = true;
        }
    }
    if !keyed {
        if let Some(first) = spec.key.first() {
            body.insert((*first).into(), Value::from(key));
        }
    }
    let mut body = Value::Object(body);
    sign(&mut body, secret);
    body
}

/// `seconds` in the shape of the page's timestamp: milliseconds when it has 13 digits or more,
/// text when it is text.
fn restamp(sample: &Value, seconds: i64) -> Value {
    let text = sample
        .as_str()
        .map_or_else(|| sample.to_string(), String::from);
    let value = if text.trim_start_matches('-').len() >= 13 {
        seconds * 1000
    } else {
        seconds
    };
    if sample.is_string() {
        Value::from(value.to_string())
    } else {
        Value::from(value)
    }
}

/// The envelope names a callback body uses: AI Agent's PascalCase when it has `Timestamp`,
/// else the snake_case every other product shares.
pub fn envelope_of(body: &Value) -> &'static Envelope {
    if body.get("Timestamp").is_some() {
        Product::AiAgent.envelope()
    } else {
        Product::Zim.envelope()
    }
}

/// (Re)computes the signature from the body's own timestamp and nonce, as sent (text or
/// number), under the names its product uses (`Timestamp` and `Nonce` for AI Agent).
pub fn sign(body: &mut Value, secret: &str) {
    let names = envelope_of(body);
    let text = |v: &Value| {
        v.as_str()
            .map(String::from)
            .unwrap_or_else(|| v.to_string())
    };
    let signature = signature::sign(
        secret,
        &text(&body[names.timestamp]),
        &text(&body[names.nonce]),
    );
    body[names.signature] = Value::String(signature);
}

/// A callback as `application/x-www-form-urlencoded`, as other ZEGOCLOUD products post it: lists
/// as repeated names, objects as JSON text, every other value as its text.
pub fn form_encode(body: &Value) -> String {
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), String::from);
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (name, value) in body.as_object().into_iter().flatten() {
        match value {
            Value::Array(items) if !items.iter().any(Value::is_object) => {
                for item in items {
                    form.append_pair(name, &text(item));
                }
            }
            other => {
                form.append_pair(name, &text(other));
            }
        }
    }
    form.finish()
}
