//! Unit tests of client credential parsing: Basic (RFC 6749 §2.3.1), form secrets, and
//! assertions, including hostile headers.

use super::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use portcullis_core::ErrorCode;

fn authorization(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        axum::http::HeaderValue::from_str(value).unwrap(),
    );
    headers
}

fn basic(user_pass: &[u8]) -> HeaderMap {
    authorization(&format!("Basic {}", STANDARD.encode(user_pass)))
}

fn parsed(headers: &HeaderMap) -> Result<(ClientId, Zeroizing<Vec<u8>>), Error> {
    Ok(parse_basic(headers)?.expect("an Authorization header"))
}

fn code(e: Error) -> ErrorCode {
    e.code()
}

fn form(body: &str) -> Form {
    Form::parse(body.as_bytes(), &["resource"]).unwrap()
}

#[test]
fn basic_credentials_are_form_url_decoded() {
    let (id, secret) = parsed(&basic(b"sensor%3A1:s%2Bx+y%25%zz")).unwrap();
    assert_eq!(id.as_str(), "sensor:1");
    assert_eq!(&secret[..], b"s+x y%%zz");
}

#[test]
fn basic_scheme_is_case_insensitive_and_padding_optional() {
    let (id, secret) = parsed(&authorization("basic YzE6cw")).unwrap();
    assert_eq!((id.as_str(), &secret[..]), ("c1", &b"s"[..]));
}

#[test]
fn malformed_basic_headers_are_invalid_request() {
    assert_eq!(
        code(parsed(&authorization("Basic !!!notbase64")).unwrap_err()),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        code(parsed(&basic(b"no-colon-here")).unwrap_err()),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        code(parsed(&authorization("Basic")).unwrap_err()),
        ErrorCode::InvalidRequest
    );
}

#[test]
fn other_schemes_and_bad_client_ids_are_invalid_client() {
    assert_eq!(
        code(parsed(&authorization("Bearer abc")).unwrap_err()),
        ErrorCode::InvalidClient
    );
    assert_eq!(
        code(parsed(&basic(b"bad id:secret")).unwrap_err()),
        ErrorCode::InvalidClient
    );
    assert_eq!(
        code(parsed(&basic(b":secret")).unwrap_err()),
        ErrorCode::InvalidClient
    );
}

#[test]
fn two_methods_at_once_are_invalid_request() {
    let h = basic(b"c1:s");
    for body in [
        "client_secret=s&client_id=c1",
        "client_assertion=x.y.z&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    ] {
        let e = Credentials::from_request(&h, &form(body)).unwrap_err();
        assert_eq!(code(e), ErrorCode::InvalidRequest, "{body}");
    }
    let e = Credentials::from_request(
        &HeaderMap::new(),
        &form("client_id=c1&client_secret=s&client_assertion=x"),
    )
    .unwrap_err();
    assert_eq!(code(e), ErrorCode::InvalidRequest);
}

#[test]
fn basic_with_a_different_body_client_id_is_invalid_request() {
    let e = Credentials::from_request(&basic(b"c1:s"), &form("client_id=c2")).unwrap_err();
    assert_eq!(code(e), ErrorCode::InvalidRequest);
    let ok = Credentials::from_request(&basic(b"c1:s"), &form("client_id=c1")).unwrap();
    assert_eq!(ok.client_id().as_str(), "c1");
}

#[test]
fn post_credentials_are_read_from_the_form() {
    match Credentials::from_request(&HeaderMap::new(), &form("client_id=c1&client_secret=s3"))
        .unwrap()
    {
        Credentials::Secret {
            client_id,
            secret,
            method,
        } => {
            assert_eq!(client_id.as_str(), "c1");
            assert_eq!(&secret[..], b"s3");
            assert_eq!(method, AuthMethod::ClientSecretPost);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        code(Credentials::from_request(&HeaderMap::new(), &form("client_secret=s")).unwrap_err()),
        ErrorCode::InvalidRequest
    );
}

#[test]
fn missing_or_half_assertions_are_refused() {
    assert_eq!(
        code(Credentials::from_request(&HeaderMap::new(), &form("client_id=c1")).unwrap_err()),
        ErrorCode::InvalidClient
    );
    assert_eq!(
        code(
            Credentials::from_request(&HeaderMap::new(), &form("client_assertion=x.y.z"))
                .unwrap_err()
        ),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        code(
            Credentials::from_request(
                &HeaderMap::new(),
                &form("client_assertion=x.y.z&client_assertion_type=saml")
            )
            .unwrap_err()
        ),
        ErrorCode::InvalidClient
    );
    let garbage =
        format!("client_assertion=not-a-jwt&client_assertion_type={JWT_BEARER_ASSERTION_TYPE}");
    assert_eq!(
        code(Credentials::from_request(&HeaderMap::new(), &form(&garbage)).unwrap_err()),
        ErrorCode::InvalidClient
    );
}

#[test]
fn debug_never_shows_the_secret() {
    let c = Credentials::from_request(
        &HeaderMap::new(),
        &form("client_id=c1&client_secret=hunter2"),
    )
    .unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
}
