//! EST (RFC 7030) under `/.well-known/est/`, served on the TLS listener only: the Basic
//! credentials and the client certificate it relies on mean nothing over plain HTTP.
//!
//! Bodies follow §4.2.1/§4.2.3: base64 DER in, base64 DER (`certs-only` CMS) out. PEM
//! requests are accepted too, since that is what `openssl req` writes by default.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use portcullis_core::audit::AuditAction;
use portcullis_http::{PeerCertificates, SourceAddr};
use zeroize::Zeroizing;

use crate::enroll::EnrollAuth;
use crate::pkcs7::certs_only;
use crate::service::Pki;
use crate::PkiError;

/// Largest request body (a base64 RSA-4096 CSR is about 2.3 KiB).
pub const MAX_EST_BODY: usize = 16 * 1024;
/// Bodies up to this are read to the end even when too large, so the client gets its 413
/// instead of a connection closed under a request it is still sending; beyond it the
/// connection is cut.
const MAX_DRAINED_BODY: usize = 256 * 1024;

pub fn router(pki: Arc<Pki>) -> Router {
    Router::new()
        .route("/.well-known/est/cacerts", get(cacerts))
        .route("/.well-known/est/csrattrs", get(csrattrs))
        .route("/.well-known/est/simpleenroll", post(simpleenroll))
        .route("/.well-known/est/simplereenroll", post(simplereenroll))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_DRAINED_BODY))
        .with_state(pki)
}

fn base64_lines(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 1);
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push_str("\r\n");
    }
    out
}

/// A base64 body (RFC 7030 §4.1.3: `Content-Transfer-Encoding: base64`) of `content_type`.
fn base64_response(content_type: &'static str, der: &[u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::HeaderName::from_static("content-transfer-encoding"),
                HeaderValue::from_static("base64"),
            ),
        ],
        base64_lines(der),
    )
        .into_response()
}

fn pkcs7_response(der: Vec<u8>) -> Response {
    base64_response("application/pkcs7-mime; smime-type=certs-only", &der)
}

/// An EST error: a status and a plain-text reason (RFC 7030 §4.2.3 allows text/plain).
fn error_response(e: &PkiError) -> Response {
    let (status, text) = match e {
        PkiError::Invalid(m) => (StatusCode::BAD_REQUEST, m.clone()),
        PkiError::NotAuthenticated(m) => (StatusCode::UNAUTHORIZED, m.clone()),
        PkiError::NotPermitted(m) => (StatusCode::FORBIDDEN, m.clone()),
        PkiError::NotFound(m) => (StatusCode::NOT_FOUND, m.clone()),
        PkiError::AlreadyExists(m) => (StatusCode::CONFLICT, m.clone()),
        PkiError::AuditUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the enrollment could not be audited; retry later".to_owned(),
        ),
        other => {
            tracing::error!(error = %other, "EST request failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; see the server log".to_owned(),
            )
        }
    };
    let mut response = (status, format!("{text}\n")).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"portcullis-est\", charset=\"UTF-8\""),
        );
    }
    response
}

fn too_large() -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body exceeds {MAX_EST_BODY} bytes\n"),
    )
        .into_response()
}

async fn cacerts(State(pki): State<Arc<Pki>>) -> Response {
    pkcs7_response(certs_only(&[pki.ca.issuing_der(), pki.ca.root_der()]))
}

/// §4.5: what the CA wants in a request. ecdsa-with-SHA256 and an id-ecPublicKey on P-256.
async fn csrattrs() -> Response {
    let mut curve_set = Vec::new();
    crate::der_writer::push_tlv(
        &mut curve_set,
        0x06,
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07], // prime256v1
    );
    let mut attribute = Vec::new();
    crate::der_writer::push_tlv(
        &mut attribute,
        0x06,
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01],
    );
    crate::der_writer::push_tlv(&mut attribute, 0x31, &curve_set);
    let mut body = Vec::new();
    crate::der_writer::push_tlv(
        &mut body,
        0x06,
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02],
    );
    crate::der_writer::push_tlv(&mut body, 0x30, &attribute);
    let mut der = Vec::new();
    crate::der_writer::push_tlv(&mut der, 0x30, &body);
    base64_response("application/csrattrs", &der)
}

/// The DER of the PKCS#10 in an EST request body.
pub fn decode_csr_body(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, PkiError> {
    if !portcullis_http::has_media_type(headers, "application/pkcs10") {
        return Err(PkiError::Invalid(
            "Content-Type must be application/pkcs10 (RFC 7030 §4.2.1)".into(),
        ));
    }
    if body.starts_with(b"-----BEGIN") {
        let blocks = crate::ca::pem_blocks(body, "CERTIFICATE REQUEST")?;
        return match blocks.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(PkiError::Invalid(
                "expected exactly one PEM CERTIFICATE REQUEST".into(),
            )),
        };
    }
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if compact.is_empty() {
        return Err(PkiError::Invalid("empty request body".into()));
    }
    STANDARD.decode(&compact).map_err(|_| {
        PkiError::Invalid("the body is not base64-encoded DER (RFC 7030 §4.2.1)".into())
    })
}

