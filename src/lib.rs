//! zego-kafka-bridge: ZEGOCLOUD callbacks → verified → Kafka, 200 only after the broker's ack.
//!
//! Data flows one way: bytes ([`callback::body`]) → verified [`callback::Callback`] →
//! [`publish::Record`] → [`deliver`] (dedupe, spool or [`publish::Publisher`] ack) → HTTP
//! answer ([`routes`]). [`startup`] wires
//! it on a listener; [`config`] reads the environment and hands each part its own settings;
//! [`cli`] holds the `simulate`, `tail`, `healthcheck` and `--embedded-kafka` tools. The module
//! map, and why each boundary is where it is, is in `docs/architecture.md`.

pub mod callback;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dedup;
pub mod deliver;
pub mod kafka_log;
pub mod logging;
pub mod metrics;
pub mod publish;
pub mod readiness;
pub mod refusals;
pub mod routes;
pub mod secret;
pub mod spool;
pub mod startup;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod tls;
