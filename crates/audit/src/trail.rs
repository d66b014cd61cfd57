//! The audit chain as the admin API reads it: the log that appends records and the store
//! that holds them, behind one handle, so a reader never needs the rest of a service's state.
//!
//! Reads flush the log's pending batch first: records are appended off the request path,
//! and an operator who just changed a client expects to see that change (and have it covered
//! by verification) in the very next call.

use std::sync::Arc;

use portcullis_core::audit::{AuditEvent, AuditRecord};
use portcullis_store::{Store, StoreError};

use crate::sealing::{DataKeyInfo, ReadRecord};
use crate::{verify_chain, AuditError, AuditLog, AuditUnavailable, ChainReport, CheckpointKeys};

/// Appends to, lists and verifies one audit chain.
#[derive(Clone)]
pub struct AuditTrail {
    log: AuditLog,
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for AuditTrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditTrail").finish_non_exhaustive()
    }
}

impl AuditTrail {
    /// The trail over `store`, appended to through `log` (which writes to the same store).
    pub fn new(log: AuditLog, store: Arc<dyn Store>) -> Self {
        Self { log, store }
    }

    /// Stores `event` before returning (admin actions must survive a crash), or says it
    /// could not in time.
    pub async fn commit(&self, event: AuditEvent) -> Result<(), AuditUnavailable> {
        self.log.commit(event).await
    }

    /// A refusal of an unauthenticated request from `source`, summarised per source and
    /// window (see [`AuditLog::record_refusal`]).
    pub fn record_refusal(&self, source: std::net::IpAddr, event: AuditEvent) {
        self.log.record_refusal(source, event);
    }

    /// Up to `limit` records with `seq` below `before`, newest first, including every record
    /// queued before this call; encrypted ones opened with the audit data keys.
    pub async fn records_desc(
        &self,
        before: i64,
        limit: u32,
    ) -> Result<Vec<ReadRecord>, StoreError> {
        self.log.flush().await;
        let records = self.store.list_audit_desc(before, limit).await?;
        Ok(self.open(records).await)
    }

    /// Up to `limit` records with `seq` above `after`, oldest first, encrypted ones opened
    /// (what a stream reads; it does not wait for the pending batch).
    pub async fn records_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<ReadRecord>, StoreError> {
        let records = self.store.list_audit(after, limit).await?;
        Ok(self.open(records).await)
    }

    async fn open(&self, records: Vec<AuditRecord>) -> Vec<ReadRecord> {
        match self.log.sealer() {
            Some(sealer) => sealer.open_records(records).await,
            None => records.into_iter().map(ReadRecord::plain).collect(),
        }
    }

    /// Opens a value kept outside the chain (an alert's detail): sealed with
    /// `AuditSealer::seal_value` for `context`, or plain JSON when records are not encrypted.
    pub async fn open_value(&self, context: &str, text: &str) -> Result<serde_json::Value, String> {
        match self.log.sealer() {
            Some(sealer) if text.starts_with("v1.") => sealer.open_value(context, text).await,
            _ => serde_json::from_str(text).map_err(|_| "not JSON".to_owned()),
        }
    }

    /// The audit data keys (empty when records are not encrypted).
    pub fn data_keys(&self) -> Vec<DataKeyInfo> {
        self.log.sealer().map(|s| s.list()).unwrap_or_default()
    }

    /// Makes a new audit data key the one records are sealed with; `None` when records are
    /// not encrypted on this node.
    pub async fn rotate_data_key(&self, now: i64) -> Result<Option<String>, AuditError> {
        match self.log.sealer() {
            Some(sealer) => sealer.rotate(now).await.map(Some),
            None => Ok(None),
        }
    }

    /// Re-reads the audit data keys after another node changed them.
    pub async fn reload_data_keys(&self) -> Result<(), AuditError> {
        match self.log.sealer() {
            Some(sealer) => sealer.reload().await,
            None => Ok(()),
        }
    }

    /// Verifies the chain as stored, and the checkpoints in it with `keys`. Call
    /// [`Self::flush`] first (before loading the keys) to cover what is still queued.
    pub async fn verify(&self, keys: &CheckpointKeys) -> Result<ChainReport, AuditError> {
        verify_chain(self.store.as_ref(), keys).await
    }

    /// Resolves once every record queued before this call is stored.
    pub async fn flush(&self) {
        self.log.flush().await;
    }
}
