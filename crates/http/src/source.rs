//! The address a request came from: the TCP peer, or, when the peer is a trusted reverse
//! proxy, the client it names in `X-Forwarded-For` (the walk itself is the pure rule
//! `portcullis_core::forwarded`). Rate limits, failure lock-outs and audit records on every
//! surface use this one address.
//!
//! The server installs its `TrustedProxies` as a request extension once, so every surface
//! resolves the address the same way without carrying the list in its own state.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use portcullis_core::forwarded::TrustedProxies;

/// The header every common proxy appends the address it received the request from to.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The resolved source address of a request (see [`client_address`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for SourceAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(SourceAddr(client_address(parts)))
    }
}

/// The TCP peer, unless it is one of the trusted proxies installed as an
/// `Arc<TrustedProxies>` request extension; then the right-most `X-Forwarded-For` entry that
/// is not itself a trusted proxy. `0.0.0.0` when the server was started without connection
/// info (router tests), so handlers never fail for lack of it. With no trusted proxy (the
/// default) the header is not even looked at.
pub fn client_address(parts: &Parts) -> IpAddr {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(addr)| {
            addr.ip()
        });
    let Some(trusted) = parts.extensions.get::<Arc<TrustedProxies>>() else {
        return peer;
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn parts(peer: &str, forwarded_for: &[&[u8]], trusted: Option<&TrustedProxies>) -> Parts {
        let mut request = axum::http::Request::new(());
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(peer.parse().unwrap(), 40000)));
        if let Some(trusted) = trusted {
            request.extensions_mut().insert(Arc::new(trusted.clone()));
        }
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
        // (trusted proxies installed, TCP peer, X-Forwarded-For fields, expected address)
        type Case<'a> = (Option<&'a TrustedProxies>, &'a str, &'a [&'a [u8]], &'a str);
        let cases: &[Case] = &[
            (None, "127.0.0.1", &[b"198.51.100.1"], "127.0.0.1"),
            (Some(&none), "127.0.0.1", &[b"198.51.100.1"], "127.0.0.1"),
            (Some(&lb), "203.0.113.9", &[b"198.51.100.1"], "203.0.113.9"),
            (Some(&lb), "127.0.0.1", &[b"198.51.100.1"], "198.51.100.1"),
            (
                Some(&lb),
                "127.0.0.1",
                &[b"6.6.6.6, 198.51.100.1"],
                "198.51.100.1",
            ),
            (
                Some(&lb),
                "127.0.0.1",
                &[b"6.6.6.6", b"198.51.100.1"],
                "198.51.100.1",
            ),
            (Some(&lb), "127.0.0.1", &[b"6.6.6.6, \xff"], "127.0.0.1"),
            (Some(&lb), "127.0.0.1", &[], "127.0.0.1"),
        ];
        for (trusted, peer, xff, want) in cases {
            assert_eq!(
                client_address(&parts(peer, xff, *trusted)),
                ip(want),
                "peer {peer}, XFF {xff:?}"
            );
        }
        let mut bare = axum::http::Request::new(());
        bare.extensions_mut().insert(Arc::new(lb));
        assert_eq!(client_address(&bare.into_parts().0), ip("0.0.0.0"));
    }
}
