//! Certificate issuance and CRL generation, the hot paths of issue #4's targets:
//! ≥ 2 000 certificates/s (P-256, software keys) and a 100 000-entry CRL in < 1 s.
//!
//! `cargo bench -p portcullis-pki --bench issue`

// A benchmark: a failure aborts the measurement, so panicking shortcuts are fine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use portcullis_core::device::{DeviceId, RevocationReason};
use portcullis_keys::software::MasterKey;
use portcullis_keys::Algorithm;
use portcullis_keys::KeyCustody;
use portcullis_pki::ca::{CaSettings, CertificateAuthority};
use portcullis_pki::crl::build_crl;
use portcullis_pki::csr::check_csr;
use portcullis_pki::profile::CertificateProfile;
use portcullis_pki::PkiUrls;
use portcullis_store::sqlite::SqliteStore;
use portcullis_store::{RevokedCertificate, Store};

const NOW: i64 = 1_800_000_000;

fn setup(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
) -> (Arc<CertificateAuthority>, SqliteStore) {
    rt.block_on(async {
        let store = SqliteStore::open(&dir.join("bench.db")).await.unwrap();
        let vault = KeyCustody::Software(Arc::new(MasterKey::from_bytes([3; 32])));
        let settings = CaSettings {
            name: "Bench".into(),
            algorithm: Algorithm::ES256,
            urls: PkiUrls::under("http://127.0.0.1:8080"),
            profile: CertificateProfile::default(),
        };
        let (ca, _) = CertificateAuthority::load_or_create(&store, &vault, &settings, NOW)
            .await
            .unwrap();
        (ca, store)
    })
}

fn csr_der(id: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, id);
    params.serialize_request(&key).unwrap().der().to_vec()
}

fn issuance(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (ca, store) = setup(&rt, dir.path());
    let id = DeviceId::parse("sensor-1").unwrap();
    let csr = csr_der("sensor-1");
    let profile = CertificateProfile::default();
    let checked = check_csr(&csr, Some(&id), &profile).unwrap();

    c.bench_function("check_csr_p256", |b| {
        b.iter(|| check_csr(&csr, Some(&id), &profile).unwrap())
    });
    c.bench_function("issue_device_p256", |b| {
        b.iter(|| ca.issue_device(&id, &checked.key, NOW).unwrap())
    });
    c.bench_function("check_issue_and_store", |b| {
        b.iter(|| {
            let checked = check_csr(&csr, Some(&id), &profile).unwrap();
            let cert = ca.issue_device(&id, &checked.key, NOW).unwrap();
            rt.block_on(store.insert_certificate(&cert)).unwrap();
        })
    });
}

fn crl(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (ca, _store) = setup(&rt, dir.path());
    let revoked: Vec<RevokedCertificate> = (0..100_000u64)
        .map(|i| RevokedCertificate {
            serial: format!("{:032x}", (1u128 << 126) | u128::from(i)),
            revoked_at: NOW - 3600,
            reason: RevocationReason::KeyCompromise,
            not_after: NOW + 86_400,
        })
        .collect();
    let mut group = c.benchmark_group("crl");
    group.sample_size(10);
    group.bench_function("build_crl_100k_entries", |b| {
        b.iter(|| build_crl(&ca, &revoked, NOW * 1000, 1, 86_400).unwrap())
    });
    group.finish();
}

criterion_group!(benches, issuance, crl);
criterion_main!(benches);
