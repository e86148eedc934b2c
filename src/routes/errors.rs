//! Every refusal as the contract's status and `{"ok":false,"error":…,"message":…}` body.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::callback::Rejection;
use crate::publish::PublishError;
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
                Rejection::UnsupportedEvent(_) | Rejection::FamilyDisabled(..) => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
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

/// Unknown paths answer JSON too.
pub async fn not_found() -> HttpResponse {
    ApiError::NotFound.error_response()
}

/// Anything but POST on the callback path.
pub async fn method_not_allowed() -> HttpResponse {
    ApiError::MethodNotAllowed.error_response()
}
