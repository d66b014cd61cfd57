//! The response edge of the OAuth endpoints: the crate's one error enum and its single
//! mapping to RFC 6749 §5.2 JSON bodies, so every endpoint fails the same way.
//!
//! `OAuthError` lives in `portcullis-core` and `IntoResponse` in axum, so the orphan rule
//! forbids implementing one for the other; [`Error::OAuth`] wraps it instead. Internal
//! failures (store, keys) are logged here and answered with a fixed description that never
//! leaks their details.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_core::{ClientId, ErrorCode, OAuthError};
use portcullis_keys::KeyError;
use portcullis_store::StoreError;
use serde::Serialize;

/// Everything an OAuth endpoint can answer with instead of success.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A protocol error, rendered as is (RFC 6749 §5.2).
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    /// Client authentication failed: answered exactly as [`Error::OAuth`] (`invalid_client`);
    /// `reason` (`FailureReason::as_str`) goes to the audit record only, where attack
    /// detection tells a disabled client or a replayed assertion from a wrong secret.
    #[error("{error}")]
    ClientAuth {
        reason: &'static str,
        error: OAuthError,
    },
    /// A single-use credential came a second time (a DPoP proof, an outside token's `jti`):
    /// answered exactly as [`Error::OAuth`]; audited with reason `replay`, which attack
    /// detection counts as it counts replayed client assertions — per client: the one the
    /// replayed credential maps to, when no client authenticated (an outside token or SAML
    /// assertion sent alone), else the authenticated one.
    #[error("{0}")]
    Replayed(OAuthError, Option<ClientId>),
    /// RFC 9449 §8: the DPoP proof must carry the server nonce, which the answer's
    /// `DPoP-Nonce` header gives; answered 400 `use_dpop_nonce`.
    #[error("a DPoP nonce is required")]
    UseDpopNonce { nonce: String },
    /// An abuse limit was hit; answered 429 `slow_down` with `Retry-After` (RFC 6585 §4).
    #[error("rate limit exceeded; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// The request body exceeded the endpoint's limit; answered 413.
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// The store could not answer; answered 503 `temporarily_unavailable`.
    #[error("store unavailable: {0}")]
    Store(#[from] StoreError),
    /// The request's audit record could not be stored in time; answered 503
    /// `temporarily_unavailable` (a request that cannot be audited is not answered).
    #[error("audit log unavailable")]
    Audit(#[from] portcullis_audit::AuditUnavailable),
    /// Signing or unsealing failed; answered 500 `server_error`.
    #[error("key operation failed: {0}")]
    Key(#[from] KeyError),
    /// A response could not be encoded; answered 500 `server_error`.
    #[error("could not encode a response: {0}")]
    Encode(#[from] serde_json::Error),
}

impl From<portcullis_http::Limited> for Error {
    fn from(l: portcullis_http::Limited) -> Self {
        Error::RateLimited {
            retry_after_secs: l.retry_after_secs,
        }
    }
}

impl Error {
    /// What the refusal's audit record names as its `reason` (never shown to the caller):
    /// why client authentication failed, or `replay`.
    pub fn audit_reason(&self) -> Option<&'static str> {
        match self {
            Error::ClientAuth { reason, .. } => Some(reason),
            Error::Replayed(..) => Some(portcullis_core::detection::REASON_REPLAY),
            _ => None,
        }
    }

    /// The OAuth error code the caller sees, for audit records and metrics.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::OAuth(e) | Error::ClientAuth { error: e, .. } | Error::Replayed(e, _) => e.code,
            Error::UseDpopNonce { .. } => ErrorCode::UseDpopNonce,
            Error::RateLimited { .. } => ErrorCode::SlowDown,
            Error::BodyTooLarge { .. } => ErrorCode::InvalidRequest,
            Error::Store(_) | Error::Audit(_) => ErrorCode::TemporarilyUnavailable,
            Error::Key(_) | Error::Encode(_) => ErrorCode::ServerError,
        }
    }

    /// Shorthand for an `invalid_request` error.
    pub(crate) fn invalid_request(description: &'static str) -> Self {
        Error::OAuth(OAuthError::invalid_request(description))
    }
}

