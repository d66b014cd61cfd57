//! Introspection (RFC 7662) and revocation (RFC 7009) through the router.

// An integration test: a failure is a failed test, so panicking shortcuts are fine here
// (and in the helpers it shares), unlike in the crates it tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use axum::http::{header, StatusCode};
use common::*;
use portcullis_oauth::TokenRejection;
use serde_json::json;

#[tokio::test]
async fn active_token_introspects_with_its_claims() {
    let h = Harness::start(0, 0).await;
    let token = h.token_for("svc-basic", "basic-secret").await;
    let (status, headers, body) = h
        .post(
            "/oauth2/introspect",
            Some(&basic("svc-other", "other-secret")),
            format!("token={token}&token_type_hint=whatever"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], "svc-basic");
    assert_eq!(body["sub"], "svc-basic");
    assert_eq!(body["scope"], "read write");
    assert_eq!(body["aud"], API);
    assert_eq!(body["iss"], ISSUER);
    assert_eq!(body["exp"], h.now + 600);
    assert_eq!(body["iat"], h.now);
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["jti"].is_string());
}

#[tokio::test]
async fn anything_but_an_active_token_of_ours_is_inactive() {
    let h = Harness::start(0, 0).await;
    let caller = basic("svc-other", "other-secret");
    // A JWT signed by a key that is not ours, with our issuer.
    let foreign = h.stranger_key.sign(&json!({"iss": ISSUER, "sub": "x", "aud": API, "exp": h.now + 60, "iat": h.now, "jti": "f", "client_id": "x"})).unwrap();
    for token in ["garbage", "a.b.c", foreign.as_str(), &"x".repeat(20_000)] {
        let (status, _, body) = h
            .post(
                "/oauth2/introspect",
                Some(&caller),
                format!("token={token}"),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"active": false}), "{token:.20}");
    }
    assert_eq!(
        h.server.validate_access_token(&foreign).unwrap_err(),
        TokenRejection::UnknownKey
    );
}

#[tokio::test]
async fn introspection_requires_client_authentication_and_a_token() {
    let h = Harness::start(0, 0).await;
    let token = h.token_for("svc-basic", "basic-secret").await;
    let (status, headers, body) = h
        .post("/oauth2/introspect", None, format!("token={token}"))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    assert_eq!(
        headers[header::WWW_AUTHENTICATE],
        "Basic realm=\"portcullis\""
    );
    let (status, _, body) = h
        .post(
            "/oauth2/introspect",
            Some(&basic("svc-basic", "basic-secret")),
            "",
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
}

#[tokio::test]
async fn a_client_revokes_its_own_token_everywhere() {
    let h = Harness::start(0, 0).await;
    let owner = basic("svc-basic", "basic-secret");
    let token = h.token_for("svc-basic", "basic-secret").await;
    let jti = h.server.validate_access_token(&token).unwrap().jti;
    let (status, headers, _) = h
        .post(
            "/oauth2/revoke",
            Some(&owner),
            format!("token={token}&token_type_hint=refresh_token"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(
        h.server.validate_access_token(&token).unwrap_err(),
        TokenRejection::Revoked
    );
    assert!(h.store.is_token_revoked(&jti).await.unwrap());
    let (_, _, body) = h
        .post("/oauth2/introspect", Some(&owner), format!("token={token}"))
        .await;
    assert_eq!(body, json!({"active": false}));
    // Revoking again is fine.
    let (status, _, _) = h
        .post("/oauth2/revoke", Some(&owner), format!("token={token}"))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn another_clients_token_is_answered_200_but_not_revoked() {
    let h = Harness::start(0, 0).await;
    let token = h.token_for("svc-basic", "basic-secret").await;
    let (status, _, _) = h
        .post(
            "/oauth2/revoke",
            Some(&basic("svc-other", "other-secret")),
            format!("token={token}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(h.server.validate_access_token(&token).is_ok());
}

#[tokio::test]
async fn malformed_tokens_revoke_to_200_and_unauthenticated_callers_to_401() {
    let h = Harness::start(0, 0).await;
    let (status, _, _) = h
        .post(
            "/oauth2/revoke",
            Some(&basic("svc-basic", "basic-secret")),
            "token=nonsense",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = h
        .post(
            "/oauth2/revoke",
            Some(&basic("svc-basic", "wrong")),
            "token=nonsense",
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (status, _, body) = h
        .post(
            "/oauth2/revoke",
            Some(&basic("svc-basic", "basic-secret")),
            "",
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
}

#[tokio::test]
async fn expired_tokens_are_rejected_by_validation() {
    let h = Harness::start(0, 0).await;
    let token = h.token_for("svc-basic", "basic-secret").await;
    let later = h.now + 601;
    let server = portcullis_oauth::AuthServer::new(
        h.server.settings().clone(),
        h.store.clone(),
        h.server.keys().clone(),
        h.audit.clone(),
        zeroize::Zeroizing::new(PEPPER.to_vec()),
        h.master.clone(),
    )
    .with_clock(move || later);
    assert_eq!(
        server.validate_access_token(&token).unwrap_err(),
        TokenRejection::Expired
    );
}
