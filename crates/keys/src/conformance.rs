//! The behaviour every [`Signer`] backend must show, written once against the trait so the
//! software keystore and PKCS#11 tokens are held to the same contract.
//!
//! The unit tests below run it for the software backend; `tests/softhsm.rs` runs it for
//! PKCS#11 against a SoftHSM2 token. Every check verifies through the public JWK only, as a
//! relying party would. The checks panic on failure, like any test.

// Test support: a failure here is a failed test, so panicking shortcuts are fine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::verify::{decode, VerifyingKey};
use crate::{Algorithm, JwtSigner, KeyError, Signer};
use std::sync::Arc;

/// Builds a fresh key of the given algorithm on the backend under test.
pub type MakeSigner<'a> = &'a dyn Fn(Algorithm) -> Result<Arc<dyn Signer>, KeyError>;

/// Runs every check for each of `algorithms`.
pub fn run_all(make: MakeSigner<'_>, algorithms: &[Algorithm]) {
    for &alg in algorithms {
        let signer = generate(make, alg);
        generated_key_describes_itself(&signer, alg);
        signature_verifies_with_the_public_jwk(&signer);
        tampered_message_or_signature_fails(&signer);
        jws_round_trips_through_decode_and_verify(&signer);
        concurrent_signatures_all_verify(&signer);
        another_key_of_the_same_algorithm_is_independent(make, &signer);
    }
}

fn generate(make: MakeSigner<'_>, alg: Algorithm) -> Arc<dyn Signer> {
    match make(alg) {
        Ok(signer) => signer,
        Err(e) => panic!("{alg}: key generation failed: {e}"),
    }
}

fn verifying_key(signer: &Arc<dyn Signer>) -> VerifyingKey {
    let alg = signer.algorithm();
    match VerifyingKey::from_jwk(&signer.public_jwk(), &[alg]) {
        Ok(key) => key,
        Err(e) => panic!("{alg}: public JWK does not load: {e}"),
    }
}

fn sign(signer: &Arc<dyn Signer>, message: &[u8]) -> Vec<u8> {
    match signer.sign(message) {
        Ok(signature) => signature,
        Err(e) => panic!("{}: signing failed: {e}", signer.algorithm()),
    }
}

/// Algorithm, kid = RFC 7638 thumbprint, and the JWK members a JWKS needs.
pub fn generated_key_describes_itself(signer: &Arc<dyn Signer>, alg: Algorithm) {
    assert_eq!(signer.algorithm(), alg);
    let jwk = signer.public_jwk();
    assert_eq!(
        jwk.thumbprint().ok().as_deref(),
        Some(signer.kid().as_str()),
        "{alg}: kid is not the thumbprint"
    );
    assert_eq!(jwk.kid.as_deref(), Some(signer.kid().as_str()), "{alg}");
    assert_eq!(jwk.alg.as_deref(), Some(alg.as_str()), "{alg}");
    assert_eq!(jwk.use_.as_deref(), Some("sig"), "{alg}");
    let key = verifying_key(signer);
    assert_eq!(key.algorithm(), alg);
    assert_eq!(key.kid(), Some(signer.kid().as_str()));
}

/// A raw signature verifies with the published key and has the JWS size (r||s for ECDSA).
pub fn signature_verifies_with_the_public_jwk(signer: &Arc<dyn Signer>) {
    let alg = signer.algorithm();
    let key = verifying_key(signer);
    for message in [&b""[..], b"m", &[0xA5; 4096]] {
        let signature = sign(signer, message);
        if let Some(len) = alg.fixed_signature_len() {
            assert_eq!(signature.len(), len, "{alg}: signature size");
        }
        assert_eq!(
            key.verify(message, &signature),
            Ok(()),
            "{alg}: signature over {} bytes does not verify",
            message.len()
        );
    }
}

/// Changing one bit of the message or of the signature breaks verification.
pub fn tampered_message_or_signature_fails(signer: &Arc<dyn Signer>) {
    let alg = signer.algorithm();
    let key = verifying_key(signer);
    let message = b"portcullis conformance";
    let signature = sign(signer, message);
    let mut tampered_message = message.to_vec();
    tampered_message[0] ^= 1;
    assert_eq!(
        key.verify(&tampered_message, &signature),
        Err(KeyError::BadSignature),
        "{alg}: tampered message verified"
    );
    let mut tampered_signature = signature.clone();
    if let Some(last) = tampered_signature.last_mut() {
        *last ^= 1;
    }
    assert_eq!(
        key.verify(message, &tampered_signature),
        Err(KeyError::BadSignature),
        "{alg}: tampered signature verified"
    );
}

/// A JWT signed through [`JwtSigner`] decodes, names the key and verifies; its claims survive.
pub fn jws_round_trips_through_decode_and_verify(signer: &Arc<dyn Signer>) {
    let alg = signer.algorithm();
    let jwt = JwtSigner::new(Arc::clone(signer), "at+jwt");
    let claims = br#"{"iss":"https://as.example","sub":"sensor-1","exp":4000000000}"#;
    let token = match jwt.sign_claims_json(claims) {
        Ok(token) => token,
        Err(e) => panic!("{alg}: JWT signing failed: {e}"),
    };
    let decoded = match decode(&token) {
        Ok(decoded) => decoded,
        Err(e) => panic!("{alg}: own token does not decode: {e}"),
    };
    assert_eq!(decoded.header.alg, alg.as_str());
    assert_eq!(decoded.header.kid.as_deref(), Some(signer.kid().as_str()));
    assert_eq!(decoded.header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(decoded.claims, claims.to_vec());
    assert_eq!(decoded.verify(&verifying_key(signer)), Ok(()), "{alg}");
}

/// The token endpoint signs from many threads at once; every signature must still verify.
pub fn concurrent_signatures_all_verify(signer: &Arc<dyn Signer>) {
    let alg = signer.algorithm();
    let key = verifying_key(signer);
    std::thread::scope(|scope| {
        for thread in 0..4u8 {
            let (signer, key) = (Arc::clone(signer), key.clone());
            scope.spawn(move || {
                for i in 0..8u8 {
                    let message = [thread, i];
                    let signature = sign(&signer, &message);
                    assert_eq!(key.verify(&message, &signature), Ok(()), "{alg}");
                }
            });
        }
    });
}

/// Two keys of one algorithm differ, and neither verifies the other's signatures.
pub fn another_key_of_the_same_algorithm_is_independent(
    make: MakeSigner<'_>,
    signer: &Arc<dyn Signer>,
) {
    let alg = signer.algorithm();
    let other = generate(make, alg);
    assert_ne!(other.kid(), signer.kid(), "{alg}: two keys share a kid");
    let signature = sign(&other, b"m");
    assert_eq!(
        verifying_key(signer).verify(b"m", &signature),
        Err(KeyError::BadSignature),
        "{alg}: a key verified another key's signature"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::software::SoftwareSigner;

    #[test]
    fn software_backend_passes_the_conformance_suite() {
        let make = |alg| -> Result<Arc<dyn Signer>, KeyError> {
            let (signer, _pkcs8) = SoftwareSigner::generate(alg)?;
            Ok(Arc::new(signer))
        };
        run_all(&make, &Algorithm::ALL);
    }
}