/// The RFC 6749 §5.2 body.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

/// RFC 6749 §5.2: a 401 `invalid_client` answer carries the challenge of the scheme the
/// client may use.
pub const CLIENT_CHALLENGE: &str = "Basic realm=\"portcullis\"";

/// RFC 9449 §8.1: the header a server nonce travels in.
pub const DPOP_NONCE: &str = "dpop-nonce";

/// A JSON response with the RFC 6749 §5.1 no-store headers, used by every OAuth endpoint.
pub(crate) fn json_no_store(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // RFC 6749 §5.1: responses carrying tokens or credentials must not be cached.
    portcullis_http::insert_no_store(headers);
    response
}

/// Renders an RFC 6749 §5.2 error body with its status and headers.
fn render(code: ErrorCode, description: &str, status: StatusCode) -> Response {
    let body = serde_json::to_vec(&ErrorBody {
        error: code.as_str(),
        error_description: description,
    })
    // Serialising two strings cannot fail; an empty body is still a valid answer.
    .unwrap_or_default();
    let mut response = json_no_store(status, body);
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(CLIENT_CHALLENGE),
        );
    }
    response
}

fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST)
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::OAuth(e) | Error::ClientAuth { error: e, .. } | Error::Replayed(e, _) => {
                render(e.code, &e.description, status_of(e.code))
            }
            Error::UseDpopNonce { nonce } => {
                let mut response = render(
                    ErrorCode::UseDpopNonce,
                    "the DPoP proof must carry the nonce in the DPoP-Nonce header",
                    StatusCode::BAD_REQUEST,
                );
                if let Ok(value) = HeaderValue::from_str(&nonce) {
                    response.headers_mut().insert(DPOP_NONCE, value);
                }
                response
            }
            Error::RateLimited { retry_after_secs } => {
                let secs = retry_after_secs.max(1);
                let description = format!("rate limit exceeded; retry after {secs} s");
                let mut response = render(
                    ErrorCode::SlowDown,
                    &description,
                    StatusCode::TOO_MANY_REQUESTS,
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                response
            }
            Error::BodyTooLarge { limit } => render(
                ErrorCode::InvalidRequest,
                &format!("request body is larger than {limit} bytes"),
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            Error::Store(_) | Error::Audit(_) => {
                tracing::error!(error = %self, "store or audit log unavailable while serving an OAuth request");
                let mut response = render(
                    ErrorCode::TemporarilyUnavailable,
                    "the server is temporarily unable to handle the request; retry later",
                    StatusCode::SERVICE_UNAVAILABLE,
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
            Error::Key(e) => {
                tracing::error!(error = %e, "key operation failed while serving an OAuth request");
                let e = OAuthError::server_error();
                render(e.code, &e.description, StatusCode::INTERNAL_SERVER_ERROR)
            }
            Error::Encode(e) => {
                tracing::error!(error = %e, "could not encode an OAuth response");
                let e = OAuthError::server_error();
                render(e.code, &e.description, StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_client_is_401_with_basic_challenge_and_no_store() {
        let r = Error::OAuth(OAuthError::invalid_client("client authentication failed"))
            .into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], CLIENT_CHALLENGE);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(r.headers()[header::PRAGMA], "no-cache");
    }

    #[test]
    fn rate_limit_is_429_with_retry_after_of_at_least_one_second() {
        let r = Error::RateLimited {
            retry_after_secs: 0,
        }
        .into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn internal_failures_do_not_leak_their_details() {
        let r = Error::Key(KeyError::Corrupt("sealed blob 0xdeadbeef".into())).into_response();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            Error::BodyTooLarge { limit: 1 }.into_response().status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }
}
