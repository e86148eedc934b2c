//! Test support (feature `test-support`, and this crate's own unit tests): the seed callback,
//! the signer, "now", the mock cluster, and the expected callback id, shared by the unit, API
//! and end-to-end tests and the benchmark so none keeps its own copy.

use std::sync::atomic::{AtomicU64, Ordering};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

use crate::callback::catalogue::{call, EventKind, Product};
use crate::callback::sample;
use crate::clock::unix_ms;

/// Environment variables as the configuration reads them, from `(name, value)` pairs.
pub fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The callback secret every test signs with.
pub const SECRET: &str = "test-secret";
/// The seed callback's nonce.
pub const SEED_NONCE: &str = "350176";

/// Now, as Unix seconds: the timestamp a fresh callback carries.
pub fn now_secs() -> i64 {
    unix_ms() / 1000
}

/// The seed `call_accept`, timestamped now, with `changes` merged in and signed after merging.
pub fn signed(changes: Value) -> Value {
    let mut body = sample::callback(
        call::accept(),
        "1",
        sample::SEED_CALL_ID,
        now_secs(),
        SEED_NONCE,
        SECRET,
    );
    if let (Some(body), Value::Object(changes)) = (body.as_object_mut(), changes) {
        body.extend(changes);
    }
    resign(&mut body);
    body
}

/// (Re)computes `signature` with [`SECRET`] from the body's own timestamp and nonce.
pub fn resign(body: &mut Value) {
    sample::sign(body, SECRET);
}

/// A signed callback of `event` for `call_id`, timestamped now: the catalogue's sample when
/// it knows the name (In-app Chat's, for a name two products share), else a `call_accept`
/// renamed.
pub fn event_body(event: &str, call_id: &str) -> Value {
    let known = EventKind::named(event);
    let mut body = sample::callback(
        known.unwrap_or(call::accept()),
        "1",
        call_id,
        now_secs(),
        SEED_NONCE,
        SECRET,
    );
    if known.is_none() {
        body["event"] = Value::String(event.to_string());
        resign(&mut body);
    }
    body
}

/// A signed sample of `kind` keyed by `key`, timestamped now.
pub fn sample_of(kind: EventKind, key: &str) -> Value {
    sample::callback(kind, "1", key, now_secs(), SEED_NONCE, SECRET)
}

/// `zego-callback-id` as the contract defines it, computed here without the bridge's
/// streaming serialiser: drop nonce, timestamp and signature, write compact JSON with sorted
/// keys (serde_json's `Map` is sorted), SHA-1, lower-case hex.
pub fn expected_callback_id(callback: &Value) -> String {
    let mut object: Map<String, Value> = callback.as_object().cloned().unwrap_or_default();
    let names = sample::envelope_of(callback);
    for field in [names.nonce, names.timestamp, names.signature] {
        object.remove(field);
    }
    let text = serde_json::to_string(&Value::Object(object)).unwrap_or_default();
    hex::encode(Sha1::digest(text.as_bytes()))
}

/// A one-broker librdkafka mock cluster with `topics` created, `partitions` each.
pub fn mock_cluster(
    topics: &[&str],
    partitions: i32,
) -> MockCluster<'static, DefaultProducerContext> {
    let cluster = MockCluster::new(1).expect("mock cluster");
    for topic in topics {
        cluster
            .create_topic(topic, partitions, 1)
            .expect("topic on the mock cluster");
    }
    cluster
}

