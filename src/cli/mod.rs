//! The command line: serve (default), `simulate`, `tail`, `healthcheck`, `sign`, `verify`,
//! `spool`, `replay`, `completions`.

pub mod healthcheck;
pub mod output;
pub mod replay;
pub mod serve;
pub mod signing;
pub mod simulate;
pub mod spool;
pub mod tail;
pub mod tls_client;
pub mod when;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

#[derive(Parser, Debug)]
#[command(
    name = "zego-kafka-bridge",
    version,
    about = "ZEGOCLOUD callbacks into Kafka, answering 200 only after the broker's ack",
    after_help = crate::config::variables_help()
)]
pub struct Cli {
    /// Serve against an in-process mock Kafka (keeps nothing; for trying it out).
    #[arg(long)]
    pub embedded_kafka: bool,
    /// With --embedded-kafka: reach the embedded Kafka at this fixed port, so a `tail` keeps
    /// working across restarts of the bridge.
    #[arg(long, requires = "embedded_kafka")]
    pub embedded_kafka_port: Option<u16>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve callbacks (the default when no subcommand is given).
    Serve {
        /// Serve against an in-process mock Kafka (keeps nothing; for trying it out).
        #[arg(long)]
        embedded_kafka: bool,
        /// With --embedded-kafka: reach the embedded Kafka at this fixed port, so a `tail`
        /// keeps working across restarts of the bridge.
        #[arg(long, requires = "embedded_kafka")]
        embedded_kafka_port: Option<u16>,
    },
    /// Send correctly signed callbacks, retrying like ZEGOCLOUD.
    Simulate(simulate::SimulateArgs),
    /// Print the records of a topic: key, headers, value.
    Tail(tail::TailArgs),
    /// GET /healthz on the configured address; exit 0 when healthy (for container healthchecks).
    Healthcheck(healthcheck::HealthcheckArgs),
    /// Print the signature ZEGOCLOUD would send for a timestamp and nonce.
    Sign(signing::SignArgs),
    /// Check a callback body the way the bridge does: which secret signed it, or why it is refused.
    Verify(signing::VerifyArgs),
    /// Publish refused callbacks kept in KAFKA_TOPIC_REFUSED that pass the current
    /// configuration (after a secret or app id was fixed); `--dry-run` to look first.
    Replay(replay::ReplayArgs),
    /// An orphaned spool (its replica is gone): `spool inspect --dir DIR`, `spool drain --dir DIR`.
    Spool(spool::SpoolArgs),
    /// Print a shell completion script: `zego-kafka-bridge completions bash > /etc/bash_completion.d/zego-kafka-bridge`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: Shell,
    },
}

/// Writes the completion script for `shell` to stdout (quietly stopping if stdout closes).
pub fn completions(shell: Shell) -> i32 {
    let mut stdout = output::Stdout::default();
    for line in completion_script(shell).lines() {
        if stdout.line(line).is_closed() {
            break;
        }
    }
    0
}

/// The completion script for `shell`. clap_complete's bash script names the subcommands'
/// cases with every `-` of a hyphenated binary name turned into `__subcmd__` while it builds
/// the name it matches with `__` (clap-rs/clap#6421): no subcommand completed anything. The
/// case labels are rewritten to the name it builds.
pub fn completion_script(shell: Shell) -> String {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "zego-kafka-bridge", &mut script);
    let script = String::from_utf8_lossy(&script).into_owned();
    match shell {
        Shell::Bash => script.replace("zego__subcmd__kafka__subcmd__bridge", "zego__kafka__bridge"),
        _ => script,
    }
}
