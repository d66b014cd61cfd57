//! OCSP over HTTP (RFC 6960 §A.1, RFC 5019 §5–6): `POST /ocsp` with the DER request as body,
//! `GET /ocsp/{url-encoded base64 DER}` for small requests (cacheable by HTTP caches).
//!
//! OCSP errors (malformedRequest, unauthorized, internalError) are OCSP responses and go out
//! with HTTP 200, as clients expect; only what is not an OCSP exchange at all gets an HTTP
//! error: a POST that is not `application/ocsp-request` (415) or is too large (413), a GET
//! path too long to be a request (414).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use portcullis_core::UnixTime;
use x509_ocsp::OcspResponseStatus;

use super::request::{decode_get, OcspError, MAX_REQUEST_BYTES};
use super::responder::{OcspReply, OcspResponder};

const OCSP_REQUEST: &str = "application/ocsp-request";
const OCSP_RESPONSE: &str = "application/ocsp-response";

/// `GET /ocsp/{*req}` and `POST /ocsp`, bodies limited to [`MAX_REQUEST_BYTES`].
pub fn router(responder: Arc<OcspResponder>) -> Router {
    Router::new()
        .route("/ocsp", post(post_request))
        .route("/ocsp/{*req}", get(get_request))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(responder)
}

async fn post_request(
    State(responder): State<Arc<OcspResponder>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if !is_ocsp_request(&headers) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("the body must be {OCSP_REQUEST}"),
        )
            .into_response();
    }
    let body = match body {
        Ok(b) => b,
        Err(e) => return (e.status(), e.body_text()).into_response(),
    };
    let reply = responder.respond(&body).await;
    // POST answers are not cached by HTTP caches anyway (RFC 5019 §5 is why GET exists).
    ocsp_response(&reply, None)
}

async fn get_request(
    State(responder): State<Arc<OcspResponder>>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let reply = match path {
        // axum already percent-decoded the path; `decode_get` accepts both forms.
        Ok(Path(segment)) => match decode_get(&segment) {
            Ok(der) => responder.respond(&der).await,
            Err(OcspError::TooLarge) => {
                return (StatusCode::URI_TOO_LONG, "the OCSP request is too large").into_response()
            }
            Err(e) => {
                tracing::debug!(error = %e, "OCSP: refusing a GET request");
                OcspResponder::error(OcspResponseStatus::MalformedRequest)
            }
        },
        // Percent-escapes that decode to something other than UTF-8: not base64 either.
        Err(_) => OcspResponder::error(OcspResponseStatus::MalformedRequest),
    };
    ocsp_response(&reply, Some(responder.now()))
}

/// `Content-Type: application/ocsp-request`, parameters ignored, case-insensitive (media
/// types are, RFC 9110 §8.3.1).
fn is_ocsp_request(headers: &HeaderMap) -> bool {
    portcullis_http::has_media_type(headers, OCSP_REQUEST)
}

/// The HTTP response for `reply`. With `get_now`, a cacheable reply gets RFC 5019 §6.2's
/// headers: `max-age` up to nextUpdate (never past it, so no cache serves an expired
/// answer), `Last-Modified` thisUpdate and `Expires` nextUpdate; everything else
/// `no-store`.
fn ocsp_response(reply: &OcspReply, get_now: Option<UnixTime>) -> Response {
    let mut response = (StatusCode::OK, reply.der.clone()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(OCSP_RESPONSE),
    );
    match (get_now, reply.cache_window) {
        (Some(now), Some((this_update, next_update))) if next_update > now => {
            let max_age = next_update - now;
            let cache_control = format!("max-age={max_age}, public, no-transform, must-revalidate");
            for (name, value) in [
                (header::CACHE_CONTROL, cache_control),
                (header::LAST_MODIFIED, http_date(this_update)),
                (header::EXPIRES, http_date(next_update)),
            ] {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    headers.insert(name, v);
                }
            }
        }
        _ => {
            portcullis_http::insert_no_store(headers);
        }
    }
    response
}

/// An IMF-fixdate (RFC 9110 §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(t: UnixTime) -> String {
    let dt =
        time::OffsetDateTime::from_unix_timestamp(t).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let weekday = &dt.weekday().to_string()[..3];
    let month = &dt.month().to_string()[..3];
    format!(
        "{weekday}, {:02} {month} {:04} {:02}:{:02}:{:02} GMT",
        dt.day(),
        dt.year(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
