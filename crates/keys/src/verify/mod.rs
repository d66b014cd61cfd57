//! Verifying compact JWS tokens (RFC 7515 §5.2) with the algorithm taken from the key.
//!
//! RFC 8725 §3.1 asks verifiers to let the key, not the token, decide the algorithm. Here a
//! [`VerifyingKey`] carries exactly one [`Algorithm`](crate::Algorithm) fixed when it was
//! built from a JWK, and a token verifies only if its header names that same algorithm: an
//! `alg: none` token or an HMAC token keyed with the public key's bytes has nothing to
//! verify against. HMAC exists only in [`verify_hmac`], for `client_secret_jwt`, where the
//! caller holds the shared secret.

mod decode;
mod hmac;
mod verifying_key;

#[cfg(test)]
mod tests;

pub use decode::{decode, Decoded, JwsHeader, MAX_TOKEN_BYTES};
pub use hmac::verify_hmac;
pub(crate) use verifying_key::strip_leading_zeros;
pub use verifying_key::VerifyingKey;

use crate::KeyError;

/// Verifies `decoded` with one of `keys` and returns the key that verified it.
///
/// With a `kid` in the header only the keys with that `kid` are tried (RFC 7515 §4.1.4);
/// without one, only the keys whose algorithm equals the header's `alg`.
pub fn verify_with_any<'k>(
    decoded: &Decoded,
    keys: &'k [VerifyingKey],
) -> Result<&'k VerifyingKey, KeyError> {
    let mut candidates: Vec<&VerifyingKey> = match decoded.header.kid.as_deref() {
        Some(kid) => keys.iter().filter(|k| k.kid() == Some(kid)).collect(),
        None => keys
            .iter()
            .filter(|k| k.algorithm().matches_header(&decoded.header.alg))
            .collect(),
    };
    if candidates.is_empty() {
        return Err(match decoded.header.kid {
            Some(_) => KeyError::UnknownKid,
            None => KeyError::AlgorithmMismatch,
        });
    }
    // Keys sharing a kid are tried with the matching algorithm first, for a precise error.
    candidates.sort_by_key(|k| !k.algorithm().matches_header(&decoded.header.alg));
    let mut last_error = KeyError::BadSignature;
    for key in candidates {
        match decoded.verify(key) {
            Ok(()) => return Ok(key),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}
