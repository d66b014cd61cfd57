//! Fuzzes JWK Set parsing, the input of `private_key_jwt` registration and of every `jwks_uri`
//! fetch (RFC 7517 §5): arbitrary text through `JwkSet::parse`, then every key through
//! `VerifyingKey::from_jwk` with all algorithms allowed. Neither may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_keys::verify::VerifyingKey;
use portcullis_keys::{Algorithm, JwkSet};

fuzz_target!(|text: &str| {
    if let Ok(set) = JwkSet::parse(text) {
        for jwk in &set.keys {
            let _ = VerifyingKey::from_jwk(jwk, &Algorithm::ALL);
        }
    }
});
