//! `POST {CALLBACK_PATH}`: size → media type → parse → signature → timestamp → appid → event
//! schema → dedupe → publish → answer. 200 only from a broker ack (or a remembered one).

use std::time::{Duration, Instant};

use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::Serialize;

use crate::callback::{self, body, Rejection};
use crate::dedup::{self, Claim};
use crate::publish::{Ack, PublishError, Record};
use crate::routes::ApiError;
use crate::state::{unix_ms, AppState};

/// A client that has not sent its whole body by then is cut off: slow bodies tie up memory.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Serialize)]
struct Accepted<'a> {
    ok: bool,
    topic: &'a str,
    partition: i32,
    offset: i64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
}

/// What one request came to, with the event label for metrics.
struct Answer {
    event: &'static str,
    result: Result<(Ack, bool), ApiError>,
}

pub async fn receive(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let started = Instant::now();
    let Answer { event, result } = handle(&request, payload, &state).await;
    let response = match &result {
        Ok((ack, duplicate)) => HttpResponse::Ok().json(Accepted {
            ok: true,
            topic: &ack.topic,
            partition: ack.partition,
            offset: ack.offset,
            duplicate: *duplicate,
        }),
        Err(error) => error.error_response(),
    };
    let code = match &result {
        Ok((_, true)) => "duplicate",
        Ok((_, false)) => "ok",
        Err(e) => {
            state.refusals.record(e.code());
            e.code()
        }
    };
    state
        .metrics
        .callbacks
        .with_label_values(&[event, response.status().as_str(), code])
        .inc();
    if let Err(ApiError::Publish(_)) = &result {
        state
            .metrics
            .publish_seconds
            .with_label_values(&["failed"])
            .observe(started.elapsed().as_secs_f64());
    } else if let Ok((_, false)) = &result {
        state
            .metrics
            .publish_seconds
            .with_label_values(&["acked"])
            .observe(started.elapsed().as_secs_f64());
    }
    response
}

async fn handle(request: &HttpRequest, payload: web::Payload, state: &AppState) -> Answer {
    let received_at_ms = unix_ms();
    let checked = async {
        let bytes = read_body(request, payload, state.callback.max_body_bytes).await?;
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let decoded = body::decode(bytes, content_type)?;
        callback::verify(decoded, &state.callback, received_at_ms.div_euclid(1000))
    }
    .await;
    let callback = match checked {
        Ok(callback) => callback,
        Err(rejection) => {
            log::info!("refused callback: {} ({})", rejection.code(), rejection);
            return Answer {
                event: "unparsed",
                result: Err(rejection.into()),
            };
        }
    };
    let event = callback.kind.map_or("other", |k| k.name());
    let topic = state.kafka.topic_for(callback.kind).to_string();
    let record = Record::new(callback, &topic, received_at_ms);
    Answer {
        event,
        result: deliver(&record, state).await,
    }
}

/// Dedupe, then publish: the answer is `(ack, duplicate)`.
async fn deliver(record: &Record, state: &AppState) -> Result<(Ack, bool), ApiError> {
    let guard = match state.dedup.claim(&record.callback_id) {
        Claim::Acked(ack) => {
            state.metrics.duplicates.inc();
            return Ok((ack, true));
        }
        Claim::Wait(receiver) => {
            let ack = dedup::wait(receiver).await?;
            state.metrics.duplicates.inc();
            return Ok((ack, true));
        }
        Claim::Publish(guard) => guard,
    };
    let Ok(_permit) = state.in_flight.try_acquire() else {
        log::warn!(
            "MAX_IN_FLIGHT reached: refusing callback {}",
            record.callback_id
        );
        return Err(PublishError::Overloaded.into());
    };
    state.metrics.in_flight.inc();
    let outcome = state.publisher.publish(record).await;
    state.metrics.in_flight.dec();
    guard.finish(outcome.clone());
    match &outcome {
        Ok(ack) => log::debug!(
            "acked {} call_id={:?} at {}/{}/{}",
            record.event, record.key, ack.topic, ack.partition, ack.offset
        ),
        Err(e) => log::warn!(
            "publish failed, answering non-200 so ZEGOCLOUD retries: {} call_id={:?} callback_id={}: {e}",
            record.event, record.key, record.callback_id
        ),
    }
    Ok((outcome?, false))
}

/// Reads at most `limit` bytes, refusing early on a `Content-Length` over it.
async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, Rejection> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(Rejection::BodyTooLarge(limit));
    }
    let read = async {
        let mut body = BytesMut::with_capacity(declared.unwrap_or(1024).min(limit as u64) as usize);
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|e| Rejection::MalformedBody(format!("could not read the body: {e}")))?;
            if body.len() + chunk.len() > limit {
                return Err(Rejection::BodyTooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    tokio::time::timeout(BODY_READ_TIMEOUT, read)
        .await
        .map_err(|_| Rejection::BodyTimeout)?
}
