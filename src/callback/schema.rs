//! The JSON Schema of each catalogued event's record value, generated from the catalogue's
//! field rules: `schemas/<family>/<event>.schema.json` are this output, and a test keeps them so.

use serde_json::{json, Map, Value};

use super::catalogue::EventKind;
use super::event::FieldType;

/// The schema a record of `kind` validates against: whatever the bridge accepts, and more
/// (unknown fields are kept, so consumers must ignore what they do not know).
pub fn for_event(kind: EventKind) -> Value {
    let spec = kind.spec();
    let names = spec.family.product().envelope();
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut envelope = |name: &str, schema: Value| {
        properties.insert(name.to_string(), schema);
        required.push(Value::from(name));
    };
    envelope(
        names.appid,
        json!({"type": ["string", "integer"], "description": "ZEGOCLOUD AppID, as sent (string or number)"}),
    );
    if let Some(event) = names.event {
        envelope(
            event,
            if spec.any_name {
                json!({"type": "string", "description": "the event name; also the zego-event header"})
            } else if spec.aliases.is_empty() {
                json!({"const": spec.name})
            } else {
                let names: Vec<&str> = std::iter::once(spec.name)
                    .chain(spec.aliases.iter().copied())
                    .collect();
                json!({"enum": names, "description": format!("as sent; the zego-event header says {}", spec.name)})
            },
        );
    }
    envelope(
        names.nonce,
        json!({"type": ["string", "integer"], "description": "random value of this attempt; differs between retries"}),
    );
    envelope(
        names.signature,
        json!({"type": "string", "pattern": "^[0-9a-f]{40}$",
            "description": "sha1_hex(sort([secret, timestamp, nonce]) joined); verified by the bridge"}),
    );
    envelope(
        names.timestamp,
        json!({"anyOf": [{"type": "integer"}, {"type": "string", "pattern": "^-?[0-9]+$"}],
            "description": "Unix time of this attempt: seconds, or milliseconds when 100000000000 or more"}),
    );
    for rule in spec.rules {
        let mut schema = match rule.kind {
            FieldType::Text => json!({"type": "string"}),
            FieldType::Integer => json!({"type": "integer"}),
            FieldType::TextOrInteger => json!({"type": ["string", "integer"]}),
            FieldType::TextList => json!({"type": "array", "items": {"type": "string"}}),
            FieldType::Object => json!({"type": "object"}),
            FieldType::ObjectOrEmpty => json!({"anyOf": [{"type": "object"}, {"type": "null"},
                {"const": ""}, {"type": "array", "maxItems": 0}]}),
            FieldType::ObjectList => json!({"type": "array", "items": {"type": "object"}}),
        };
        if spec.key == [rule.name] {
            schema["minLength"] = json!(1);
            schema["description"] = json!("the record key");
        } else if spec.key.contains(&rule.name) {
            schema["description"] = json!(format!(
                "the record key when it is the first non-empty of: {}",
                spec.key.join(", ")
            ));
        }
        properties.insert(rule.name.to_string(), schema);
        if rule.required {
            required.push(Value::from(rule.name));
        }
    }
    let mut schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("https://zego-kafka-bridge.invalid/{}", kind.schema_path()),
        "title": spec.title,
        "description": format!(
            "Value of a `{}` record (zego-family `{}`) on the bridge's topic: the callback as ZEGOCLOUD sent it. Unknown fields are kept, so consumers must ignore what they do not know.",
            spec.name, spec.family.name()
        ),
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": true,
    });
    if spec.key.len() > 1 {
        // One of the key fields holds a non-empty string, whichever it is.
        let one_of_them: Vec<Value> = spec
            .key
            .iter()
            .map(|k| json!({"required": [k], "properties": {*k: {"type": "string", "minLength": 1}}}))
            .collect();
        schema["anyOf"] = Value::Array(one_of_them);
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The committed schemas are exactly the generated ones. `ZEGO_WRITE_SCHEMAS=1 cargo test
    /// schemas_match` rewrites them after a catalogue change.
    #[test]
    fn schemas_match_the_catalogue() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let write = std::env::var_os("ZEGO_WRITE_SCHEMAS").is_some();
        for kind in EventKind::all() {
            let path = root.join(kind.schema_path());
            let generated = for_event(kind);
            if write {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
                std::fs::write(&path, text).unwrap();
            }
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (ZEGO_WRITE_SCHEMAS=1 writes it)", path.display())
            });
            let committed: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(committed, generated, "{} is stale", path.display());
            jsonschema::validator_for(&committed).expect("a valid JSON Schema");
        }
        let files = walk(&root.join("schemas"));
        assert_eq!(
            files,
            EventKind::all().count(),
            "a schema file the catalogue has no event for"
        );
    }

    fn walk(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path)
                } else {
                    usize::from(path.to_string_lossy().ends_with(".schema.json"))
                }
            })
            .sum()
    }
}
