//! The device PKI (issue #4): a CA hierarchy whose keys live in key custody, a registry of
//! devices pre-registered at manufacturing (with symmetric keys for devices that cannot do
//! public-key cryptography, issue #12), enrollment over EST (RFC 7030), and the revocation
//! services relying parties use: CRLs (RFC 5280) and OCSP (RFC 6960).
//!
//! Everything revocation-related is derived from the store, the one source of truth, so a
//! revocation on any node is seen by OCSP, the CRL and mTLS checks on every node.

pub mod ca;
pub mod ca_key;
pub mod chain;
pub mod clock;
pub mod crl;
pub mod csr;
mod der_writer;
mod device_keys;
mod device_registry;
pub mod enroll;
pub mod enrollment_writer;
pub mod error;
pub mod est;
pub mod ocsp;
pub mod pkcs7;
pub mod profile;
pub mod publish;
pub mod registry;
pub mod revoke;
pub mod serial;
pub mod service;

pub use ca::{CertificateAuthority, PkiUrls};
pub use ca_key::CaKey;
pub use error::PkiError;
pub use service::Pki;
