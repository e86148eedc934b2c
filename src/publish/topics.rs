//! Creating the bridge's topics on request (`KAFKA_CREATE_TOPICS=true`): with the producer's
//! own connection settings (`KAFKA_OPT_*`: SASL, TLS), so a secured cluster needs nothing
//! more, and idempotent (a topic that exists is left alone), so every start and every
//! re-applied deployment may do it. Kubernetes' immutable Jobs and a separate image with its
//! own credentials are what this replaces (README, "Kubernetes").

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use super::KafkaSettings;

/// How topics are created: `KAFKA_TOPIC_PARTITIONS`, `KAFKA_TOPIC_REPLICATION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    pub partitions: i32,
    /// -1: the broker's `default.replication.factor` (Kafka 2.4 and later).
    pub replication: i32,
}

/// What creating one topic came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    Created,
    Existed,
}

/// Creates each of `topics` that does not exist yet. Returns each topic's outcome, or the
/// first failure in words (which topic, and Kafka's reason).
pub async fn ensure_topics(
    settings: &KafkaSettings,
    spec: TopicSpec,
    topics: &[String],
    timeout: Duration,
) -> Result<Vec<(String, Created)>, String> {
    let admin: AdminClient<DefaultClientContext> = settings
        .to_client_config()
        .create()
        .map_err(|e| settings.explain_config_error(&e.to_string()))?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|topic| {
            NewTopic::new(
                topic,
                spec.partitions,
                TopicReplication::Fixed(spec.replication),
            )
        })
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let results = admin
        .create_topics(new.iter(), &options)
        .await
        .map_err(|e| format!("cannot create topics: {}", settings.redact(&e.to_string())))?;
    results
        .into_iter()
        .map(|result| match result {
            Ok(topic) => Ok((topic, Created::Created)),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => Ok((topic, Created::Existed)),
            Err((topic, code)) => Err(format!("cannot create topic {topic}: {code}")),
        })
        .collect()
}
