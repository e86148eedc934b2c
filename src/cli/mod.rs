//! The command line: serve (default), `simulate`, `tail`, `healthcheck`.

pub mod healthcheck;
pub mod serve;
pub mod simulate;
pub mod tail;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "zego-kafka-bridge",
    version,
    about = "ZEGOCLOUD call callbacks into Kafka, 200 only after the broker's ack"
)]
pub struct Cli {
    /// Run against an in-process mock Kafka cluster (keeps nothing; for trying it out).
    #[arg(long, global = true)]
    pub embedded_kafka: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve callbacks (the default when no subcommand is given).
    Serve {
        #[arg(long)]
        embedded_kafka: bool,
    },
    /// Send correctly signed callbacks, retrying like ZEGOCLOUD.
    Simulate(simulate::SimulateArgs),
    /// Print each record of a topic: key, headers, value.
    Tail(tail::TailArgs),
    /// GET /healthz on the configured address; exit 0 when healthy (for container healthchecks).
    Healthcheck(healthcheck::HealthcheckArgs),
}
