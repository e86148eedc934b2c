//! An answer body that keeps the request's payload alive until the answer is sent.
//!
//! actix-http (3.20) treats a dropped, unfinished *chunked* payload as "drain the rest, then
//! reuse the connection", with no timer: a client that stops mid-chunk holds its socket for
//! ever. A payload still held when the answer goes out is instead "unread": the answer carries
//! `Connection: close` and the socket is closed after a short linger, whatever the framing.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::web::Payload;
use bytes::Bytes;

/// The answer's body, with the request payload it answers.
pub struct HeldPayload {
    body: BoxBody,
    _payload: Payload,
}

impl HeldPayload {
    pub fn new(body: BoxBody, payload: Payload) -> Self {
        HeldPayload {
            body,
            _payload: payload,
        }
    }
}

impl MessageBody for HeldPayload {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}
