//! Field rules and their checks, record keys and header ids, and the callback id.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

use super::Rejection;

pub use super::catalogue::EventKind;
use super::catalogue::Family;

/// The JSON type a field must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Text,
    Integer,
    /// An id some products send as a string and others (or other versions) as a number.
    TextOrInteger,
    TextList,
    Object,
    /// An object, or what a page calls empty (`{}`, `""`, `null`, `[]`): cloud recording's
    /// `detail` for `event_type` 4.
    ObjectOrEmpty,
    ObjectList,
}

/// One field an event carries beyond the envelope.
#[derive(Debug)]
pub struct FieldRule {
    pub name: &'static str,
    pub kind: FieldType,
    pub required: bool,
}

pub const fn required(name: &'static str, kind: FieldType) -> FieldRule {
    FieldRule {
        name,
        kind,
        required: true,
    }
}
pub const fn optional(name: &'static str, kind: FieldType) -> FieldRule {
    FieldRule {
        name,
        kind,
        required: false,
    }
}

use FieldType::{Integer, Object, ObjectList, ObjectOrEmpty, Text, TextList, TextOrInteger};

impl EventKind {
    /// Checks this event's own fields. With `lenient` (form bodies, where every value is text)
    /// integers, lists and objects given as text are converted in place, so the published
    /// object is typed.
    pub fn check_fields(
        self,
        fields: &mut Map<String, Value>,
        lenient: bool,
    ) -> Result<(), Rejection> {
        for rule in self.spec().rules {
            match fields.get_mut(rule.name) {
                None | Some(Value::Null) if rule.required => {
                    return Err(Rejection::MissingField(rule.name.into()))
                }
                // An optional field may be absent, but when present it has its type: the
                // published schemas say so, and consumers validate against them.
                None => {}
                Some(value) => check_type(rule, value, lenient)?,
            }
        }
        Ok(())
    }

    /// The record key: the first key field holding a non-empty string (the rules have already
    /// made each one a string when present).
    pub fn key(self, fields: &Map<String, Value>) -> Result<String, Rejection> {
        let keys = self.spec().key;
        if let Some(key) = keys
            .iter()
            .filter_map(|name| fields.get(*name).and_then(Value::as_str))
            .find(|text| !text.is_empty())
        {
            return Ok(key.to_string());
        }
        let first = keys.first().copied().unwrap_or("key");
        Err(match keys {
            [_] if fields.get(first).is_none_or(Value::is_null) => {
                Rejection::MissingField(first.into())
            }
            [_] => Rejection::InvalidField(first.into(), "must not be empty".into()),
            _ => Rejection::InvalidField(
                first.into(),
                format!(
                    "and {} are empty or missing: nothing to key the record by",
                    keys[1..].join(", ")
                ),
            ),
        })
    }

    /// The ordering and dedupe ids this event carries, as `(header, text)`.
    pub fn header_values(self, fields: &Map<String, Value>) -> Vec<(&'static str, String)> {
        let mut headers: Vec<_> = self
            .spec()
            .headers
            .iter()
            .filter_map(|(field, header)| match fields.get(*field)? {
                Value::String(text) => Some((*header, text.clone())),
                Value::Number(n) => Some((*header, n.to_string())),
                _ => None,
            })
            .collect();
        if self.family() == Family::Recording {
            headers.push((HEADER_RECORDING_FORMAT, recording_format(fields).into()));
        }
        headers
    }
}

