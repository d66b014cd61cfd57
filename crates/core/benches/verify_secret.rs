//! Client-secret verification cost (target ≤ 5 µs): HMAC-SHA256 under the pepper and a
//! constant-time comparison against every stored hash, as the token endpoint does it.

// A benchmark: a failure aborts the measurement, so panicking shortcuts are fine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use portcullis_core::secret::{verify_secret, Secret, SecretHash};

fn bench_verify_secret(c: &mut Criterion) {
    let pepper = [7u8; 32];
    let secret = Secret::from_random_bytes(&[42u8; 32]);
    let one = vec![SecretHash::of(&pepper, &secret, None)];
    let rotating = vec![
        SecretHash::of(&pepper, &secret, None),
        SecretHash::of(&pepper, &Secret::new("old"), Some(i64::MAX)),
    ];
    let presented = secret.expose().as_bytes().to_vec();
    c.bench_function("verify_secret/one_hash", |b| {
        b.iter(|| {
            verify_secret(
                black_box(&pepper),
                black_box(&presented),
                black_box(&one),
                1,
            )
        })
    });
    c.bench_function("verify_secret/during_rotation", |b| {
        b.iter(|| {
            verify_secret(
                black_box(&pepper),
                black_box(&presented),
                black_box(&rotating),
                1,
            )
        })
    });
    c.bench_function("verify_secret/wrong_secret", |b| {
        b.iter(|| {
            verify_secret(
                black_box(&pepper),
                black_box(b"wrong-secret-of-similar-length-0000000000"),
                black_box(&one),
                1,
            )
        })
    });
}

criterion_group!(benches, bench_verify_secret);
criterion_main!(benches);
