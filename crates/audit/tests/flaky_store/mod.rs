//! A store whose audit appends fail a set number of times before reaching a real SQLite store,
//! to show that the writer retries instead of dropping events.

use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use portcullis_core::audit::{AuditEvent, AuditRecord};
use portcullis_core::client::Client;
use portcullis_core::command::{CommandId, CommandRecord, CommandState, ResultRecorded};
use portcullis_core::device::{Device, DeviceId, DeviceState, RevocationReason};
use portcullis_core::device_key::DeviceKeyId;
use portcullis_core::update::UpdateStatus;
use portcullis_core::{ClientId, Kid, UnixTime};
use portcullis_store::sqlite::SqliteStore;
use portcullis_store::{
    CertificateFilter, CommandSigner, CounterAdvance, Enrollment, IssuedCertificate,
    RevokedCertificate, RevokedToken, Store, StoreError, StoredDeviceKey, StoredKey, UpdateReport,
};

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
    async fn archive_audit(
        &self,
        anchor: &portcullis_store::AuditArchiveAnchor,
    ) -> Result<u64, StoreError> {
        self.inner.archive_audit(anchor).await
    }
    async fn audit_anchor(
        &self,
    ) -> Result<Option<portcullis_store::AuditArchiveAnchor>, StoreError> {
        self.inner.audit_anchor().await
    }

    async fn import_audit_anchor(
        &self,
        anchor: &portcullis_store::AuditArchiveAnchor,
    ) -> Result<(), StoreError> {
        self.inner.import_audit_anchor(anchor).await
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
    async fn replace_setting(&self, _: &str, _: &[u8], _: &[u8]) -> Result<bool, StoreError> {
        Err(unused())
    }
    async fn list_settings(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.list_settings(after, limit).await
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
        _: portcullis_core::rotation::StoredKeyState,
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
    async fn release_leases(&self, _: &str) -> Result<u64, StoreError> {
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
    async fn record_single_use(
        &self,
        _: &str,
        _: &str,
        _: UnixTime,
        _: UnixTime,
    ) -> Result<bool, StoreError> {
        Err(unused())
    }
    async fn list_single_use(
        &self,
        _: portcullis_store::SingleUseScopes,
        _: UnixTime,
    ) -> Result<Vec<portcullis_store::SingleUse>, StoreError> {
        Err(unused())
    }
    async fn purge_expired(&self, _: UnixTime) -> Result<u64, StoreError> {
        Err(unused())
    }

    // The device PKI is not what these tests exercise: delegated to the real store.
    async fn insert_device(&self, device: &Device) -> Result<(), StoreError> {
        self.inner.insert_device(device).await
    }
    async fn insert_devices(&self, devices: &[Device]) -> Result<Vec<DeviceId>, StoreError> {
        self.inner.insert_devices(devices).await
    }
    async fn get_device(&self, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        self.inner.get_device(id).await
    }
    async fn list_devices(
        &self,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> Result<Vec<Device>, StoreError> {
        self.inner.list_devices(after, limit).await
    }
    async fn update_device(&self, device: &Device) -> Result<bool, StoreError> {
        self.inner.update_device(device).await
    }
    async fn consume_enrollment_secret(
        &self,
        id: &DeviceId,
        expected_mac: &str,
        state: DeviceState,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.inner
            .consume_enrollment_secret(id, expected_mac, state, now)
            .await
    }
    async fn record_enrollments(&self, batch: &[Enrollment]) -> Result<Vec<bool>, StoreError> {
        self.inner.record_enrollments(batch).await
    }
    async fn insert_certificate(&self, cert: &IssuedCertificate) -> Result<(), StoreError> {
        self.inner.insert_certificate(cert).await
    }
    async fn get_certificate(&self, serial: &str) -> Result<Option<IssuedCertificate>, StoreError> {
        self.inner.get_certificate(serial).await
    }
    async fn list_certificates(
        &self,
        filter: &CertificateFilter,
        limit: u32,
    ) -> Result<Vec<IssuedCertificate>, StoreError> {
        self.inner.list_certificates(filter, limit).await
    }
    async fn revoke_certificate(
        &self,
        serial: &str,
        reason: RevocationReason,
        at: UnixTime,
    ) -> Result<bool, StoreError> {
        self.inner.revoke_certificate(serial, reason, at).await
    }
    async fn revoke_device_certificates(
        &self,
        id: &DeviceId,
        reason: RevocationReason,
        at: UnixTime,
    ) -> Result<Vec<String>, StoreError> {
        self.inner.revoke_device_certificates(id, reason, at).await
    }
    async fn list_revoked_certificates(
        &self,
        now: UnixTime,
    ) -> Result<Vec<RevokedCertificate>, StoreError> {
        self.inner.list_revoked_certificates(now).await
    }
    async fn insert_device_key(&self, _: &StoredDeviceKey) -> Result<(), StoreError> {
        Err(unused())
    }
    async fn rotate_device_key(&self, _: &StoredDeviceKey, _: UnixTime) -> Result<(), StoreError> {
        Err(unused())
    }
    async fn list_device_keys(&self, _: &DeviceId) -> Result<Vec<StoredDeviceKey>, StoreError> {
        Err(unused())
    }
    async fn delete_device_key(&self, _: &DeviceId, _: &DeviceKeyId) -> Result<bool, StoreError> {
        Err(unused())
    }
    async fn list_all_device_keys(
        &self,
        _: Option<(&DeviceId, &DeviceKeyId)>,
        _: u32,
    ) -> Result<Vec<StoredDeviceKey>, StoreError> {
        Err(unused())
    }
    async fn update_device_key_sealed(
        &self,
        _: &DeviceId,
        _: &DeviceKeyId,
        _: &[u8],
    ) -> Result<(), StoreError> {
        Err(unused())
    }
    async fn insert_command(&self, command: &CommandRecord) -> Result<(), StoreError> {
        self.inner.insert_command(command).await
    }
    async fn queue_command(
        &self,
        command: &CommandRecord,
        now: UnixTime,
        sign: &CommandSigner,
    ) -> Result<Option<CommandRecord>, StoreError> {
        self.inner.queue_command(command, now, sign).await
    }
    async fn get_command(&self, id: &CommandId) -> Result<Option<CommandRecord>, StoreError> {
        self.inner.get_command(id).await
    }
    async fn list_commands(
        &self,
        device: Option<&DeviceId>,
        after: Option<&CommandId>,
        limit: u32,
    ) -> Result<Vec<CommandRecord>, StoreError> {
        self.inner.list_commands(device, after, limit).await
    }
    async fn import_commands(&self, commands: &[CommandRecord]) -> Result<(), StoreError> {
        self.inner.import_commands(commands).await
    }
    async fn list_command_sequences(
        &self,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> Result<Vec<(DeviceId, u64)>, StoreError> {
        self.inner.list_command_sequences(after, limit).await
    }
    async fn raise_command_sequences(&self, lasts: &[(DeviceId, u64)]) -> Result<(), StoreError> {
        self.inner.raise_command_sequences(lasts).await
    }
    async fn deliverable_commands(
        &self,
        device: &DeviceId,
        now: UnixTime,
        limit: u32,
    ) -> Result<Vec<CommandRecord>, StoreError> {
        self.inner.deliverable_commands(device, now, limit).await
    }
    async fn mark_command_delivered(
        &self,
        id: &CommandId,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.inner.mark_command_delivered(id, now).await
    }
    async fn record_command_result(
        &self,
        id: &CommandId,
        device: &DeviceId,
        state: CommandState,
        output: Option<&serde_json::Value>,
        now: UnixTime,
    ) -> Result<ResultRecorded, StoreError> {
        self.inner
            .record_command_result(id, device, state, output, now)
            .await
    }
    async fn count_recent_commands(
        &self,
        device: &DeviceId,
        rule: &str,
        since: UnixTime,
    ) -> Result<u64, StoreError> {
        self.inner.count_recent_commands(device, rule, since).await
    }
    async fn record_update_report(&self, report: &UpdateReport) -> Result<(), StoreError> {
        self.inner.record_update_report(report).await
    }
    async fn update_rollout(
        &self,
        model: &str,
    ) -> Result<Vec<(u64, UpdateStatus, u64)>, StoreError> {
        self.inner.update_rollout(model).await
    }
    async fn list_update_reports(
        &self,
        model: &str,
        release: u64,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> Result<Vec<UpdateReport>, StoreError> {
        self.inner
            .list_update_reports(model, release, after, limit)
            .await
    }
    async fn list_all_update_reports(
        &self,
        after: Option<(&DeviceId, &str, u64)>,
        limit: u32,
    ) -> Result<Vec<UpdateReport>, StoreError> {
        self.inner.list_all_update_reports(after, limit).await
    }
    async fn advance_device_counters(
        &self,
        _: &[(DeviceId, u64)],
    ) -> Result<Vec<CounterAdvance>, StoreError> {
        Err(unused())
    }
    async fn raise_device_counters(&self, _: &[(DeviceId, u64)]) -> Result<(), StoreError> {
        Err(unused())
    }
    async fn revert_device_counter(
        &self,
        _: &DeviceId,
        _: u64,
        _: u64,
    ) -> Result<bool, StoreError> {
        Err(unused())
    }
    async fn list_device_counters(
        &self,
        _: Option<&DeviceId>,
        _: u32,
    ) -> Result<Vec<(DeviceId, u64)>, StoreError> {
        Err(unused())
    }
    async fn add_detection_counts(
        &self,
        increments: &[portcullis_store::DetectionIncrement],
    ) -> Result<Vec<portcullis_store::DetectionTotals>, StoreError> {
        self.inner.add_detection_counts(increments).await
    }
    async fn purge_detection_counts(&self, before: i64) -> Result<u64, StoreError> {
        self.inner.purge_detection_counts(before).await
    }
    async fn insert_alert(
        &self,
        alert: &portcullis_store::StoredAlert,
    ) -> Result<bool, StoreError> {
        self.inner.insert_alert(alert).await
    }
    async fn list_alerts(
        &self,
        state: Option<&str>,
        before: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<portcullis_store::StoredAlert>, StoreError> {
        self.inner.list_alerts(state, before, limit).await
    }
    async fn get_alert(
        &self,
        id: &str,
    ) -> Result<Option<portcullis_store::StoredAlert>, StoreError> {
        self.inner.get_alert(id).await
    }
    async fn ack_alert(
        &self,
        id: &str,
        by: &str,
        at: i64,
    ) -> Result<portcullis_store::AlertAck, StoreError> {
        self.inner.ack_alert(id, by, at).await
    }
    async fn set_alert_detail(&self, id: &str, detail: &str) -> Result<bool, StoreError> {
        self.inner.set_alert_detail(id, detail).await
    }
}
