//! Fuzzes the body decoder and the checks after it: any bytes, either media type, no panic.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use zego_kafka_bridge::callback::{self, body};
use zego_kafka_bridge::callback::policy::{CallbackPolicy, UnknownEvents};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let content_type = if selector & 1 == 0 { "application/json" } else { "application/x-www-form-urlencoded" };
    if let Ok(decoded) = body::decode(Bytes::copy_from_slice(rest), Some(content_type)) {
        let mut policy = CallbackPolicy::with_secret("secret");
        if selector & 2 != 0 {
            policy.unknown_events = UnknownEvents::Forward;
        }
        let _ = callback::verify(decoded, &policy, 1_499_676_978);
    }
});
