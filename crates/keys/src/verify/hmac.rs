//! HMAC verification for `client_secret_jwt` (RFC 7523 §2.2, OIDC Core §9) only.
//!
//! Kept apart from [`VerifyingKey`](super::VerifyingKey) so an HMAC algorithm can never be
//! paired with a public key: the caller must hand over the client's shared secret.

use super::Decoded;
use crate::KeyError;
use aws_lc_rs::hmac;

/// Verifies an HS256/HS384/HS512 token (RFC 7518 §3.2) with `secret`, in constant time.
///
/// The secret must be at least as long as the hash output (RFC 7518 §3.2).
pub fn verify_hmac(decoded: &Decoded, secret: &[u8]) -> Result<(), KeyError> {
    let (algorithm, min_secret_len) = match decoded.header.alg.as_str() {
        "HS256" => (hmac::HMAC_SHA256, 32),
        "HS384" => (hmac::HMAC_SHA384, 48),
        "HS512" => (hmac::HMAC_SHA512, 64),
        other => return Err(KeyError::AlgorithmNotAllowed(crate::error::shorten(other))),
    };
    if secret.len() < min_secret_len {
        return Err(KeyError::Malformed(
            "HMAC secret is shorter than the hash output (RFC 7518 §3.2)".into(),
        ));
    }
    let key = hmac::Key::new(algorithm, secret);
    // `hmac::verify` compares tags in constant time.
    hmac::verify(&key, decoded.signing_input(), decoded.signature())
        .map_err(|_| KeyError::BadSignature)
}
