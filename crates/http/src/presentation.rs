//! How an access token reaches one of our endpoints: `Authorization: Bearer` (RFC 6750) or
//! `Authorization: DPoP` with a `DPoP` proof (RFC 9449 §7.1), over a connection that may have
//! presented a client certificate (RFC 8705 §3). The token validator needs all three to
//! check whatever the token is bound to.

use std::net::IpAddr;

use axum::extract::OriginalUri;
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};

use crate::credentials::{access_token, dpop_proof, TokenScheme};
use crate::PeerCertificates;

/// How an access token reached an endpoint, with what proves possession of the key it may be
/// bound to. `Default` is a bearer token over a connection without a client certificate.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presentation<'a> {
    /// The leaf certificate (DER) the TLS connection presented, if any (RFC 8705 §3).
    pub certificate: Option<&'a [u8]>,
    /// Set when the token came as `Authorization: DPoP` (RFC 9449 §7.1).
    pub dpop: Option<DpopPresentation<'a>>,
    /// The client's address as this node attributes it (trusted proxies honoured), for the
    /// audit record of a refused presentation; `None` where the caller does not know it.
    pub source: Option<IpAddr>,
}

/// The request a DPoP-presented token came with: the proof must be for exactly this.
#[derive(Debug, Clone, Copy)]
pub struct DpopPresentation<'a> {
    /// The one `DPoP` header; `None` when there was none, or more than one (§4.3 step 1).
    pub proof: Option<&'a str>,
    /// The HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// The request path, without query.
    pub path: &'a str,
}

/// The access token of a request and how it was presented; `None` without an
/// `Authorization: Bearer` or `DPoP` header.
pub fn presented_access_token(parts: &Parts) -> Option<(&str, Presentation<'_>)> {
    let (scheme, token) = access_token(&parts.headers)?;
    let certificate = parts
        .extensions
        .get::<PeerCertificates>()
        .and_then(PeerCertificates::leaf);
    // Inside a nested router the URI has lost its prefix; the proof names the whole path.
    let path = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(parts.uri.path(), |original| original.path());
    let dpop = (scheme == TokenScheme::Dpop).then(|| DpopPresentation {
        proof: dpop_proof(&parts.headers).ok().flatten(),
        method: parts.method.as_str(),
        path,
    });
    Some((
        token,
        Presentation {
            certificate,
            dpop,
            source: Some(crate::client_address(parts)),
        },
    ))
}

/// Adds what a refused DPoP presentation is answered with (RFC 9449 §7.1, §9): the challenge
/// `WWW-Authenticate: DPoP realm="...", error="..."` and, with `use_dpop_nonce`, the nonce
/// to retry with in `DPoP-Nonce`.
pub fn insert_dpop_challenge(
    headers: &mut HeaderMap,
    realm: &str,
    error: &str,
    nonce: Option<&str>,
) {
    let challenge = format!("DPoP realm=\"{realm}\", error=\"{error}\"");
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        headers.insert(WWW_AUTHENTICATE, value);
    }
    if let Some(value) = nonce.and_then(|n| HeaderValue::from_str(n).ok()) {
        headers.insert("dpop-nonce", value);
    }
}
