//! Unit tests of the check order and of each check in `verify`.

use std::collections::HashSet;

use bytes::Bytes;
use serde_json::{json, Value};

use super::*;
use crate::secret::Secret;

const NOW: i64 = 1_499_676_978;
const SECRET: &str = "secret";

fn settings() -> CallbackPolicy {
    CallbackPolicy::with_secret(SECRET)
}

/// The documented seed at `NOW`, with `changes` merged in (and re-signed).
fn signed(changes: Value) -> Value {
    let mut v = sample::callback(
        catalogue::call::accept(),
        "1",
        sample::SEED_CALL_ID,
        NOW,
        "350176",
        SECRET,
    );
    for (k, val) in changes.as_object().unwrap() {
        v[k] = val.clone();
    }
    sample::sign(&mut v, SECRET);
    v
}

fn check(value: &Value, settings: &CallbackPolicy, now: i64) -> Result<Callback, Rejection> {
    let bytes = Bytes::from(serde_json::to_vec(value).unwrap());
    let decoded = body::decode(bytes, Some("application/json"))?;
    verify(decoded, settings, Product::Zim, now)
}

#[test]
fn seed_passes_with_its_bytes_as_value() {
    let v = signed(json!({}));
    let cb = check(&v, &settings(), NOW).unwrap();
    assert_eq!(cb.kind, Some(catalogue::call::accept()));
    assert_eq!(cb.appid, "1");
    assert_eq!(cb.key.as_deref(), Some("3501761173612493269"));
    assert_eq!(cb.value, Bytes::from(serde_json::to_vec(&v).unwrap()));
    assert_eq!(cb.id.len(), 40);
}

#[test]
fn appid_nonce_and_timestamp_may_be_strings_or_numbers() {
    let v = signed(json!({"appid": 1, "nonce": 350176, "timestamp": NOW.to_string()}));
    let cb = check(&v, &settings(), NOW).unwrap();
    assert_eq!(cb.appid, "1");
}

#[test]
fn unknown_fields_are_kept() {
    let v = signed(json!({"new_field": {"nested": [1, 2]}}));
    let cb = check(&v, &settings(), NOW).unwrap();
    let published: Value = serde_json::from_slice(&cb.value).unwrap();
    assert_eq!(published["new_field"], json!({"nested": [1, 2]}));
}

#[test]
fn signature_missing_or_wrong() {
    let mut v = signed(json!({}));
    v.as_object_mut().unwrap().remove("signature");
    assert_eq!(
        check(&v, &settings(), NOW).unwrap_err(),
        Rejection::InvalidSignature
    );
    let mut v = signed(json!({}));
    v["signature"] = json!(12345);
    assert_eq!(
        check(&v, &settings(), NOW).unwrap_err(),
        Rejection::InvalidSignature
    );
    let mut other = settings();
    other.secrets = vec![Secret::new("not-it")];
    assert_eq!(
        check(&signed(json!({})), &other, NOW).unwrap_err(),
        Rejection::InvalidSignature
    );
}

#[test]
fn signature_is_checked_before_timestamp_and_appid() {
    let mut v = signed(json!({"timestamp": NOW - 10_000, "appid": "9"}));
    v["signature"] = json!("0".repeat(40));
    let mut s = settings();
    s.app_ids = Some(HashSet::from(["1".to_string()]));
    assert_eq!(check(&v, &s, NOW).unwrap_err(), Rejection::InvalidSignature);
}

#[test]
fn timestamp_window_edges() {
    let s = settings();
    for (offset, ok) in [
        (-300, true),
        (300, true),
        (-301, false),
        (301, false),
        (0, true),
    ] {
        let v = signed(json!({"timestamp": NOW + offset}));
        let result = check(&v, &s, NOW);
        assert_eq!(result.is_ok(), ok, "offset {offset}: {result:?}");
        if !ok {
            assert_eq!(result.unwrap_err(), Rejection::StaleTimestamp);
        }
    }
    let mut off = settings();
    off.timestamp_tolerance = None;
    assert!(check(&signed(json!({"timestamp": 1})), &off, NOW).is_ok());
}

#[test]
fn timestamp_and_nonce_must_be_present_and_integral() {
    let mut v = signed(json!({}));
    v.as_object_mut().unwrap().remove("nonce");
    assert_eq!(
        check(&v, &settings(), NOW).unwrap_err(),
        Rejection::MissingField("nonce".into())
    );
    for bad in [
        json!(1.5),
        json!("soon"),
        json!(true),
        json!("1".repeat(100)),
    ] {
        let v = signed(json!({"timestamp": bad}));
        assert!(
            matches!(
                check(&v, &settings(), NOW),
                Err(Rejection::InvalidField(..))
            ),
            "{bad}"
        );
    }
}

#[test]
fn appid_allowlist() {
    let mut s = settings();
    s.app_ids = Some(HashSet::from(["7".to_string()]));
    assert_eq!(
        check(&signed(json!({})), &s, NOW).unwrap_err(),
        Rejection::UnknownApp
    );
    assert!(check(&signed(json!({"appid": 7})), &s, NOW).is_ok());
}

#[test]
fn call_id_required_and_non_empty() {
    let mut v = signed(json!({}));
    v.as_object_mut().unwrap().remove("call_id");
    assert_eq!(
        check(&v, &settings(), NOW).unwrap_err(),
        Rejection::MissingField("call_id".into())
    );
    assert!(matches!(
        check(&signed(json!({"call_id": ""})), &settings(), NOW),
        Err(Rejection::InvalidField(..))
    ));
    assert!(matches!(
        check(&signed(json!({"call_id": 42})), &settings(), NOW),
        Err(Rejection::InvalidField(..))
    ));
}

#[test]
fn unknown_events_rejected_or_forwarded() {
    let v = signed(json!({"event": "call_dance"}));
    assert_eq!(
        check(&v, &settings(), NOW).unwrap_err(),
        Rejection::UnsupportedEvent("call_dance".into())
    );
    let mut forward = settings();
    forward.unknown_events = UnknownEvents::Forward;
    let cb = check(&v, &forward, NOW).unwrap();
    assert_eq!((cb.kind, cb.event.as_str()), (None, "call_dance"));
    let mut no_call = v.clone();
    no_call.as_object_mut().unwrap().remove("call_id");
    assert_eq!(check(&no_call, &forward, NOW).unwrap().key, None);
}

#[test]
fn form_body_is_published_as_a_typed_json_object() {
    let sig = signature::sign("secret", &NOW.to_string(), "7");
    let form = format!(
        "appid=1&event=call_create&nonce=7&timestamp={NOW}&signature={sig}&call_id=c1&caller=a&user_ids=b&user_ids=c&create_time=5&timeout=30"
    );
    let decoded =
        body::decode(Bytes::from(form), Some("application/x-www-form-urlencoded")).unwrap();
    let cb = verify(decoded, &settings(), Product::Zim, NOW).unwrap();
    let published: Value = serde_json::from_slice(&cb.value).unwrap();
    assert_eq!(published["user_ids"], json!(["b", "c"]));
    assert_eq!(published["timeout"], json!(30));
    assert_eq!(published["appid"], json!("1"));
}

#[test]
fn an_unsupported_event_name_is_shown_truncated() {
    let v = signed(json!({"event": "x".repeat(10_000)}));
    assert_eq!(
        check(&v, &settings(), NOW).unwrap_err(),
        Rejection::UnsupportedEvent("x".repeat(64))
    );
}
