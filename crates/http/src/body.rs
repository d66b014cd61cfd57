//! Reading a request body with a size bound.
//!
//! The body is read (up to the bound) before any check that could refuse the request:
//! answering early makes hyper close the connection while the client is still sending, and
//! the client then sees a broken pipe instead of the answer. A declared `Content-Length` over
//! the bound is refused at once, so a client that sends `Expect: 100-continue` (curl does)
//! gets the refusal before sending anything.

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_LENGTH;
use axum::http::HeaderMap;
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyError {
    /// Declared or sent more than the bound (in bytes).
    TooLarge(usize),
    /// The connection failed mid-body.
    Unreadable,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge(limit) => write!(f, "the request body exceeds {limit} bytes"),
            Self::Unreadable => f.write_str("the request body could not be read"),
        }
    }
}

/// The whole body, at most `limit` bytes.
pub async fn read_bounded(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(BodyError::TooLarge(limit)),
        Err(_) => Err(BodyError::Unreadable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[tokio::test]
    async fn bodies_up_to_the_bound_are_read_and_longer_ones_refused() {
        let h = HeaderMap::new();
        let ok = read_bounded(&h, Body::from("abcd"), 4).await.unwrap();
        assert_eq!(&ok[..], b"abcd");
        assert_eq!(
            read_bounded(&h, Body::from("abcde"), 4).await.unwrap_err(),
            BodyError::TooLarge(4)
        );
    }

    #[tokio::test]
    async fn a_declared_length_over_the_bound_is_refused_before_reading() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("5"));
        assert_eq!(
            read_bounded(&h, Body::from("ab"), 4).await.unwrap_err(),
            BodyError::TooLarge(4)
        );
    }
}
