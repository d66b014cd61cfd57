//! The one error type of the audit crate: a chain that fails verification, or a store that
//! could not be read. Kept apart so `portcullis audit verify` can tell tampering (exit loudly)
//! from an outage (retry).

use portcullis_core::audit::ChainBreak;
use portcullis_store::StoreError;

/// Why the audit log could not be verified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The chain is broken: a record was edited, removed or reordered.
    #[error("audit chain broken: {0}")]
    Broken(#[from] ChainBreak),
    /// The records could not be read.
    #[error("audit store: {0}")]
    Store(#[from] StoreError),
    /// An archive segment could not be built, or does not verify.
    #[error("audit archive: {0}")]
    Archive(String),
    /// The audit data keys could not be created, opened or used (never carries key bytes).
    #[error("audit data keys: {0}")]
    Keys(String),
}
