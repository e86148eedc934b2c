//! `healthcheck`: GET /healthz, exit 0 or 1, so a container image needs no curl.

use std::time::Duration;

use clap::Args;

#[derive(Args, Debug)]
pub struct HealthcheckArgs {
    /// Address the bridge listens on; 0.0.0.0 is asked on 127.0.0.1.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0:8080")]
    pub addr: String,
}

pub async fn run(args: HealthcheckArgs) -> i32 {
    let addr = args
        .addr
        .replacen("0.0.0.0", "127.0.0.1", 1)
        .replacen("[::]", "[::1]", 1);
    let url = format!("http://{addr}/healthz");
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(3))
        .finish();
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => 0,
        Ok(response) => {
            eprintln!("{url}: {}", response.status());
            1
        }
        Err(e) => {
            eprintln!("{url}: {e}");
            1
        }
    }
}
