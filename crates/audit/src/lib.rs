//! The audit log: every security-relevant event lands in a SHA-256 hash chain in the store
//! (`portcullis_core::audit`), so edits and deletions are detectable afterwards.
//!
//! Recording must not slow the token endpoint, so [`AuditLog::record`] only queues the event;
//! a background task appends queued events in large batches, one store transaction per batch
//! ([`log`]). [`verify_chain`] checks the stored chain end to end ([`verify`]), including the
//! signed checkpoints a leader-only job appends to it ([`checkpoint`]).

pub mod checkpoint;
pub mod error;
pub mod log;
pub mod trail;
pub mod verify;

pub use checkpoint::{sign_checkpoint, CheckpointKeys, CheckpointStatus};
pub use error::AuditError;
pub use log::AuditLog;
pub use trail::AuditTrail;
pub use verify::{verify_chain, ChainReport, CheckpointReport};
