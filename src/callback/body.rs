//! Request bytes + `Content-Type` → a JSON object of fields: JSON, percent-encoded JSON, or form.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use bytes::Bytes;
use percent_encoding::percent_decode;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::Rejection;

/// How much of a duplicate key's name is repeated in the answer and the log.
const MAX_SHOWN_KEY_CHARS: usize = 64;

/// How the body arrived; decides what the published value is and how strictly types are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// A JSON object: its bytes are published unchanged.
    Json,
    /// A JSON object percent-encoded as a whole: the decoded JSON text is published.
    PercentEncodedJson,
    /// `application/x-www-form-urlencoded` pairs: every value is text, so numbers and lists
    /// are read leniently and the published value is a JSON object of the decoded fields.
    Form,
}

/// A body that decoded into one JSON object.
#[derive(Debug)]
pub struct DecodedBody {
    pub fields: Map<String, Value>,
    pub encoding: Encoding,
    /// The JSON text to publish unchanged; `None` for form bodies (serialised after checks).
    pub json_text: Option<Bytes>,
}

/// The media types the bridge accepts, from a `Content-Type` header value.
fn media_type(content_type: Option<&str>) -> Option<Encoding> {
    let essence = content_type?.split(';').next()?.trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/json" | "text/json" => Some(Encoding::Json),
        e if e.starts_with("application/") && e.ends_with("+json") => Some(Encoding::Json),
        "application/x-www-form-urlencoded" => Some(Encoding::Form),
        _ => None,
    }
}

/// Decodes a callback body. Never panics, whatever the bytes.
pub fn decode(body: Bytes, content_type: Option<&str>) -> Result<DecodedBody, Rejection> {
    let declared = media_type(content_type).ok_or(Rejection::UnsupportedMediaType)?;
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    let rest = &body[start..];
    if rest.is_empty() {
        return Err(Rejection::MalformedBody("body is empty".into()));
    }
    // Whatever the header says, a body that is a JSON object, or one percent-encoded as a
    // whole, is read as JSON: the docs say the data "needs UrlDecode".
    if rest[0] == b'{' {
        return json(body, Encoding::Json);
    }
    if rest.len() >= 3 && rest[0] == b'%' && rest[1..3].eq_ignore_ascii_case(b"7b") {
        // Encoded as a form encodes: `+` is a space, as in a form field (a literal `+` is `%2B`).
        let decoded: Vec<u8> = percent_decode(&plus_as_space(rest)).collect();
        return json(Bytes::from(decoded), Encoding::PercentEncodedJson);
    }
    match declared {
        Encoding::Form => form(rest),
        _ => Err(Rejection::MalformedBody("body is not a JSON object".into())),
    }
}

fn json(text: Bytes, encoding: Encoding) -> Result<DecodedBody, Rejection> {
    let invalid = |e: serde_json::Error| Rejection::MalformedBody(format!("invalid JSON: {e}"));
    let mut check = serde_json::Deserializer::from_slice(&text);
    de::DeserializeSeed::deserialize(NoDuplicateKeys, &mut check).map_err(invalid)?;
    check.end().map_err(invalid)?;
    let value: Value = serde_json::from_slice(&text).map_err(invalid)?;
    match value {
        Value::Object(fields) => Ok(DecodedBody {
            fields,
            encoding,
            json_text: Some(text),
        }),
        _ => Err(Rejection::MalformedBody("body is not a JSON object".into())),
    }
}

/// Form pairs; a repeated name (or `name[]`) becomes an array of its values.
fn form(body: &[u8]) -> Result<DecodedBody, Rejection> {
    let mut fields = Map::new();
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let mut halves = pair.splitn(2, |b| *b == b'=');
        let name = form_text(halves.next().unwrap_or_default())?;
        let value = Value::String(form_text(halves.next().unwrap_or_default())?);
        let (name, listed) = match name.strip_suffix("[]") {
            Some(base) => (base.to_string(), true),
            None => (name, false),
        };
        match fields.get_mut(&name) {
            Some(Value::Array(values)) => values.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
            None if listed => {
                fields.insert(name, Value::Array(vec![value]));
            }
            None => {
                fields.insert(name, value);
            }
        }
    }
    if fields.is_empty() {
        return Err(Rejection::MalformedBody("form body has no fields".into()));
    }
    Ok(DecodedBody {
        fields,
        encoding: Encoding::Form,
        json_text: None,
    })
}

