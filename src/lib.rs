//! zego-kafka-bridge: ZEGOCLOUD call-invitation callbacks → verified → Kafka, 200 only after the ack.
//!
//! Data flows one way: bytes ([`callback::body`]) → verified [`callback::Callback`] →
//! [`publish::Record`] → [`publish::Publisher`] ack → HTTP answer ([`routes`]).
//! [`startup`] wires it on a listener; [`config`] reads the environment; [`cli`] holds the
//! `simulate`, `tail`, `healthcheck` and `--embedded-kafka` tools.

pub mod callback;
pub mod cli;
pub mod config;
pub mod dedup;
pub mod metrics;
pub mod publish;
pub mod refusals;
pub mod routes;
pub mod startup;
pub mod state;
pub mod tls;
