//! One integration binary: the app on port 0 against librdkafka's mock cluster.

mod callback;
#[path = "../support/certs.rs"]
mod certs;
mod connections;
mod dedup;
mod events;
mod families;
mod faults;
mod helpers;
mod hostile;
mod http_fuzz;
mod operations;
mod refusals;
mod spool;
