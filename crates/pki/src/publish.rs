//! What relying parties fetch over plain HTTP (and HTTPS): the CRL named in every
//! certificate's CRL Distribution Points, and the CA certificates.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::service::Pki;

pub fn router(pki: Arc<Pki>) -> Router {
    Router::new()
        .route("/pki/crl", get(crl_der))
        .route("/pki/crl.pem", get(crl_pem))
        .route("/pki/ca.der", get(ca_der))
        .route("/pki/ca.pem", get(ca_pem))
        .with_state(pki)
}

async fn crl(pki: &Pki, pem: bool) -> Response {
    match pki.crl.current(crate::clock::unix_now_millis()).await {
        Ok(crl) => {
            let max_age = (crl.next_update - crl.this_update).clamp(0, 300);
            let cache = HeaderValue::from_str(&format!("max-age={max_age}"))
                .unwrap_or(HeaderValue::from_static("no-cache"));
            if pem {
                (
                    [
                        (
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/x-pem-file"),
                        ),
                        (header::CACHE_CONTROL, cache),
                    ],
                    crl.pem.clone(),
                )
                    .into_response()
            } else {
                (
                    [
                        (
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/pkix-crl"),
                        ),
                        (header::CACHE_CONTROL, cache),
                    ],
                    crl.der.clone(),
                )
                    .into_response()
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "CRL generation failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "CRL temporarily unavailable\n",
            )
                .into_response()
        }
    }
}

async fn crl_der(State(pki): State<Arc<Pki>>) -> Response {
    crl(&pki, false).await
}

async fn crl_pem(State(pki): State<Arc<Pki>>) -> Response {
    crl(&pki, true).await
}

async fn ca_der(State(pki): State<Arc<Pki>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/pkix-cert"),
        )],
        pki.ca.issuing_der().to_vec(),
    )
        .into_response()
}

async fn ca_pem(State(pki): State<Arc<Pki>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-pem-file"),
        )],
        pki.ca.chain_pem(),
    )
        .into_response()
}
