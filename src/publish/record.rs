//! A verified callback as a Kafka record: topic, key, value and headers (README, "The Kafka record").

use std::borrow::Cow;

use bytes::Bytes;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use crate::callback::catalogue::Family;
use crate::callback::Callback;

pub const HEADER_EVENT: &str = "zego-event";
pub const HEADER_FAMILY: &str = "zego-family";
pub const HEADER_APPID: &str = "zego-appid";
pub const HEADER_CALLBACK_ID: &str = "zego-callback-id";
pub const HEADER_CONTENT_TYPE: &str = "content-type";
pub const HEADER_RECEIVED_AT: &str = "received-at";
pub const HEADER_SPOOL_SEQ: &str = "zego-spool-seq";
pub const HEADER_SPOOLED_AT: &str = "zego-spooled-at";
const JSON: &str = "application/json";

/// What the producer can send: a verified callback's `Record`, or a refused callback kept for
/// replay (`deliver::refused`).
pub trait Outgoing {
    fn topic(&self) -> &str;
    /// The borrowed form librdkafka's producer takes.
    fn to_future_record(&self) -> FutureRecord<'_, str, [u8]>;
}

/// One record to publish.
#[derive(Debug, Clone)]
pub struct Record {
    pub topic: String,
    /// The event's natural key (`call_id`, `room_id`, …); `None` only for a forwarded unknown
    /// event that has none.
    pub key: Option<String>,
    pub value: Bytes,
    pub event: String,
    /// `None` for a forwarded event outside the catalogue.
    pub family: Option<Family>,
    /// The event's ordering and dedupe ids, as `(header, value)`.
    pub ids: Vec<(Cow<'static, str>, String)>,
    pub appid: String,
    pub callback_id: String,
    /// Unix milliseconds when the request arrived.
    pub received_at_ms: i64,
    /// Set when the record went through the spool (`SPOOL_DIR`) on its way to Kafka.
    pub spooled: Option<SpoolStamp>,
}

/// Where a record sat in the spool: its place in the spool's order and when it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolStamp {
    pub seq: u64,
    pub at_ms: i64,
}

impl Record {
    pub fn new(callback: Callback, topic: String, received_at_ms: i64) -> Self {
        Record {
            topic,
            family: callback.family(),
            key: callback.key,
            ids: callback
                .headers
                .into_iter()
                .map(|(header, value)| (Cow::Borrowed(header), value))
                .collect(),
            value: callback.value,
            event: callback.event,
            appid: callback.appid,
            callback_id: callback.id,
            received_at_ms,
            spooled: None,
        }
    }

    pub fn headers(&self) -> OwnedHeaders {
        let received_at = self.received_at_ms.to_string();
        let spooled = self
            .spooled
            .map(|stamp| (stamp.seq.to_string(), stamp.at_ms.to_string()));
        let spool_headers = spooled.iter().flat_map(|(seq, at)| {
            [
                (HEADER_SPOOL_SEQ, seq.as_str()),
                (HEADER_SPOOLED_AT, at.as_str()),
            ]
        });
        [
            (HEADER_EVENT, self.event.as_str()),
            (HEADER_APPID, self.appid.as_str()),
            (HEADER_CALLBACK_ID, self.callback_id.as_str()),
            (HEADER_CONTENT_TYPE, JSON),
            (HEADER_RECEIVED_AT, received_at.as_str()),
        ]
        .into_iter()
        .chain(self.family.map(|family| (HEADER_FAMILY, family.name())))
        .chain(
            self.ids
                .iter()
                .map(|(header, value)| (header.as_ref(), value.as_str())),
        )
        .chain(spool_headers)
        .fold(
            OwnedHeaders::new_with_capacity(8 + self.ids.len()),
            |headers, (key, value)| {
                headers.insert(Header {
                    key,
                    value: Some(value),
                })
            },
        )
    }
}

impl Outgoing for Record {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn to_future_record(&self) -> FutureRecord<'_, str, [u8]> {
        let record = FutureRecord::to(&self.topic)
            .payload(&self.value[..])
            .headers(self.headers());
        match &self.key {
            Some(key) => record.key(key.as_str()),
            None => record,
        }
    }
}
