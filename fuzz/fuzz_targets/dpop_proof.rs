//! Fuzzes DPoP proof checking (RFC 9449 §4.3): an arbitrary `DPoP` header value through the
//! compact-JWS decoder, the header `jwk`, the key built from it, the signature and the claim
//! rules, once as the token endpoint runs them and once as a resource endpoint does (with an
//! `ath`), nonces required. None may panic; refusals are expected.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portcullis_oauth::dpop::{DpopSettings, DpopVerifier};

/// A fixed "now" so that runs are reproducible: 2026-01-01T00:00:00Z.
const NOW: i64 = 1_767_225_600;

fn verifier() -> &'static DpopVerifier {
    static VERIFIER: OnceLock<DpopVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        DpopVerifier::new(
            DpopSettings {
                require_nonce: true,
                ..DpopSettings::default()
            },
            b"fuzz pepper",
            "https://as.example",
            Some("https://as.example:8443"),
        )
    })
}

fuzz_target!(|proof: &str| {
    let v = verifier();
    let _ = v.check(proof, "POST", "/oauth2/token", None, NOW);
    let _ = v.check(proof, "GET", "/admin/v1/clients", Some("ath"), NOW);
});
