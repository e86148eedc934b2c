//! How `tail` shows a record: as text for people or one JSON object a line, and never with a
//! control character a signed field could use to drive the reader's terminal.

use rdkafka::message::{BorrowedMessage, Headers, Message};
use serde_json::{json, Value};

use super::TailArgs;

pub fn header(message: &BorrowedMessage<'_>, name: &str) -> Option<String> {
    message.headers()?.iter().find_map(|h| {
        (h.key == name).then(|| String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())
    })
}

pub fn wanted(message: &BorrowedMessage<'_>, args: &TailArgs) -> bool {
    let event_ok = args
        .event
        .as_ref()
        .is_none_or(|event| header(message, "zego-event").as_ref() == Some(event));
    let call_ok = args.call_id.as_ref().is_none_or(|call| {
        message.key().map(String::from_utf8_lossy).as_deref() == Some(call.as_str())
    });
    event_ok && call_ok
}

/// Control characters (ESC, CSI, newlines, DEL, C1) written as `\u{1b}` escapes: a signed
/// field's text must not be able to drive the reader's terminal or forge lines.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// JSON text with the control characters serde_json leaves as they are (DEL and C1, which
/// some terminals obey) written as `\u` escapes: the same JSON value, harmless on a terminal.
pub fn printable_json(json: String) -> String {
    if !json.chars().any(char::is_control) {
        return json;
    }
    json.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\u{:04x}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

pub fn as_text(message: &BorrowedMessage<'_>) -> String {
    let key = message
        .key()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let key = printable(&key);
    let mut text = format!(
        "{}/{}/{} key={key}",
        message.topic(),
        message.partition(),
        message.offset()
    );
    for h in message.headers().iter().flat_map(|headers| headers.iter()) {
        let value = String::from_utf8_lossy(h.value.unwrap_or_default());
        text.push_str(&format!("\n  {}: {}", printable(h.key), printable(&value)));
    }
    let value = message
        .payload()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    text.push_str(&format!("\n  {}", printable(&value)));
    text
}

/// One record as JSON; the value embedded as JSON when it is, as a string otherwise.
pub fn as_json(message: &BorrowedMessage<'_>) -> Value {
    let headers: serde_json::Map<String, Value> = message
        .headers()
        .iter()
        .flat_map(|headers| headers.iter())
        .map(|h| {
            let value = String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned();
            (h.key.to_string(), Value::String(value))
        })
        .collect();
    let payload = message.payload().unwrap_or_default();
    let value = serde_json::from_slice(payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()));
    json!({
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "key": message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        "headers": headers,
        "value": value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(printable("call-1"), "call-1");
        let shown = printable("a\u{1b}[31mred\u{9b}2J\nforged line");
        assert!(!shown.chars().any(char::is_control), "{shown}");
        assert_eq!(shown, "a\\u{1b}[31mred\\u{9b}2J\\u{a}forged line");
        // JSON: C0 is escaped by serde_json already; DEL and C1 here; the value is unchanged.
        let value = serde_json::json!({"k": "x\u{1b}y\u{9b}z\u{7f}"});
        let line = printable_json(value.to_string());
        assert!(!line.chars().any(char::is_control), "{line}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&line).unwrap(),
            value
        );
    }
}
