//! Bearer-token checks: every route but the OpenAPI document needs an admin token.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};

use crate::admin_api::harness::Harness;

/// Every protected route, with a method it answers to.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/clients"),
    ("GET", "/clients"),
    ("GET", "/clients/x"),
    ("PATCH", "/clients/x"),
    ("DELETE", "/clients/x"),
    ("POST", "/clients/x/rotate-secret"),
    ("GET", "/audit"),
    ("POST", "/audit/verify"),
];

fn request(method: &str, path: &str, authorization: Option<&str>) -> Request<Body> {
    let mut b = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path);
    if let Some(a) = authorization {
        b = b.header(header::AUTHORIZATION, a);
    }
    b.header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap()
}

#[tokio::test]
async fn request_without_token_is_401_with_invalid_token_challenge() {
    let h = Harness::new().await;
    for (method, path) in ROUTES {
        let r = h.send(request(method, path, None)).await;
        r.assert_problem(StatusCode::UNAUTHORIZED);
        let challenge = r.www_authenticate.unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains(r#"error="invalid_token""#),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn token_without_admin_scope_is_403_insufficient_scope() {
    let h = Harness::new().await;
    for scope in [
        None,
        Some("read write"),
        Some("portcullis:admin2"),
        Some("portcullis:adminx read"),
    ] {
        let token = h.token("reader", scope, 300);
        for (method, path) in ROUTES {
            let r = h
                .send(request(method, path, Some(&format!("Bearer {token}"))))
                .await;
            r.assert_problem(StatusCode::FORBIDDEN);
            assert!(r
                .www_authenticate
                .unwrap_or_default()
                .contains(r#"error="insufficient_scope""#));
        }
    }
}

#[tokio::test]
async fn expired_garbage_and_foreign_tokens_are_401() {
    let h = Harness::new().await;
    let expired = h.token("admin-cli", Some("portcullis:admin"), -10);
    let valid = h.token("admin-cli", Some("portcullis:admin"), 300);
    let mut tampered = valid.clone();
    tampered.pop();
    tampered.push(if valid.ends_with('A') { 'B' } else { 'A' });
    let alg_none = "eyJhbGciOiJub25lIn0.eyJzY29wZSI6InBvcnRjdWxsaXM6YWRtaW4ifQ.";
    for auth in [
        format!("Bearer {expired}"),
        "Bearer garbage".to_owned(),
        format!("Bearer {tampered}"),
        format!("Bearer {alg_none}"),
        format!("Basic {valid}"),
        "Bearer ".to_owned(),
        format!("Bearer {}", "a.".repeat(10_000)),
    ] {
        let r = h.send(request("GET", "/clients", Some(&auth))).await;
        r.assert_problem(StatusCode::UNAUTHORIZED);
        assert!(r
            .www_authenticate
            .unwrap_or_default()
            .contains(r#"error="invalid_token""#));
    }
    // The scheme is case-insensitive (RFC 9110 §11.1).
    let r = h
        .send(request("GET", "/clients", Some(&format!("bearer {valid}"))))
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn authentication_is_checked_before_the_body() {
    let h = Harness::new().await;
    let req = Request::builder()
        .method(Method::POST)
        .uri("/clients")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("not json"))
        .unwrap();
    h.send(req).await.assert_problem(StatusCode::UNAUTHORIZED);
}
