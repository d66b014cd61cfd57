//! The audit checkpoint job, a leader-only job (issue #5): every `[audit]
//! checkpoint_interval_secs` the holder of the `audit-checkpoint` lease signs the chain's head
//! with the active token-signing key and appends the signature to the chain as an
//! `audit.checkpoint` event (why: `portcullis_core::audit_checkpoint`).
//!
//! One node at a time, through a lease like key rotation and the purge: two nodes
//! checkpointing the same head would only add noise, and the lease row is the same mechanism
//! every leader-only job already uses. The token-signing key signs because it is the one key
//! every node holds that the database alone cannot produce (sealed under the master key, or
//! in the HSM), and its public half is already published and rotated.

use std::sync::Arc;
use std::time::Duration;

use portcullis_audit::{sign_checkpoint, AuditLog};
use portcullis_core::audit_checkpoint::{checkpoint_due, CheckpointDetail};
use portcullis_keys::KeyRing;
use portcullis_store::Store;
use tokio::task::JoinHandle;

use crate::bootstrap::unix_now;
use crate::serve_error::CheckpointError;

/// Gauge: the audit chain's last sequence number, as the `audit-checkpoint` lease holder last
/// read it (set every `checkpoint_interval_secs`).
pub const HEAD_SEQ_METRIC: &str = "portcullis_audit_head_seq";

/// The lease that makes one node take checkpoints.
const CHECKPOINT_LEASE: &str = "audit-checkpoint";
/// The lease outlives a few missed ticks (and never less than 10 s, as key rotation's does),
/// so the holder keeps it while alive and a dead holder's job moves on soon after.
const LEASE_INTERVALS: u64 = 3;
const MIN_LEASE_SECS: u64 = 10;

/// What one node needs to take checkpoints.
#[derive(Clone)]
pub struct CheckpointJob {
    pub store: Arc<dyn Store>,
    pub keys: Arc<KeyRing>,
    pub audit: AuditLog,
    /// This node's name in leases (`KeyManager::node_id`).
    pub node_id: String,
    pub interval: Duration,
}

impl CheckpointJob {
    /// Starts the job on its own task; `None` when checkpoints are off (interval 0).
    pub fn spawn(self) -> Option<JoinHandle<()>> {
        if self.interval.is_zero() {
            tracing::info!("audit checkpoints are off ([audit] checkpoint_interval_secs = 0)");
            return None;
        }
        Some(tokio::spawn(self.run()))
    }

    async fn run(self) {
        // The first one interval after start, not at once: then a checkpoint covers what the
        // node did, rather than each restart adding one over its own start-up records.
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + self.interval, self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.take_checkpoint().await {
                tracing::warn!(error = %e, "audit checkpoint failed; will retry");
            }
        }
    }

    fn lease_secs(&self) -> i64 {
        let secs = (self.interval.as_secs() * LEASE_INTERVALS).max(MIN_LEASE_SECS);
        i64::try_from(secs).unwrap_or(i64::MAX)
    }

    /// One tick: renews the lease and, when this node holds it and something other than a
    /// checkpoint was recorded since the last one, checkpoints the head. Returns what it took.
    pub async fn take_checkpoint(&self) -> Result<Option<CheckpointDetail>, CheckpointError> {
        let now = unix_now();
        let leader = self
            .store
            .try_acquire_lease(CHECKPOINT_LEASE, &self.node_id, self.lease_secs(), now)
            .await
            .map_err(CheckpointError::Lease)?;
        if !leader {
            return Ok(None);
        }
        let head = self
            .store
            .list_audit_desc(i64::MAX, 1)
            .await
            .map_err(CheckpointError::Head)?;
        if let Some(head) = head.first() {
            // The lease holder's view of the chain's head, every tick: with
            // `portcullis_audit_exported_seq`, how far each export lags.
            metrics::gauge!(HEAD_SEQ_METRIC).set(head.seq as f64);
        }
        let Some(head) = head.first().filter(|head| checkpoint_due(Some(head))) else {
            return Ok(None);
        };
        let detail = sign_checkpoint(&self.keys.active(), head, now)?;
        // The operational log keeps a copy outside the database: the only thing that shows a
        // chain cut back behind its newest checkpoints. Nothing here is secret.
        tracing::info!(
            seq = detail.seq,
            hash = %detail.hash,
            kid = %detail.kid,
            jws = %detail.jws,
            "audit checkpoint"
        );
        // Stored before the next tick reads the head, so it sees this checkpoint and skips.
        self.audit.commit(detail.to_event(now)).await?;
        Ok(Some(detail))
    }
}
