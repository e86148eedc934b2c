//! `Expect: 100-continue`: the size check runs before the client is told to send its body.
//!
//! actix-http writes `100 Continue` before the request reaches a handler, so a client declaring
//! a body over `MAX_BODY_BYTES` would be invited to send it only to get 413 afterwards. This
//! check runs where actix-http asks whether to continue.

use actix_http::{HttpMessage, Request, Response};
use actix_web::body::BoxBody;
use actix_web::ResponseError;

use super::limits::declared_length;
use super::{ApiError, AppState};
use crate::callback::Rejection;

/// The request, to continue with; or the contract's 413, sent instead of `100 Continue`.
pub fn continue_or_refuse(
    state: &AppState,
    request: Request,
) -> Result<Request, Response<BoxBody>> {
    let declared = declared_length(request.headers());
    let limit = state.limits.max_body_bytes;
    let is_callback = state.limits.product_at(request.path()).is_some();
    if is_callback && declared.is_some_and(|len| len > limit as u64) {
        let refusal = ApiError::from(Rejection::BodyTooLarge(limit));
        log::info!(
            "refused callback before 100 Continue: {} ({refusal})",
            refusal.code()
        );
        state
            .metrics
            .answered("unparsed", "unknown", "413", refusal.code());
        return Err(refusal.error_response().into());
    }
    Ok(request)
}
