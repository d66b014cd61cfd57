//! `GET /gateway/v1/trust`: the latest trust list the root signed (`docs/signed-objects.md`),
//! as `application/cose`. Public, like a JWKS: it holds only public keys, and a device
//! believes it because of the root's signature, not because of where it came from.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use portcullis_http::Problem;

use crate::http::APPLICATION_COSE;
use crate::service::Gateway;

/// The trust list route.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/gateway/v1/trust", get(trust_list))
        .with_state(gateway)
}

async fn trust_list(State(gateway): State<Arc<Gateway>>) -> Response {
    match gateway.operator_keys().trust_list().await {
        Ok(Some(signed)) => (
            StatusCode::OK,
            [
                (CONTENT_TYPE, APPLICATION_COSE),
                (CACHE_CONTROL, "no-cache"),
            ],
            signed,
        )
            .into_response(),
        Ok(None) => Problem::new(
            StatusCode::NOT_FOUND,
            "no-trust-list",
            "No trust list",
            "no trust list has been published yet (portcullis trust publish)".to_owned(),
        )
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "the trust list cannot be read");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Unavailable",
                "the trust list cannot be read now".to_owned(),
            )
            .into_response()
        }
    }
}
