//! The one error of every port. Each variant says what the caller can do about it; the edge
//! (admin API, gateway) maps it once to its protocol's answer.

use portcullis_core::CoreError;
use portcullis_store::StoreError;

/// Why a port call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PortError {
    /// A value broke a domain rule (id, name, scope, key source, state transition).
    #[error(transparent)]
    Invalid(#[from] CoreError),
    /// The request is unusable for a reason that is not a single field's rule.
    #[error("{0}")]
    BadRequest(String),
    /// No client with this id.
    #[error("client '{0}' does not exist")]
    UnknownClient(String),
    /// A client with this id exists already.
    #[error("client '{0}' already exists")]
    ClientExists(String),
    /// The device, certificate or other object named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The object's state does not allow the operation.
    #[error("{0}")]
    Conflict(String),
    /// The store failed; the detail is for the log, not for the caller.
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
    /// The change's audit record could not be stored in time, so it is not confirmed.
    #[error("the audit log cannot store records now")]
    AuditUnavailable,
    /// Something the caller cannot fix (key custody, randomness, encoding). The message is
    /// for the log only and never carries key material or a secret.
    #[error("internal error: {0}")]
    Internal(String),
}
