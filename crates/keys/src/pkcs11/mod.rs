//! The PKCS#11 key-custody backend: private keys are generated inside a hardware security
//! module (or SoftHSM2) and never leave it; every signature is made by the token.
//!
//! A deployment that must not hold signing keys in process memory at all names a PKCS#11
//! module, a token label and a PIN file ([`Pkcs11Config`]); [`Pkcs11Token`] then generates,
//! finds, lists and destroys keys on that token, and each [`Pkcs11Signer`] implements
//! [`Signer`](crate::Signer) like the software backend does. Keys are created with
//! `CKA_SENSITIVE` true and `CKA_EXTRACTABLE` false (PKCS#11 v2.40 §4.9), and are restricted
//! by `CKA_ALLOWED_MECHANISMS` to the one mechanism of their JWS algorithm.
//!
//! `unsafe` stays inside `cryptoki`; this module has none.

mod config;
mod error;
mod public_key;
mod secret_wrap;
mod session;
mod signer;
mod token;

pub use config::Pkcs11Config;
pub use signer::{KeyProtection, Pkcs11Signer};
pub use token::Pkcs11Token;
