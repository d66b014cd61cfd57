//! The production status source: the responder reading the certificates table of a real
//! (SQLite) store, through issuance, revocation and a store outage.

// An integration test: a failure is a failed test, so panicking shortcuts are fine here
// (and in the helpers it shares), unlike in the crates it tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;

use der::{Decode, Encode};
use portcullis_core::device::RevocationReason;
use portcullis_keys::software::SoftwareSigner;
use portcullis_keys::Algorithm;
use portcullis_pki::ocsp::{CertificateStatus, HashAlgorithm, OcspConfig, OcspResponder};
use portcullis_pki::CaKey;
use portcullis_store::sqlite::SqliteStore;
use portcullis_store::{IssuedCertificate, Store};
use x509_ocsp::{BasicOcspResponse, CertStatus, OcspResponse, OcspResponseStatus};
use x509_parser::prelude::FromDer as _;

fn tlv(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let body = parts.concat();
    let mut out = vec![tag];
    match body.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n < 0x100 => out.extend([0x81, n as u8]),
        n => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend(body);
    out
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    key: CaKey,
    ca_der: Vec<u8>,
    responder: OcspResponder,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("pki.db")).await.unwrap());
    let (signer, _pkcs8) = SoftwareSigner::generate(Algorithm::ES256).unwrap();
    let key = CaKey::new(Arc::new(signer)).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Store-backed OCSP CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_der = params.self_signed(&key).unwrap().der().to_vec();
    let responder = OcspResponder::for_store(
        key.clone(),
        &ca_der,
        store.clone() as Arc<dyn Store>,
        OcspConfig::default(),
    )
    .unwrap();
    Fixture {
        _dir: dir,
        store,
        key,
        ca_der,
        responder,
    }
}

impl Fixture {
    /// A nonce-free SHA-1 request for the serial with these INTEGER content octets.
    fn request(&self, serial: &[u8]) -> Vec<u8> {
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&self.ca_der).unwrap();
        let alg = HashAlgorithm::Sha1;
        let name = alg.digest(cert.tbs_certificate.subject.as_raw());
        let key = alg.digest(self.key.public_key_bits());
        let oid = alg.oid().to_der().unwrap();
        let cert_id = tlv(
            0x30,
            &[
                &tlv(0x30, &[&oid, &[0x05, 0x00]]),
                &tlv(0x04, &[&name]),
                &tlv(0x04, &[&key]),
                &tlv(0x02, &[serial]),
            ],
        );
        tlv(
            0x30,
            &[&tlv(0x30, &[&tlv(0x30, &[&tlv(0x30, &[&cert_id])])])],
        )
    }

    async fn status(&self, serial: &[u8]) -> (CertStatus, bool) {
        let reply = self.responder.respond(&self.request(serial)).await;
        assert_eq!(reply.status, OcspResponseStatus::Successful);
        let response = OcspResponse::from_der(&reply.der).unwrap();
        let bytes = response.response_bytes.unwrap();
        let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).unwrap();
        (
            basic.tbs_response_data.responses[0].cert_status,
            reply.cached,
        )
    }
}

fn issued(serial: &str) -> IssuedCertificate {
    IssuedCertificate {
        serial: serial.to_owned(),
        device_id: None,
        subject: "CN=device".into(),
        not_before: 1_767_225_600,
        not_after: 1_798_761_600,
        sha256: "00".repeat(32),
        der: vec![0x30, 0x00],
        revoked_at: None,
        revocation_reason: None,
    }
}

#[tokio::test]
async fn statuses_come_from_the_certificates_table() {
    let f = fixture().await;
    // The store keys serials without the INTEGER's leading 0x00.
    let serial = [0x00, 0xc0, 0x01, 0x02];
    assert_eq!(f.status(&serial).await.0, CertStatus::unknown());
    f.store.insert_certificate(&issued("c00102")).await.unwrap();
    assert_eq!(
        f.responder.presign("c00102").await.unwrap(),
        CertificateStatus::Good
    );
    assert_eq!(f.status(&serial).await, (CertStatus::good(), true));

    assert!(f
        .store
        .revoke_certificate(
            "c00102",
            RevocationReason::CessationOfOperation,
            1_767_230_000
        )
        .await
        .unwrap());
    f.responder.invalidate("c00102");
    match f.status(&serial).await {
        (CertStatus::Revoked(info), false) => {
            assert_eq!(info.revocation_reason.map(|r| r as u8), Some(5));
        }
        other => panic!("expected a fresh revoked answer, got {other:?}"),
    }
}

#[tokio::test]
async fn a_closed_store_is_an_internal_error() {
    let f = fixture().await;
    f.store.close().await;
    let reply = f.responder.respond(&f.request(&[0x01])).await;
    assert_eq!(reply.status, OcspResponseStatus::InternalError);
    assert_eq!(&reply.der[..], &[0x30, 0x03, 0x0a, 0x01, 0x02]);
}
