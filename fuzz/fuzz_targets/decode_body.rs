//! Fuzzes the body decoder and the checks after it: any bytes, either media type, no panic.
//! `cargo test` runs the same function over the committed corpus with a stable mutation loop
//! (`src/callback/fuzz_tests.rs`); this target is for longer runs on nightly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zego_kafka_bridge::testing::fuzz_decode_and_verify;

fuzz_target!(|data: &[u8]| fuzz_decode_and_verify(data));
