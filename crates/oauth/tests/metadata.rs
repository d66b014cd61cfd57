//! JWKS and discovery documents through the router.

// An integration test: a failure is a failed test, so panicking shortcuts are fine here
// (and in the helpers it shares), unlike in the crates it tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::*;

#[tokio::test]
async fn jwks_publishes_the_signing_key_and_is_cacheable() {
    let h = Harness::start(0, 0).await;
    let (status, headers, body) = h
        .send(Request::get("/jwks.json").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=300");
    let kid = h.server.keys().active().kid().as_str().to_owned();
    assert!(body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["kid"] == kid.as_str()));
}

#[tokio::test]
async fn both_discovery_documents_name_every_endpoint() {
    let h = Harness::start(0, 0).await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let (status, headers, body) = h
            .send(Request::get(path).body(Body::empty()).unwrap())
            .await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(body["issuer"], ISSUER);
        assert_eq!(body["token_endpoint"], format!("{ISSUER}/oauth2/token"));
        assert_eq!(body["jwks_uri"], format!("{ISSUER}/jwks.json"));
        // The SAML 2.0 bearer grant is listed by builds that verify SAML (feature `saml`).
        let mut grants = vec![
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ];
        if cfg!(feature = "saml") {
            grants.push("urn:ietf:params:oauth:grant-type:saml2-bearer");
        }
        assert_eq!(body["grant_types_supported"], serde_json::json!(grants));
    }
    let (_, _, oidc) = h
        .send(
            Request::get("/.well-known/openid-configuration")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        oidc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
}

#[tokio::test]
async fn post_endpoints_refuse_get() {
    let h = Harness::start(0, 0).await;
    let (status, _, _) = h
        .send(Request::get("/oauth2/token").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}
