//! `POST {CALLBACK_PATH}[/rtc|/recording|/ai-agent]`: size → media type → parse → signature → timestamp → appid → event
//! schema → dedupe → publish → answer. 200 only from a broker ack (or a remembered one).

use std::time::{Duration, Instant};

use actix_web::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::SemaphorePermit;

use super::errors::describe_request;
use super::held_payload::HeldPayload;
use super::limits::declared_length;
use crate::callback::catalogue::{Product, BEFORE_SEND_MSG};
use crate::callback::{self, body, Rejection};
use crate::clock::unix_ms;
use crate::dedup::{self, Claim, Remembered};
use crate::metrics::InFlight;
use crate::publish::{Ack, PublishError, Record, SpoolStamp};
use crate::routes::{ApiError, AppState};
use crate::spool::Spool;

/// How a callback that got a 200 got it.
#[derive(Debug)]
pub enum Delivered {
    /// Published now and acked by the broker.
    Fresh(Ack),
    /// The same callback was acked or spooled before (or was being delivered): answered with
    /// that outcome.
    Duplicate(Remembered),
    /// Kafka could not take it in time: durable in the spool, forwarded when Kafka is back.
    Spooled(SpoolStamp),
    /// `before_send_msg`: answered with ZIM's verdict "send" within its deadline, whatever
    /// Kafka did; `published` says whether the record was acknowledged or spooled in time.
    Verdict { published: bool },
}

/// ZIM waits at most 2.5 s for a `before_send_msg` verdict; the answer leaves with margin for
/// the network.
const VERDICT_DEADLINE: Duration = Duration::from_secs(2);

/// ZIM's answer body for `before_send_msg`: `result` 0 is "neutral: send the message".
#[derive(Serialize)]
struct Verdict {
    result: u8,
    ok: bool,
    published: bool,
}

#[derive(Serialize)]
struct Spooled {
    ok: bool,
    spooled: bool,
    /// Its place in this replica's spool: the `zego-spool-seq` header of its record.
    spool_seq: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
}

#[derive(Serialize)]
struct Accepted<'a> {
    ok: bool,
    topic: &'a str,
    partition: i32,
    offset: i64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
}

pub async fn receive(
    request: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<AppState>,
    product: Product,
) -> HttpResponse<HeldPayload> {
    let mut seen = None;
    let ((event, family), result) =
        handle(&request, &mut payload, &state, product, &mut seen).await;
    let (response, code) = match &result {
        Ok(Delivered::Fresh(ack)) => (acked(ack, false), "ok"),
        Ok(Delivered::Duplicate(Remembered::Acked(ack))) => (acked(ack, true), "duplicate"),
        Ok(Delivered::Duplicate(Remembered::Spooled(stamp))) => (spooled(stamp, true), "duplicate"),
        Ok(Delivered::Spooled(stamp)) => (spooled(stamp, false), "spooled"),
        Ok(Delivered::Verdict { published }) => {
            let response = HttpResponse::Ok().json(Verdict {
                result: 0,
                ok: true,
                published: *published,
            });
            (response, if *published { "verdict" } else { "unpublished" })
        }
        Err(error) => {
            state.refused(error.code(), product.name(), || {
                let seen = seen
                    .as_ref()
                    .map(|(a, e): &(String, String)| (a.as_str(), e.as_str()));
                describe_request(&request, seen)
            });
            (error.error_response(), error.code())
        }
    };
    state
        .metrics
        .answered(event, family, response.status().as_str(), code);
    // An answer sent before the body was read to its end closes the connection (see
    // `held_payload`); one after it keeps the connection alive as usual.
    response.map_body(|_, body| HeldPayload::new(body, payload))
}

/// The 200 for an ack, fresh or remembered.
fn acked(ack: &Ack, duplicate: bool) -> HttpResponse {
    HttpResponse::Ok().json(Accepted {
        ok: true,
        topic: &ack.topic,
        partition: ack.partition,
        offset: ack.offset,
        duplicate,
    })
}

/// The 200 for a callback committed to the spool, now or before.
fn spooled(stamp: &SpoolStamp, duplicate: bool) -> HttpResponse {
    HttpResponse::Ok().json(Spooled {
        ok: true,
        spooled: true,
        spool_seq: stamp.seq,
        duplicate,
    })
}

