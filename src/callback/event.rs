//! The call-invitation event family, each event's field checks, and the callback id.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

use super::Rejection;

/// The events of ZEGOCLOUD's call-invitation family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    CallCreate,
    CallCancel,
    CallAccept,
    CallReject,
    CallTimeout,
}

/// The JSON type a field must have.
#[derive(Debug, Clone, Copy)]
enum FieldType {
    Text,
    Integer,
    TextList,
}

/// One field an event carries beyond the envelope.
struct FieldRule {
    name: &'static str,
    kind: FieldType,
    required: bool,
}

const fn required(name: &'static str, kind: FieldType) -> FieldRule {
    FieldRule {
        name,
        kind,
        required: true,
    }
}
const fn optional(name: &'static str, kind: FieldType) -> FieldRule {
    FieldRule {
        name,
        kind,
        required: false,
    }
}

use FieldType::{Integer, Text, TextList};

const CREATE_RULES: &[FieldRule] = &[
    required("caller", Text),
    required("user_ids", TextList),
    required("create_time", Integer),
    required("timeout", Integer),
    optional("payload", Text),
];
const CANCEL_RULES: &[FieldRule] = &[
    required("user_ids", TextList),
    optional("reason", Text),
    optional("payload", Text),
];
const ANSWER_RULES: &[FieldRule] = &[required("user_id", Text), optional("extend_data", Text)];
const TIMEOUT_RULES: &[FieldRule] = &[required("user_ids", TextList)];

impl EventKind {
    pub const ALL: [EventKind; 5] = [
        EventKind::CallCreate,
        EventKind::CallCancel,
        EventKind::CallAccept,
        EventKind::CallReject,
        EventKind::CallTimeout,
    ];

    /// The `event` value ZEGOCLOUD sends.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::CallCreate => "call_create",
            EventKind::CallCancel => "call_cancel",
            EventKind::CallAccept => "call_accept",
            EventKind::CallReject => "call_reject",
            EventKind::CallTimeout => "call_timeout",
        }
    }

    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.name() == name)
    }

    fn rules(self) -> &'static [FieldRule] {
        match self {
            EventKind::CallCreate => CREATE_RULES,
            EventKind::CallCancel => CANCEL_RULES,
            EventKind::CallAccept | EventKind::CallReject => ANSWER_RULES,
            EventKind::CallTimeout => TIMEOUT_RULES,
        }
    }

    /// Checks this event's own fields. With `lenient` (form bodies, where every value is text)
    /// integers and lists given as text are converted in place, so the published object is typed.
    pub fn check_fields(
        self,
        fields: &mut Map<String, Value>,
        lenient: bool,
    ) -> Result<(), Rejection> {
        for rule in self.rules() {
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

/// Fields that change between retries of one callback and so stay out of its id.
const PER_ATTEMPT_FIELDS: [&str; 3] = ["nonce", "timestamp", "signature"];

/// `zego-callback-id`: lower-case hex SHA-1 of the callback without nonce, timestamp and
/// signature, as compact JSON with keys sorted at every level (serde_json's default `Map` is
/// a `BTreeMap`, so serialising it does exactly that).
///
/// The JSON is streamed into the hash, skipping the per-attempt fields on the way: no copy of
/// the object and no intermediate buffer on the request path.
pub fn callback_id(fields: &Map<String, Value>) -> String {
    let mut hasher = Sha1::new();
    // Writing JSON of Values into a hasher cannot fail: every key is a string, and the
    // hasher's `Write` never errors.
    let _ = serde_json::to_writer(&mut hasher, &WithoutPerAttemptFields(fields));
    hex::encode(hasher.finalize())
}

/// Serialises an object minus `PER_ATTEMPT_FIELDS`, keys in the map's (sorted) order.
struct WithoutPerAttemptFields<'a>(&'a Map<String, Value>);

impl Serialize for WithoutPerAttemptFields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self
            .0
            .iter()
            .filter(|(k, _)| !PER_ATTEMPT_FIELDS.contains(&k.as_str()))
        {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("test fixtures are objects"),
        }
    }

    #[test]
    fn names_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(EventKind::from_name("call_dance"), None);
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
        assert_eq!(callback_id(&seed), expected);
        let retry: Map<String, Value> = serde_json::from_str(
            r#"{"extend_data":"extendData","user_id":"abc","call_id":"3501761173612493269","timestamp":"1499677000","signature":"other","nonce":99,"event":"call_accept","appid":"1"}"#,
        )
        .unwrap();
        assert_eq!(callback_id(&retry), expected);
        let mut changed = seed.clone();
        changed.insert("extend_data".into(), json!("different"));
        assert_ne!(callback_id(&changed), expected);
    }

    /// Numbers are hashed as sent: two callbacks that differ only past a 64-bit float's
    /// precision are different callbacks, never each other's duplicate.
    #[test]
    fn callback_id_sees_every_digit_of_a_number() {
        let id = |text: &str| callback_id(&serde_json::from_str(text).unwrap());
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
        let mut fields =
            object(json!({"caller":"a","user_ids":["b"],"create_time":1,"timeout":30}));
        assert!(EventKind::CallCreate
            .check_fields(&mut fields, false)
            .is_ok());
        fields.remove("timeout");
        assert_eq!(
            EventKind::CallCreate.check_fields(&mut fields, false),
            Err(Rejection::MissingField("timeout".into()))
        );
        let mut null_user = object(json!({"user_id": null}));
        assert!(matches!(
            EventKind::CallAccept.check_fields(&mut null_user, false),
            Err(Rejection::MissingField(_))
        ));
    }

    #[test]
    fn types_are_strict_for_json_and_lenient_for_form() {
        let mut wrong = object(json!({"user_ids":"u1,u2"}));
        assert!(matches!(
            EventKind::CallTimeout.check_fields(&mut wrong, false),
            Err(Rejection::InvalidField(..))
        ));
        assert!(EventKind::CallTimeout
            .check_fields(&mut wrong, true)
            .is_ok());
        assert_eq!(wrong["user_ids"], json!(["u1", "u2"]));

        let mut form = object(
            json!({"caller":"a","user_ids":"[\"b\",\"c\"]","create_time":"17","timeout":"30"}),
        );
        assert!(EventKind::CallCreate.check_fields(&mut form, true).is_ok());
        assert_eq!(form["user_ids"], json!(["b", "c"]));
        assert_eq!(form["create_time"], json!(17));

        for bad in [
            json!({"user_id": 5}),
            json!({"user_id": "u", "extend_data": []}),
        ] {
            let mut fields = object(bad);
            assert!(matches!(
                EventKind::CallReject.check_fields(&mut fields, true),
                Err(Rejection::InvalidField(..))
            ));
        }
        let mut float_time =
            object(json!({"caller":"a","user_ids":[],"create_time":1.5,"timeout":30}));
        assert!(EventKind::CallCreate
            .check_fields(&mut float_time, false)
            .is_err());
        let mut mixed_list = object(json!({"user_ids":["a", 1]}));
        assert!(EventKind::CallTimeout
            .check_fields(&mut mixed_list, false)
            .is_err());
    }
}
