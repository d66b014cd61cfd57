//! The audit log: every security-relevant event lands in a SHA-256 hash chain in the store
//! (`portcullis_core::audit`), so edits and deletions are detectable afterwards.
//!
//! A background task appends recorded events in large batches, one store transaction per
//! batch (group commit); callers wait for the commit or only for the queue as the event and
//! `[audit] mode` require, and refusals of unauthenticated requests are summarised per source
//! ([`log`], [`refusals`]). [`verify_chain`] checks the stored chain end to end ([`verify`]), including the
//! signed checkpoints a leader-only job appends to it ([`checkpoint`]).

pub mod archive;
pub mod checkpoint;
pub mod error;
pub mod export;
pub mod log;
pub mod refusals;
pub mod sealing;
pub mod trail;
pub mod verify;

pub use checkpoint::{sign_checkpoint, CheckpointKeys, CheckpointStatus};
pub use error::AuditError;
pub use log::{with_request_source, AuditLog, AuditMode, AuditObserver, AuditUnavailable};
pub use sealing::{AuditSealer, DataKeyInfo, ReadRecord};
pub use trail::AuditTrail;
pub use verify::{verify_chain, ChainReport, CheckpointReport};
