//! Test support (feature `test-support`, and this crate's own unit tests): the seed callback,
//! the signer, "now", the mock cluster, and the expected callback id, shared by the unit, API
//! and end-to-end tests and the benchmark so none keeps its own copy.

use std::sync::atomic::{AtomicU64, Ordering};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

use crate::callback::event::EventKind;
use crate::callback::sample;
use crate::clock::unix_ms;

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
        EventKind::CallAccept,
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

/// A signed callback of `event` (any name of the family) for `call_id`, timestamped now.
pub fn event_body(event: &str, call_id: &str) -> Value {
    let kind = EventKind::from_name(event).unwrap_or(EventKind::CallAccept);
    let mut body = sample::callback(kind, "1", call_id, now_secs(), SEED_NONCE, SECRET);
    body["event"] = Value::String(event.to_string());
    resign(&mut body);
    body
}

/// `zego-callback-id` as the contract defines it, computed here without the bridge's
/// streaming serialiser: drop nonce, timestamp and signature, write compact JSON with sorted
/// keys (serde_json's `Map` is sorted), SHA-1, lower-case hex.
pub fn expected_callback_id(callback: &Value) -> String {
    let mut object: Map<String, Value> = callback.as_object().cloned().unwrap_or_default();
    for field in ["nonce", "timestamp", "signature"] {
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
            crate::callback::event::callback_id(fields),
            expected_callback_id(&seed)
        );
    }
}
