//! Hostile and malformed requests: each must get its exact status and a problem+json body,
//! and none may change state.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::admin_api::harness::Harness;

/// The P-256 public key of RFC 7515 Appendix A.3, as a JWK Set.
pub fn public_jwks() -> Value {
    json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "k1",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
    }]})
}

fn raw(
    h: &Harness,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {}", h.admin_token));
    if let Some(t) = content_type {
        b = b.header(header::CONTENT_TYPE, t);
    }
    b.body(body.into()).unwrap()
}

/// What to send to `POST /clients` (label, content type, body) and what must come back
/// (status, a phrase of the detail).
type CreateCase = (
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    StatusCode,
    &'static str,
);

/// Create requests smuggling a NUL (JSON `\u0000`) into each text field a client has: (label,
/// body, a phrase of the detail). PostgreSQL cannot store a NUL in TEXT, so each must be
/// refused by validation (400) before it reaches any store, never surface as a store error.
const NUL_CREATES: &[(&str, &str, &str)] = &[
    ("NUL in name", r#"{"name":"a\u0000b"}"#, "name"),
    (
        "NUL in client id",
        r#"{"name":"a","client_id":"a\u0000"}"#,
        "client_id",
    ),
    (
        "NUL in scope",
        r#"{"name":"a","scopes":["a\u0000"]}"#,
        "scope",
    ),
    (
        "NUL in audience",
        r#"{"name":"a","audiences":["https://a\u0000b"]}"#,
        "audience",
    ),
    (
        "NUL in jwks_uri",
        r#"{"name":"a","auth_method":"private_key_jwt","jwks_uri":"https://k.test/\u0000"}"#,
        "jwks_uri",
    ),
    (
        "NUL in subject DN",
        r#"{"name":"a","auth_method":"tls_client_auth","tls_client_auth_subject_dn":"CN=a\u0000"}"#,
        "tls_client_auth_subject_dn",
    ),
    (
        "NUL in SAN URI",
        r#"{"name":"a","auth_method":"tls_client_auth","tls_client_auth_san_uri":"urn:a\u0000"}"#,
        "tls_client_auth_san_uri",
    ),
];

/// Every NUL case answers the same 400 on `h`'s backend, creates nothing, and the same goes
/// for updates; a NUL inside a JWK Set (stored as escaped JSON text) round-trips.
async fn nul_bytes_are_refused_by_validation(h: &Harness, backend: &str) {
    for (what, body, needle) in NUL_CREATES {
        let r = h
            .send(raw(
                h,
                Method::POST,
                "/clients",
                Some("application/json"),
                *body,
            ))
            .await;
        let detail = r.assert_problem(StatusCode::BAD_REQUEST);
        assert!(detail.contains(needle), "{backend}, {what}: {detail:?}");
    }
    h.create(json!({"name": "n", "client_id": "n"})).await;
    let mut jwks = public_jwks();
    jwks["keys"][0]["kid"] = json!("k\u{0}1");
    h.create(json!({"name": "j", "client_id": "j", "auth_method": "private_key_jwt", "jwks": jwks.clone()}))
        .await;
    for (path, patch, needle) in [
        ("/clients/n", json!({"name": "a\u{0}b"}), "name"),
        (
            "/clients/n",
            json!({"audiences": ["https://a\u{0}"]}),
            "audience",
        ),
        (
            "/clients/j",
            json!({"jwks_uri": "https://k.test/\u{0}"}),
            "jwks_uri",
        ),
    ] {
        let r = h.call(Method::PATCH, path, Some(patch.clone())).await;
        let detail = r.assert_problem(StatusCode::BAD_REQUEST);
        assert!(
            detail.contains(needle),
            "{backend}, PATCH {patch}: {detail:?}"
        );
    }
    assert_eq!(
        h.stored("n").await.unwrap().name,
        "n",
        "{backend}: unchanged"
    );
    let shown = h.call(Method::GET, "/clients/j", None).await;
    assert_eq!(shown.status, StatusCode::OK, "{backend}: {}", shown.body);
    assert_eq!(
        shown.body["jwks"], jwks,
        "{backend}: an escaped NUL round-trips"
    );
    let listed = h.call(Method::GET, "/clients", None).await;
    assert_eq!(
        listed.body["clients"].as_array().unwrap().len(),
        4,
        "{backend}: only n and j were created (besides the harness's two)"
    );
}

#[tokio::test]
async fn nul_bytes_are_refused_alike_on_sqlite_and_postgres() {
    nul_bytes_are_refused_by_validation(&Harness::new().await, "SQLite").await;
    portcullis_store::postgres::test_schema::with_test_schema(|schema| async move {
        let h = Harness::with_store(std::sync::Arc::new(schema.connect().await)).await;
        nul_bytes_are_refused_by_validation(&h, "PostgreSQL").await;
    })
    .await;
}

#[tokio::test]
async fn hostile_create_requests_get_exact_problems() {
    let h = Harness::new().await;
    h.create(json!({"name": "taken", "client_id": "taken"}))
        .await;
    let mut private = public_jwks();
    private["keys"][0]["d"] = json!("jpsQnnGQmL-YBIffH1136cLyCgcHXY4Hjnk2Q2D2Y3w");
    let mut symmetric = public_jwks();
    symmetric["keys"][0] = json!({"kty": "oct", "k": "c2VjcmV0"});
    let mut off_curve = public_jwks();
    off_curve["keys"][0]["y"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let json_type = Some("application/json");
    let mut cases: Vec<CreateCase> = vec![
        (
            "malformed JSON",
            json_type,
            b"{\"name\": ".to_vec(),
            StatusCode::BAD_REQUEST,
            "not valid JSON",
        ),
        (
            "trailing garbage",
            json_type,
            b"{\"name\":\"a\"} x".to_vec(),
            StatusCode::BAD_REQUEST,
            "not valid JSON",
        ),
        (
            "not an object",
            json_type,
            b"[1,2]".to_vec(),
            StatusCode::BAD_REQUEST,
            "must be a JSON object",
        ),
        (
            "unknown field",
            json_type,
            br#"{"name":"a","scope":"read"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "unknown field `scope`",
        ),
        (
            "wrong type",
            json_type,
            br#"{"name":7}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid type",
        ),
        (
            "missing name",
            json_type,
            br#"{"scopes":["a"]}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "missing field `name`",
        ),
        (
            "wrong content type",
            Some("text/plain"),
            br#"{"name":"a"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "Content-Type",
        ),
        (
            "form content type",
            Some("application/x-www-form-urlencoded"),
            b"name=a".to_vec(),
            StatusCode::BAD_REQUEST,
            "Content-Type",
        ),
        (
            "no content type",
            None,
            br#"{"name":"a"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "Content-Type",
        ),
        (
            "oversized body",
            json_type,
            format!(r#"{{"name":"{}"}}"#, "a".repeat(70_000)).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "65536",
        ),
        (
            "bad scope chars",
            json_type,
            br#"{"name":"a","scopes":["a\"b"]}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "scope",
        ),
        (
            "scope with space",
            json_type,
            br#"{"name":"a","scopes":["a b"]}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "scope",
        ),
        (
            "ttl 0",
            json_type,
            br#"{"name":"a","token_ttl_secs":0}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "token_ttl_secs",
        ),
        (
            "ttl over a day",
            json_type,
            br#"{"name":"a","token_ttl_secs":86401}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "token_ttl_secs",
        ),
        (
            "negative ttl",
            json_type,
            br#"{"name":"a","token_ttl_secs":-1}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid value",
        ),
        (
            "empty name",
            json_type,
            br#"{"name":"  "}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            "control char in name",
            json_type,
            br#"{"name":"a\u0007"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            "relative audience",
            json_type,
            br#"{"name":"a","audiences":["api"]}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "audience",
        ),
        (
            "unknown auth method",
            json_type,
            br#"{"name":"a","auth_method":"none"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "unknown variant",
        ),
        (
            "bad client id",
            json_type,
            br#"{"name":"a","client_id":"a b"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "client_id",
        ),
        (
            "private_key_jwt without jwks",
            json_type,
            br#"{"name":"a","auth_method":"private_key_jwt"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "jwks",
        ),
        (
            "jwks with private d",
            json_type,
            json!({"name":"a","auth_method":"private_key_jwt","jwks":private})
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
            "private",
        ),
        (
            "jwks with symmetric k",
            json_type,
            json!({"name":"a","auth_method":"private_key_jwt","jwks":symmetric})
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
            "jwks",
        ),
        (
            "jwks point off the curve",
            json_type,
            json!({"name":"a","auth_method":"private_key_jwt","jwks":off_curve})
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
            "key 0",
        ),
        (
            "jwks not a set",
            json_type,
            br#"{"name":"a","auth_method":"private_key_jwt","jwks":[1]}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "jwks",
        ),
        (
            "empty jwks",
            json_type,
            br#"{"name":"a","auth_method":"private_key_jwt","jwks":{"keys":[]}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "at least one key",
        ),
        (
            "jwks on a secret client",
            json_type,
            json!({"name":"a","jwks":public_jwks()})
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
            "only for private_key_jwt",
        ),
        (
            "tls_client_auth without a certificate match",
            json_type,
            br#"{"name":"a","auth_method":"tls_client_auth"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "exactly one of",
        ),
        (
            "two certificate matches",
            json_type,
            br#"{"name":"a","auth_method":"tls_client_auth","tls_client_auth_subject_dn":"CN=a","tls_client_auth_san_dns":"a.test"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "exactly one of",
        ),
        (
            "certificate match on a secret client",
            json_type,
            br#"{"name":"a","tls_client_auth_san_dns":"a.test"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "only for tls_client_auth",
        ),
        (
            "subject DN not RFC 4514",
            json_type,
            br#"{"name":"a","auth_method":"tls_client_auth","tls_client_auth_subject_dn":"meter-7"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "RFC 4514",
        ),
        (
            "SAN IP not an address",
            json_type,
            br#"{"name":"a","auth_method":"tls_client_auth","tls_client_auth_san_ip":"10.0.0.256"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "tls_client_auth_san_ip",
        ),
        (
            "self-signed without jwks",
            json_type,
            br#"{"name":"a","auth_method":"self_signed_tls_client_auth"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "x5c",
        ),
        (
            "self-signed with a key but no certificate",
            json_type,
            json!({"name":"a","auth_method":"self_signed_tls_client_auth","jwks":public_jwks()})
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
            "x5c",
        ),
        (
            "self-signed x5c not a certificate",
            json_type,
            br#"{"name":"a","auth_method":"self_signed_tls_client_auth","jwks":{"keys":[{"x5c":["AAEC"]}]}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "not a DER X.509 certificate",
        ),
        (
            "self-signed x5c not base64",
            json_type,
            br#"{"name":"a","auth_method":"self_signed_tls_client_auth","jwks":{"keys":[{"x5c":["%%%"]}]}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "Base64",
        ),
        (
            "self-signed with jwks_uri",
            json_type,
            br#"{"name":"a","auth_method":"self_signed_tls_client_auth","jwks_uri":"https://k.test/jwks"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "inline",
        ),
        (
            "jwks_uri not http",
            json_type,
            br#"{"name":"a","auth_method":"private_key_jwt","jwks_uri":"file:///etc/passwd"}"#
                .to_vec(),
            StatusCode::BAD_REQUEST,
            "jwks_uri",
        ),
        (
            "duplicate id",
            json_type,
            br#"{"name":"a","client_id":"taken"}"#.to_vec(),
            StatusCode::CONFLICT,
            "already exists",
        ),
    ];
    cases.extend(NUL_CREATES.iter().map(|(what, body, needle)| {
        let body = body.as_bytes().to_vec();
        (*what, json_type, body, StatusCode::BAD_REQUEST, *needle)
    }));
    for (what, content_type, body, status, needle) in cases {
        let r = h
            .send(raw(&h, Method::POST, "/clients", content_type, body))
            .await;
        let detail = r.assert_problem(status).to_owned();
        assert!(
            detail.contains(needle),
            "{what}: detail {detail:?} lacks {needle:?}"
        );
        assert!(!detail.contains("jpsQnnGQ"), "{what}: private key echoed");
    }
    let listed = h.call(Method::GET, "/clients", None).await;
    assert_eq!(
        listed.body["clients"].as_array().unwrap().len(),
        3,
        "no hostile request created a client (only the one made above and the harness's two)"
    );
}

#[tokio::test]
async fn hostile_patch_query_and_path_inputs_get_exact_problems() {
    let h = Harness::new().await;
    h.create(json!({"name": "t", "client_id": "t"})).await;
    let long_id = format!("/clients/{}", "x".repeat(129));
    let cases: Vec<(Method, &str, Option<Value>, StatusCode)> = vec![
        (
            Method::PATCH,
            "/clients/t",
            Some(json!({"auth_method": "private_key_jwt"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PATCH,
            "/clients/t",
            Some(json!({"client_secret": "chosen"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PATCH,
            "/clients/t",
            Some(json!({"token_ttl_secs": 0})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PATCH,
            "/clients/t",
            Some(json!({"scopes": ["ok", "caf\u{e9}"]})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PATCH,
            "/clients/t",
            Some(json!({"jwks_uri": "https://k.test/jwks"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/clients/t/rotate-secret",
            Some(json!({"overlap": 5})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/clients/t/rotate-secret",
            Some(json!({"overlap_secs": -5})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/clients?limit=0",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/clients?limit=1001",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/clients?limit=abc",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/clients?after=a%20b",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/clients?page=2",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (Method::GET, "/clients/a%20b", None, StatusCode::BAD_REQUEST),
        (Method::GET, "/clients/%FF", None, StatusCode::BAD_REQUEST),
        (Method::DELETE, &long_id, None, StatusCode::BAD_REQUEST),
    ];
    for (method, path, body, status) in cases {
        let label = format!("{method} {path} {body:?}");
        let r = h.call(method, path, body).await;
        assert_eq!(r.status, status, "{label}: {}", r.body);
        r.assert_problem(status);
    }
    let stored = h.stored("t").await.unwrap();
    assert_eq!(stored.token_ttl_secs, 3600);
    assert!(stored.jwks_uri.is_none());
}
