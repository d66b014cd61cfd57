//! Per-message verification cost (issue #12): a 200-byte `COSE_Sign1` (ES256) and
//! `COSE_Mac0` (HMAC 256/256) through `cose::parse` + `CoseMessage::verify`, with
//! `DeviceCredentials` built by hand the way the directory builds them (the certificate key
//! through `VerifyingKey::from_spki_der`); beside them the bare aws-lc ES256 verification,
//! the floor under the Sign1 number. `bench/gateway.sh` runs this interleaved with
//! `openssl speed -seconds 5 ecdsap256` and prints Sign1 verifications/s against openssl's
//! verify/s (target ≥ 70 %).
//!
//! `cargo bench -p portcullis-gateway --bench cose_verify -- --warm-up-time 1 --measurement-time 5`

// A benchmark: a failure aborts the measurement, so panicking shortcuts are fine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use criterion::{criterion_group, criterion_main, Criterion};
use portcullis_core::device::DeviceId;
use portcullis_gateway::cose::{self, CoseKind};
use portcullis_gateway::{CertificateKey, DeviceCredentials, MessageAuth, SymmetricKey};
use portcullis_keys::{Algorithm, VerifyingKey};
use zeroize::Zeroizing;

/// The moment the messages are made and verified at.
const NOW: i64 = 1_767_225_600;
const DEVICE: &str = "sensor-000042";
const KEY_ID: &str = "k5e3a90c1";
const SERIAL: &str = "3c1f0a77d2";
/// The size of every message, as in the MQTT load.
const MESSAGE_BYTES: usize = 200;

fn credentials(pair: &EcdsaKeyPair, key: [u8; 32]) -> DeviceCredentials {
    let spki = pair.public_key().as_der().unwrap();
    let verifiers = VerifyingKey::from_spki_der(spki.as_ref(), &Algorithm::ALL).unwrap();
    DeviceCredentials {
        device_id: DeviceId::parse(DEVICE).unwrap(),
        model: None,
        active: true,
        message_auth: MessageAuth::Required,
        keys: vec![SymmetricKey {
            key_id: KEY_ID.to_owned(),
            key: Zeroizing::new(key),
            not_after: None,
        }],
        certificates: vec![CertificateKey {
            serial: SERIAL.to_owned(),
            verifiers,
            not_after: NOW + 86_400,
        }],
    }
}

/// A message of exactly `MESSAGE_BYTES`, made by `make` from a payload of some length.
fn sized(make: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let envelope = make(&[]).len();
    (0..MESSAGE_BYTES)
        .rev()
        .filter(|len| len + envelope <= MESSAGE_BYTES + 2)
        .map(|len| make(&vec![b'x'; len]))
        .find(|m| m.len() == MESSAGE_BYTES)
        .expect("a payload length that makes the message 200 bytes")
}

fn verify(c: &mut Criterion) {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let key = [0x42u8; 32];
    let creds = credentials(&pair, key);
    let device = DeviceId::parse(DEVICE).unwrap();
    let rng = SystemRandom::new();
    let sign1 = sized(|payload| {
        cose::sign1_with(
            &device,
            Some(SERIAL),
            Algorithm::ES256,
            1_767_225_600_000_042,
            NOW,
            payload,
            |data| pair.sign(&rng, data).map(|s| s.as_ref().to_vec()),
        )
        .unwrap()
    });
    let mac0 = sized(|payload| {
        cose::seal_mac0(&device, KEY_ID, &key, 1_767_225_600_000_042, NOW, payload)
    });
    // Both verify before anything is timed.
    for (bytes, kind) in [(&sign1, CoseKind::Sign1), (&mac0, CoseKind::Mac0)] {
        let message = cose::parse(bytes).unwrap();
        assert_eq!(message.kind(), kind);
        message.verify(&creds, NOW).unwrap();
    }

    let mut group = c.benchmark_group("cose_verify");
    group.bench_function("sign1_es256", |b| {
        b.iter(|| {
            cose::parse(black_box(&sign1))
                .and_then(|m| m.verify(&creds, NOW))
                .unwrap()
        })
    });
    group.bench_function("mac0_hmac256", |b| {
        b.iter(|| {
            cose::parse(black_box(&mac0))
                .and_then(|m| m.verify(&creds, NOW))
                .unwrap()
        })
    });
    group.bench_function("parse_only_sign1", |b| {
        b.iter(|| cose::parse(black_box(&sign1)).unwrap())
    });

    // The floor: one aws-lc ES256 verification of a Sig_structure-sized input, no COSE.
    let sig_structure = vec![0x5au8; MESSAGE_BYTES + 20];
    let signature = pair.sign(&rng, &sig_structure).unwrap();
    let verifier = &creds.certificates[0].verifiers[0];
    group.bench_function("es256_verify_only", |b| {
        b.iter(|| {
            verifier
                .verify(black_box(&sig_structure), signature.as_ref())
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
