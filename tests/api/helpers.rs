//! Test harness: the app on port 0 against librdkafka's mock cluster, a signer, a topic reader.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use tokio::sync::oneshot;

pub use zego_kafka_bridge::callback::catalogue::Product;
use zego_kafka_bridge::config::Settings;
use zego_kafka_bridge::publish::Publisher;
use zego_kafka_bridge::startup::Application;
pub use zego_kafka_bridge::testing::{event_body, resign, signed, SECRET};
use zego_kafka_bridge::testing::{mock_cluster, unique_topic};

/// The default topic's name as tests write it; each app gets its own copy (see `topic`).
pub const TOPIC: &str = "zego-callbacks";
pub const PARTITIONS: i32 = 3;
/// Short, so fault tests finish quickly; every timing assertion is relative to it.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_millis(2000);
/// For tests that slow the broker down on purpose: wide enough that a slow round trip on a
/// busy machine never turns into a delivery timeout.
pub const PATIENT_DELIVERY: (&str, &str) = ("KAFKA_DELIVERY_TIMEOUT_MS", "30000");
/// How long an awaited condition may take before a test gives up: generous, because it is
/// only reached when something is wrong.
pub const WAIT_LIMIT: Duration = Duration::from_secs(30);

pub struct TestApp {
    pub address: String,
    pub cluster: MockCluster<'static, DefaultProducerContext>,
    pub client: awc::Client,
    pub callback_url: String,
    pub publisher: Arc<Publisher>,
    /// Appended to every topic name this app uses, so no two tests share a topic.
    topic_suffix: String,
    shutdown: std::sync::Mutex<Option<oneshot::Sender<()>>>,
    pub stopped: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// A received answer: status and JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

/// One record read back from the topic.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: Vec<u8>,
    pub headers: HashMap<String, String>,
}

impl Consumed {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.value).expect("record value is JSON")
    }
}

/// A directory of its own for a test's spool (`SPOOL_DIR`), empty.
pub fn spool_dir() -> String {
    let dir = std::env::temp_dir().join(unique_topic("zego-api-spool"));
    let _ = std::fs::remove_dir_all(&dir);
    dir.to_string_lossy().into_owned()
}

/// The app with default settings (plus the mock cluster and the test secret).
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// The app with extra environment variables (they replace the defaults); every topic named by
/// `KAFKA_TOPIC*` is made unique to this app and created on its own mock cluster.
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let _ = env_logger::builder().is_test(true).try_init();
    let topic_suffix = unique_topic("t");
    let cluster = mock_cluster(&[], PARTITIONS);
    let mut vars: Vec<(String, String)> = vec![
        ("KAFKA_BROKERS".into(), cluster.bootstrap_servers()),
        ("ZEGO_CALLBACK_SECRET".into(), SECRET.into()),
        (
            "KAFKA_DELIVERY_TIMEOUT_MS".into(),
            DELIVERY_TIMEOUT.as_millis().to_string(),
        ),
        ("KAFKA_TOPIC".into(), format!("{TOPIC}-{topic_suffix}")),
    ];
    for (name, value) in extra {
        vars.retain(|(k, _)| k != name);
        let value = if name.starts_with("KAFKA_TOPIC") {
            format!("{value}-{topic_suffix}")
        } else {
            value.to_string()
        };
        vars.push((name.to_string(), value));
    }
    let settings = Settings::from_vars(vars).expect("valid test settings");
    let refused = settings.refused.as_ref().map(|r| r.topic.as_str());
    for topic in settings.kafka.topics().chain(refused) {
        cluster.create_topic(topic, PARTITIONS, 1).expect("topic");
    }
    let path = settings.http.callback_path.clone();
    let listener = TcpListener::bind("127.0.0.1:0").expect("port 0");
    let app = Application::build(settings, listener).expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let publisher = app.publisher();
    let (shutdown, stop) = oneshot::channel::<()>();
    let stopped = tokio::spawn(app.run_until_stopped(async {
        let _ = stop.await;
    }));
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish();
    TestApp {
        callback_url: format!("{address}{path}"),
        address,
        cluster,
        client,
        publisher,
        topic_suffix,
        shutdown: std::sync::Mutex::new(Some(shutdown)),
        stopped: Some(stopped),
    }
}

