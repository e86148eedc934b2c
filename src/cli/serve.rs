//! `zego-kafka-bridge [--embedded-kafka]`: read the environment, build, serve until a signal.
//!
//! Start-up failures go to stderr directly, one line each: a `RUST_LOG` of `off` must not hide
//! why the process exited.

use std::net::{TcpListener, ToSocketAddrs};

use tokio::net::TcpSocket;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::config::Settings;
use crate::startup::{shutdown_signal, Application};

/// Partitions of the embedded cluster's topics: enough to show keying by `call_id`.
const EMBEDDED_PARTITIONS: i32 = 3;

type EmbeddedCluster = MockCluster<'static, DefaultProducerContext>;

/// Serves; `embedded_kafka` is `Some(fixed port or none)` with `--embedded-kafka`.
pub async fn run(embedded_kafka: Option<Option<u16>>) -> i32 {
    let mut vars = match crate::config::environment() {
        Ok(vars) => vars,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    // The embedded broker is started first, so its address is a setting like any other.
    let embedded = match embedded_kafka {
        None => None,
        Some(fixed_port) => match MockCluster::new(1) {
            Ok(cluster) => {
                vars.retain(|(name, _)| name != "KAFKA_BROKERS");
                vars.push(("KAFKA_BROKERS".into(), cluster.bootstrap_servers()));
                let reached_at = match fixed_port {
                    Some(port) => match forward_fixed_port(port, cluster.bootstrap_servers()) {
                        Ok(address) => address,
                        Err(e) => {
                            eprintln!("configuration error: --embedded-kafka-port {port}: {e}");
                            return 2;
                        }
                    },
                    None => cluster.bootstrap_servers(),
                };
                Some((cluster, reached_at))
            }
            Err(e) => {
                eprintln!("cannot start the embedded Kafka: {e}");
                return 1;
            }
        },
    };
    let unknown = crate::config::unknown_variables(&vars);
    let settings = match Settings::from_vars(vars) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    if let Some((cluster, reached_at)) = &embedded {
        if let Err(e) = create_embedded_topics(cluster, reached_at, &settings) {
            eprintln!("cannot create the embedded Kafka's topics: {e}");
            return 1;
        }
    }
    let listener = match listen(&settings.bind_addr) {
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
    let described = settings.describe();
    let app = match Application::build(settings, listener) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    log::info!("{serving}");
    log::info!("{}", described);
    for (name, closest) in unknown {
        log::warn!(
            "{name} is not a variable the bridge reads (did you mean {closest}?): it has no effect"
        );
    }
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

/// Connections the kernel queues for the bridge before it accepts them. std's `bind` asks for
/// 128: a burst beyond that (ZEGOCLOUD's retries after an outage, many clients at once) is
/// dropped by the kernel before the bridge sees it. actix's own `bind` asks for 1024-2048.
const LISTEN_BACKLOG: u32 = 2048;

/// The listener for `BIND_ADDR`, with `LISTEN_BACKLOG`.
fn listen(bind_addr: &str) -> std::io::Result<TcpListener> {
    let addr = bind_addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("resolves to no address"))?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)?.into_std()
}

/// Forwards connections from 127.0.0.1:`port` to the embedded broker. Clients that bootstrap
/// there learn the broker's current address from its metadata, so after a restart (a new
/// broker on a new port) they find it again through the same fixed port.
fn forward_fixed_port(port: u16, broker: String) -> std::io::Result<String> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    actix_web::rt::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let broker = broker.clone();
            actix_web::rt::spawn(async move {
                if let Ok(mut upstream) = tokio::net::TcpStream::connect(&broker).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    Ok(format!("127.0.0.1:{port}"))
}

fn create_embedded_topics(
    cluster: &EmbeddedCluster,
    bootstrap: &str,
    settings: &Settings,
) -> Result<(), String> {
    let refused = settings.refused.as_ref().map(|r| r.topic.as_str());
    for topic in settings.kafka.topics().chain(refused) {
        cluster
            .create_topic(topic, EMBEDDED_PARTITIONS, 1)
            .map_err(|e| e.to_string())?;
    }
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
