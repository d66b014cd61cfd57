//! Fuzzes `VerifyingKey::from_spki_der`, the reader of a device certificate's
//! SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) behind `COSE_Sign1` and device-token checks:
//! arbitrary bytes with every algorithm allowed. It must not panic, and a key it accepts must
//! turn down an empty signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_keys::{Algorithm, VerifyingKey};

fuzz_target!(|der: &[u8]| {
    if let Ok(keys) = VerifyingKey::from_spki_der(der, &Algorithm::ALL) {
        assert!(!keys.is_empty());
        for key in keys {
            assert!(key.verify(b"message", b"").is_err());
        }
    }
});
