//! Signing cost per algorithm, and the full token-signing path of the token endpoint.
//!
//! Run: `cargo bench -p portcullis-keys -- --warm-up-time 1 --measurement-time 3`

// A benchmark: a failure aborts the measurement, so panicking shortcuts are fine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use portcullis_keys::software::SoftwareSigner;
use portcullis_keys::{Algorithm, JwtSigner, Signer};
use std::hint::black_box;
use std::sync::Arc;

/// A typical RFC 9068 §2.2 access-token claim set, serialized.
const ACCESS_TOKEN_CLAIMS: &[u8] = br#"{"iss":"https://auth.plant-7.example","sub":"sensor-0042.line-3","aud":"https://telemetry.plant-7.example","exp":1767225600,"iat":1767225300,"jti":"9f1c2d3e4b5a69788796a5b4c3d2e1f0","client_id":"sensor-0042.line-3","scope":"telemetry:write config:read"}"#;

fn generate(alg: Algorithm) -> SoftwareSigner {
    match SoftwareSigner::generate(alg) {
        Ok((signer, _pkcs8)) => signer,
        Err(e) => panic!("generating a {alg} key failed: {e}"),
    }
}

fn raw_signatures(c: &mut Criterion) {
    let mut group = c.benchmark_group("SoftwareSigner::sign");
    let message = [0x42u8; 300]; // about the size of a JWS signing input
    for alg in Algorithm::ALL {
        let signer = generate(alg);
        group.bench_with_input(BenchmarkId::from_parameter(alg), &message, |b, m| {
            b.iter(|| signer.sign(black_box(m)))
        });
    }
    group.finish();
}

fn access_token(c: &mut Criterion) {
    let jwt = JwtSigner::new(Arc::new(generate(Algorithm::ES256)), "at+jwt");
    c.bench_function("JwtSigner::sign_claims_json/ES256", |b| {
        b.iter(|| jwt.sign_claims_json(black_box(ACCESS_TOKEN_CLAIMS)))
    });
    let jwt = JwtSigner::new(Arc::new(generate(Algorithm::EdDSA)), "at+jwt");
    c.bench_function("JwtSigner::sign_claims_json/EdDSA", |b| {
        b.iter(|| jwt.sign_claims_json(black_box(ACCESS_TOKEN_CLAIMS)))
    });
}

criterion_group!(benches, raw_signatures, access_token);
criterion_main!(benches);
