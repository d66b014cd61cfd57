//! What one SAML bearer assertion costs the token endpoint, step by step: the structure check
//! (roxmltree), the signature check (libxmlsec1: exclusive c14n, SHA-256, RSA-2048 verify) and
//! reading the signed bytes. Fixture: an xmlsec1-signed assertion and its IdP's certificate.
//!
//! `cargo bench -p portcullis-saml --features xmlsec --bench saml_verify`

use criterion::{criterion_group, criterion_main, Criterion};

const ASSERTION: &str = include_str!("fixtures/assertion.xml");
const CERTIFICATE: &str = include_str!("fixtures/idp.pem");

fn steps(c: &mut Criterion) {
    let certificates = portcullis_saml::pem_certificates(CERTIFICATE).unwrap_or_default();
    let Ok(inspected) = portcullis_saml::inspect(ASSERTION) else {
        return;
    };
    c.bench_function("saml inspect (structure check)", |b| {
        b.iter(|| portcullis_saml::inspect(std::hint::black_box(ASSERTION)))
    });
    c.bench_function("saml verify (libxmlsec1 + read signed bytes)", |b| {
        b.iter(|| {
            portcullis_saml::verify(std::hint::black_box(ASSERTION), &inspected, &certificates)
        })
    });
}

criterion_group!(benches, steps);
criterion_main!(benches);
