use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http_body_util::BodyExt as _;
use portcullis_keys::Algorithm;
use tower::ServiceExt as _;

use super::*;
use crate::ocsp::request::HashAlgorithm;
use crate::ocsp::responder::OcspConfig;
use crate::ocsp::status::CertificateStatus;
use crate::ocsp::test_support::{
    error_status, nonce_extension, request, verified, MapSource, TestCa,
};

const NOW: i64 = 1_767_225_600; // Thu, 01 Jan 2026 00:00:00 GMT

fn app() -> (TestCa, Router) {
    let ca = TestCa::new(Algorithm::ES256);
    let source = Arc::new(MapSource::default());
    source.set("01", CertificateStatus::Good);
    let responder = OcspResponder::new(ca.key.clone(), &ca.cert_der, source, OcspConfig::default())
        .unwrap()
        .with_clock(|| NOW + 600);
    (ca, router(Arc::new(responder)))
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

fn post(body: Vec<u8>, content_type: Option<&str>) -> Request<Body> {
    let mut builder = Request::post("/ocsp");
    if let Some(ct) = content_type {
        builder = builder.header(header::CONTENT_TYPE, ct);
    }
    builder.body(Body::from(body)).unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(format!("/ocsp/{path}"))
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn a_post_is_answered_with_an_ocsp_response() {
    let (ca, app) = app();
    let der = request(&[ca.cert_id(HashAlgorithm::Sha1, &[0x01])], &[]);
    for ct in [
        "application/ocsp-request",
        "Application/OCSP-Request; charset=binary",
    ] {
        let (status, headers, body) = send(&app, post(der.clone(), Some(ct))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "application/ocsp-response");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        verified(&ca, &body);
    }
}

#[tokio::test]
async fn a_post_of_another_media_type_is_415() {
    let (ca, app) = app();
    let der = request(&[ca.cert_id(HashAlgorithm::Sha1, &[0x01])], &[]);
    for ct in [None, Some("application/octet-stream"), Some("text/plain")] {
        let (status, _, _) = send(&app, post(der.clone(), ct)).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
    }
}

#[tokio::test]
async fn a_post_over_sixteen_kib_is_413() {
    let (_, app) = app();
    let (status, _, _) = send(
        &app,
        post(
            vec![0x30; MAX_REQUEST_BYTES + 1],
            Some("application/ocsp-request"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn garbage_is_answered_malformed_over_http_200() {
    let (_, app) = app();
    let (status, _, body) = send(
        &app,
        post(b"hello".to_vec(), Some("application/ocsp-request")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(error_status(&body), OcspResponseStatus::MalformedRequest);
    for path in ["!!!", "%FF%FE", "MEUw%zz"] {
        let (status, headers, body) = send(&app, get(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(error_status(&body), OcspResponseStatus::MalformedRequest);
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    }
}

#[tokio::test]
async fn a_get_answer_carries_rfc_5019_caching_headers() {
    let (ca, app) = app();
    let der = request(&[ca.cert_id(HashAlgorithm::Sha1, &[0x01])], &[]);
    let b64 = STANDARD.encode(&der);
    let escaped = b64
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    for path in [escaped.as_str(), b64.trim_end_matches('=')] {
        let (status, headers, body) = send(&app, get(path)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "application/ocsp-response");
        verified(&ca, &body);
        // Signed at NOW + 600 (first request), valid one hour; the clock stays at NOW + 600.
        assert_eq!(
            headers[header::CACHE_CONTROL],
            "max-age=3600, public, no-transform, must-revalidate"
        );
        assert_eq!(
            headers[header::LAST_MODIFIED],
            "Thu, 01 Jan 2026 00:10:00 GMT"
        );
        assert_eq!(headers[header::EXPIRES], "Thu, 01 Jan 2026 01:10:00 GMT");
    }
}

#[tokio::test]
async fn a_get_with_a_nonce_or_for_an_unknown_serial_is_not_cacheable() {
    let (ca, app) = app();
    let with_nonce = request(
        &[ca.cert_id(HashAlgorithm::Sha1, &[0x01])],
        &[nonce_extension(b"12345678")],
    );
    let unknown = request(&[ca.cert_id(HashAlgorithm::Sha1, &[0x02])], &[]);
    for der in [with_nonce, unknown] {
        let (status, headers, body) = send(&app, get(&STANDARD.encode(&der))).await;
        assert_eq!(status, StatusCode::OK);
        verified(&ca, &body);
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert!(headers.get(header::EXPIRES).is_none());
    }
}

#[tokio::test]
async fn an_overlong_get_is_414() {
    let (_, app) = app();
    let path = "A".repeat(MAX_REQUEST_BYTES.div_ceil(3) * 4 + 4);
    let (status, _, _) = send(&app, get(&path)).await;
    assert_eq!(status, StatusCode::URI_TOO_LONG);
}

#[test]
fn http_dates_are_imf_fixdates() {
    assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(http_date(NOW), "Thu, 01 Jan 2026 00:00:00 GMT");
}
