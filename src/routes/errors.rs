//! Every refusal as the contract's status and `{"ok":false,"error":…,"message":…}` body.

use actix_web::http::Method;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::callback::Rejection;
use crate::publish::PublishError;
use crate::routes::AppState;
use crate::spool::SpoolError;

/// Why a request did not get a 200.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("no route for this path")]
    NotFound,
    #[error("the callback path only accepts POST")]
    MethodNotAllowed,
}

impl From<crate::deliver::DeliveryError> for ApiError {
    fn from(error: crate::deliver::DeliveryError) -> Self {
        match error {
            crate::deliver::DeliveryError::Publish(e) => ApiError::Publish(e),
            crate::deliver::DeliveryError::Spool(e) => ApiError::Spool(e),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    ok: bool,
    error: &'a str,
    message: String,
}

impl ApiError {
    /// The contract's error code (README, "HTTP interface").
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Rejected(r) => r.code(),
            ApiError::Publish(PublishError::Overloaded) => "overloaded",
            ApiError::Publish(PublishError::Unavailable(_)) => "broker_unavailable",
            ApiError::Publish(PublishError::Failed(_)) => "publish_failed",
            ApiError::Spool(SpoolError::Full) => "spool_full",
            ApiError::Spool(SpoolError::Failed(_)) => "spool_failed",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Rejected(r) => match r {
                Rejection::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                Rejection::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
                Rejection::UnsupportedMediaType
                | Rejection::UnsupportedEncoding(_)
                | Rejection::AmbiguousMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Rejection::MalformedBody(_)
                | Rejection::MissingField(_)
                | Rejection::InvalidField(..) => StatusCode::BAD_REQUEST,
                Rejection::InvalidSignature | Rejection::StaleTimestamp => StatusCode::UNAUTHORIZED,
                Rejection::UnknownApp => StatusCode::FORBIDDEN,
                Rejection::UnsupportedEvent(_)
                | Rejection::WrongProduct(..)
                | Rejection::FamilyDisabled(..) => StatusCode::UNPROCESSABLE_ENTITY,
            },
            ApiError::Publish(PublishError::Failed(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Publish(_) | ApiError::Spool(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if matches!(
            self,
            ApiError::Publish(PublishError::Overloaded | PublishError::Unavailable(_))
                | ApiError::Spool(_)
        ) {
            // ZEGOCLOUD keeps its own schedule; other clients get a hint.
            response.insert_header(("Retry-After", "2"));
        }
        response.json(ErrorBody {
            ok: false,
            error: self.code(),
            message: self.to_string(),
        })
    }
}

/// Unknown paths answer JSON too. A POST to one is counted and explained as a refusal on
/// `path="unknown"` (a typo in a callback URL configured in the console looks like this);
/// other methods there are browsers and scanners, not callbacks.
pub async fn not_found(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let error = ApiError::NotFound;
    if request.method() == Method::POST {
        state.refused(error.code(), "unknown", || describe_request(&request, None));
    }
    error.error_response()
}

/// Anything but POST on a callback path: counted on `path="unknown"`.
pub async fn method_not_allowed(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let error = ApiError::MethodNotAllowed;
    state.refused(error.code(), "unknown", || describe_request(&request, None));
    error.error_response()
}

/// A refused request for the log: method, path, source address, and the app id and event when
/// the body was read that far. Never the signature, a secret or the body; every part bounded
/// and printable.
pub fn describe_request(request: &HttpRequest, seen: Option<(&str, &str)>) -> String {
    let printable = |text: &str| -> String {
        text.chars()
            .take(80)
            .map(|c| if c.is_ascii_graphic() { c } else { '?' })
            .collect()
    };
    let source = request
        .peer_addr()
        .map_or("an unknown address".to_string(), |a| a.ip().to_string());
    let mut line = format!(
        "{} {} from {source}",
        request.method(),
        printable(request.path())
    );
    if let Some((appid, event)) = seen {
        line.push_str(&format!(
            " appid={} event={}",
            printable(appid),
            printable(event)
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::REFUSAL_CODES;

    /// `zego_refusals_total` is registered at 0 for every code in `REFUSAL_CODES`: every code an
    /// answer can carry must be there, or its first refusal would appear from nowhere.
    #[test]
    fn every_code_an_answer_can_carry_is_registered() {
        let errors: Vec<ApiError> = vec![
            Rejection::BodyTooLarge(1).into(),
            Rejection::BodyTimeout.into(),
            Rejection::UnsupportedMediaType.into(),
            Rejection::UnsupportedEncoding("gzip".into()).into(),
            Rejection::AmbiguousMediaType.into(),
            Rejection::MalformedBody("x".into()).into(),
            Rejection::MissingField("call_id".into()).into(),
            Rejection::InvalidField("call_id".into(), "x".into()).into(),
            Rejection::InvalidSignature.into(),
            Rejection::StaleTimestamp.into(),
            Rejection::UnknownApp.into(),
            Rejection::UnsupportedEvent("x".into()).into(),
            Rejection::WrongProduct("x".into(), "an Express (RTC)", "/rtc").into(),
            Rejection::FamilyDisabled("x".into(), "call").into(),
            PublishError::Overloaded.into(),
            PublishError::Unavailable("x".into()).into(),
            PublishError::Failed("x".into()).into(),
            SpoolError::Full.into(),
            SpoolError::Failed("x".into()).into(),
            ApiError::NotFound,
            ApiError::MethodNotAllowed,
        ];
        for error in &errors {
            assert!(REFUSAL_CODES.contains(&error.code()), "{}", error.code());
        }
    }
}
