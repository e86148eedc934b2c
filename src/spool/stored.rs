//! A record as the previous release's spool kept it (read only by the migration, `legacy.rs`):
//! everything needed to publish it exactly as it would have been published at once (topic,
//! key, value, headers), plus its place in that spool.
//!
//! Payload: `meta length (u32 LE) | meta (JSON) | value bytes`; the value stays raw bytes.

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::publish::{Record, SpoolStamp};

#[derive(Serialize, Deserialize)]
struct Meta<'a> {
    seq: u64,
    spooled_at_ms: i64,
    topic: Cow<'a, str>,
    key: Option<Cow<'a, str>>,
    event: Cow<'a, str>,
    family: Option<Cow<'a, str>>,
    appid: Cow<'a, str>,
    callback_id: Cow<'a, str>,
    received_at_ms: i64,
    ids: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

/// `record` stamped with `stamp`, as a frame payload: what the previous release wrote (the
/// migration's tests write old spools with it).
#[cfg(test)]
pub fn encode(record: &Record, stamp: SpoolStamp) -> Vec<u8> {
    let meta = Meta {
        seq: stamp.seq,
        spooled_at_ms: stamp.at_ms,
        topic: Cow::Borrowed(&record.topic),
        key: record.key.as_deref().map(Cow::Borrowed),
        event: Cow::Borrowed(&record.event),
        family: record.family.map(|f| Cow::Borrowed(f.name())),
        appid: Cow::Borrowed(&record.appid),
        callback_id: Cow::Borrowed(&record.callback_id),
        received_at_ms: record.received_at_ms,
        ids: record
            .ids
            .iter()
            .map(|(h, v)| (Cow::Borrowed(h.as_ref()), Cow::Borrowed(v.as_str())))
            .collect(),
    };
    // Serialising strings and numbers cannot fail.
    let meta = serde_json::to_vec(&meta).unwrap_or_default();
    let mut payload = Vec::with_capacity(4 + meta.len() + record.value.len());
    payload.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    payload.extend_from_slice(&meta);
    payload.extend_from_slice(&record.value);
    payload
}

/// The record a payload holds, stamped; `None` if the payload is not one (an intact frame with a
/// payload this version cannot read: reported by the caller, never published half-read).
pub fn decode(payload: &[u8]) -> Option<Record> {
    let (meta, value) = split(payload)?;
    let value = Bytes::copy_from_slice(value);
    // Family names are the catalogue's: map back to its static names.
    let family = meta
        .family
        .as_deref()
        .and_then(crate::callback::catalogue::Family::from_name);
    Some(Record {
        topic: meta.topic.into_owned(),
        key: meta.key.map(Cow::into_owned),
        value,
        event: meta.event.into_owned(),
        family,
        ids: meta
            .ids
            .into_iter()
            .map(|(h, v)| (Cow::Owned(h.into_owned()), v.into_owned()))
            .collect(),
        appid: meta.appid.into_owned(),
        callback_id: meta.callback_id.into_owned(),
        received_at_ms: meta.received_at_ms,
        spooled: Some(SpoolStamp {
            seq: meta.seq,
            at_ms: meta.spooled_at_ms,
        }),
    })
}

/// A payload's metadata, read, and its value bytes.
fn split(payload: &[u8]) -> Option<(Meta<'_>, &[u8])> {
    let meta_len = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
    let meta = serde_json::from_slice(payload.get(4..4 + meta_len)?).ok()?;
    Some((meta, payload.get(4 + meta_len..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_with_its_stamp() {
        let record = Record {
            topic: "t".into(),
            key: Some("call-1".into()),
            value: Bytes::from_static(b"{\"a\":\"\xc3\xa9\"}"),
            event: "call_accept".into(),
            family: Some(crate::callback::catalogue::Family::Call),
            ids: vec![(Cow::Borrowed("zego-stream-seq"), "17".into())],
            appid: "1".into(),
            callback_id: "abc".into(),
            received_at_ms: 5,
            spooled: None,
        };
        let stamp = SpoolStamp { seq: 42, at_ms: 7 };
        let back = decode(&encode(&record, stamp)).unwrap();
        assert_eq!(back.spooled, Some(stamp));
        assert_eq!(
            (back.topic, back.key, back.value, back.family, back.ids),
            (
                record.topic,
                record.key,
                record.value,
                record.family,
                record.ids
            )
        );
        assert!(decode(b"\xff\xff\xff\xff{}").is_none());
        assert!(decode(b"").is_none());
    }
}
