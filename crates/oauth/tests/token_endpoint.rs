//! `POST /oauth2/token` end to end through the router: every client authentication method,
//! and a table of hostile requests each answered with its exact error.

// An integration test: a failure is a failed test, so panicking shortcuts are fine here
// (and in the helpers it shares), unlike in the crates it tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::*;
use serde_json::json;

#[tokio::test]
async fn client_secret_basic_gets_a_signed_access_token() {
    let h = Harness::start(0, 0).await;
    let (status, headers, body) = h
        .post(
            "/oauth2/token",
            Some(&basic("svc-basic", "basic-secret")),
            "grant_type=client_credentials&scope=read",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(headers[header::PRAGMA], "no-cache");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["scope"], "read");
    let claims = h
        .server
        .validate_access_token(body["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(claims.client_id, "svc-basic");
    assert_eq!(claims.sub, "svc-basic");
    assert_eq!(claims.iss, ISSUER);
    assert_eq!(claims.exp, h.now + 600);
    assert!(claims.aud.contains(API));
    assert_eq!(claims.jti.len(), 22, "base64url of 16 random bytes");
}

#[tokio::test]
async fn url_encoded_basic_credentials_and_client_secret_post_both_work() {
    let h = Harness::start(0, 0).await;
    let auth = format!("Basic {}", base64_std("svc-basic:basic%2Dsecret"));
    let (status, _, body) = h
        .post(
            "/oauth2/token",
            Some(&auth),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["scope"], "read write",
        "no scope requested grants every allowed scope"
    );

    let (status, _, body) = h
        .post(
            "/oauth2/token",
            None,
            "grant_type=client_credentials&client_id=svc-other&client_secret=other-secret",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.get("scope").is_none(),
        "an empty scope is omitted: {body}"
    );
    let claims = h
        .server
        .validate_access_token(body["access_token"].as_str().unwrap())
        .unwrap();
    assert!(
        claims.aud.contains(ISSUER),
        "no audiences configured means the issuer"
    );
}

fn base64_std(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn private_key_jwt_and_client_secret_jwt_authenticate() {
    let h = Harness::start(0, 0).await;
    let assertion = h
        .client_key
        .sign(&h.assertion_claims("svc-pkjwt", "pk-1"))
        .unwrap();
    let (status, _, body) = h
        .post("/oauth2/token", None, assertion_form(&assertion))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let claims = h.assertion_claims("svc-csjwt", "cs-1");
    let assertion = hand_made_jwt(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &claims,
        Some(b"hmac-secret-hmac-secret-hmac-sec"),
    );
    let (status, _, body) = h
        .post("/oauth2/token", None, assertion_form(&assertion))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn resource_selects_an_allowed_audience() {
    let h = Harness::start(0, 0).await;
    let body = format!("grant_type=client_credentials&resource={API}");
    let (status, _, body) = h
        .post(
            "/oauth2/token",
            Some(&basic("svc-basic", "basic-secret")),
            body,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = h
        .server
        .validate_access_token(body["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(claims.aud.to_vec(), vec![API.to_owned()]);
}

#[tokio::test]
async fn hostile_token_requests_get_their_exact_error_and_a_normal_request_still_succeeds() {
    let h = Harness::start(0, 0).await;
    let good = basic("svc-basic", "basic-secret");
    let cc = "grant_type=client_credentials";
    let pk = |claims: serde_json::Value| assertion_form(&h.client_key.sign(&claims).unwrap());
    let mut expired = h.assertion_claims("svc-pkjwt", "exp-1");
    expired["exp"] = json!(h.now - 300);
    let mut wrong_aud = h.assertion_claims("svc-pkjwt", "aud-1");
    wrong_aud["aud"] = json!("https://elsewhere.example/token");
    let replayed = pk(h.assertion_claims("svc-pkjwt", "replay-1"));
    let (status, _, body) = h.post("/oauth2/token", None, replayed.clone()).await;
    assert_eq!(status, StatusCode::OK, "first use of the jti: {body}");
    let kid = h.client_key.kid().as_str().to_owned();
    let alg_none = hand_made_jwt(
        &json!({"alg": "none", "kid": kid}),
        &h.assertion_claims("svc-pkjwt", "none-1"),
        None,
    );
    let hs_public = hand_made_jwt(
        &json!({"alg": "HS256", "kid": kid}),
        &h.assertion_claims("svc-pkjwt", "hs-1"),
        Some(h.client_jwks.as_bytes()),
    );
    let unknown_kid = assertion_form(
        &h.stranger_key
            .sign(&h.assertion_claims("svc-pkjwt", "kid-1"))
            .unwrap(),
    );

    struct Case {
        name: &'static str,
        auth: Option<String>,
        body: String,
        status: StatusCode,
        error: &'static str,
    }
    let case = |name, auth: Option<&str>, body: String, status, error| Case {
        name,
        auth: auth.map(str::to_owned),
        body,
        status,
        error,
    };
    let cases = vec![
        case(
            "malformed form",
            Some(&good),
            "grant_type=client_credentials&scope=a&scope=b".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "repeated grant_type",
            Some(&good),
            format!("{cc}&{cc}"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "missing grant_type",
            Some(&good),
            "scope=read".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "unknown client",
            Some(&basic("svc-nobody", "x")),
            cc.into(),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        case(
            "wrong secret",
            Some(&basic("svc-basic", "wrong")),
            cc.into(),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        case(
            "disabled client",
            Some(&basic("svc-disabled", "disabled-secret")),
            cc.into(),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        case(
            "no authentication",
            None,
            cc.into(),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        case(
            "two methods",
            Some(&good),
            format!("{cc}&client_id=svc-basic&client_secret=basic-secret"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "malformed basic",
            Some("Basic %%%"),
            cc.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        case(
            "unallowed scope",
            Some(&good),
            format!("{cc}&scope=admin"),
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        case(
            "unallowed resource",
            Some(&good),
            format!("{cc}&resource=https://evil.example"),
            StatusCode::BAD_REQUEST,
            "invalid_target",
        ),
        case(
            "password grant",
            Some(&good),
            "grant_type=password&username=u&password=p".into(),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        case(
            "implicit",
            None,
            "response_type=token&client_id=svc-basic".into(),
            StatusCode::BAD_REQUEST,
            "unsupported_response_type",
        ),
        case(
            "alg none",
            None,
            assertion_form(&alg_none),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        case(
            "HS256 keyed with the public key",
            None,
            assertion_form(&hs_public),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        case(
            "expired assertion",
            None,
            pk(expired),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        case(
            "wrong audience",
            None,
            pk(wrong_aud),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        case(
            "replayed jti",
            None,
            replayed,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        case(
            "unknown kid",
            None,
            unknown_kid,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        case(
            "method mismatch",
            None,
            format!("{cc}&client_id=svc-csjwt&client_secret=x"),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
    ];
    for c in cases {
        let (status, headers, body) = h.post("/oauth2/token", c.auth.as_deref(), c.body).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (c.status, Some(c.error)),
            "{}: {body}",
            c.name
        );
        assert_eq!(headers[header::CACHE_CONTROL], "no-store", "{}", c.name);
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(
                headers[header::WWW_AUTHENTICATE],
                "Basic realm=\"portcullis\"",
                "{}",
                c.name
            );
        }
    }
    let (_, _, replay) = h
        .post(
            "/oauth2/token",
            None,
            pk(h.assertion_claims("svc-pkjwt", "replay-1")),
        )
        .await;
    assert_eq!(replay["error_description"], "assertion jti replayed");

    // Unknown, wrong-secret and disabled clients are indistinguishable.
    let (_, _, a) = h
        .post("/oauth2/token", Some(&basic("svc-nobody", "x")), cc)
        .await;
    let (_, _, b) = h
        .post("/oauth2/token", Some(&basic("svc-basic", "x")), cc)
        .await;
    let (_, _, c) = h
        .post(
            "/oauth2/token",
            Some(&basic("svc-disabled", "disabled-secret")),
            cc,
        )
        .await;
    assert_eq!(a, b);
    assert_eq!(b, c);

    let (status, _, body) = h.post("/oauth2/token", Some(&good), cc).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn wrong_content_type_and_oversized_bodies_are_refused() {
    let h = Harness::start(0, 0).await;
    let request = Request::post("/oauth2/token")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, basic("svc-basic", "basic-secret"))
        .body(Body::from(r#"{"grant_type":"client_credentials"}"#))
        .unwrap();
    let (status, headers, body) = h.send(request).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("application/x-www-form-urlencoded"));
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");

    let big = format!(
        "grant_type=client_credentials&pad={}",
        "x".repeat(70 * 1024)
    );
    let (status, headers, body) = h
        .post(
            "/oauth2/token",
            Some(&basic("svc-basic", "basic-secret")),
            big,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("invalid_request"))
    );
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");

    // (`post` sets no Content-Length, so the limit above held while reading.) A declared
    // length over the limit is refused before reading.
    let request = Request::post("/oauth2/token")
        .header(header::CONTENT_TYPE, FORM)
        .header(header::CONTENT_LENGTH, "1000000")
        .body(Body::from("grant_type=client_credentials"))
        .unwrap();
    let (status, _, _) = h.send(request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn private_key_jwt_keys_are_fetched_from_jwks_uri() {
    use portcullis_core::client::AuthMethod;
    let h = Harness::start(0, 0).await;
    let jwks = h.client_jwks.clone();
    let app = axum::Router::new().route("/jwks", axum::routing::get(move || async move { jwks }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut remote = client("svc-remote", AuthMethod::PrivateKeyJwt, h.now);
    remote.jwks_uri = Some(format!("http://127.0.0.1:{port}/jwks"));
    h.store.insert_client(&remote).await.unwrap();

    for jti in ["r-1", "r-2"] {
        let assertion = h
            .client_key
            .sign(&h.assertion_claims("svc-remote", jti))
            .unwrap();
        let (status, _, body) = h
            .post("/oauth2/token", None, assertion_form(&assertion))
            .await;
        assert_eq!(status, StatusCode::OK, "{jti}: {body}");
    }
    let stranger = h
        .stranger_key
        .sign(&h.assertion_claims("svc-remote", "r-3"))
        .unwrap();
    let (status, _, _) = h
        .post("/oauth2/token", None, assertion_form(&stranger))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
