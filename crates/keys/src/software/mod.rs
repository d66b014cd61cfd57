//! The software key-custody backend: private keys live in this process, stored on disk only
//! sealed under a master key.
//!
//! A deployment without an HSM still never writes a private key in the clear: each PKCS#8
//! document is envelope-encrypted ([`seal`]/[`open`]) under the [`MasterKey`], and the
//! [`SoftwareSigner`] built from it implements [`Signer`](crate::Signer) like any other
//! backend.

mod envelope;
mod master_key;
mod signer;

pub use envelope::{open, seal};
pub use master_key::MasterKey;
pub use signer::SoftwareSigner;
