//! A deadline on every request head of a connection, not only its first. actix-http times the
//! head of a connection's first request (`client_request_timeout`) and then only the idle
//! gap between requests: once a kept-alive connection sends the first byte of its next
//! request, nothing times the rest of that head, and a client can trickle it forever, one
//! descriptor each. This wrapper sits between the transport (TCP, or TLS over it) and the HTTP
//! dispatcher: from the first byte of a request until the blank line that ends its head it
//! allows `limit`, then fails the read, and the dispatcher closes the connection.
//!
//! It finds the head's end by its `\r\n\r\n`, and a request's end by the bridge writing a final
//! answer (a write starting `HTTP/1.` that is not a `1xx`): the next byte read after that
//! starts the next head. Bodies are not its business (the body timeout and the byte budget
//! bound them).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{sleep, Instant, Sleep};

/// Where the connection is in its current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests (or before the first): the next byte starts a head.
    Idle,
    /// Reading a head: the deadline runs.
    Head,
    /// The head is complete: the body and the answer are not timed here.
    Rest,
}

pub struct HeadTimed<T> {
    io: T,
    limit: Duration,
    phase: Phase,
    /// The last bytes of the head read so far, to find `\r\n\r\n` across reads.
    tail: u32,
    deadline: Pin<Box<Sleep>>,
}

impl<T> HeadTimed<T> {
    pub fn new(io: T, limit: Duration) -> Self {
        HeadTimed {
            io,
            limit,
            phase: Phase::Idle,
            tail: 0,
            deadline: Box::pin(sleep(limit)),
        }
    }

    /// Follows the bytes just read: starts the deadline on a new head, ends it at the head's
    /// blank line.
    fn saw(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            match self.phase {
                Phase::Rest => return,
                Phase::Idle => {
                    self.phase = Phase::Head;
                    self.tail = 0;
                    self.deadline.as_mut().reset(Instant::now() + self.limit);
                }
                Phase::Head => {}
            }
            self.tail = (self.tail << 8) | u32::from(byte);
            if self.tail == u32::from_be_bytes(*b"\r\n\r\n") {
                self.phase = Phase::Rest;
            }
        }
    }
}

/// A final answer's first bytes: `HTTP/1.x` and a status that is not informational.
fn is_final_answer(bytes: &[u8]) -> bool {
    bytes.starts_with(b"HTTP/1.") && bytes.get(9).is_some_and(|&status| status != b'1')
}

impl<T: AsyncRead + Unpin> AsyncRead for HeadTimed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = read {
            this.saw(&buf.filled()[before..]);
        }
        // The deadline is checked whatever the read did: a head that keeps trickling in is
        // cut off as surely as one that stalls.
        if this.phase == Phase::Head && this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request head not complete in time",
            )));
        }
        read
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HeadTimed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.io).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) && is_final_answer(buf) {
            this.phase = Phase::Idle;
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let first = bufs.iter().find(|b| !b.is_empty()).map(|b| &b[..]);
        let written = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) && first.is_some_and(is_final_answer) {
            this.phase = Phase::Idle;
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A kept-alive connection's second head, trickled: cut off once `limit` has passed since
    /// its first byte (the margin above it is wide: a busy machine only delays the cut).
    #[tokio::test]
    async fn every_head_is_timed_and_a_complete_one_is_not() {
        let limit = Duration::from_millis(300);
        let (client, server) = tokio::io::duplex(1024);
        let mut timed = HeadTimed::new(server, limit);
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let mut buf = [0u8; 256];

        // A whole first request, then its answer: nothing fires, however long the body waits.
        client_write
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let n = timed.read(&mut buf).await.unwrap();
        assert!(n > 0);
        timed.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        let mut answer = [0u8; 19];
        client_read.read_exact(&mut answer).await.unwrap();

        // Idle longer than the limit: between requests nothing is timed here.
        tokio::time::sleep(limit * 2).await;
        // The next head trickles, a byte every 50 ms: cut off once the limit has passed.
        client_write.write_all(b"P").await.unwrap();
        let started = Instant::now();
        assert_eq!(timed.read(&mut buf).await.unwrap(), 1);
        let outcome = loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            client_write.write_all(b"O").await.unwrap();
            match timed.read(&mut buf).await {
                Ok(_) => {
                    assert!(started.elapsed() < Duration::from_secs(30), "never cut off");
                    continue;
                }
                Err(e) => break e,
            }
        };
        assert_eq!(outcome.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= limit, "{:?}", started.elapsed());
    }

    #[test]
    fn only_final_answers_end_a_request() {
        assert!(is_final_answer(b"HTTP/1.1 200 OK\r\n"));
        assert!(is_final_answer(b"HTTP/1.1 408 Request Timeout\r\n"));
        assert!(!is_final_answer(b"HTTP/1.1 100 Continue\r\n"));
        assert!(!is_final_answer(b"{\"ok\":true}"));
    }
}
