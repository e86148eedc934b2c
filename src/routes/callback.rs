//! `POST {CALLBACK_PATH}[/rtc|/recording|/ai-agent]`: size → media type → body → verify
//! (`callback`) → record → `deliver` → answer. This file reads a request and writes its answer;
//! 200 only from a broker ack, the spool, or a remembered one. A refused body is handed to the
//! refused topic when one is configured (`deliver::refused`).

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
use crate::dedup::Remembered;
use crate::deliver::refused::{is_kept, RefusedRecord};
use crate::deliver::Delivered;
use crate::publish::{Ack, PublishError, SpoolStamp};
use crate::routes::{ApiError, AppState};

/// What the handler answers with: a delivery's outcome, or for `before_send_msg` ZIM's verdict
/// (`published` says whether the record was acknowledged or spooled in time).
#[derive(Debug)]
enum Answer {
    Delivered(Delivered),
    Verdict { published: bool },
}

/// ZIM's answer body for `before_send_msg`: `result` 0 is "neutral: send the message".
#[derive(Serialize)]
struct Verdict {
    result: u8,
    ok: bool,
    published: bool,
}

/// The body of a callback as read, kept for the refused topic until the answer is decided.
struct Received {
    body: Bytes,
    content_type: Option<String>,
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
    let (mut seen, mut received) = (None, None);
    let received_at_ms = unix_ms();
    let ((event, family), result) = handle(
        &request,
        &mut payload,
        &state,
        product,
        received_at_ms,
        (&mut seen, &mut received),
    )
    .await;
    let (response, code) = match &result {
        Ok(Answer::Delivered(Delivered::Fresh(ack))) => (acked(ack, false), "ok"),
        Ok(Answer::Delivered(Delivered::Duplicate(Remembered::Acked(ack)))) => {
            (acked(ack, true), "duplicate")
        }
        Ok(Answer::Delivered(Delivered::Duplicate(Remembered::Spooled(stamp)))) => {
            (spooled(stamp, true), "duplicate")
        }
        Ok(Answer::Delivered(Delivered::Spooled(stamp))) => (spooled(stamp, false), "spooled"),
        Ok(Answer::Verdict { published }) => {
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
            let response = error.error_response();
            if let (Some(keeper), Some(received)) = (&state.delivery.refused, received) {
                if is_kept(error.code()) {
                    keeper.keep(RefusedRecord {
                        topic: String::new(),
                        body: received.body,
                        code: error.code(),
                        status: response.status().as_u16(),
                        product,
                        path: request.path().to_string(),
                        content_type: received.content_type,
                        source: request
                            .peer_addr()
                            .map_or_else(String::new, |a| a.ip().to_string()),
                        received_at_ms,
                    });
                }
            }
            (response, error.code())
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
/// outcome. `seen` gets the app id and event name as sent once the body is decoded (for
/// explaining a refusal in the log), `received` the body as read (for the refused topic).
async fn handle(
    request: &HttpRequest,
    payload: &mut web::Payload,
    state: &AppState,
    product: Product,
    received_at_ms: i64,
    (seen, received): (&mut Option<(String, String)>, &mut Option<Received>),
) -> ((&'static str, &'static str), Result<Answer, ApiError>) {
    // The byte budget is held from the first byte read until this function returns, i.e.
    // through verification and the wait for the ack.
    let checked = async {
        let declared_length = declared_length(request.headers());
        if declared_length.is_some_and(|len| len > state.limits.max_body_bytes as u64) {
            return Err(Rejection::BodyTooLarge(state.limits.max_body_bytes).into());
        }
        let content_type = media_type(request)?;
        let (bytes, budget) = read_body(payload, state).await?;
        if state.delivery.refused.is_some() {
            // A clone of `Bytes` shares the buffer: no copy unless it is kept.
            *received = Some(Received {
                body: bytes.clone(),
                content_type: content_type.map(String::from),
            });
        }
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
    state
        .metrics
        .signed_with_secret(callback.signed_by_secret_at);
    let labels = callback
        .kind
        .map_or(("other", "other"), |k| (k.name(), k.family().name()));
    let record = state.kafka.record_for(callback, received_at_ms);
    if labels.0 == BEFORE_SEND_MSG {
        let published = state.delivery.verdict(&record).await;
        return (labels, Ok(Answer::Verdict { published }));
    }
    let delivered = state.delivery.deliver(&record).await;
    (
        labels,
        delivered.map(Answer::Delivered).map_err(ApiError::from),
    )
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
