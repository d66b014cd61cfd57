//! Fuzzes the SAML 2.0 bearer grant's own parsing (RFC 7522): the `assertion` parameter's
//! base64url decoding, the structure check of the received XML (DTDs, comments, signature
//! shape, IDs), the reader of signed bytes, and the core's rules and claim mapping on what it
//! read. None may panic; refusals are expected. The signature check itself is libxmlsec1's
//! (C, fuzzed by its own project's OSS-Fuzz targets) and is not reached here.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_core::saml::{Destination, SamlIssuer};

/// A fixed "now" so that runs are reproducible: 2027-01-15T08:00:00Z.
const NOW: i64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = portcullis_saml::decode_param(&text);
    let inspected = portcullis_saml::inspect(&text);
    // Read the input as if it were the signed bytes, under the ID the check found (or a
    // fixed one), so the reader sees documents the structure check would refuse too.
    let id = inspected.as_ref().map_or("_a1", |i| i.id.as_str());
    if let Ok(assertion) = portcullis_saml::read_signed(&text, id) {
        let issuer = SamlIssuer {
            name: "corp".into(),
            entity_id: assertion.issuer.clone(),
            certificates: vec![],
            audience: None,
            max_lifetime_secs: 3600,
        };
        let to = Destination {
            audiences: &["https://auth.example"],
            token_endpoint: "https://auth.example/oauth2/token",
        };
        let _ = assertion.check(&issuer, to, NOW);
        let _ = assertion.claims();
    }
});
