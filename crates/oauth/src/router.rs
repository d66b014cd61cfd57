//! The OAuth routes, and the two request extractors every POST endpoint shares: the form body
//! (content type, size limit, RFC 6749 §3.2 parameter rules) and the source address.

use std::sync::Arc;

use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;
use portcullis_core::form::Form;
use portcullis_http::{has_media_type, read_bounded, BodyError};

use crate::error::Error;
use crate::mtls::PeerCertificates;
use crate::{discovery, introspect, jwks, revoke, token, AuthServer};

pub use portcullis_http::SourceAddr;

/// Largest request body accepted at the OAuth endpoints; real requests are under 4 KiB, and
/// the largest (a client assertion) is bounded by the keys crate at 16 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Every OAuth route of the authorization server, over shared state.
pub fn router(server: Arc<AuthServer>) -> Router {
    Router::new()
        .route("/oauth2/token", post(token::token))
        .route("/oauth2/introspect", post(introspect::introspect))
        .route("/oauth2/revoke", post(revoke::revoke))
        .route("/jwks.json", get(jwks::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::oauth_metadata),
        )
        .route(
            "/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .with_state(server)
}

/// An `application/x-www-form-urlencoded` body parsed with the OAuth rules (RFC 6749 §3.2:
/// no parameter twice, except the repeatable `resource` of RFC 8707 §2), with the request
/// headers kept for client authentication.
#[derive(Debug)]
pub struct OAuthForm {
    pub headers: HeaderMap,
    pub form: Form,
    /// The client certificate chain of the TLS connection, if it presented one (RFC 8705).
    pub peer_certificates: Option<PeerCertificates>,
}

/// RFC 6749 §3.2 and §4.4.2: requests are `application/x-www-form-urlencoded`.
const FORM: &str = "application/x-www-form-urlencoded";

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = Error;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Error> {
        let (parts, body) = request.into_parts();
        let bytes = read_bounded(&parts.headers, body, MAX_BODY_BYTES)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge(limit) => Error::BodyTooLarge { limit },
                _ => Error::invalid_request("the request body could not be read"),
            })?;
        // Checked only after the (bounded) body is read (see portcullis_http::body).
        if !has_media_type(&parts.headers, FORM) {
            return Err(Error::invalid_request(
                "Content-Type must be application/x-www-form-urlencoded",
            ));
        }
        let form = Form::parse(&bytes, &["resource"])?;
        // A reference-count increment when the connection presented a certificate; nothing
        // otherwise.
        let peer_certificates = parts.extensions.get::<PeerCertificates>().cloned();
        Ok(OAuthForm {
            headers: parts.headers,
            form,
            peer_certificates,
        })
    }
}