/// `application/x-www-form-urlencoded` writes a space as `+`.
fn plus_as_space(raw: &[u8]) -> Vec<u8> {
    raw.iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect()
}

/// One form component: `+` is a space, `%XX` a byte, and the result must be UTF-8.
fn form_text(raw: &[u8]) -> Result<String, Rejection> {
    percent_decode(&plus_as_space(raw))
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| Rejection::MalformedBody("form field is not valid UTF-8".into()))
}

/// Checks a JSON text for duplicate object keys at any depth, without building anything.
///
/// serde_json keeps the last of two equal keys while other parsers keep the first: a body
/// with both would let the bridge and a consumer disagree on, say, `call_id`. This runs as a
/// pass of its own so the value itself is read by serde_json's `Value`, which keeps every
/// number's exact text (the `arbitrary_precision` feature).
struct NoDuplicateKeys;

impl<'de> de::DeserializeSeed<'de> for NoDuplicateKeys {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NoDuplicateKeys {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(NoDuplicateKeys)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            map.next_value_seed(NoDuplicateKeys)?;
            if !seen.insert(key.clone()) {
                let shown: String = key.chars().take(MAX_SHOWN_KEY_CHARS).collect();
                let more = if key.chars().count() > MAX_SHOWN_KEY_CHARS {
                    "…"
                } else {
                    ""
                };
                return Err(de::Error::custom(format_args!(
                    "duplicate key {shown:?}{more}"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"{"appid":"1","event":"call_accept","nonce":"350176","signature":"signature","timestamp":1499676978,"call_id":"3501761173612493269","user_id":"abc","extend_data":"extendData"}"#;

    fn decode_str(body: &str, content_type: Option<&str>) -> Result<DecodedBody, Rejection> {
        decode(Bytes::from(body.to_string()), content_type)
    }

    #[test]
    fn json_body_keeps_its_bytes() {
        let d = decode_str(SEED, Some("application/json; charset=utf-8")).unwrap();
        assert_eq!(d.encoding, Encoding::Json);
        assert_eq!(d.json_text.as_deref(), Some(SEED.as_bytes()));
        assert_eq!(d.fields["call_id"], "3501761173612493269");
        assert_eq!(d.fields["timestamp"], 1499676978);
    }

    #[test]
    fn percent_encoded_json_is_decoded_whole() {
        let encoded: String =
            percent_encoding::utf8_percent_encode(SEED, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        for content_type in ["application/json", "application/x-www-form-urlencoded"] {
            let d = decode_str(&encoded, Some(content_type)).unwrap();
            assert_eq!(d.encoding, Encoding::PercentEncodedJson);
            assert_eq!(d.json_text.as_deref(), Some(SEED.as_bytes()));
            assert_eq!(d.fields["user_id"], "abc");
        }
    }

    #[test]
    fn percent_encoded_json_reads_plus_as_a_space_like_a_form_field() {
        let body = "%7B%22extend_data%22%3A%22a+b%22%2C%22plus%22%3A%22c%2Bd%22%7D";
        let whole = decode_str(body, Some("application/x-www-form-urlencoded")).unwrap();
        assert_eq!(whole.fields["extend_data"], "a b");
        assert_eq!(whole.fields["plus"], "c+d");
        let field =
            decode_str("extend_data=a+b", Some("application/x-www-form-urlencoded")).unwrap();
        assert_eq!(field.fields["extend_data"], whole.fields["extend_data"]);
    }

    #[test]
    fn numbers_keep_their_exact_text() {
        let d = decode_str(
            r#"{"big":18446744073709551617,"precise":0.10000000000000000001,"t":1499676978}"#,
            Some("application/json"),
        )
        .unwrap();
        assert_eq!(d.fields["big"].to_string(), "18446744073709551617");
        assert_eq!(d.fields["precise"].to_string(), "0.10000000000000000001");
        assert_eq!(d.fields["t"].as_i64(), Some(1499676978));
    }

    #[test]
    fn a_long_duplicate_key_is_not_echoed_whole() {
        let key = "k".repeat(30_000);
        let body = format!(r#"{{"{key}":1,"{key}":2}}"#);
        let Err(Rejection::MalformedBody(message)) = decode_str(&body, Some("application/json"))
        else {
            panic!("a duplicate key must be refused");
        };
        assert!(message.len() < 200, "{} characters", message.len());
        assert!(message.contains("duplicate key"), "{message}");
    }

    #[test]
    fn form_body_decodes_pairs_and_lists() {
        let d = decode_str(
            "appid=1&event=call_cancel&call_id=c%201&reason=caller_cancel&payload=a+b%26c&user_ids=u1&user_ids=u2&empty=",
            Some("application/x-www-form-urlencoded"),
        )
        .unwrap();
        assert_eq!(d.encoding, Encoding::Form);
        assert!(d.json_text.is_none());
        assert_eq!(d.fields["call_id"], "c 1");
        assert_eq!(d.fields["payload"], "a b&c");
        assert_eq!(d.fields["user_ids"], serde_json::json!(["u1", "u2"]));
        assert_eq!(d.fields["empty"], "");
        let listed =
            decode_str("user_ids[]=only", Some("application/x-www-form-urlencoded")).unwrap();
        assert_eq!(listed.fields["user_ids"], serde_json::json!(["only"]));
    }

    #[test]
    fn media_types_outside_json_and_form_are_refused() {
        for content_type in [
            None,
            Some("text/plain"),
            Some("multipart/form-data"),
            Some(""),
        ] {
            assert_eq!(
                decode_str(SEED, content_type).unwrap_err(),
                Rejection::UnsupportedMediaType
            );
        }
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let json = Some("application/json");
        for body in [
            "",
            "   ",
            "[1,2]",
            "\"text\"",
            "{\"a\":",
            "{\"a\":1}x",
            "appid=1",
            "%7B%22a",
        ] {
            assert!(
                matches!(decode_str(body, json), Err(Rejection::MalformedBody(_))),
                "{body:?}"
            );
        }
        let form = Some("application/x-www-form-urlencoded");
        assert!(matches!(
            decode_str("a=%FF", form),
            Err(Rejection::MalformedBody(_))
        ));
        assert!(matches!(
            decode_str("&&", form),
            Err(Rejection::MalformedBody(_))
        ));
        let invalid_utf8 = decode(Bytes::from_static(b"{\"a\":\"\xff\"}"), json);
        assert!(matches!(invalid_utf8, Err(Rejection::MalformedBody(_))));
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        let json = Some("application/json");
        let top = decode_str(r#"{"call_id":"a","call_id":"b"}"#, json).unwrap_err();
        assert!(top.to_string().contains("duplicate key"), "{top}");
        assert!(decode_str(r#"{"x":{"k":1,"k":2}}"#, json).is_err());
        assert!(decode_str(r#"{"x":[{"k":1},{"k":2}]}"#, json).is_ok());
        // The same key spelled with an escape is the same key.
        assert!(decode_str(r#"{"call_id":"a","call\u005fid":"b"}"#, json).is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(
            decode_str(&deep, Some("application/json")),
            Err(Rejection::MalformedBody(_))
        ));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the bytes and content type, decoding answers instead of panicking.
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), form in any::<bool>()) {
            let content_type = if form { "application/x-www-form-urlencoded" } else { "application/json" };
            let _ = decode(Bytes::from(bytes), Some(content_type));
        }

        /// JSON-looking input (braces, quotes, escapes, percent signs) exercises the parsers' depths.
        #[test]
        fn decode_never_panics_on_json_like_text(text in "[{}\\[\\]\":,%0-9a-fA-F\\\\u+&= ]{0,256}") {
            let _ = decode(Bytes::from(text.clone()), Some("application/json"));
            let _ = decode(Bytes::from(text), Some("application/x-www-form-urlencoded"));
        }
    }
}
