//! The embedded default backend: one SQLite file in WAL mode, so a single node needs no
//! database server. Readers run in parallel on a small pool; SQLite itself serializes writers
//! (write transactions that read first use `BEGIN IMMEDIATE`, so they queue on the busy
//! timeout instead of failing to upgrade a read lock).
//!
//! One file per concern; this one opens the database and wires the [`Store`] methods to them.

mod audit;
mod bulk_insert;
mod certificates;
mod clients;
mod commands;
mod counters;
mod detection;
mod device_keys;
mod devices;
mod enrollment;
mod keys;
mod leases;
mod revocations;
mod settings;
mod update_reports;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use portcullis_core::audit::{AuditEvent, AuditRecord};
use portcullis_core::client::Client;
use portcullis_core::command::{CommandId, CommandRecord, CommandState, ResultRecorded};
use portcullis_core::device::{Device, DeviceId, DeviceState, RevocationReason};
use portcullis_core::device_key::DeviceKeyId;
use portcullis_core::rotation::StoredKeyState;
use portcullis_core::update::UpdateStatus;
use portcullis_core::{ClientId, Kid, UnixTime};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::{
    AuditArchiveAnchor, CertificateFilter, CommandSigner, Enrollment, IssuedCertificate,
    RevokedCertificate, RevokedToken, Store, StoreError, StoredDeviceKey, StoredKey, UpdateReport,
};

/// The schema, compiled into the binary so an upgrade needs no files beside it.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Enough connections for concurrent reads on a small node; more only adds lock contention,
/// since SQLite runs one writer at a time anyway.
const MAX_CONNECTIONS: u32 = 4;

