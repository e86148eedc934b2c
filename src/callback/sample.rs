//! Realistic, correctly signed callbacks of every catalogued event: what `simulate` sends and
//! what the tests and the benchmark start from. Each follows ZEGOCLOUD's documented sample for
//! its event, including the quirks: milliseconds and string timestamps, PascalCase AI Agent
//! fields, cloud recording's numeric `app_id` and missing event name.

use serde_json::{json, Map, Value};

use super::catalogue::{Envelope, EventKind, Family, Product};
use super::signature;

/// The seed callback's call id.
pub const SEED_CALL_ID: &str = "3501761173612493269";

/// The fields `kind` carries beyond the envelope, with realistic values; `key` fills its key.
pub fn event_fields(kind: EventKind, key: &str, now_ms: i64) -> Map<String, Value> {
    let fields = match kind.name() {
        "call_create" => {
            json!({"call_id": key, "caller": "abc", "user_ids": ["def"], "create_time": now_ms, "timeout": 60, "payload": "payload"})
        }
        "call_cancel" => {
            json!({"call_id": key, "user_ids": ["def"], "reason": "caller_cancel", "payload": "payload"})
        }
        "call_accept" | "call_reject" => {
            json!({"call_id": key, "user_id": "abc", "extend_data": "extendData"})
        }
        "call_timeout" => json!({"call_id": key, "user_ids": ["def"]}),
        // The page's sample as stored here ends after user_ids ["abc","def"]: inviter and
        // invite_time are filled as its table types them.
        "call_invite" => {
            json!({"call_id": key, "user_ids": ["abc", "def"], "inviter": "abc", "invite_time": now_ms})
        }
        "user_action" => {
            json!({"user_id": key, "user_name": "Alice", "os": "ANDROID", "action": 0, "session_id": "7290411245098426369", "login_time": now_ms})
        }
        "send_msg" | "bot_msg" | "before_send_msg" => json!({
            "from_user_id": "abc", "conv_type": 0, "conv_id": key, "msg_type": 1,
            "msg_id": "7290411245098426370", "msg_time": now_ms,
            // ZIM URL-encodes the body text of some messages: consumers decode it.
            "msg_body": "%7B%22text%22%3A%22hello%22%7D",
        }),
        "group_create" => json!({
            "group_id": key, "operator_account": "userA", "owner_account": "userA",
            "group_name": "group", "attributes": [{"key": "topic", "value": "sport"}],
            "user_ids": ["Tony", "Jenny"],
        }),
        "group_join" => {
            json!({"group_id": key, "operator_account": "userA", "join_type": "Invited", "new_user_ids": ["Tony"]})
        }
        "group_exit" => json!({"group_id": key, "operator_account": "Tony"}),
        "group_destroy" => {
            json!({"group_id": key, "operator_account": "userA", "owner_account": "userA", "user_ids": ["Tony", "Jenny"]})
        }
        "room_create" if kind.family() == Family::Room => json!({
            "room_id": key, "operator_account": "userA", "room_name": "room",
            "attributes": [{"key": "k", "value": "v", "auto_delete": 0}],
        }),
        "room_enter" | "room_exit" => json!({"room_id": key, "operator_account": "userA"}),
        "room_destroy" if kind.family() == Family::Room => {
            json!({"room_id": key, "operator_account": "userA", "user_ids": ["Tony", "Jenny"]})
        }
        // Express: ids as ZEGOCLOUD sends them, some numbers and most strings.
        "room_create" => json!({
            "room_id": key, "room_session_id": 858993459200000001_u64,
            "room_create_time": now_ms.to_string(), "id_name": "userA",
        }),
        // The "Room destroyed Callback" page's sample.
        "room_close" => json!({
            "room_id": key, "room_session_id": 858012925204410400_u64, "close_reason": 1,
            "room_close_time": now_ms.to_string(),
        }),
        "room_login" => json!({
            "room_id": key, "room_name": "room", "room_seq": "858993459200000001",
            "user_account": "userA", "user_nickname": "A", "session_id": "1234567",
            "login_time": now_ms.to_string(), "user_role": "1",
        }),
        "room_logout" => json!({
            "room_id": key, "room_seq": "858993459200000001", "user_account": "userA",
            "user_nickname": "A", "session_id": "1234567", "logout_time": now_ms.to_string(),
            "reason": "0",
        }),
        // The "Recording File Generated Callback" page's sample.
        "record" => json!({
            "stream_alias": key, "replay_url": "replay_url", "begin_time": "1481597358",
            "end_time": "1481597358", "extra_params": "extra_params",
        }),
        "stream_create" | "stream_close" => json!({
            "room_id": key, "channel_id": key, "room_session_id": "858993459200000001",
            "user_id": "userA", "user_name": "A", "stream_id": "stream-1",
            "stream_seq": "17", "third_define_data": "{\"k\":\"v\"}", "create_time": now_ms.to_string(),
        }),
        "recording_status" => json!({
            "task_id": key, "room_id": "room-1", "event_type": 5, "sequence": 3,
            "message": "recording completed",
            "detail": {"file_info": [{"file_id": "a.mp4", "stream_id": "stream-1", "duration": 170039}]},
        }),
        _ => json!({
            "AgentInstanceId": key, "RoomId": "room-1", "Sequence": 1,
            "Data": {"Status": "Listening"},
        }),
    };
    match fields {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A whole callback of `kind`: envelope, the event's fields, and a signature by `secret`.
/// `timestamp` is Unix seconds; families ZEGOCLOUD stamps in milliseconds get milliseconds.
pub fn callback(
    kind: EventKind,
    appid: &str,
    key: &str,
    timestamp: i64,
    nonce: &str,
    secret: &str,
) -> Value {
    let product = kind.family().product();
    let names = product.envelope();
    let mut body = Map::new();
    // The timestamp in each family's documented unit and JSON type.
    let stamped = match kind.family() {
        Family::Group => Value::from((timestamp * 1000).to_string()),
        Family::Room | Family::AiAgent => Value::from(timestamp * 1000),
        Family::Rtc | Family::Recording => Value::from(timestamp.to_string()),
        _ => Value::from(timestamp),
    };
    let number_or_text = |text: &str| {
        text.parse::<i64>()
            .map_or_else(|_| Value::from(text), Value::from)
    };
    let appid = match product {
        Product::Recording | Product::AiAgent => number_or_text(appid),
        Product::Zim | Product::Rtc => Value::from(appid),
    };
    body.insert(names.appid.into(), appid);
    if let Some(event) = names.event {
        let name = if kind.spec().any_name {
            "AgentInstanceStatus"
        } else {
            kind.name()
        };
        body.insert(event.into(), Value::from(name));
    }
    body.insert(names.nonce.into(), Value::from(nonce));
    body.insert(names.timestamp.into(), stamped);
    body.extend(event_fields(kind, key, timestamp * 1000));
    let mut body = Value::Object(body);
    sign(&mut body, secret);
    body
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