/// A Basic user id and password (the enrollment secret, wiped on drop).
type EnrollmentCredentials = (String, Zeroizing<Vec<u8>>);

/// HTTP Basic credentials (device id, enrollment secret), if the request carries them. The
/// device id must be UTF-8; what else it must be is the registry's to say.
fn enrollment_credentials(headers: &HeaderMap) -> Result<Option<EnrollmentCredentials>, PkiError> {
    let malformed = || PkiError::NotAuthenticated("malformed Basic credentials".into());
    let Some(basic) = portcullis_http::basic_credentials(headers).map_err(|_| malformed())? else {
        return Ok(None);
    };
    let user = std::str::from_utf8(basic.user())
        .map_err(|_| malformed())?
        .to_owned();
    Ok(Some((user, Zeroizing::new(basic.password().to_vec()))))
}

/// Before any work: the address's request rate and failure lock-out; the 429 answer when
/// either is spent.
fn refused_by_limits(pki: &Pki, addr: IpAddr) -> Option<Response> {
    let limited = pki.limits.check_address(addr).err()?;
    let secs = limited.retry_after_secs.max(1);
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many requests; retry after {secs} s\n"),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    Some(response)
}

/// A refused enrollment: counted towards the address's lock-out when the request was bad or
/// unauthenticated, and audited — summarised per source and window, so a flood of refusals
/// cannot grow the audit chain.
fn refused(pki: &Pki, addr: IpAddr, action: AuditAction, e: &PkiError, headers: &HeaderMap) {
    if matches!(e, PkiError::NotAuthenticated(_) | PkiError::Invalid(_)) {
        pki.limits.record_failure(addr);
    }
    let mut detail = serde_json::json!({"error": e.to_string(), "source": addr.to_string()});
    // The device id an HTTP Basic enrollment claimed (a claim: the secret did not prove it),
    // so attack detection counts guessed secrets per device too.
    if let (Some(map), Ok(Some((claimed, _)))) =
        (detail.as_object_mut(), enrollment_credentials(headers))
    {
        map.insert("claimed_device_id".into(), claimed.into());
    }
    pki.audit_refusal(addr, action, detail);
}

async fn simpleenroll(
    State(pki): State<Arc<Pki>>,
    SourceAddr(addr): SourceAddr,
    peer: Option<Extension<PeerCertificates>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(limited) = refused_by_limits(&pki, addr) {
        return limited;
    }
    if body.len() > MAX_EST_BODY {
        return too_large();
    }
    let result = async {
        let csr = decode_csr_body(&headers, &body)?;
        let credentials = enrollment_credentials(&headers)?;
        let cert = match (&credentials, &peer) {
            (Some((user, secret)), _) => {
                pki.enroll(
                    EnrollAuth::Secret {
                        device_id: user,
                        secret,
                    },
                    &csr,
                )
                .await?
            }
            (None, Some(Extension(chain))) => {
                pki.enroll(EnrollAuth::Certificate { chain: &chain.0 }, &csr)
                    .await?
            }
            (None, None) => {
                return Err(PkiError::NotAuthenticated(
                    "authenticate with HTTP Basic (device id and enrollment secret) or a \
                     manufacturer certificate"
                        .into(),
                ))
            }
        };
        Ok::<_, PkiError>(cert)
    }
    .await;
    match result {
        Ok(cert) => pkcs7_response(certs_only(&[&cert.der])),
        Err(e) => {
            refused(&pki, addr, AuditAction::DeviceEnrollRefused, &e, &headers);
            error_response(&e)
        }
    }
}

async fn simplereenroll(
    State(pki): State<Arc<Pki>>,
    SourceAddr(addr): SourceAddr,
    peer: Option<Extension<PeerCertificates>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(limited) = refused_by_limits(&pki, addr) {
        return limited;
    }
    if body.len() > MAX_EST_BODY {
        return too_large();
    }
    let result = async {
        let csr = decode_csr_body(&headers, &body)?;
        let Some(Extension(chain)) = peer else {
            return Err(PkiError::NotAuthenticated(
                "re-enrollment needs the current certificate as the TLS client certificate".into(),
            ));
        };
        pki.reenroll(&chain.0, &csr).await
    }
    .await;
    match result {
        Ok(cert) => pkcs7_response(certs_only(&[&cert.der])),
        Err(e) => {
            refused(&pki, addr, AuditAction::DeviceReenrollRefused, &e, &headers);
            error_response(&e)
        }
    }
}
