//! Broker errors sorted into the contract's answers: retriable (503), non-retriable (500), and
//! the ones that mean the producer itself must be replaced.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Why a publish did not end in an ack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The bridge is at capacity: `MAX_IN_FLIGHT`, `MAX_BUFFERED_BYTES`, or librdkafka's local
    /// queue is full (503 `overloaded`).
    #[error("the bridge is at capacity; retry later")]
    Overloaded,
    /// Worth a retry: the broker is unreachable, slow, or the producer is being replaced
    /// (503 `broker_unavailable`).
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// A retry would fail the same way: a configuration or data problem (500 `publish_failed`).
    #[error("publish failed: {0}")]
    Failed(String),
}

/// Errors a retry cannot fix, after Vector's Kafka sink: everything else is retriable,
/// because the safe default for "don't know" is to let ZEGOCLOUD try again.
const NON_RETRIABLE: &[RDKafkaErrorCode] = &[
    // The record itself is unacceptable.
    RDKafkaErrorCode::MessageSizeTooLarge,
    RDKafkaErrorCode::InvalidMessageSize,
    RDKafkaErrorCode::InvalidRecord,
    RDKafkaErrorCode::UnsupportedForMessageFormat,
    RDKafkaErrorCode::PolicyViolation,
    // The topic does not exist or is not ours to write: an operator must act.
    RDKafkaErrorCode::UnknownTopic,
    RDKafkaErrorCode::UnknownTopicOrPartition,
    RDKafkaErrorCode::InvalidTopic,
    RDKafkaErrorCode::TopicAuthorizationFailed,
    RDKafkaErrorCode::ClusterAuthorizationFailed,
    RDKafkaErrorCode::TransactionalIdAuthorizationFailed,
    // Credentials are wrong.
    RDKafkaErrorCode::SaslAuthenticationFailed,
    RDKafkaErrorCode::Authentication,
    // The bridge built a request the broker cannot take.
    RDKafkaErrorCode::InvalidRequiredAcks,
    RDKafkaErrorCode::InvalidArgument,
];

/// Errors after which an idempotent producer never delivers again (tansu fences it after an
/// outage under load, see docs/architecture.md; real Kafka can too). The cure is a fresh producer.
const PRODUCER_BROKEN: &[RDKafkaErrorCode] = &[
    RDKafkaErrorCode::ProducerFenced,
    RDKafkaErrorCode::InvalidProducerEpoch,
    RDKafkaErrorCode::OutOfOrderSequenceNumber,
    RDKafkaErrorCode::Fatal,
];

/// The contract's answer for a failed send or delivery.
pub fn classify(error: &KafkaError) -> PublishError {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::QueueFull) => PublishError::Overloaded,
        Some(code) if NON_RETRIABLE.contains(&code) => PublishError::Failed(error.to_string()),
        _ => PublishError::Unavailable(error.to_string()),
    }
}

/// True when the error means the producer that reported it must be replaced.
pub fn breaks_producer(error: &KafkaError) -> bool {
    error
        .rdkafka_error_code()
        .is_some_and(|code| PRODUCER_BROKEN.contains(&code))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(code: RDKafkaErrorCode) -> KafkaError {
        KafkaError::MessageProduction(code)
    }

    #[test]
    fn timeouts_and_transport_errors_are_retriable() {
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::NotEnoughReplicas,
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::PurgeInflight,
        ] {
            assert!(
                matches!(classify(&delivery(code)), PublishError::Unavailable(_)),
                "{code:?}"
            );
        }
    }

    #[test]
    fn data_and_authorization_errors_are_not() {
        for code in NON_RETRIABLE {
            assert!(
                matches!(classify(&delivery(*code)), PublishError::Failed(_)),
                "{code:?}"
            );
        }
    }

    #[test]
    fn full_queue_is_overload() {
        assert_eq!(
            classify(&delivery(RDKafkaErrorCode::QueueFull)),
            PublishError::Overloaded
        );
    }

    #[test]
    fn fencing_errors_break_the_producer_and_stay_retriable() {
        for code in PRODUCER_BROKEN {
            assert!(breaks_producer(&delivery(*code)), "{code:?}");
            assert!(matches!(
                classify(&delivery(*code)),
                PublishError::Unavailable(_)
            ));
        }
        assert!(!breaks_producer(&delivery(
            RDKafkaErrorCode::MessageTimedOut
        )));
    }
}
