//! Shared by the OCSP unit tests: a CA, hand-built requests (so malformed variants are easy),
//! an in-memory status source, and a parser-and-verifier for our responses.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use der::{Decode, Encode};
use portcullis_keys::software::SoftwareSigner;
use portcullis_keys::Algorithm;
use x509_ocsp::{BasicOcspResponse, OcspResponse, OcspResponseStatus};
use x509_parser::prelude::FromDer as _;

use super::request::HashAlgorithm;
use super::status::{CertificateStatus, CertificateStatusSource};
use crate::der_writer::push_tlv;
use crate::{CaKey, PkiError};

/// A tag-length-value over the concatenation of `parts`.
pub fn tlv(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    push_tlv(&mut out, tag, &parts.concat());
    out
}

pub struct TestCa {
    pub key: CaKey,
    pub cert_der: Vec<u8>,
}

impl TestCa {
    pub fn new(alg: Algorithm) -> TestCa {
        let (signer, _pkcs8) = SoftwareSigner::generate(alg).expect("generate");
        let key = CaKey::new(Arc::new(signer)).expect("CaKey");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Portcullis Test Issuing CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("self-signed");
        TestCa {
            key,
            cert_der: cert.der().to_vec(),
        }
    }

    /// (issuerNameHash, issuerKeyHash) under `alg`.
    pub fn hashes(&self, alg: HashAlgorithm) -> (Vec<u8>, Vec<u8>) {
        let (_, cert) =
            x509_parser::certificate::X509Certificate::from_der(&self.cert_der).expect("parse");
        (
            alg.digest(cert.tbs_certificate.subject.as_raw()),
            alg.digest(self.key.public_key_bits()),
        )
    }

    pub fn cert_id(&self, alg: HashAlgorithm, serial_content: &[u8]) -> Vec<u8> {
        let (name, key) = self.hashes(alg);
        cert_id(
            &alg.oid().to_der().expect("oid"),
            &name,
            &key,
            serial_content,
        )
    }
}

/// `CertID` with NULL hash parameters.
pub fn cert_id(oid_der: &[u8], name: &[u8], key: &[u8], serial_content: &[u8]) -> Vec<u8> {
    tlv(
        0x30,
        &[
            &tlv(0x30, &[oid_der, &[0x05, 0x00]]),
            &tlv(0x04, &[name]),
            &tlv(0x04, &[key]),
            &tlv(0x02, &[serial_content]),
        ],
    )
}

/// The request extension carrying `nonce` as RFC 8954 has it.
pub fn nonce_extension(nonce: &[u8]) -> Vec<u8> {
    const NONCE_OID: [u8; 11] = [
        0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02,
    ];
    tlv(0x30, &[&NONCE_OID, &tlv(0x04, &[&tlv(0x04, &[nonce])])])
}

/// An `OCSPRequest` for the given CertIDs with the given request extensions.
pub fn request(cert_ids: &[Vec<u8>], extensions: &[Vec<u8>]) -> Vec<u8> {
    let requests: Vec<u8> = cert_ids.iter().flat_map(|c| tlv(0x30, &[c])).collect();
    let mut tbs = tlv(0x30, &[&requests]);
    if !extensions.is_empty() {
        tbs.extend(tlv(0xa2, &[&tlv(0x30, &[&extensions.concat()])]));
    }
    tlv(0x30, &[&tlv(0x30, &[&tbs])])
}

/// A parsed successful response whose signature was checked against `ca`.
pub fn verified(ca: &TestCa, der: &[u8]) -> BasicOcspResponse {
    use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
    let response = OcspResponse::from_der(der).expect("an OCSPResponse");
    assert_eq!(response.response_status, OcspResponseStatus::Successful);
    let bytes = response.response_bytes.expect("responseBytes");
    assert_eq!(bytes.response_type.to_string(), "1.3.6.1.5.5.7.48.1.1");
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).expect("basic");
    let tbs = basic.tbs_response_data.to_der().expect("tbs");
    assert_eq!(
        basic.signature_algorithm.to_der().unwrap(),
        ca.key.signature_algorithm_der()
    );
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, ca.key.public_key_bits())
        .verify(&tbs, basic.signature.raw_bytes())
        .expect("the signature verifies with the CA key");
    assert!(basic.certs.is_none(), "the CA signs itself: no certs");
    basic
}

/// The unsigned status of an error response.
pub fn error_status(der: &[u8]) -> OcspResponseStatus {
    let response = OcspResponse::from_der(der).expect("an OCSPResponse");
    assert!(
        response.response_bytes.is_none(),
        "errors carry no responseBytes"
    );
    response.response_status
}

/// Statuses from a map, counting lookups; `fail` makes every lookup an error.
#[derive(Debug, Default)]
pub struct MapSource {
    pub statuses: Mutex<HashMap<String, CertificateStatus>>,
    pub lookups: AtomicUsize,
    pub fail: AtomicBool,
}

impl MapSource {
    pub fn set(&self, serial: &str, status: CertificateStatus) {
        self.statuses
            .lock()
            .unwrap()
            .insert(serial.to_owned(), status);
    }

    pub fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl CertificateStatusSource for MapSource {
    async fn status(&self, serial_hex: &str) -> Result<CertificateStatus, PkiError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(PkiError::Store(portcullis_store::StoreError::Unavailable(
                "test".into(),
            )));
        }
        Ok(self
            .statuses
            .lock()
            .unwrap()
            .get(serial_hex)
            .copied()
            .unwrap_or(CertificateStatus::Unknown))
    }
}
