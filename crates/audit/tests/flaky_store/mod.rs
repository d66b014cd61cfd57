//! A store whose audit appends fail a set number of times before reaching a real SQLite store,
//! to show that the writer retries instead of dropping events.

use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use portcullis_core::audit::{AuditEvent, AuditRecord};
use portcullis_core::client::Client;
use portcullis_core::{ClientId, Kid, UnixTime};
use portcullis_store::sqlite::SqliteStore;
use portcullis_store::{RevokedToken, Store, StoreError, StoredKey};

#[derive(Debug)]
pub struct FlakyStore {
    pub inner: SqliteStore,
    pub failures_left: AtomicU32,
}

fn unused() -> StoreError {
    StoreError::Unavailable("not used by the audit tests".into())
}

#[async_trait]
impl Store for FlakyStore {
    async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditRecord>, StoreError> {
        let left = self.failures_left.load(Ordering::SeqCst);
        if left > 0 {
            self.failures_left.store(left - 1, Ordering::SeqCst);
            return Err(StoreError::Unavailable("simulated outage".into()));
        }
        self.inner.append_audit(events).await
    }
    async fn list_audit(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.list_audit(after_seq, limit).await
    }
    async fn list_audit_desc(
        &self,
        before: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.list_audit_desc(before, limit).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Err(unused())
    }
    async fn get_setting(&self, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Err(unused())
    }
    async fn put_setting_if_absent(&self, _: &str, _: &[u8]) -> Result<Vec<u8>, StoreError> {
        Err(unused())
    }
    async fn insert_client(&self, _: &Client) -> Result<(), StoreError> {
        Err(unused())
    }
    async fn insert_clients(&self, _: &[Client]) -> Result<(), StoreError> {
        Err(unused())
    }
    async fn get_client(&self, _: &ClientId) -> Result<Option<Client>, StoreError> {
        Err(unused())
    }
    async fn list_clients(&self, _: Option<&ClientId>, _: u32) -> Result<Vec<Client>, StoreError> {
        Err(unused())
    }
    async fn update_client(&self, _: &Client) -> Result<(), StoreError> {
        Err(unused())
    }
    async fn delete_client(&self, _: &ClientId) -> Result<bool, StoreError> {
        Err(unused())
    }
    async fn insert_signing_key(&self, _: &StoredKey) -> Result<(), StoreError> {
        Err(unused())
    }
    async fn update_signing_key_state(
        &self,
        _: &Kid,
        _: &str,
        _: UnixTime,
    ) -> Result<(), StoreError> {
        Err(unused())
    }
    async fn list_signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        Err(unused())
    }
    async fn update_signing_key_sealed(&self, _: &Kid, _: &[u8]) -> Result<(), StoreError> {
        Err(unused())
    }
    async fn try_acquire_lease(
        &self,
        _: &str,
        _: &str,
        _: i64,
        _: i64,
    ) -> Result<bool, StoreError> {
        Err(unused())
    }
    async fn revoke_token(&self, _: &RevokedToken) -> Result<(), StoreError> {
        Err(unused())
    }
    async fn is_token_revoked(&self, _: &str) -> Result<bool, StoreError> {
        Err(unused())
    }
    async fn list_revoked_tokens(&self, _: UnixTime) -> Result<Vec<RevokedToken>, StoreError> {
        Err(unused())
    }
    async fn record_assertion_jti(
        &self,
        _: &ClientId,
        _: &str,
        _: UnixTime,
    ) -> Result<bool, StoreError> {
        Err(unused())
    }
    async fn purge_expired(&self, _: UnixTime) -> Result<u64, StoreError> {
        Err(unused())
    }
}
