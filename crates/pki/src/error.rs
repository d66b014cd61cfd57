//! The one error type of the PKI crate. Its variants say what went wrong in PKI terms; each
//! surface maps them once to its protocol at the edge (`est.rs` to EST statuses,
//! `device_registry.rs` to the admin port's errors), answering the internal ones (CA, key,
//! store, encoding) without their detail, which goes to the log. Messages never carry key
//! material or enrollment secrets.

use portcullis_core::CoreError;
use portcullis_keys::KeyError;
use portcullis_store::StoreError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// The input itself is unusable (bad encoding, bad CSR, wrong name, weak key).
    #[error("{0}")]
    Invalid(String),
    /// The caller did not prove who it is (unknown device, wrong or spent secret, bad
    /// certificate). Deliberately vague toward the caller.
    #[error("{0}")]
    NotAuthenticated(String),
    /// The caller is known but its state does not allow this now (suspended, revoked,
    /// decommissioned), or the request names what it may not have.
    #[error("{0}")]
    NotPermitted(String),
    /// The object exists already.
    #[error("{0}")]
    AlreadyExists(String),
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
    /// The operation's audit record could not be stored in time: it is not confirmed.
    #[error("the audit log cannot store records now")]
    AuditUnavailable,
}

impl From<CoreError> for PkiError {
    fn from(e: CoreError) -> Self {
        PkiError::Invalid(e.to_string())
    }
}

impl From<portcullis_audit::AuditUnavailable> for PkiError {
    fn from(_: portcullis_audit::AuditUnavailable) -> Self {
        PkiError::AuditUnavailable
    }
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        PkiError::Encoding(e.to_string())
    }
}
