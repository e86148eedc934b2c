//! Fuzzes the body decoder and the checks after it: any bytes, either media type, no panic.
#![no_main]

use std::time::Duration;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use zego_kafka_bridge::callback::{self, body};
use zego_kafka_bridge::config::{CallbackSettings, Secret, UnknownEvents};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let content_type = if selector & 1 == 0 { "application/json" } else { "application/x-www-form-urlencoded" };
    if let Ok(decoded) = body::decode(Bytes::copy_from_slice(rest), Some(content_type)) {
        let settings = CallbackSettings {
            path: "/zego/callback".into(),
            secrets: vec![Secret::new("secret")],
            app_ids: None,
            timestamp_tolerance: Some(Duration::from_secs(300)),
            max_body_bytes: 65536,
            unknown_events: if selector & 2 == 0 { UnknownEvents::Reject } else { UnknownEvents::Forward },
        };
        let _ = callback::verify(decoded, &settings, 1_499_676_978);
    }
});
