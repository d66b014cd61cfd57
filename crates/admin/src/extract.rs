//! Request extractors whose every rejection is an [`AdminError`], so a malformed body, query
//! or path still answers problem+json with a precise detail rather than axum's plain-text
//! rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use portcullis_core::ClientId;
use serde::de::DeserializeOwned;

use crate::errors::AdminError;

/// Largest accepted request body. Admin bodies are small (a JWK Set is the largest member);
/// the limit bounds the memory an authenticated but careless caller can make us use.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON request body.
///
/// An empty body reads as `{}` so that bodies whose members are all optional
/// (`rotate-secret`) may be left out. A non-empty body must be sent as `application/json`
/// or a `+json` type (`application/merge-patch+json` suits `PATCH`).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// Whether the request declares a JSON media type (RFC 6839 §3.1 `+json` suffixes included).
fn declared_json(headers: &HeaderMap) -> Result<(), AdminError> {
    if !headers.contains_key(CONTENT_TYPE) {
        return Err(AdminError::BadRequest(
            "the request has a body but no Content-Type; send Content-Type: application/json"
                .into(),
        ));
    }
    if portcullis_http::is_json(headers) {
        return Ok(());
    }
    let essence = portcullis_http::media_type::essence(headers).unwrap_or_default();
    let shown: String = essence.to_ascii_lowercase().chars().take(64).collect();
    Err(AdminError::BadRequest(format!(
        "Content-Type must be application/json, not '{shown}'"
    )))
}

/// Turns a serde_json failure into a detail that says whether the text was not JSON at all
/// or JSON of the wrong shape, with serde's position and field names.
fn describe_json_error(err: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof => format!("the request body is not valid JSON: {err}"),
        Category::Data | Category::Io => format!("the request body is not acceptable: {err}"),
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = AdminError;

    async fn from_request(request: Request, state: &S) -> Result<Self, AdminError> {
        let content_type_check = declared_json(request.headers());
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    AdminError::PayloadTooLarge(BODY_LIMIT)
                } else {
                    AdminError::BadRequest(format!(
                        "the request body could not be read: {}",
                        rejection.body_text()
                    ))
                }
            })?;
        let text: &[u8] = if bytes.is_empty() {
            b"{}"
        } else if bytes.trim_ascii() == b"null" {
            // An optional body sent as JSON `null` (which the document allows) is no body.
            content_type_check?;
            b"{}"
        } else {
            content_type_check?;
            &bytes
        };
        // serde would describe `[1]` as "expected a string"; say what is really wrong.
        if !text.trim_ascii_start().starts_with(b"{") {
            return Err(AdminError::BadRequest(
                "the request body must be a JSON object".into(),
            ));
        }
        serde_json::from_slice(text)
            .map(JsonBody)
            .map_err(|e| AdminError::BadRequest(describe_json_error(&e)))
    }
}

/// Query parameters, rejecting unknown ones as the request types say.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AdminError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(q)| QueryParams(q))
            .map_err(|rejection| AdminError::BadRequest(rejection.body_text()))
    }
}

/// The `{id}` path segment, validated as a [`ClientId`].
#[derive(Debug)]
pub struct ClientIdPath(pub ClientId);

impl<S: Send + Sync> FromRequestParts<S> for ClientIdPath {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AdminError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| AdminError::BadRequest(rejection.body_text()))?;
        Ok(ClientIdPath(ClientId::parse(raw)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_type(t: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(t));
        h
    }

    #[test]
    fn json_media_types_are_recognised_with_parameters_and_suffixes() {
        assert!(declared_json(&with_type("application/json")).is_ok());
        assert!(declared_json(&with_type("Application/JSON; charset=utf-8")).is_ok());
        assert!(declared_json(&with_type("application/merge-patch+json")).is_ok());
    }

    #[test]
    fn other_media_types_and_a_missing_type_are_refused() {
        assert!(declared_json(&with_type("text/plain")).is_err());
        assert!(declared_json(&with_type("application/x-www-form-urlencoded")).is_err());
        assert!(declared_json(&with_type("text/json+xml")).is_err());
        assert!(declared_json(&HeaderMap::new()).is_err());
    }

    #[test]
    fn json_errors_say_syntax_or_shape() {
        let syntax = serde_json::from_str::<serde_json::Value>("{\"a\" 1}").unwrap_err();
        assert!(describe_json_error(&syntax).contains("not valid JSON"));
        let shape = serde_json::from_str::<u32>("\"x\"").unwrap_err();
        assert!(describe_json_error(&shape).contains("not acceptable"));
    }
}
