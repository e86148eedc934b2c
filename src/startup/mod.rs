//! Builds the application on a given listener (tests pass port 0), runs it, and shuts it down.
//!
//! Shutdown, in order (after mini-redis): a shutdown signal arrives → `/readyz` turns 503 so load
//! balancers stop routing here → the server stops accepting and gives every callback in flight
//! up to the delivery timeout to get its ack (or its 503) → the producer is flushed so nothing
//! acked-but-unreported is dropped → the process exits.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::web;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::dedup::DedupCache;
use crate::deliver::refused::RefusedKeeper;
use crate::deliver::Delivery;
use crate::metrics::Metrics;
use crate::publish::topics::{ensure_topics, Created};
use crate::publish::Publisher;
use crate::refusals::{describe, RefusalReport};
use crate::routes::state::AppState;
use crate::spool::Spool;

mod head_timer;
mod http_server;

/// How often the broker is asked for metadata, and how long one ask may take.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often refused callbacks are summed up in the log (only when there were any).
const REFUSAL_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// Why the application could not start: one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A setting that only fails when used (a certificate file, a librdkafka property).
    #[error("configuration error: {0}")]
    Config(String),
    #[error("cannot serve on the listener: {0}")]
    Io(#[from] std::io::Error),
}

/// A built, not yet running, bridge.
pub struct Application {
    server: Server,
    port: u16,
    state: web::Data<AppState>,
    /// How long in-flight callbacks get at shutdown; also the producer's final flush.
    drain_timeout: Duration,
}

