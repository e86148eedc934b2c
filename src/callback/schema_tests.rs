//! Whatever the checks accept validates against the event's published schema in `schemas/`:
//! a property test over every event, every field, and values of every JSON type.

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::Value;

use super::catalogue::EventKind;
use super::policy::CallbackPolicy;
use super::{body, sample, verify};

const NOW: i64 = 1_499_676_978;
const SECRET: &str = "secret";

fn schema(kind: EventKind) -> jsonschema::Validator {
    let path = format!("{}/{}", env!("CARGO_MANIFEST_DIR"), kind.schema_path());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).expect("valid schema")
}

/// Values of every JSON type, including the edge cases the checks must tell apart.
fn any_value() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        "null",
        "true",
        "0",
        "-1",
        "1.5",
        "1e2",
        "18446744073709551616",
        "\"\"",
        "\"x\"",
        "\"+123\"",
        "\" 123\"",
        "\"123\"",
        "\"-5\"",
        "[]",
        "[\"a\"]",
        "[1]",
        "{}",
        "{\"a\":1}",
    ])
    .prop_map(|text| serde_json::from_str(text).unwrap())
}

/// Every field a callback of `kind` can carry, envelope included, and one it never does.
fn fields_of(kind: EventKind) -> Vec<&'static str> {
    let names = kind.family().product().envelope();
    [names.appid, names.nonce, names.timestamp]
        .into_iter()
        .chain(kind.spec().rules.iter().map(|rule| rule.name))
        .chain(["unknown_extra"])
        .collect()
}

proptest! {
    #[test]
    fn accepted_callbacks_validate_against_their_schema(
        kind in prop::sample::select(EventKind::all().collect::<Vec<_>>()),
        field_index in any::<prop::sample::Index>(),
        value in any_value(),
        as_form in any::<bool>(),
    ) {
        let fields = fields_of(kind);
        let field = fields[field_index.index(fields.len())];
        let mut callback = sample::callback(kind, "1", "key-1", NOW, "350176", SECRET);
        callback[field] = value;
        sample::sign(&mut callback, SECRET);
        let (bytes, content_type) = if as_form {
            (sample::form_encode(&callback), "application/x-www-form-urlencoded")
        } else {
            (callback.to_string(), "application/json")
        };
        let Ok(decoded) = body::decode(Bytes::from(bytes), Some(content_type)) else {
            return Ok(());
        };
        let product = kind.family().product();
        if let Ok(accepted) = verify(decoded, &CallbackPolicy::with_secret(SECRET), product, NOW) {
            let value: Value = serde_json::from_slice(&accepted.value).unwrap();
            let errors: Vec<String> = schema(kind).iter_errors(&value).map(|e| e.to_string()).collect();
            prop_assert!(errors.is_empty(), "accepted {value} breaks the {} schema: {errors:?}", kind.name());
        }
    }

    /// Every sample is accepted untouched, as JSON and as a form, and lands keyed as the
    /// catalogue says.
    #[test]
    fn every_sample_is_accepted_with_its_key(
        kind in prop::sample::select(EventKind::all().collect::<Vec<_>>()),
        as_form in any::<bool>(),
    ) {
        let callback = sample::callback(kind, "1", "key-1", NOW, "350176", SECRET);
        let (bytes, content_type) = if as_form {
            (sample::form_encode(&callback), "application/x-www-form-urlencoded")
        } else {
            (callback.to_string(), "application/json")
        };
        let decoded = body::decode(Bytes::from(bytes), Some(content_type)).unwrap();
        let product = kind.family().product();
        let accepted = verify(decoded, &CallbackPolicy::with_secret(SECRET), product, NOW);
        let accepted = accepted.unwrap_or_else(|e| panic!("{} refused: {e}", kind.name()));
        prop_assert_eq!(accepted.kind, Some(kind));
        prop_assert_eq!(accepted.key.as_deref(), Some("key-1"));
    }
}
