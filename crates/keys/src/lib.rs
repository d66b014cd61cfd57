//! Key custody: every signature Portcullis makes goes through a [`Signer`].
//!
//! Backends sit beside the trait, each testable alone (the rustls `crypto/` layout):
//! `software/` keeps private keys sealed under a master key (AES-256-GCM envelope
//! encryption); `pkcs11/` keeps them inside a hardware token that makes every signature.
//! `conformance` is the one suite every backend passes. The JOSE layer
//! (`jws`, `jwk`, `verify`) is small and ours so that the verifying side always takes the
//! algorithm from the key, never from the token: `alg: none` and HMAC-keyed-with-a-public-key
//! cannot be expressed.

pub mod algorithm;
/// The suite every `Signer` backend passes; for tests only (the `test-support` feature).
#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
pub mod custody;
pub mod error;
pub mod jwk;
pub mod jws;
pub mod keyring;
pub mod pkcs11;
pub mod random;
pub mod software;
pub mod verify;

#[cfg(test)]
mod test_keys;

pub use algorithm::Algorithm;
pub use custody::{CustodyKey, KeyBackend, KeyCustody, KeyPurpose};
pub use error::KeyError;
pub use jwk::{Jwk, JwkSet};
pub use jws::JwtSigner;
pub use keyring::KeyRing;
pub use random::{random_array, random_id};
pub use verify::{decode, Decoded, VerifyingKey};

use portcullis_core::Kid;

/// Something that holds a private key and signs with it; the key itself may never leave it.
pub trait Signer: Send + Sync + std::fmt::Debug {
    /// The key id published in JWKS and in every JWS header this key signs.
    fn kid(&self) -> &Kid;
    /// The one JWS algorithm this key signs with.
    fn algorithm(&self) -> Algorithm;
    /// Signs `message`, returning the JWS signature bytes (for ECDSA the fixed-size `r||s`
    /// form of RFC 7518 §3.4, not DER).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError>;
    /// The public half as a JWK with `kid`, `alg` and `use: sig`.
    fn public_jwk(&self) -> Jwk;
}
