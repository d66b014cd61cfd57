//! Rate limits and the authentication-failure lock-out at the token endpoint.

// An integration test: a failure is a failed test, so panicking shortcuts are fine here
// (and in the helpers it shares), unlike in the crates it tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use axum::http::{header, StatusCode};
use common::*;

#[tokio::test]
async fn repeated_authentication_failures_lock_the_address_out() {
    let h = Harness::start(0, 0).await;
    let attacker = h.fresh_addr();
    for i in 0..10 {
        let (status, _, _) = h
            .post_from(
                attacker,
                "/oauth2/token",
                Some(&basic("svc-basic", "guess")),
                "grant_type=client_credentials",
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "failure {i}");
    }
    let (status, headers, body) = h
        .post_from(
            attacker,
            "/oauth2/token",
            Some(&basic("svc-basic", "basic-secret")),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("slow_down"))
    );
    let retry: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    // Others are unaffected.
    h.token_for("svc-basic", "basic-secret").await;
}

#[tokio::test]
async fn per_client_rate_limit_answers_slow_down_with_retry_after() {
    let h = Harness::start(2, 0).await;
    h.token_for("svc-basic", "basic-secret").await;
    h.token_for("svc-basic", "basic-secret").await;
    let (status, headers, body) = h
        .post(
            "/oauth2/token",
            Some(&basic("svc-basic", "basic-secret")),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("slow_down"))
    );
    assert!(headers.contains_key(header::RETRY_AFTER));
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .starts_with("rate limit exceeded; retry after"));
    // Another client has its own budget.
    let (status, _, _) = h
        .post(
            "/oauth2/token",
            None,
            "grant_type=client_credentials&client_id=svc-other&client_secret=other-secret",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn per_address_rate_limit_applies_before_anything_else() {
    let h = Harness::start(0, 1).await;
    let addr = h.fresh_addr();
    let (status, _, _) = h.post_from(addr, "/oauth2/token", None, "junk").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, body) = h.post_from(addr, "/oauth2/token", None, "junk").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("slow_down"))
    );
}
