//! Why a command request (send, approve, read) is refused, for the sender's side of the
//! command API. Devices' refusals stay [`GatewayError`]s; this enum is the principal's view,
//! mapped to problem+json at the HTTP edge (`commands/http.rs`).

use portcullis_core::command_policy::DenyReason;
use portcullis_core::CoreError;
use portcullis_ports::PortError;
use portcullis_store::StoreError;

use crate::GatewayError;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The request does not parse or breaks a rule of shape (name, ttl, args not an object).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// No bearer token, or one that is not active.
    #[error("not authenticated")]
    Unauthenticated,
    /// A DPoP-bound token without a valid proof, or a proof without the current nonce
    /// (RFC 9449 §7.1): `error` is the RFC 9449 code for the `DPoP` challenge.
    #[error("not authenticated: the DPoP proof is missing or invalid ({error})")]
    DpopRefused {
        error: &'static str,
        nonce: Option<String>,
    },
    /// The policy refused: which rule (if any matched all but the arguments) and why.
    #[error("refused: {reason}")]
    Denied {
        rule: Option<String>,
        reason: DenyReason,
    },
    /// The caller may not read this command (not its sender, no `commands:read`).
    #[error("not allowed to read this command")]
    NotReadable,
    /// No such device or command.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The device exists but is suspended, revoked or decommissioned.
    #[error("the device is not active")]
    DeviceInactive,
    /// The command is not waiting for an approval (approved already, expired, ...).
    #[error("the command is {0}, not waiting for an approval")]
    NotPending(&'static str),
    /// A compare-and-swap lost to another writer (two editors at once): read again and retry.
    #[error("{0}")]
    Conflict(String),
    /// A conditional change found another version than the one it was based on.
    #[error("the device's settings are at version {0}")]
    Stale(u64),
    /// The rule's per-device rate limit is used up for this minute.
    #[error("rate limit of rule '{rule}' reached for this device")]
    RateLimited { rule: String, retry_after_secs: u64 },
    /// No command-signing key (or the store, or key custody, cannot be reached).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl From<CoreError> for CommandError {
    fn from(e: CoreError) -> Self {
        Self::Invalid(e.to_string())
    }
}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("device"),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl From<PortError> for CommandError {
    fn from(e: PortError) -> Self {
        match e {
            PortError::NotFound(_) => Self::NotFound("device"),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl From<GatewayError> for CommandError {
    fn from(e: GatewayError) -> Self {
        // The operator-key registry's failures: no active key, custody or store trouble.
        match e {
            GatewayError::Unavailable(why) | GatewayError::Internal(why) => Self::Unavailable(why),
            other => Self::Unavailable(other.to_string()),
        }
    }
}