fn check_type(rule: &FieldRule, value: &mut Value, lenient: bool) -> Result<(), Rejection> {
    let invalid = |what: &str| Rejection::InvalidField(rule.name.into(), what.into());
    match (rule.kind, &*value) {
        (Text, Value::String(_)) => Ok(()),
        (Text, _) => Err(invalid("must be a string")),
        (Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(()),
        (Integer, Value::String(text)) if lenient => {
            let n: i64 = text
                .trim()
                .parse()
                .map_err(|_| invalid("must be an integer"))?;
            *value = Value::from(n);
            Ok(())
        }
        (Integer, _) => Err(invalid("must be an integer")),
        (TextList, Value::Array(items)) if items.iter().all(Value::is_string) => Ok(()),
        (TextList, Value::String(text)) if lenient => {
            *value = text_list(text).ok_or_else(|| invalid("must be a list of strings"))?;
            Ok(())
        }
        (TextList, _) => Err(invalid("must be an array of strings")),
        (TextOrInteger, Value::String(_)) => Ok(()),
        (TextOrInteger, Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(()),
        (TextOrInteger, _) => Err(invalid("must be a string or an integer")),
        (Object | ObjectOrEmpty, Value::Object(_)) => Ok(()),
        (ObjectOrEmpty, Value::Null) => Ok(()),
        (ObjectOrEmpty, Value::String(text)) if text.is_empty() => Ok(()),
        (ObjectOrEmpty, Value::Array(items)) if items.is_empty() => Ok(()),
        (ObjectList, Value::Array(items)) if items.iter().all(Value::is_object) => Ok(()),
        (Object | ObjectOrEmpty | ObjectList, Value::String(text)) if lenient => {
            let parsed: Value = serde_json::from_str(text).map_err(|_| invalid("must be JSON"))?;
            *value = parsed;
            check_type(rule, value, false)
        }
        (Object, _) => Err(invalid("must be an object")),
        (ObjectOrEmpty, _) => Err(invalid("must be an object or empty")),
        (ObjectList, _) => Err(invalid("must be an array of objects")),
    }
}

/// A list sent as form text: a JSON array of strings, or comma-separated values.
fn text_list(text: &str) -> Option<Value> {
    if text.trim_start().starts_with('[') {
        let items: Vec<String> = serde_json::from_str(text).ok()?;
        return Some(Value::from(items));
    }
    let items: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    Some(Value::from(items))
}

/// `zego-callback-id`: lower-case hex SHA-1 of the callback without the fields that change
/// between retries (`per_attempt`: the product's nonce, timestamp and signature names), as compact JSON with keys sorted at every level (serde_json's default `Map` is
/// a `BTreeMap`, so serialising it does exactly that).
///
/// The JSON is streamed into the hash, skipping the per-attempt fields on the way: no copy of
/// the object and no intermediate buffer on the request path.
pub fn callback_id(fields: &Map<String, Value>, per_attempt: [&str; 3]) -> String {
    let mut hasher = Sha1::new();
    // Writing JSON of Values into a hasher cannot fail: every key is a string, and the
    // hasher's `Write` never errors.
    let _ = serde_json::to_writer(&mut hasher, &WithoutPerAttemptFields(fields, per_attempt));
    hex::encode(hasher.finalize())
}

/// Serialises an object minus the per-attempt fields, keys in the map's (sorted) order.
struct WithoutPerAttemptFields<'a>(&'a Map<String, Value>, [&'a str; 3]);

impl Serialize for WithoutPerAttemptFields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.0.iter().filter(|(k, _)| !self.1.contains(&k.as_str())) {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// The header naming a cloud recording callback's format.
pub const HEADER_RECORDING_FORMAT: &str = "zego-recording-format";

/// Which of cloud recording's two callback formats `fields` is: `legacy` (accounts that enabled
/// recording before 2021-11-29: `file_info` at the top level, `event_type` 1/2/3 meaning other
/// things), `current` (`detail`, possibly empty), or `unknown` when it has neither, as a
/// legacy callback without files and a current `event_type` 4 without `detail` both look.
pub fn recording_format(fields: &Map<String, Value>) -> &'static str {
    if fields.contains_key("file_info") {
        "legacy"
    } else if fields.contains_key("detail") {
        "current"
    } else {
        "unknown"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callback::catalogue::call;

    const PER_ATTEMPT: [&str; 3] = ["nonce", "timestamp", "signature"];
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("test fixtures are objects"),
        }
    }

    #[test]
    fn names_round_trip() {
        for kind in crate::callback::catalogue::Family::Call.events() {
            assert_eq!(EventKind::named(kind.name()), Some(kind));
        }
        assert_eq!(EventKind::named("call_dance"), None);
    }

    /// Fixed vector, computed independently:
    /// `printf '%s' '{"appid":"1","call_id":"3501761173612493269","event":"call_accept","extend_data":"extendData","user_id":"abc"}' | sha1sum`
    #[test]
    fn callback_id_known_answer_ignores_per_attempt_fields_and_key_order() {
        let seed = object(
            json!({"appid":"1","event":"call_accept","nonce":"350176","signature":"signature",
            "timestamp":1499676978,"call_id":"3501761173612493269","user_id":"abc","extend_data":"extendData"}),
        );
        let expected = "5541586fdddebd3f426379a790566f16ed8b6b83";
        assert_eq!(callback_id(&seed, PER_ATTEMPT), expected);
        let retry: Map<String, Value> = serde_json::from_str(
            r#"{"extend_data":"extendData","user_id":"abc","call_id":"3501761173612493269","timestamp":"1499677000","signature":"other","nonce":99,"event":"call_accept","appid":"1"}"#,
        )
        .unwrap();
        assert_eq!(callback_id(&retry, PER_ATTEMPT), expected);
        let mut changed = seed.clone();
        changed.insert("extend_data".into(), json!("different"));
        assert_ne!(callback_id(&changed, PER_ATTEMPT), expected);
    }

    /// Numbers are hashed as sent: two callbacks that differ only past a 64-bit float's
    /// precision are different callbacks, never each other's duplicate.
    #[test]
    fn callback_id_sees_every_digit_of_a_number() {
        let id = |text: &str| callback_id(&serde_json::from_str(text).unwrap(), PER_ATTEMPT);
        assert_ne!(
            id(r#"{"call_id":"c","n":18446744073709551616}"#),
            id(r#"{"call_id":"c","n":18446744073709551617}"#)
        );
        assert_ne!(
            id(r#"{"call_id":"c","n":0.10000000000000000001}"#),
            id(r#"{"call_id":"c","n":0.1}"#)
        );
    }

    #[test]
    fn required_fields_are_enforced_per_event() {
        let mut fields = object(
            json!({"call_id":"c","caller":"a","user_ids":["b"],"create_time":1,"timeout":30}),
        );
        assert!(call::create().check_fields(&mut fields, false).is_ok());
        fields.remove("timeout");
        assert_eq!(
            call::create().check_fields(&mut fields, false),
            Err(Rejection::MissingField("timeout".into()))
        );
        let mut null_user = object(json!({"call_id":"c","user_id": null}));
        assert!(matches!(
            call::accept().check_fields(&mut null_user, false),
            Err(Rejection::MissingField(_))
        ));
    }

    #[test]
    fn types_are_strict_for_json_and_lenient_for_form() {
        let mut wrong = object(json!({"call_id":"c","user_ids":"u1,u2"}));
        assert!(matches!(
            call::timeout().check_fields(&mut wrong, false),
            Err(Rejection::InvalidField(..))
        ));
        assert!(call::timeout().check_fields(&mut wrong, true).is_ok());
        assert_eq!(wrong["user_ids"], json!(["u1", "u2"]));

        let mut form = object(
            json!({"call_id":"c","caller":"a","user_ids":"[\"b\",\"c\"]","create_time":"17","timeout":"30"}),
        );
        assert!(call::create().check_fields(&mut form, true).is_ok());
        assert_eq!(form["user_ids"], json!(["b", "c"]));
        assert_eq!(form["create_time"], json!(17));

        for bad in [
            json!({"call_id":"c","user_id": 5}),
            json!({"call_id":"c","user_id": "u", "extend_data": []}),
        ] {
            let mut fields = object(bad);
            assert!(matches!(
                call::reject().check_fields(&mut fields, true),
                Err(Rejection::InvalidField(..))
            ));
        }
        let mut float_time = object(
            json!({"call_id":"c","caller":"a","user_ids":[],"create_time":1.5,"timeout":30}),
        );
        assert!(call::create().check_fields(&mut float_time, false).is_err());
        let mut mixed_list = object(json!({"call_id":"c","user_ids":["a", 1]}));
        assert!(call::timeout()
            .check_fields(&mut mixed_list, false)
            .is_err());
    }
}
