//! RFC 9457 problem details: the error body of every non-OAuth surface (admin API, gateway),
//! so callers parse one error shape.

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The media type of every problem body (RFC 9457 §3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem details object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URN identifying the problem type, e.g. `urn:portcullis:problem:invalid-request`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary that is the same for every occurrence of the type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, for a human.
    pub detail: String,
}

impl Problem {
    /// A problem of type `urn:portcullis:problem:{slug}`.
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: String) -> Self {
        Self {
            kind: format!("urn:portcullis:problem:{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // Serialising four plain fields cannot fail; the fallback keeps the body valid JSON.
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}
