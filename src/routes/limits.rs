//! What the HTTP side accepts: the callback paths, the largest body, how long a body may take.

use std::time::Duration;

use actix_web::http::header::{HeaderMap, CONTENT_LENGTH};

use crate::callback::catalogue::Product;

/// Paths the bridge serves itself; the callback path must not shadow them.
pub const OWN_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// A client that has not sent its whole body by then is cut off: slow bodies tie up memory.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// 16 MiB: with each buffered byte costing about four more while it is parsed and copied into
/// librdkafka, a full budget adds ~80 MB at most (docs/reliability.md has the measurement).
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 16 << 20;
/// Open connections at once (`MAX_CONNECTIONS`). Each may hold about 80 KB in the HTTP layer's
/// buffers before the byte budget sees any of it (measured: docs/reliability.md), so this is
/// what bounds that memory: 512 × 80 KB ≈ 40 MB.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// The route and its request limits.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Where ZEGOCLOUD posts (`CALLBACK_PATH`).
    pub callback_path: String,
    /// Larger bodies get 413 (`MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    pub body_read_timeout: Duration,
    /// Request bytes held at once, from the first byte read until the answer is sent
    /// (`MAX_BUFFERED_BYTES`): bodies being read, verified, and awaiting their ack.
    pub max_buffered_bytes: usize,
    /// Open connections at once (`MAX_CONNECTIONS`); past it the listener stops accepting
    /// until one closes, and new connections wait in the kernel's backlog.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            callback_path: "/zego/callback".into(),
            max_body_bytes: 65536,
            body_read_timeout: BODY_READ_TIMEOUT,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl HttpLimits {
    /// Each product's callback path: `CALLBACK_PATH` for In-app Chat, `CALLBACK_PATH/rtc`,
    /// `/recording` and `/ai-agent` for the others.
    pub fn product_paths(&self) -> impl Iterator<Item = (Product, String)> + '_ {
        Product::ALL
            .into_iter()
            .map(|product| (product, product.path_under(&self.callback_path)))
    }

    /// The product whose callback path `path` is (without building the paths).
    pub fn product_at(&self, path: &str) -> Option<Product> {
        if path == self.callback_path {
            return Some(Product::Zim);
        }
        let suffix = path.strip_prefix(self.callback_path.trim_end_matches('/'))?;
        Product::ALL
            .into_iter()
            .find(|product| !suffix.is_empty() && product.path_suffix() == suffix)
    }
}

/// A callback path that names a path and is not one of the bridge's own.
pub fn validate_callback_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path.len() < 2 {
        return Err(format!("must start with '/' and name a path, got {path:?}"));
    }
    if OWN_PATHS.contains(&path) {
        return Err(format!("must not be {path}: that path is the bridge's own"));
    }
    Ok(())
}

/// The body length a request declares in `Content-Length`, if it declares one that parses
/// (actix has already refused a malformed one). Checked against `max_body_bytes` before any
/// body byte is read, and before `100 Continue`.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}
