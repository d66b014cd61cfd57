//! The OAuth routes, and the two request extractors every POST endpoint shares: the form body
//! (content type, size limit, RFC 6749 §3.2 parameter rules) and the source address.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use portcullis_core::form::Form;
use portcullis_core::forwarded::TrustedProxies;

use crate::error::Error;
use crate::mtls::PeerCertificates;
use crate::{discovery, introspect, jwks, revoke, token, AuthServer};

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

/// The address a request came from: the TCP peer, or, when the peer is one of
/// [`OAuthSettings::trusted_proxies`](crate::OAuthSettings::trusted_proxies), the client it
/// names in `X-Forwarded-For` ([`TrustedProxies::client_address`]). `0.0.0.0` when the server
/// was not started with connection info (tests, unusual embeddings), so handlers never fail
/// for lack of it. Rate limits, the failure lock-out and audit records all use this address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceAddr(pub IpAddr);

impl FromRequestParts<Arc<AuthServer>> for SourceAddr {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        server: &Arc<AuthServer>,
    ) -> Result<Self, Infallible> {
        Ok(SourceAddr(source_address(
            parts,
            &server.settings.trusted_proxies,
        )))
    }
}

/// The header every common proxy appends the address it received the request from to.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// See [`SourceAddr`]. With no trusted proxy configured (the default) the header is not
/// even looked at.
fn source_address(parts: &Parts, trusted: &TrustedProxies) -> IpAddr {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(addr)| {
            addr.ip()
        });
    if trusted.is_empty() {
        return peer;
    }
    // A field that is not visible ASCII counts as one malformed entry, which ends the walk at
    // the hop that sent it.
    let fields = parts
        .headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .map(|v| v.to_str().unwrap_or("?"));
    trusted.client_address(peer, fields)
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

/// RFC 6749 §3.2 and §4.4.2: requests are `application/x-www-form-urlencoded`; media type
/// names are case-insensitive and may carry parameters (`; charset=UTF-8`).
fn is_form_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = Error;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Error> {
        let (parts, body) = request.into_parts();
        let too_large = Error::BodyTooLarge {
            limit: MAX_BODY_BYTES,
        };
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(too_large);
        }
        let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large),
            Err(_) => return Err(Error::invalid_request("the request body could not be read")),
        };
        // Checked only after the (bounded) body is read: answering before reading it makes
        // hyper close the connection under a client still sending, which then sees a broken
        // pipe instead of this error.
        if !is_form_content_type(&parts.headers) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn form_content_type_accepts_parameters_and_any_case() {
        for ok in [
            "application/x-www-form-urlencoded",
            "Application/X-WWW-Form-Urlencoded; charset=UTF-8",
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ok));
            assert!(is_form_content_type(&h), "{ok}");
        }
        for bad in [
            "application/json",
            "multipart/form-data",
            "application/x-www-form-urlencodedx",
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(bad));
            assert!(!is_form_content_type(&h), "{bad}");
        }
        assert!(!is_form_content_type(&HeaderMap::new()));
    }

    fn parts(peer: &str, forwarded_for: &[&[u8]]) -> Parts {
        let mut request = axum::http::Request::new(());
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(peer.parse().unwrap(), 40000)));
        for v in forwarded_for {
            request
                .headers_mut()
                .append(X_FORWARDED_FOR, HeaderValue::from_bytes(v).unwrap());
        }
        request.into_parts().0
    }

    #[test]
    fn forwarded_for_is_read_only_from_a_trusted_peer() {
        let none = TrustedProxies::default();
        let lb = TrustedProxies::parse(["127.0.0.1/32"]).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let cases: &[(&TrustedProxies, &str, &[&[u8]], &str)] = &[
            (&none, "127.0.0.1", &[b"198.51.100.1"], "127.0.0.1"),
            (&lb, "203.0.113.9", &[b"198.51.100.1"], "203.0.113.9"),
            (&lb, "127.0.0.1", &[b"198.51.100.1"], "198.51.100.1"),
            (
                &lb,
                "127.0.0.1",
                &[b"6.6.6.6, 198.51.100.1"],
                "198.51.100.1",
            ),
            (
                &lb,
                "127.0.0.1",
                &[b"6.6.6.6", b"198.51.100.1"],
                "198.51.100.1",
            ),
            (&lb, "127.0.0.1", &[b"6.6.6.6, \xff"], "127.0.0.1"),
            (&lb, "127.0.0.1", &[], "127.0.0.1"),
        ];
        for (trusted, peer, xff, want) in cases {
            assert_eq!(
                source_address(&parts(peer, xff), trusted),
                ip(want),
                "peer {peer}, XFF {xff:?}"
            );
        }
        let bare = axum::http::Request::new(()).into_parts().0;
        assert_eq!(source_address(&bare, &lb), ip("0.0.0.0"));
    }
}
