//! Realistic, correctly signed callbacks: what `simulate` sends and what the tests and the
//! benchmark start from. The seed is ZEGOCLOUD's documented `call_accept` sample.

use serde_json::{json, Map, Value};

use super::event::EventKind;
use super::signature;

/// The seed callback's call id.
pub const SEED_CALL_ID: &str = "3501761173612493269";

/// The fields `kind` carries beyond the envelope, with realistic values.
pub fn event_fields(kind: EventKind, now_ms: i64) -> Map<String, Value> {
    let fields = match kind {
        EventKind::CallCreate => {
            json!({"caller": "abc", "user_ids": ["def"], "create_time": now_ms, "timeout": 60, "payload": "payload"})
        }
        EventKind::CallCancel => {
            json!({"user_ids": ["def"], "reason": "caller_cancel", "payload": "payload"})
        }
        EventKind::CallAccept | EventKind::CallReject => {
            json!({"user_id": "abc", "extend_data": "extendData"})
        }
        EventKind::CallTimeout => json!({"user_ids": ["def"]}),
    };
    match fields {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A whole callback of `kind`: envelope, the event's fields, and a signature by `secret`.
pub fn callback(
    kind: EventKind,
    appid: &str,
    call_id: &str,
    timestamp: i64,
    nonce: &str,
    secret: &str,
) -> Value {
    let mut body = json!({
        "appid": appid, "event": kind.name(), "nonce": nonce, "timestamp": timestamp,
        "call_id": call_id,
    });
    if let Some(object) = body.as_object_mut() {
        object.extend(event_fields(kind, timestamp * 1000));
    }
    sign(&mut body, secret);
    body
}

/// (Re)computes `signature` from the body's own `timestamp` and `nonce`, as sent (text or number).
pub fn sign(body: &mut Value, secret: &str) {
    let text = |v: &Value| {
        v.as_str()
            .map(String::from)
            .unwrap_or_else(|| v.to_string())
    };
    let signature = signature::sign(secret, &text(&body["timestamp"]), &text(&body["nonce"]));
    body["signature"] = Value::String(signature);
}

/// A callback as `application/x-www-form-urlencoded`, as other ZEGOCLOUD products post it: lists
/// as repeated names, every other value as its text.
pub fn form_encode(body: &Value) -> String {
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), String::from);
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (name, value) in body.as_object().into_iter().flatten() {
        match value {
            Value::Array(items) => {
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