impl Application {
    /// Creates the producer and the HTTP server on `listener`. Must run inside an actix system.
    pub fn build(settings: Settings, listener: TcpListener) -> Result<Self, StartupError> {
        // Read the certificate before anything else: a bad path is a start-up error.
        let tls = settings
            .tls
            .as_ref()
            .map(crate::tls::server_config)
            .transpose()
            .map_err(StartupError::Config)?;
        let metrics = Arc::new(Metrics::new());
        metrics.in_flight_limit.set(settings.max_in_flight as i64);
        let drain_timeout = settings.kafka.delivery_timeout + Duration::from_secs(2);
        let port = listener.local_addr()?.port();
        let buffered = Semaphore::new(settings.http.max_buffered_bytes);
        // The spool before the producer: a bad SPOOL_DIR is the one line shown, not buried
        // under librdkafka's complaints about a broker that is down at start.
        let (spool, held) = match &settings.spool {
            Some(spool) => {
                let (spool, held) =
                    Spool::open(spool, metrics.clone()).map_err(StartupError::Config)?;
                (Some(Arc::new(spool)), held)
            }
            None => (None, Vec::new()),
        };
        let publisher =
            Publisher::new(&settings.kafka, metrics.clone()).map_err(StartupError::Config)?;
        let dedup = DedupCache::new(settings.dedup_ttl, settings.dedup_capacity);
        // What the spool holds is remembered as spooled: a retry of it is a duplicate.
        dedup.remember_spooled(held);
        let publisher = Arc::new(publisher);
        let refused = settings
            .refused
            .as_ref()
            .map(|r| RefusedKeeper::new(r, publisher.clone(), metrics.clone()));
        let delivery = Delivery::new(
            publisher,
            dedup,
            settings.max_in_flight,
            metrics.clone(),
            spool,
            refused,
        );
        let state = web::Data::new(AppState {
            buffered,
            limits: settings.http,
            policy: settings.policy,
            kafka: settings.kafka,
            delivery,
            metrics,
            refusal_log: crate::refusals::RefusalLog::new(
                crate::routes::state::REFUSAL_LOG_INTERVAL,
            ),
        });
        let server = http_server::serve(listener, tls, state.clone(), drain_timeout)?;
        Ok(Application {
            server,
            port,
            state,
            drain_timeout,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The shared publisher: tests raise librdkafka faults through it.
    #[cfg(any(test, feature = "test-support"))]
    pub fn publisher(&self) -> Arc<Publisher> {
        self.state.delivery.publisher.clone()
    }

    /// Serves until `shutdown` completes, then drains and flushes (see the module comment).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let Application {
            server,
            state,
            drain_timeout,
            ..
        } = self;
        let probe = spawn_broker_probe(state.clone());
        let topics = spawn_topic_creation(&state);
        let delivery = &state.delivery;
        let drain = delivery.spool.clone().map(|spool| {
            let (publisher, readiness) = (delivery.publisher.clone(), delivery.readiness.clone());
            let (missing, back) = (readiness.clone(), readiness.clone());
            tokio::spawn(spool.drain(
                publisher,
                move || readiness.broker_reachable(),
                move |topic| missing.topic_missing(topic),
                move || back.topics_back(),
            ))
        });
        let reporter = spawn_refusal_reporter(state.clone());
        let handle = server.handle();
        let mut server = std::pin::pin!(server);
        let served = tokio::select! {
            served = &mut server => served,
            () = shutdown => {
                state.delivery.readiness.begin_shutdown();
                log::info!(
                    "shutting down: no new connections; callbacks in flight get up to {}s",
                    drain_timeout.as_secs()
                );
                // The server future must keep being polled to carry out the stop.
                let ((), served) = tokio::join!(handle.stop(true), server);
                served
            }
        };
        probe.abort();
        if let Some(topics) = topics {
            topics.abort();
        }
        reporter.abort();
        if let Some(drain) = drain {
            // What it was forwarding stays in the spool until acknowledged: sent again next start.
            drain.abort();
        }
        if let Some(spool) = state.delivery.spool.clone() {
            let _ = tokio::task::spawn_blocking(move || spool.close()).await;
        }
        log::info!(
            "since start: {}",
            describe(&state.metrics.refusals_by_code())
        );
        let publisher = state.delivery.publisher.clone();
        let _ = tokio::task::spawn_blocking(move || publisher.flush_blocking(drain_timeout)).await;
        log::info!("stopped");
        served
    }
}

/// Every topic the bridge writes: the callback topics and the refused one, each once.
fn written_topics(state: &AppState) -> Vec<String> {
    let mut topics: Vec<String> = state.kafka.topics().map(String::from).collect();
    if let Some(refused) = &state.delivery.refused {
        topics.push(refused.topic().to_string());
    }
    topics.sort();
    topics.dedup();
    topics
}

/// With `KAFKA_CREATE_TOPICS=true`: creates the topics (callback topics and the refused one)
/// until it succeeds, every 5 s, saying once why it cannot (a broker down at start, missing
/// rights). Until the topic exists `/readyz` answers 503, as the probe finds it missing.
fn spawn_topic_creation(state: &web::Data<AppState>) -> Option<JoinHandle<()>> {
    let spec = state.kafka.create_topics?;
    let kafka = state.kafka.clone();
    let topics = written_topics(state);
    Some(tokio::spawn(async move {
        let mut said = None;
        loop {
            match ensure_topics(&kafka, spec, &topics, TOPIC_CREATE_TIMEOUT).await {
                Ok(outcomes) => {
                    for (topic, outcome) in outcomes {
                        match outcome {
                            Created::Created => log::info!(
                                "created topic {topic} ({} partitions, replication {})",
                                spec.partitions,
                                if spec.replication < 0 {
                                    "the broker's default".to_string()
                                } else {
                                    spec.replication.to_string()
                                }
                            ),
                            Created::Existed => log::info!("topic {topic} exists"),
                        }
                    }
                    return;
                }
                Err(why) => {
                    if said.as_ref() != Some(&why) {
                        log::error!("KAFKA_CREATE_TOPICS: {why}; retrying every 5 s (/readyz answers 503 until the topic exists)");
                        said = Some(why);
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }))
}

/// How long one attempt to create the topics may take.
const TOPIC_CREATE_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the broker for metadata every second, off the workers; `/readyz` reads the result.
fn spawn_broker_probe(state: web::Data<AppState>) -> JoinHandle<()> {
    // The topics besides the main one, which `probe_blocking` asks for itself.
    let mut others = written_topics(&state);
    others.retain(|t| *t != state.kafka.topic);
    tokio::spawn(async move {
        let mut was_reachable = None;
        loop {
            let probing = state.clone();
            let asked = others.clone();
            let reachable = tokio::task::spawn_blocking(move || {
                let publisher = &probing.delivery.publisher;
                if !publisher.probe_blocking(&probing.kafka.topic, PROBE_TIMEOUT) {
                    return false;
                }
                // The main topic answers; which of the others exist (records for a missing
                // one are answered 500 at once, or set aside by the spool's drain).
                if let Some(missing) = publisher.missing_topics_blocking(&asked, PROBE_TIMEOUT) {
                    let (gone, back) = probing.delivery.readiness.set_missing_topics(missing);
                    for topic in gone {
                        log::error!(
                            "topic {topic} does not exist: callbacks routed to it are answered 500 publish_failed (create it, or set KAFKA_CREATE_TOPICS=true)"
                        );
                    }
                    for topic in back {
                        log::info!("topic {topic} exists again: callbacks routed to it are published");
                    }
                }
                true
            })
            .await
            .unwrap_or(false);
            if reachable {
                state.delivery.readiness.probe_succeeded();
            } else {
                state.delivery.readiness.probe_failed();
            }
            state.delivery.publisher.replace_if_stalled(reachable);
            state.metrics.broker_reachable.set(i64::from(reachable));
            if was_reachable != Some(reachable) {
                match reachable {
                    true => log::info!("broker reachable: topic {} answers", state.kafka.topic),
                    false => log::warn!(
                        "broker unreachable or topic {} missing: /readyz answers 503",
                        state.kafka.topic
                    ),
                }
                was_reachable = Some(reachable);
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    })
}

/// Logs how many callbacks were refused, by code, every `REFUSAL_REPORT_INTERVAL`: during an
/// outage this is the number ZEGOCLOUD is retrying, or has given up on.
fn spawn_refusal_reporter(state: web::Data<AppState>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut report = RefusalReport::default();
        loop {
            tokio::time::sleep(REFUSAL_REPORT_INTERVAL).await;
            if let Some(recent) = report.since_last(&state.metrics.refusals_by_code()) {
                log::warn!(
                    "{recent} in the last {}s",
                    REFUSAL_REPORT_INTERVAL.as_secs()
                );
            }
        }
    })
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => log::info!("SIGINT received"),
        () = terminate => log::info!("SIGTERM received"),
    }
}
