//! Signatures per algorithm through SoftHSM2 (PKCS#11) beside the software backend, in one
//! criterion run so the two are measured side by side (issue #3). Needs softhsm2 installed;
//! makes its own token in a temporary directory.
//!
//! `cargo bench -p portcullis-keys --bench pkcs11_sign -- --warm-up-time 1 --measurement-time 3`

// A benchmark: a failure aborts the measurement, so panicking shortcuts are fine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;
use std::process::Command;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use portcullis_keys::pkcs11::{Pkcs11Config, Pkcs11Token};
use portcullis_keys::software::SoftwareSigner;
use portcullis_keys::{Algorithm, Signer};
use zeroize::Zeroizing;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// A fresh SoftHSM2 token in `dir`, opened.
fn softhsm_token(dir: &Path) -> Option<Pkcs11Token> {
    if !Path::new(MODULE).exists() {
        eprintln!("SoftHSM2 is not installed: benchmarking the software backend only");
        return None;
    }
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).ok()?;
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .ok()?;
    // Set before any PKCS#11 call, while the bench is still single-threaded.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let init = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            "bench",
            "--pin",
            "1234",
            "--so-pin",
            "5678",
        ])
        .output()
        .ok()?;
    if !init.status.success() {
        return None;
    }
    let config = Pkcs11Config {
        module_path: MODULE.into(),
        token_label: "bench".into(),
        pin: Zeroizing::new("1234".into()),
    };
    Pkcs11Token::open(&config).ok()
}

fn bench_signing(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("portcullis-pkcs11-bench-{}", std::process::id()));
    let token = softhsm_token(&dir);
    let message = [7u8; 300];
    let mut group = c.benchmark_group("sign");
    for alg in Algorithm::ALL {
        let (software, _) = SoftwareSigner::generate(alg).expect("software key");
        group.bench_with_input(BenchmarkId::new("software", alg), &message, |b, m| {
            b.iter(|| software.sign(m))
        });
        if let Some(token) = &token {
            let hsm = token.generate(alg).expect("token key");
            group.bench_with_input(BenchmarkId::new("softhsm2", alg), &message, |b, m| {
                b.iter(|| hsm.sign(m))
            });
            let _ = token.destroy(hsm.kid());
        }
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench_signing);
criterion_main!(benches);
