//! Fuzzes OCSP requests (RFC 6960 §4.1), which anyone can send unauthenticated: arbitrary
//! bytes as a DER request (POST body) and as the GET path (`decode_get`, RFC 6960 §A.1), each
//! through `parse_request` and the whole responder. Nothing may panic, and the answer must
//! agree with the parser: malformed exactly when parsing failed; otherwise a response that
//! decodes, answers every CertID in order and echoes the nonce.
//!
//! The CA (an Ed25519 test key and certificate in `fixtures/`, made with openssl) is fixed so
//! the seeds, made with `openssl ocsp -issuer` against it, reach the signing path.
#![no_main]

use std::future::Future as _;
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use async_trait::async_trait;
use der::{Decode, Encode};
use libfuzzer_sys::fuzz_target;
use portcullis_core::device::RevocationReason;
use portcullis_core::Kid;
use portcullis_keys::software::SoftwareSigner;
use portcullis_keys::Algorithm;
use portcullis_pki::ocsp::{
    decode_get, parse_request, CertificateStatus, CertificateStatusSource, OcspConfig, OcspReply,
    OcspResponder, MAX_CERT_IDS, MAX_NONCE_LEN,
};
use portcullis_pki::{CaKey, PkiError};
use x509_ocsp::{BasicOcspResponse, OcspResponse, OcspResponseStatus};

const CA_CERT: &[u8] = include_bytes!("../fixtures/ocsp_ca.der");
const CA_KEY: &[u8] = include_bytes!("../fixtures/ocsp_ca_key.pk8");

/// Every status, chosen by the serial's last hex digit; no I/O, so futures are ready at once.
#[derive(Debug)]
struct ByLastDigit;

#[async_trait]
impl CertificateStatusSource for ByLastDigit {
    async fn status(&self, serial_hex: &str) -> Result<CertificateStatus, PkiError> {
        Ok(match serial_hex.bytes().last().unwrap_or(b'0') % 3 {
            0 => CertificateStatus::Good,
            1 => CertificateStatus::Revoked {
                at: 1_767_225_600,
                reason: Some(RevocationReason::KeyCompromise),
            },
            _ => CertificateStatus::Unknown,
        })
    }
}

fn responder() -> &'static OcspResponder {
    static RESPONDER: OnceLock<OcspResponder> = OnceLock::new();
    RESPONDER.get_or_init(|| {
        let kid = Kid::parse("fuzz-ocsp-ca").expect("kid");
        let signer = SoftwareSigner::from_pkcs8(Algorithm::EdDSA, kid, CA_KEY).expect("key");
        let key = CaKey::new(Arc::new(signer)).expect("CA key");
        // No signature budget: every answer must be a signed one or `malformedRequest`.
        let config = OcspConfig {
            fresh_signatures_per_sec: 0,
            ..OcspConfig::default()
        };
        OcspResponder::new(key, CA_CERT, Arc::new(ByLastDigit), config).expect("responder")
    })
}

fn answer(der: &[u8]) -> OcspReply {
    let mut future = pin!(responder().respond(der));
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(reply) => reply,
        Poll::Pending => panic!("the in-memory responder never waits"),
    }
}

fn check(der: &[u8]) {
    let parsed = parse_request(der);
    let reply = answer(der);
    let request = match parsed {
        Ok(request) => request,
        Err(_) => {
            assert_eq!(reply.status, OcspResponseStatus::MalformedRequest);
            return;
        }
    };
    assert!((1..=MAX_CERT_IDS).contains(&request.certs.len()));
    if let Some(nonce) = &request.nonce {
        assert!((1..=MAX_NONCE_LEN).contains(&nonce.len()));
    }
    let response = OcspResponse::from_der(&reply.der).expect("our response decodes");
    assert_eq!(response.response_status, reply.status);
    match reply.status {
        OcspResponseStatus::Unauthorized => assert!(response.response_bytes.is_none()),
        OcspResponseStatus::Successful => {
            let bytes = response.response_bytes.expect("responseBytes");
            let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).expect("basic");
            let singles = &basic.tbs_response_data.responses;
            assert_eq!(singles.len(), request.certs.len());
            for (single, cert) in singles.iter().zip(&request.certs) {
                assert_eq!(
                    single.cert_id.to_der().expect("encode"),
                    cert.cert_id().to_der().expect("encode")
                );
            }
            assert_eq!(
                basic.nonce().map(|n| n.0.as_bytes().to_vec()),
                request.nonce.clone()
            );
        }
        other => panic!("a parsed request was answered {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(der) = decode_get(text) {
            check(&der);
        }
    }
});
