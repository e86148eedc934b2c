//! `zego-kafka-bridge [--embedded-kafka]`: read the environment, build, serve until a signal.

use std::net::TcpListener;

use rdkafka::mocking::MockCluster;

use crate::config::Settings;
use crate::startup::{shutdown_signal, Application};

/// Partitions of the embedded cluster's topics: enough to show keying by `call_id`.
const EMBEDDED_PARTITIONS: i32 = 3;

pub async fn run(embedded_kafka: bool) -> i32 {
    let mut settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            log::error!("{e}");
            return 2;
        }
    };
    // Held until the server stops: dropping it stops the embedded brokers.
    let _embedded = if embedded_kafka {
        match start_embedded(&mut settings) {
            Ok(cluster) => Some(cluster),
            Err(e) => {
                log::error!("cannot start the embedded Kafka: {e}");
                return 1;
            }
        }
    } else {
        None
    };
    let listener = match TcpListener::bind(&settings.bind_addr) {
        Ok(listener) => listener,
        Err(e) => {
            log::error!("configuration error: BIND_ADDR {}: {e}", settings.bind_addr);
            return 2;
        }
    };
    log::info!(
        "zego-kafka-bridge {} on {} path {} -> brokers {} topic {} (options {:?})",
        env!("CARGO_PKG_VERSION"),
        settings.bind_addr,
        settings.callback.path,
        settings.kafka.brokers.as_deref().unwrap_or("-"),
        settings.kafka.topic,
        settings.kafka.loggable_options(),
    );
    let app = match Application::build(settings, listener) {
        Ok(app) => app,
        Err(e) => {
            log::error!("{e}");
            return 2;
        }
    };
    match app.run_until_stopped(shutdown_signal()).await {
        Ok(()) => 0,
        Err(e) => {
            log::error!("server error: {e}");
            1
        }
    }
}

fn start_embedded(
    settings: &mut Settings,
) -> Result<MockCluster<'static, rdkafka::producer::DefaultProducerContext>, String> {
    let cluster = MockCluster::new(1).map_err(|e| e.to_string())?;
    let topics =
        std::iter::once(&settings.kafka.topic).chain(settings.kafka.topic_overrides.values());
    for topic in topics {
        cluster
            .create_topic(topic, EMBEDDED_PARTITIONS, 1)
            .map_err(|e| e.to_string())?;
    }
    let bootstrap = cluster.bootstrap_servers();
    log::warn!("--embedded-kafka: using an in-process mock Kafka at {bootstrap}; it keeps NOTHING after exit");
    log::info!(
        "read it with: zego-kafka-bridge tail --brokers {bootstrap} --topic {}",
        settings.kafka.topic
    );
    settings.kafka.brokers = Some(bootstrap);
    Ok(cluster)
}