impl TestApp {
    /// This app's name for a topic the test calls `name` (e.g. `TOPIC`, or an override's value).
    pub fn topic(&self, name: &str) -> String {
        format!("{name}-{}", self.topic_suffix)
    }

    /// POSTs raw bytes with a content type (or none).
    pub async fn post_raw(
        &self,
        body: impl Into<bytes::Bytes>,
        content_type: Option<&str>,
    ) -> Answer {
        let mut request = self.client.post(&self.callback_url);
        if let Some(content_type) = content_type {
            request = request.insert_header(("Content-Type", content_type));
        }
        let mut response = request.send_body(body.into()).await.expect("request sent");
        let bytes = response.body().limit(1 << 20).await.expect("response body");
        Answer {
            status: response.status().as_u16(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// POSTs JSON to a product's callback path (`CALLBACK_PATH` plus its suffix).
    pub async fn post_json_to(&self, product: Product, body: &Value) -> Answer {
        let url = product.path_under(&self.callback_url);
        let mut response = self
            .client
            .post(url)
            .insert_header(("Content-Type", "application/json"))
            .send_body(serde_json::to_vec(body).unwrap())
            .await
            .expect("request sent");
        let bytes = response.body().limit(1 << 20).await.expect("response body");
        Answer {
            status: response.status().as_u16(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    pub async fn post_json(&self, body: &Value) -> Answer {
        self.post_raw(serde_json::to_vec(body).unwrap(), Some("application/json"))
            .await
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let mut response = self
            .client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request sent");
        let body = response.body().await.expect("body");
        (
            response.status().as_u16(),
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    /// Polls `/readyz` until it answers `status` (the probe runs every second), or panics.
    pub async fn wait_for_readyz(&self, status: u16) {
        let within = WAIT_LIMIT;
        let deadline = Instant::now() + within;
        loop {
            if self.get("/readyz").await.0 == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "/readyz never answered {status} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `/metrics` until `series` reaches `value` or more, or panics.
    pub async fn wait_for_metric(&self, series: &str, value: f64) {
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            let now = self.metric(series).await;
            if now >= value {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{series} stayed at {now}, never {value}, within {WAIT_LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until a callback is awaiting its ack (the first of two concurrent requests).
    pub async fn wait_for_in_flight(&self) {
        let deadline = Instant::now() + WAIT_LIMIT;
        while self.metric("zego_in_flight").await < 1.0 {
            assert!(Instant::now() < deadline, "no callback ever went in flight");
            tokio::task::yield_now().await;
        }
    }

    /// One sample's value from `/metrics`, e.g. `zego_in_flight` or `name{label="x"}`.
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.get("/metrics").await;
        text.lines()
            .find_map(|line| {
                line.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .map(|v| v.trim().parse().expect("numeric sample"))
            .unwrap_or(0.0)
    }

    /// Every record in this app's copy of `topic`, read to the partitions' high watermarks.
    pub fn records(&self, topic: &str) -> Vec<Consumed> {
        let topic = self.topic(topic);
        let topic = topic.as_str();
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.cluster.bootstrap_servers())
            .set("group.id", "api-tests")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut assignment = TopicPartitionList::new();
        let mut remaining = 0;
        for partition in 0..PARTITIONS {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition, WAIT_LIMIT)
                .expect("watermarks");
            remaining += high - low;
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&assignment).expect("assign");
        let mut records = Vec::new();
        let deadline = Instant::now() + WAIT_LIMIT;
        while remaining > 0 {
            assert!(
                Instant::now() < deadline,
                "could not read {remaining} more records"
            );
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message.expect("consumed");
            let headers = message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_string(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            records.push(Consumed {
                partition: message.partition(),
                offset: message.offset(),
                key: message
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned()),
                value: message.payload().unwrap_or_default().to_vec(),
                headers,
            });
            remaining -= 1;
        }
        records
    }

    /// Triggers the graceful shutdown and waits for it to finish.
    pub async fn shut_down(&mut self) {
        self.begin_shutdown();
        if let Some(stopped) = self.stopped.take() {
            stopped
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }

    /// Starts the graceful shutdown without waiting for it.
    pub fn begin_shutdown(&self) {
        if let Some(shutdown) = self.shutdown.lock().unwrap().take() {
            let _ = shutdown.send(());
        }
    }
}
