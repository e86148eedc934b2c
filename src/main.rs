//! Entry point: check the log filter, parse the command line, then serve or run one of the tools.

use clap::Parser;
use zego_kafka_bridge::cli::{self, Cli, Command};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(why) = zego_kafka_bridge::logging::init() {
        // Not through the logger: it is the thing that could not be set up.
        eprintln!("configuration error: {why}");
        std::process::exit(2);
    }
    let code = match cli.command {
        None => cli::serve::run(cli.embedded_kafka.then_some(cli.embedded_kafka_port)).await,
        Some(Command::Serve {
            embedded_kafka,
            embedded_kafka_port,
        }) => {
            let port = embedded_kafka_port.or(cli.embedded_kafka_port);
            let embedded = (embedded_kafka || cli.embedded_kafka).then_some(port);
            cli::serve::run(embedded).await
        }
        Some(Command::Simulate(args)) => cli::simulate::run(args).await,
        Some(Command::Tail(args)) => cli::tail::run(args).await,
        Some(Command::Healthcheck(args)) => cli::healthcheck::run(args).await,
        Some(Command::Sign(args)) => cli::signing::sign(args),
        Some(Command::Verify(args)) => cli::signing::check(args),
        Some(Command::Spool(args)) => cli::spool::run(args).await,
        Some(Command::Replay(args)) => cli::replay::run(args).await,
        Some(Command::Completions { shell }) => cli::completions(shell),
    };
    std::process::exit(code);
}
