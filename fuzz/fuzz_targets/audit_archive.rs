//! Fuzzes the offline verification of an audit archive segment (`portcullis audit verify
//! --archive FILE`): the file comes from wherever the auditor got it. Any input must give a
//! report or a clean `AuditError`, never a panic; nothing verifies without the trusted key.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portcullis_audit::archive::verify_segment;
use portcullis_audit::CheckpointKeys;
use portcullis_keys::software::SoftwareSigner;
use portcullis_keys::{Algorithm, Signer, VerifyingKey};

fn keys() -> &'static CheckpointKeys {
    static KEYS: OnceLock<CheckpointKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut keys = CheckpointKeys::none("not the fuzzer's key");
        if let Ok((signer, _)) = SoftwareSigner::generate(Algorithm::ES256) {
            if let Ok(key) = VerifyingKey::from_jwk(&signer.public_jwk(), &[Algorithm::ES256]) {
                keys.trust(signer.kid().as_str(), key);
            }
        }
        keys
    })
}

fuzz_target!(|bytes: &[u8]| {
    // A key generated here signed nothing the fuzzer can produce: no input may verify.
    assert!(verify_segment(bytes, keys()).is_err());
});
