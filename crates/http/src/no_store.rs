//! Answers that carry tokens, credentials or per-request decisions must not be cached by any
//! intermediary (RFC 6749 §5.1; RFC 9111 §5.2.2.5).

use axum::http::header::{CACHE_CONTROL, PRAGMA};
use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// `Cache-Control: no-store` and, for HTTP/1.0 caches, `Pragma: no-cache`.
pub const NO_STORE: [(HeaderName, HeaderValue); 2] = [
    (CACHE_CONTROL, HeaderValue::from_static("no-store")),
    (PRAGMA, HeaderValue::from_static("no-cache")),
];

/// Adds [`NO_STORE`] to a response's headers.
pub fn insert_no_store(headers: &mut HeaderMap) {
    for (name, value) in NO_STORE {
        headers.insert(name, value);
    }
}