/// How long a writer waits for another writer's lock before giving up with `Unavailable`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite implementation of [`Store`]. Cloning shares the pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Held for every write transaction. SQLite admits one writer at a time; when two of our
    /// own connections compete, the loser sleeps in SQLite's busy handler (1, 2, 5, 10 ms…),
    /// which under concurrent enrollments made the median request wait 27 ms. Queuing here
    /// instead hands the lock over as soon as it is free. Other processes (the CLI's offline
    /// commands) still meet the busy timeout.
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `path` and migrates it to the current
    /// schema. `synchronous=NORMAL` in WAL mode never corrupts the file; a power cut may lose
    /// the last transactions, which is the usual trade for an order of magnitude more writes.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .min_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(SqliteStore {
            pool,
            writer: std::sync::Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// Closes every connection, checkpointing the WAL; later calls fail with `Unavailable`.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn get_setting(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        settings::get(&self.pool, name).await
    }

    async fn put_setting_if_absent(&self, name: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        let _writer = self.writer.lock().await;
        settings::put_if_absent(&self.pool, name, value).await
    }

    async fn replace_setting(
        &self,
        name: &str,
        expected: &[u8],
        value: &[u8],
    ) -> Result<bool, StoreError> {
        let _writer = self.writer.lock().await;
        settings::replace(&self.pool, name, expected, value).await
    }

    async fn list_settings(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        settings::list(&self.pool, after, limit).await
    }

    async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        clients::insert_one(&self.pool, client).await
    }

    async fn insert_clients(&self, clients: &[Client]) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        clients::insert_many(&self.pool, clients).await
    }

    async fn get_client(&self, id: &ClientId) -> Result<Option<Client>, StoreError> {
        clients::get(&self.pool, id).await
    }

    async fn list_clients(
        &self,
        after: Option<&ClientId>,
        limit: u32,
    ) -> Result<Vec<Client>, StoreError> {
        clients::list(&self.pool, after, limit).await
    }

    async fn update_client(&self, client: &Client) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        clients::update(&self.pool, client).await
    }

    async fn delete_client(&self, id: &ClientId) -> Result<bool, StoreError> {
        let _writer = self.writer.lock().await;
        clients::delete(&self.pool, id).await
    }

    async fn insert_signing_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        keys::insert(&self.pool, key).await
    }

    async fn update_signing_key_state(
        &self,
        kid: &Kid,
        state: StoredKeyState,
        at: UnixTime,
    ) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        keys::update_state(&self.pool, kid, state, at).await
    }

    async fn list_signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        keys::list(&self.pool).await
    }

    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_secs: i64,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let _writer = self.writer.lock().await;
        leases::try_acquire(&self.pool, name, holder, ttl_secs, now).await
    }

    async fn release_leases(&self, holder: &str) -> Result<u64, StoreError> {
        let _writer = self.writer.lock().await;
        leases::release_all(&self.pool, holder).await
    }

    async fn update_signing_key_sealed(
        &self,
        kid: &Kid,
        sealed_private: &[u8],
    ) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        keys::update_sealed(&self.pool, kid, sealed_private).await
    }

    async fn revoke_token(&self, token: &RevokedToken) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        revocations::revoke(&self.pool, token).await
    }

    async fn is_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        revocations::is_revoked(&self.pool, jti).await
    }

    async fn list_revoked_tokens(&self, now: UnixTime) -> Result<Vec<RevokedToken>, StoreError> {
        revocations::list_unexpired(&self.pool, now).await
    }

    async fn record_single_use(
        &self,
        scope: &str,
        id: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let _writer = self.writer.lock().await;
        revocations::record_single_use(&self.pool, scope, id, expires_at, now).await
    }

    fn is_shared(&self) -> bool {
        false
    }

    async fn list_single_use(
        &self,
        scopes: crate::SingleUseScopes,
        now: UnixTime,
    ) -> Result<Vec<crate::SingleUse>, StoreError> {
        revocations::list_single_use(&self.pool, scopes, now).await
    }

    async fn record_single_use_batch(
        &self,
        items: &[crate::SingleUse],
        now: UnixTime,
    ) -> Result<Vec<bool>, StoreError> {
        let _writer = self.writer.lock().await;
        revocations::record_single_use_batch(&self.pool, items, now).await
    }

    async fn keep_spent(
        &self,
        items: &[crate::SingleUse],
        _now: UnixTime,
    ) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        revocations::keep_spent(&self.pool, items).await
    }

    async fn purge_expired(&self, now: UnixTime) -> Result<u64, StoreError> {
        let _writer = self.writer.lock().await;
        revocations::purge_expired(&self.pool, now).await
    }

    async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditRecord>, StoreError> {
        let _writer = self.writer.lock().await;
        audit::append(&self.pool, events).await
    }

    async fn append_audit_batch(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        audit::append_batch(&self.pool, events).await
    }

    async fn list_audit(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        audit::list_ascending(&self.pool, after_seq, limit).await
    }

    async fn list_audit_desc(
        &self,
        before_seq: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        audit::list_descending(&self.pool, before_seq, limit).await
    }

    async fn archive_audit(&self, anchor: &AuditArchiveAnchor) -> Result<u64, StoreError> {
        let _writer = self.writer.lock().await;
        audit::archive(&self.pool, anchor).await
    }

    async fn audit_anchor(&self) -> Result<Option<AuditArchiveAnchor>, StoreError> {
        audit::anchor(&self.pool).await
    }

    async fn import_audit_anchor(&self, anchor: &AuditArchiveAnchor) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        audit::import_anchor(&self.pool, anchor).await
    }

    async fn insert_device(&self, device: &Device) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        devices::insert_one(&self.pool, device).await
    }

    async fn insert_devices(&self, devices: &[Device]) -> Result<Vec<DeviceId>, StoreError> {
        let _writer = self.writer.lock().await;
        devices::insert_many(&self.pool, devices).await
    }

    async fn get_device(&self, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        devices::get(&self.pool, id).await
    }

    async fn list_devices(
        &self,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> Result<Vec<Device>, StoreError> {
        devices::list(&self.pool, after, limit).await
    }

    async fn update_device(&self, device: &Device) -> Result<bool, StoreError> {
        let _writer = self.writer.lock().await;
        devices::update(&self.pool, device).await
    }

    async fn consume_enrollment_secret(
        &self,
        id: &DeviceId,
        expected_mac: &str,
        state: DeviceState,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let _writer = self.writer.lock().await;
        devices::consume_enrollment_secret(&self.pool, id, expected_mac, state, now).await
    }

    async fn record_enrollments(&self, batch: &[Enrollment]) -> Result<Vec<bool>, StoreError> {
        let _writer = self.writer.lock().await;
        enrollment::record(&self.pool, batch).await
    }

    async fn insert_certificate(&self, cert: &IssuedCertificate) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        certificates::insert(&self.pool, cert).await
    }

    async fn get_certificate(&self, serial: &str) -> Result<Option<IssuedCertificate>, StoreError> {
        certificates::get(&self.pool, serial).await
    }

    async fn list_certificates(
        &self,
        filter: &CertificateFilter,
        limit: u32,
    ) -> Result<Vec<IssuedCertificate>, StoreError> {
        certificates::list(&self.pool, filter, limit).await
    }

    async fn revoke_certificate(
        &self,
        serial: &str,
        reason: RevocationReason,
        at: UnixTime,
    ) -> Result<bool, StoreError> {
        let _writer = self.writer.lock().await;
        certificates::revoke(&self.pool, serial, reason, at).await
    }

    async fn revoke_device_certificates(
        &self,
        id: &DeviceId,
        reason: RevocationReason,
        at: UnixTime,
    ) -> Result<Vec<String>, StoreError> {
        let _writer = self.writer.lock().await;
        certificates::revoke_for_device(&self.pool, id, reason, at).await
    }

    async fn list_revoked_certificates(
        &self,
        now: UnixTime,
    ) -> Result<Vec<RevokedCertificate>, StoreError> {
        certificates::list_revoked(&self.pool, now).await
    }

    async fn insert_device_key(&self, key: &StoredDeviceKey) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        device_keys::insert(&self.pool, key).await
    }

    async fn rotate_device_key(
        &self,
        new: &StoredDeviceKey,
        expire_others_at: UnixTime,
    ) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        device_keys::rotate(&self.pool, new, expire_others_at).await
    }

    async fn list_device_keys(&self, id: &DeviceId) -> Result<Vec<StoredDeviceKey>, StoreError> {
        device_keys::list_for_device(&self.pool, id).await
    }

    async fn delete_device_key(
        &self,
        id: &DeviceId,
        key_id: &DeviceKeyId,
    ) -> Result<bool, StoreError> {
        let _writer = self.writer.lock().await;
        device_keys::delete(&self.pool, id, key_id).await
    }

    async fn list_all_device_keys(
        &self,
        after: Option<(&DeviceId, &DeviceKeyId)>,
        limit: u32,
    ) -> Result<Vec<StoredDeviceKey>, StoreError> {
        device_keys::list_all(&self.pool, after, limit).await
    }

    async fn update_device_key_sealed(
        &self,
        id: &DeviceId,
        key_id: &DeviceKeyId,
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        device_keys::update_sealed(&self.pool, id, key_id, sealed).await
    }

    async fn insert_command(&self, command: &CommandRecord) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        commands::insert(&self.pool, command).await
    }

    async fn queue_command(
        &self,
        command: &CommandRecord,
        now: UnixTime,
        sign: &CommandSigner,
    ) -> Result<Option<CommandRecord>, StoreError> {
        let _writer = self.writer.lock().await;
        commands::queue(&self.pool, command, now, sign).await
    }

    async fn get_command(&self, id: &CommandId) -> Result<Option<CommandRecord>, StoreError> {
        commands::get(&self.pool, id).await
    }

    async fn list_commands(
        &self,
        device: Option<&DeviceId>,
        after: Option<&CommandId>,
        limit: u32,
    ) -> Result<Vec<CommandRecord>, StoreError> {
        commands::list(&self.pool, device, after, limit).await
    }

    async fn deliverable_commands(
        &self,
        device: &DeviceId,
        now: UnixTime,
        limit: u32,
    ) -> Result<Vec<CommandRecord>, StoreError> {
        commands::deliverable(&self.pool, device, now, limit).await
    }

    async fn mark_command_delivered(
        &self,
        id: &CommandId,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let _writer = self.writer.lock().await;
        commands::mark_delivered(&self.pool, id, now).await
    }

    async fn record_command_result(
        &self,
        id: &CommandId,
        device: &DeviceId,
        state: CommandState,
        output: Option<&serde_json::Value>,
        now: UnixTime,
    ) -> Result<ResultRecorded, StoreError> {
        let _writer = self.writer.lock().await;
        commands::record_result(&self.pool, id, device, state, output, now).await
    }

    async fn count_recent_commands(
        &self,
        device: &DeviceId,
        rule: &str,
        since: UnixTime,
    ) -> Result<u64, StoreError> {
        commands::count_recent(&self.pool, device, rule, since).await
    }

    async fn import_commands(&self, commands: &[CommandRecord]) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        commands::import(&self.pool, commands).await
    }

    async fn list_command_sequences(
        &self,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> Result<Vec<(DeviceId, u64)>, StoreError> {
        commands::list_sequences(&self.pool, after, limit).await
    }

    async fn raise_command_sequences(&self, lasts: &[(DeviceId, u64)]) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        commands::raise_sequences(&self.pool, lasts).await
    }

    async fn record_update_report(&self, report: &UpdateReport) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        update_reports::record(&self.pool, report).await
    }

    async fn update_rollout(
        &self,
        model: &str,
    ) -> Result<Vec<(u64, UpdateStatus, u64)>, StoreError> {
        update_reports::rollout(&self.pool, model).await
    }

    async fn list_update_reports(
        &self,
        model: &str,
        release: u64,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> Result<Vec<UpdateReport>, StoreError> {
        update_reports::list(&self.pool, model, release, after, limit).await
    }

    async fn list_all_update_reports(
        &self,
        after: Option<(&DeviceId, &str, u64)>,
        limit: u32,
    ) -> Result<Vec<UpdateReport>, StoreError> {
        update_reports::list_all(&self.pool, after, limit).await
    }

    async fn advance_device_counters(
        &self,
        batch: &[(DeviceId, u64)],
    ) -> Result<Vec<crate::CounterAdvance>, StoreError> {
        let _writer = self.writer.lock().await;
        counters::advance(&self.pool, batch).await
    }

    async fn raise_device_counters(&self, highs: &[(DeviceId, u64)]) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        counters::raise(&self.pool, highs).await
    }

    async fn revert_device_counter(
        &self,
        device: &DeviceId,
        counter: u64,
        previous: u64,
    ) -> Result<bool, StoreError> {
        let _writer = self.writer.lock().await;
        counters::revert(&self.pool, device, counter, previous).await
    }

    async fn list_device_counters(
        &self,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> Result<Vec<(DeviceId, u64)>, StoreError> {
        counters::list(&self.pool, after, limit).await
    }

    async fn add_detection_counts(
        &self,
        increments: &[crate::DetectionIncrement],
    ) -> Result<Vec<crate::DetectionTotals>, StoreError> {
        let _writer = self.writer.lock().await;
        detection::add_counts(&self.pool, increments).await
    }

    async fn purge_detection_counts(&self, before: i64) -> Result<u64, StoreError> {
        let _writer = self.writer.lock().await;
        detection::purge_counts(&self.pool, before).await
    }

    async fn insert_alert(&self, alert: &crate::StoredAlert) -> Result<bool, StoreError> {
        let _writer = self.writer.lock().await;
        detection::insert_alert(&self.pool, alert).await
    }

    async fn list_alerts(
        &self,
        state: Option<&str>,
        before: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<crate::StoredAlert>, StoreError> {
        detection::list_alerts(&self.pool, state, before, limit).await
    }

    async fn get_alert(&self, id: &str) -> Result<Option<crate::StoredAlert>, StoreError> {
        detection::get_alert(&self.pool, id).await
    }

    async fn ack_alert(&self, id: &str, by: &str, at: i64) -> Result<crate::AlertAck, StoreError> {
        let _writer = self.writer.lock().await;
        detection::ack_alert(&self.pool, id, by, at).await
    }

    async fn set_alert_detail(&self, id: &str, detail: &str) -> Result<bool, StoreError> {
        let _writer = self.writer.lock().await;
        detection::set_alert_detail(&self.pool, id, detail).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_creates_a_missing_file_and_reopens_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let store = SqliteStore::open(&path).await.unwrap();
        store.put_setting_if_absent("k", b"v").await.unwrap();
        store.close().await;
        let again = SqliteStore::open(&path).await.unwrap();
        assert_eq!(again.get_setting("k").await.unwrap(), Some(b"v".to_vec()));
    }

    #[tokio::test]
    async fn open_of_an_unreachable_path_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/p.db");
        assert!(matches!(
            SqliteStore::open(&path).await,
            Err(StoreError::Unavailable(_))
        ));
    }
}

crate::rows::column_reader!(sqlx::sqlite::SqliteRow);
