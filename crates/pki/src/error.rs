//! The one error type of the PKI crate; `est.rs`, `ocsp/` and the CLI map it to their
//! protocol's error at the edge. Messages never carry key material or enrollment secrets.

use portcullis_core::CoreError;
use portcullis_keys::KeyError;
use portcullis_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The request itself is unusable (bad encoding, bad CSR, wrong name, weak key).
    #[error("{0}")]
    BadRequest(String),
    /// The caller did not prove who it is (unknown device, wrong or spent secret, bad
    /// certificate). Deliberately vague toward the caller.
    #[error("{0}")]
    Unauthorized(String),
    /// The caller is known but not allowed now (suspended, revoked, decommissioned).
    #[error("{0}")]
    Forbidden(String),
    /// The object exists already.
    #[error("{0}")]
    Conflict(String),
    /// The object named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The CA is missing or its configuration is unusable.
    #[error("CA: {0}")]
    Ca(String),
    #[error("key: {0}")]
    Key(#[from] KeyError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("certificate encoding: {0}")]
    Encoding(String),
}

impl From<CoreError> for PkiError {
    fn from(e: CoreError) -> Self {
        PkiError::BadRequest(e.to_string())
    }
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        PkiError::Encoding(e.to_string())
    }
}