/// A topic name no other test in this process uses: a test whose neighbour's producer reaches
/// its cluster (a freed port reused) still reads only its own records.
pub fn unique_topic(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// One fuzz input through the body decoder and the checks after it, as the cargo-fuzz target
/// and the stable fuzz loop both run it: the first byte picks the media type and the unknown-
/// event policy and the product, the rest is the body. Panics only if the bridge would.
pub fn fuzz_decode_and_verify(data: &[u8]) {
    use crate::callback::policy::{CallbackPolicy, UnknownEvents};
    use crate::callback::{body, unix_seconds, verify};

    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let content_type = if selector & 1 == 0 {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    };
    let Ok(decoded) = body::decode(bytes::Bytes::copy_from_slice(rest), Some(content_type)) else {
        return;
    };
    let mut policy = CallbackPolicy::with_secret(SECRET);
    if selector & 2 != 0 {
        policy.unknown_events = UnknownEvents::Forward;
    }
    // Verify against the body's own timestamp when it has one, so signed inputs get past
    // the window and exercise the field checks.
    let product = Product::ALL[usize::from(selector >> 2) % Product::ALL.len()];
    let stamp = decoded
        .fields
        .get(product.envelope().timestamp)
        .and_then(|t| t.as_i64().or_else(|| t.as_str()?.parse().ok()))
        .unwrap_or(0);
    if let Ok(callback) = verify(decoded, &policy, product, unix_seconds(stamp)) {
        assert_eq!(callback.id.len(), 40, "a callback id is 40 hex digits");
        assert!(
            callback.kind.is_none() || callback.key.as_deref().is_some_and(|c| !c.is_empty()),
            "a catalogued event always has a non-empty key"
        );
    }
}

/// One hostile body and the contract's error code it must get (never a record).
pub struct HostileBody {
    pub name: &'static str,
    pub content_type: Option<&'static str>,
    pub body: Vec<u8>,
    pub code: &'static str,
}

const JSON: Option<&str> = Some("application/json");
const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

/// The hostile-input table: malformed, mistyped, forged and unwanted bodies, one line each.
/// The unit tests run it through decode and verify; one API test sends it over HTTP.
#[rustfmt::skip]
pub fn hostile_bodies() -> Vec<HostileBody> {
    let seed = signed(Value::Object(Map::new()));
    let text = serde_json::to_string(&seed).unwrap_or_default();
    let right = seed["signature"].as_str().unwrap_or_default().to_string();
    let now = now_secs();
    let deep = |depth: usize| format!("{{\"a\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
    let json = |v: &Value| serde_json::to_vec(v).unwrap_or_default();
    let with = |field: &str, value: Value| { let mut b = seed.clone(); b[field] = value; resign(&mut b); json(&b) };
    let without = |field: &str| {
        let mut b = seed.clone();
        if let Some(o) = b.as_object_mut() { o.remove(field); }
        if field != "signature" { resign(&mut b); }
        json(&b)
    };
    let forged = |value: Value| { let mut b = seed.clone(); b["signature"] = value; json(&b) };
    let case = |name, content_type, body: Vec<u8>, code| HostileBody { name, content_type, body, code };
    vec![
        // Not parseable.
        case("truncated JSON", JSON, text.as_bytes()[..text.len() / 2].to_vec(), "malformed_body"),
        case("JSON with trailing garbage", JSON, format!("{text}}}").into_bytes(), "malformed_body"),
        case("nested 200 deep", JSON, deep(200).into_bytes(), "malformed_body"),
        case("nested 20000 deep", JSON, deep(20_000).into_bytes(), "malformed_body"),
        case("invalid UTF-8 in a JSON string", JSON, b"{\"call_id\":\"\xc3\x28\"}".to_vec(), "malformed_body"),
        case("lone surrogate escape", JSON, br#"{"call_id":"\ud800"}"#.to_vec(), "malformed_body"),
        case("NUL byte in JSON", JSON, b"{\"a\":\x00}".to_vec(), "malformed_body"),
        case("byte order mark", JSON, format!("\u{feff}{text}").into_bytes(), "malformed_body"),
        case("duplicate call_id keys", JSON, text.replacen('{', "{\"call_id\":\"smuggled\",", 1).into_bytes(), "malformed_body"),
        case("duplicate nested keys", JSON, text.replacen('{', "{\"x\":{\"k\":1,\"k\":2},", 1).into_bytes(), "malformed_body"),
        case("empty body", JSON, b"".to_vec(), "malformed_body"),
        case("whitespace body", JSON, b" \r\n\t ".to_vec(), "malformed_body"),
        case("JSON array", JSON, b"[{\"call_id\":\"x\"}]".to_vec(), "malformed_body"),
        case("JSON string", JSON, b"\"call_accept\"".to_vec(), "malformed_body"),
        case("JSON null", JSON, b"null".to_vec(), "malformed_body"),
        case("broken percent-encoding", JSON, b"%7B%ZZ%22".to_vec(), "malformed_body"),
        case("invalid UTF-8 in a form", FORM, b"appid=%FF%FE".to_vec(), "malformed_body"),
        case("form of separators only", FORM, b"&&&".to_vec(), "malformed_body"),
        // Fields absent or of the wrong type.
        case("no timestamp", JSON, without("timestamp"), "missing_field"),
        case("no event", JSON, without("event"), "missing_field"),
        case("no call_id", JSON, without("call_id"), "missing_field"),
        case("no user_id", JSON, without("user_id"), "missing_field"),
        case("nonce as an array", JSON, with("nonce", serde_json::json!(["1"])), "invalid_field"),
        case("timestamp of 100 digits", JSON, with("timestamp", Value::from("1".repeat(100))), "invalid_field"),
        case("timestamp with a plus sign", JSON, with("timestamp", Value::from(format!("+{now}"))), "invalid_field"),
        case("timestamp with a space", JSON, with("timestamp", Value::from(format!(" {now}"))), "invalid_field"),
        case("timestamp as an exponent", JSON, text.replacen(&format!("\"timestamp\":{now}"), &format!("\"timestamp\":{now}e0"), 1).into_bytes(), "invalid_field"),
        case("extend_data as null", JSON, with("extend_data", Value::Null), "invalid_field"),
        case("30,000-character duplicate key", JSON, { let k = "k".repeat(30_000); text.replacen('{', &format!("{{\"{k}\":1,\"{k}\":2,"), 1).into_bytes() }, "malformed_body"),
        case("timestamp as a fraction", JSON, with("timestamp", Value::from(now as f64 + 0.5)), "invalid_field"),
        case("appid as a boolean", JSON, with("appid", Value::from(true)), "invalid_field"),
        case("appid as a 100-digit number", JSON, text.replacen("\"appid\":\"1\"", &format!("\"appid\":{}", "9".repeat(100)), 1).into_bytes(), "invalid_field"),
        case("event as a number", JSON, with("event", Value::from(3)), "invalid_field"),
        case("call_id as a number", JSON, with("call_id", Value::from(3501761173612493269u64)), "invalid_field"),
        case("empty call_id", JSON, with("call_id", Value::from("")), "invalid_field"),
        case("user_id as an object", JSON, with("user_id", serde_json::json!({"id": "abc"})), "invalid_field"),
        case("extend_data as a number", JSON, with("extend_data", Value::from(1)), "invalid_field"),
        // Not genuine.
        case("no signature", JSON, without("signature"), "invalid_signature"),
        case("signature in upper case", JSON, forged(Value::from(right.to_uppercase())), "invalid_signature"),
        case("signature one digit short", JSON, forged(Value::from(&right[..39])), "invalid_signature"),
        case("signature one digit long", JSON, forged(Value::from(format!("{right}0"))), "invalid_signature"),
        case("empty signature", JSON, forged(Value::from("")), "invalid_signature"),
        case("signature as a number", JSON, forged(Value::from(12345)), "invalid_signature"),
        case("signature not hex", JSON, forged(Value::from("z".repeat(40))), "invalid_signature"),
        case("timestamp an hour ahead", JSON, with("timestamp", Value::from(now + 3600)), "stale_timestamp"),
        case("negative timestamp", JSON, with("timestamp", Value::from(-1)), "stale_timestamp"),
        // Not ours to take.
        case("unknown event", JSON, with("event", Value::from("call_hijack")), "unsupported_event"),
        case("no content type", None, text.clone().into_bytes(), "unsupported_media_type"),
        case("text/plain", Some("text/plain"), text.clone().into_bytes(), "unsupported_media_type"),
        case("multipart", Some("multipart/form-data; boundary=x"), text.clone().into_bytes(), "unsupported_media_type"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented seed's id, computed independently with `sha1sum` (see `event.rs`).
    #[test]
    fn expected_id_matches_the_known_answer_and_the_bridge() {
        let seed: Value = serde_json::from_str(
            r#"{"appid":"1","event":"call_accept","nonce":"350176","signature":"signature",
            "timestamp":1499676978,"call_id":"3501761173612493269","user_id":"abc","extend_data":"extendData"}"#,
        )
        .unwrap();
        assert_eq!(
            expected_callback_id(&seed),
            "5541586fdddebd3f426379a790566f16ed8b6b83"
        );
        let fields = seed.as_object().unwrap();
        assert_eq!(
            crate::callback::event::callback_id(fields, ["nonce", "timestamp", "signature"]),
            expected_callback_id(&seed)
        );
    }
}
