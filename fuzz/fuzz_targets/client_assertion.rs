//! Fuzzes JWT client assertion handling (RFC 7523 §3): an arbitrary string through the
//! compact-JWS decoder, the claim mapping and the claim rules, as the token endpoint runs them
//! before and after the signature check. None may panic; errors are expected.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_core::assertion::{check_assertion_claims, claimed_client_id, AssertionClaims};
use portcullis_core::ClientId;

/// A fixed "now" so that runs are reproducible: 2026-01-01T00:00:00Z.
const NOW: i64 = 1_767_225_600;
const AUDIENCES: &[&str] = &["https://as.example", "https://as.example/oauth2/token"];

fuzz_target!(|token: &str| {
    let Ok(decoded) = portcullis_keys::decode(token) else {
        return;
    };
    let Ok(claims) = decoded.claims_as::<AssertionClaims>() else {
        return;
    };
    let _ = claimed_client_id(&claims);
    if let Ok(client_id) = ClientId::parse("fuzz-client") {
        let _ = check_assertion_claims(&claims, &client_id, AUDIENCES, NOW);
    }
});