/// Runs the checks, then delivers; returns the event and family labels for metrics with the
/// outcome.
/// `seen` gets the app id and event name as sent once the body is decoded, for explaining a
/// refusal in the log.
async fn handle(
    request: &HttpRequest,
    payload: &mut web::Payload,
    state: &AppState,
    product: Product,
    seen: &mut Option<(String, String)>,
) -> ((&'static str, &'static str), Result<Delivered, ApiError>) {
    let received_at_ms = unix_ms();
    // The byte budget is held from the first byte read until this function returns, i.e.
    // through verification and the wait for the ack.
    let checked = async {
        let declared_length = declared_length(request.headers());
        if declared_length.is_some_and(|len| len > state.limits.max_body_bytes as u64) {
            return Err(Rejection::BodyTooLarge(state.limits.max_body_bytes).into());
        }
        let content_type = media_type(request)?;
        let (bytes, budget) = read_body(payload, state).await?;
        let decoded = body::decode(bytes, content_type)?;
        let names = product.envelope();
        let text = |name: Option<&str>| {
            let value = name.and_then(|n| decoded.fields.get(n));
            let text = value.map_or_else(String::new, |v| {
                v.as_str().map_or_else(|| v.to_string(), String::from)
            });
            text.chars().take(80).collect::<String>()
        };
        *seen = Some((text(Some(names.appid)), text(names.event)));
        let now = received_at_ms.div_euclid(1000);
        let callback = callback::verify(decoded, &state.policy, product, now)?;
        Ok::<_, ApiError>((callback, budget))
    }
    .await;
    let (callback, _budget) = match checked {
        Ok(checked) => checked,
        // Counted and explained by the caller (one log line a reason a minute).
        Err(refusal) => return (("unparsed", "unknown"), Err(refusal)),
    };
    state.metrics.signed_with_secret(callback.secret);
    let labels = callback
        .kind
        .map_or(("other", "other"), |k| (k.name(), k.family().name()));
    let record = state.kafka.record_for(callback, received_at_ms);
    if labels.0 == BEFORE_SEND_MSG {
        return (labels, Ok(verdict(&record, state).await));
    }
    (labels, deliver(&record, state).await)
}

/// `before_send_msg` blocks the user's message until ZIM has an answer, and a failed answer
/// drops the message: the verdict "send" goes out within `VERDICT_DEADLINE` whatever Kafka
/// does, and the record is published (or spooled) if that happens in time. One that is not is
/// counted and logged; `send_msg` still reports the message once it is sent.
async fn verdict(record: &Record, state: &AppState) -> Delivered {
    let published = matches!(
        tokio::time::timeout(VERDICT_DEADLINE, deliver(record, state)).await,
        Ok(Ok(_))
    );
    if !published {
        state.metrics.verdict_unpublished.inc();
        log::warn!(
            "before_send_msg {} answered \"send\" without being published (Kafka did not take it within {} s)",
            record.callback_id,
            VERDICT_DEADLINE.as_secs()
        );
    }
    Delivered::Verdict { published }
}

