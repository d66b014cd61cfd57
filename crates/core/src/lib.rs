//! The pure domain core of Portcullis.
//!
//! Everything here is a rule, not an action: no async, no I/O, no clock reads (the current
//! time is always a parameter) and no randomness (random bytes are passed in). That keeps every
//! rule unit-testable and fuzzable, and lets the protocol crates stay thin.

pub mod assertion;
pub mod audit;
pub mod audit_checkpoint;
pub mod client;
/// A command's life: its states, its id, what a device reports.
pub mod command;
/// Which principals may send which commands, with which arguments, to which devices.
pub mod command_policy;
pub mod detection;
pub mod device;
pub mod device_key;
/// DPoP proofs (RFC 9449): the claim rules, without the cryptography.
pub mod dpop;
pub mod error;
/// Workload federation: trusted outside issuers and the policies mapping their subjects.
pub mod federation;
pub mod form;
pub mod forwarded;
pub mod hex;
pub mod ids;
pub mod issuer;
pub mod pem;
pub mod rotation;
pub mod saml;
pub mod scope;
pub mod secret;
pub mod serial;
pub mod time;
pub mod tls_renewal;
pub mod token;
/// Token exchange (RFC 8693): who may exchange whose tokens, and for what.
pub mod token_exchange;
/// Software releases: who gets which, and what devices report.
pub mod update;

pub use error::{CoreError, ErrorCode, OAuthError};
pub use ids::{ClientId, Kid};
pub use scope::ScopeSet;
pub use secret::{Secret, SecretHash};

/// Seconds since the Unix epoch; time always enters the core as a value of this type.
pub type UnixTime = i64;
