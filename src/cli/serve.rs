//! `zego-kafka-bridge [--embedded-kafka]`: read the environment, build, serve until a signal.
//!
//! Start-up failures go to stderr directly, one line each: a `RUST_LOG` of `off` must not hide
//! why the process exited.

use std::net::TcpListener;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::config::Settings;
use crate::startup::{shutdown_signal, Application};

/// Partitions of the embedded cluster's topics: enough to show keying by `call_id`.
const EMBEDDED_PARTITIONS: i32 = 3;

type EmbeddedCluster = MockCluster<'static, DefaultProducerContext>;

pub async fn run(embedded_kafka: bool) -> i32 {
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    // The embedded broker is started first, so its address is a setting like any other.
    let embedded = if embedded_kafka {
        match MockCluster::new(1) {
            Ok(cluster) => {
                vars.retain(|(name, _)| name != "KAFKA_BROKERS");
                vars.push(("KAFKA_BROKERS".into(), cluster.bootstrap_servers()));
                Some(cluster)
            }
            Err(e) => {
                eprintln!("cannot start the embedded Kafka: {e}");
                return 1;
            }
        }
    } else {
        None
    };
    let settings = match Settings::from_vars(vars) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    if let Some(cluster) = &embedded {
        if let Err(e) = create_embedded_topics(cluster, &settings) {
            eprintln!("cannot create the embedded Kafka's topics: {e}");
            return 1;
        }
    }
    let listener = match TcpListener::bind(&settings.bind_addr) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("configuration error: BIND_ADDR {}: {e}", settings.bind_addr);
            return 2;
        }
    };
    // Said once the producer and the listener exist, so a refused setting is the only line.
    let serving = format!(
        "zego-kafka-bridge {} on {} path {} -> brokers {} topic {} (options {:?})",
        env!("CARGO_PKG_VERSION"),
        settings.bind_addr,
        settings.http.callback_path,
        settings.kafka.brokers,
        settings.kafka.topic,
        settings.kafka.loggable_options(),
    );
    let app = match Application::build(settings, listener) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    log::info!("{serving}");
    // `embedded` lives until here: dropping it stops the embedded broker.
    let served = app.run_until_stopped(shutdown_signal()).await;
    drop(embedded);
    match served {
        Ok(()) => 0,
        Err(e) => {
            log::error!("server error: {e}");
            1
        }
    }
}

fn create_embedded_topics(cluster: &EmbeddedCluster, settings: &Settings) -> Result<(), String> {
    for topic in settings.kafka.topics() {
        cluster
            .create_topic(topic, EMBEDDED_PARTITIONS, 1)
            .map_err(|e| e.to_string())?;
    }
    let bootstrap = cluster.bootstrap_servers();
    log::warn!(
        "--embedded-kafka: using an in-process mock Kafka at {bootstrap}; it keeps NOTHING after exit"
    );
    let program = std::env::args()
        .next()
        .unwrap_or_else(|| "zego-kafka-bridge".into());
    log::info!(
        "read it with: {program} tail --brokers {bootstrap} --topic {}",
        settings.kafka.topic
    );
    Ok(())
}