/// Dedupe, then publish (or spool).
async fn deliver(record: &Record, state: &AppState) -> Result<Delivered, ApiError> {
    let guard = match state.dedup.claim(&record.callback_id) {
        Claim::Acked(ack) => {
            state.metrics.duplicates.inc();
            return Ok(Delivered::Duplicate(ack));
        }
        Claim::Wait(receiver) => {
            let ack = dedup::wait(receiver).await?;
            state.metrics.duplicates.inc();
            return Ok(Delivered::Duplicate(ack));
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
    // Lowered when dropped, so a request cancelled mid-publish (client gone, shutdown) does not
    // leave the gauge raised.
    let _in_flight = InFlight::enter(&state.metrics.in_flight);
    if let Some(spool) = &state.spool {
        let delivered = publish_or_spool(record, state, spool).await;
        // A spooled callback is remembered like an acked one: a repeat (concurrent or later)
        // is answered 200 duplicate and lands once.
        guard.finish(match &delivered {
            Ok(Delivered::Fresh(ack)) => Ok(Remembered::Acked(ack.clone())),
            Ok(Delivered::Spooled(stamp)) => Ok(Remembered::Spooled(*stamp)),
            Ok(Delivered::Duplicate(remembered)) => Ok(remembered.clone()),
            Ok(Delivered::Verdict { .. }) => Err(PublishError::Unavailable("a verdict".into())),
            Err(ApiError::Publish(e)) => Err(e.clone()),
            Err(other) => Err(PublishError::Unavailable(other.to_string())),
        });
        return delivered;
    }
    let outcome = publish(record, state).await;
    guard.finish(outcome.clone().map(Remembered::Acked));
    Ok(Delivered::Fresh(
        outcome.inspect_err(|e| answered_non_200(record, e))?,
    ))
}

/// The spool's rule (README, "Durable spool"): spool at once while the spool holds anything or
/// the broker is known unreachable; otherwise publish, and spool what Kafka could not take in
/// time. A non-retriable failure is answered 500 as without a spool: spooling it would only
/// fail again at the drain.
async fn publish_or_spool(
    record: &Record,
    state: &AppState,
    spool: &Spool,
) -> Result<Delivered, ApiError> {
    if !spool.is_active() && !state.readiness.broker_known_unreachable() {
        if let Some(straight) = spool.straight_to_kafka().await {
            let outcome = publish(record, state).await;
            drop(straight);
            match outcome {
                Err(PublishError::Unavailable(why)) => log::info!(
                    "Kafka did not take callback {} in time ({why}): spooling it",
                    record.callback_id
                ),
                other => {
                    return Ok(Delivered::Fresh(
                        other.inspect_err(|e| answered_non_200(record, e))?,
                    ))
                }
            }
        }
    }
    let stamp = spool.append(record).await?;
    log::debug!(
        "spooled {} key={} as spool record {}",
        record.event,
        record.key.as_deref().unwrap_or("-"),
        stamp.seq
    );
    Ok(Delivered::Spooled(stamp))
}

/// One publish, timed; an ack logged (a failure is logged by the caller, which decides the
/// answer).
async fn publish(record: &Record, state: &AppState) -> Result<Ack, PublishError> {
    let started = Instant::now();
    let outcome = state.publisher.publish(record).await;
    state
        .metrics
        .publish_seconds
        .with_label_values(&[if outcome.is_ok() { "acked" } else { "failed" }])
        .observe(started.elapsed().as_secs_f64());
    if let Ok(ack) = &outcome {
        log::debug!(
            "acked {} key={} at {}/{}/{}",
            record.event,
            record.key.as_deref().unwrap_or("-"),
            ack.topic,
            ack.partition,
            ack.offset
        );
    }
    outcome
}

fn answered_non_200(record: &Record, error: &PublishError) {
    log::warn!(
        "publish failed, answering non-200 so ZEGOCLOUD retries: {} key={} callback_id={}: {error}",
        record.event,
        record.key.as_deref().unwrap_or("-"),
        record.callback_id
    );
}

/// The one `Content-Type`, with no `Content-Encoding` the bridge would have to undo.
///
/// Two `Content-Type` headers are refused rather than resolved by order (a proxy may pick the
/// other one); an encoded body is refused rather than read as if it were plain.
fn media_type(request: &HttpRequest) -> Result<Option<&str>, Rejection> {
    let headers = request.headers();
    if let Some(encoding) = headers.get(CONTENT_ENCODING) {
        let encoding = encoding.to_str().unwrap_or("?").trim();
        if !encoding.eq_ignore_ascii_case("identity") {
            let shown: String = encoding.chars().take(32).collect();
            return Err(Rejection::UnsupportedEncoding(shown));
        }
    }
    let mut content_types = headers.get_all(CONTENT_TYPE);
    let first = content_types.next();
    if content_types.next().is_some() {
        return Err(Rejection::AmbiguousMediaType);
    }
    Ok(first.and_then(|v| v.to_str().ok()))
}

/// Reads at most `max_body_bytes` within the body timeout, taking a permit of the byte budget
/// for every byte before it is buffered: past `MAX_BUFFERED_BYTES` the answer is 503
/// `overloaded`, whatever the framing.
async fn read_body<'s>(
    payload: &mut web::Payload,
    state: &'s AppState,
) -> Result<(Bytes, SemaphorePermit<'s>), ApiError> {
    let limits = &state.limits;
    let limit = limits.max_body_bytes;
    // Logged once per refusal by the caller (and summed every 10 s): no line of its own,
    // since a flood of large bodies is exactly when this fires.
    let over_budget = || {
        log::debug!("MAX_BUFFERED_BYTES reached: refusing a callback body");
        ApiError::from(PublishError::Overloaded)
    };
    // Charged by the bytes held, as they arrive, never by the declared `Content-Length`: a
    // client that declares 64 KiB and sends nothing holds nothing, so a few kilobytes of request
    // heads cannot exhaust the budget for everyone. The buffer grows with what arrives
    // (amortised doubling: its capacity stays under twice the bytes charged).
    let mut budget = state
        .buffered
        .try_acquire_many(0)
        .map_err(|_| over_budget())?;
    let read = async {
        let mut body = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|e| Rejection::MalformedBody(format!("could not read the body: {e}")))?;
            if body.len() + chunk.len() > limit {
                return Err(Rejection::BodyTooLarge(limit).into());
            }
            let unaccounted = (body.len() + chunk.len()).saturating_sub(budget.num_permits());
            if unaccounted > 0 {
                let more = state
                    .buffered
                    .try_acquire_many(unaccounted as u32)
                    .map_err(|_| over_budget())?;
                budget.merge(more);
            }
            body.extend_from_slice(&chunk);
        }
        Ok::<_, ApiError>(body.freeze())
    };
    let body = tokio::time::timeout(limits.body_read_timeout, read)
        .await
        .map_err(|_| ApiError::from(Rejection::BodyTimeout))??;
    Ok((body, budget))
}
