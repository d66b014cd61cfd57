//! OCSP responder cost per request: the pre-signed path (RFC 5019 requests: one CertID, no
//! nonce) against the fresh-signing path (a nonce), and request parsing alone. The status
//! source is in memory, so these measure the responder, not the store.
//!
//! Run: `cargo bench -p portcullis-pki --bench ocsp -- --warm-up-time 1 --measurement-time 3`

// A benchmark: a failure aborts the measurement, so panicking shortcuts are fine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::sync::Arc;

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, Criterion};
use der::Encode;
use portcullis_keys::software::SoftwareSigner;
use portcullis_keys::Algorithm;
use portcullis_pki::ocsp::{
    parse_request, CertificateStatus, CertificateStatusSource, HashAlgorithm, OcspConfig,
    OcspResponder,
};
use portcullis_pki::{CaKey, PkiError};
use x509_parser::prelude::FromDer as _;

/// Every serial is good: a store hit without the store.
#[derive(Debug)]
struct AllGood;

#[async_trait]
impl CertificateStatusSource for AllGood {
    async fn status(&self, _serial_hex: &str) -> Result<CertificateStatus, PkiError> {
        Ok(CertificateStatus::Good)
    }
}

fn tlv(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let body = parts.concat();
    assert!(body.len() < 0x100);
    let mut out = vec![tag];
    if body.len() >= 0x80 {
        out.push(0x81);
    }
    out.push(body.len() as u8);
    out.extend(body);
    out
}

fn setup() -> (OcspResponder, Vec<u8>, Vec<u8>) {
    let (signer, _pkcs8) = SoftwareSigner::generate(Algorithm::ES256).expect("key");
    let key = CaKey::new(Arc::new(signer)).expect("CaKey");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Bench Issuing CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_der = params.self_signed(&key).expect("CA").der().to_vec();
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&ca_der).expect("parse");
    let alg = HashAlgorithm::Sha1;
    let cert_id = tlv(
        0x30,
        &[
            &tlv(0x30, &[&alg.oid().to_der().expect("oid"), &[0x05, 0x00]]),
            &tlv(0x04, &[&alg.digest(cert.tbs_certificate.subject.as_raw())]),
            &tlv(0x04, &[&alg.digest(key.public_key_bits())]),
            &tlv(0x02, &[&[0x40; 16]]),
        ],
    );
    let request_list = tlv(0x30, &[&tlv(0x30, &[&cert_id])]);
    let plain = tlv(0x30, &[&tlv(0x30, &[&request_list])]);
    let nonce_oid = [
        0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02,
    ];
    let nonce = tlv(
        0x30,
        &[&nonce_oid, &tlv(0x04, &[&tlv(0x04, &[&[0x5a; 16]])])],
    );
    let extensions = tlv(0xa2, &[&tlv(0x30, &[&nonce])]);
    let with_nonce = tlv(0x30, &[&tlv(0x30, &[&request_list, &extensions])]);
    let responder =
        OcspResponder::new(key, &ca_der, Arc::new(AllGood), OcspConfig::default()).expect("OCSP");
    (responder, plain, with_nonce)
}

fn responder(c: &mut Criterion) {
    let (responder, plain, with_nonce) = setup();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    // Warm the cache, and check both requests are answered as intended.
    assert!(!rt.block_on(responder.respond(&plain)).cached);
    assert!(rt.block_on(responder.respond(&plain)).cached);
    assert!(!rt.block_on(responder.respond(&with_nonce)).cached);

    let mut group = c.benchmark_group("ocsp");
    group.bench_function("parse_request", |b| {
        b.iter(|| parse_request(black_box(&plain)))
    });
    group.bench_function("respond/cached", |b| {
        b.iter(|| rt.block_on(responder.respond(black_box(&plain))))
    });
    group.bench_function("respond/fresh_nonce_es256", |b| {
        b.iter(|| rt.block_on(responder.respond(black_box(&with_nonce))))
    });
    group.finish();
}

criterion_group!(benches, responder);
criterion_main!(benches);
