//! The device PKI as the [`DeviceRegistry`] port: how the admin API (and the gateway) reach
//! registration, life-cycle changes, revocation and device keys without importing this crate.
//! Each method forwards to the `Pki` operation that holds the rule; this file only translates
//! errors.

use std::sync::Arc;

use async_trait::async_trait;
use portcullis_core::device::{Device, DeviceId, DeviceState, RevocationReason};
use portcullis_core::device_key::{DeviceKeyId, DeviceKeyInfo};
use portcullis_core::{Secret, UnixTime};
use portcullis_ports::{
    CaCertificates, DeviceKeyMaterial, DeviceRegistry, ImportOutcome, NewDevice, PortError,
};
use portcullis_store::{CertificateFilter, IssuedCertificate};
use tokio::sync::broadcast;

use crate::ca::pem;
use crate::{Pki, PkiError};

impl From<PkiError> for PortError {
    fn from(e: PkiError) -> Self {
        match e {
            PkiError::Invalid(m) | PkiError::NotAuthenticated(m) => PortError::BadRequest(m),
            PkiError::NotFound(m) => PortError::NotFound(m),
            // The object's state (a revoked device, a full key ring) does not allow it now.
            PkiError::AlreadyExists(m) | PkiError::NotPermitted(m) => PortError::Conflict(m),
            PkiError::Store(s) => PortError::Store(s),
            PkiError::AuditUnavailable => PortError::AuditUnavailable,
            other => PortError::Internal(other.to_string()),
        }
    }
}

#[async_trait]
impl DeviceRegistry for Pki {
    fn now(&self) -> UnixTime {
        Pki::now(self)
    }

    async fn register(&self, actor: &str, new: NewDevice) -> Result<(Device, Secret), PortError> {
        Ok(self.register_device(actor, new).await?)
    }

    async fn import(&self, actor: &str, rows: Vec<NewDevice>) -> Result<ImportOutcome, PortError> {
        Ok(self.import_devices(actor, rows).await?)
    }

    async fn device(&self, id: &DeviceId) -> Result<Arc<Device>, PortError> {
        Ok(Pki::device(self, id).await?)
    }

    async fn devices(
        &self,
        after: Option<&DeviceId>,
        limit: u32,
    ) -> Result<Vec<Device>, PortError> {
        Ok(self.store.list_devices(after, limit).await?)
    }

    async fn set_state(
        &self,
        actor: &str,
        id: &DeviceId,
        state: DeviceState,
    ) -> Result<(Device, Option<Secret>), PortError> {
        Ok(self.set_device_state(actor, id, state).await?)
    }

    async fn revoke_device(
        &self,
        actor: &str,
        id: &DeviceId,
        reason: RevocationReason,
    ) -> Result<Vec<String>, PortError> {
        Ok(Pki::revoke_device(self, actor, id, reason).await?)
    }

    async fn certificates(
        &self,
        filter: &CertificateFilter,
        limit: u32,
    ) -> Result<Vec<IssuedCertificate>, PortError> {
        Ok(self.store.list_certificates(filter, limit).await?)
    }

    async fn certificate(&self, serial: &str) -> Result<IssuedCertificate, PortError> {
        Ok(Pki::certificate(self, serial).await?)
    }

    async fn revoke_certificate(
        &self,
        actor: &str,
        serial: &str,
        reason: RevocationReason,
    ) -> Result<IssuedCertificate, PortError> {
        Ok(Pki::revoke_certificate(self, actor, serial, reason).await?)
    }

    fn ca(&self) -> CaCertificates {
        let ca = &self.ca;
        CaCertificates {
            origin: ca.origin().to_owned(),
            chain_pem: ca.chain_pem(),
            issuing_pem: pem("CERTIFICATE", ca.issuing_der()),
            root_pem: pem("CERTIFICATE", ca.root_der()),
            crl_url: ca.urls().crl.clone(),
            ocsp_url: ca.urls().ocsp.clone(),
        }
    }

    fn watch_devices(&self) -> broadcast::Receiver<Option<DeviceId>> {
        Pki::watch_devices(self)
    }

    async fn create_device_key(
        &self,
        actor: &str,
        id: &DeviceId,
    ) -> Result<(DeviceKeyInfo, Secret), PortError> {
        Ok(Pki::create_device_key(self, actor, id).await?)
    }

    async fn rotate_device_key(
        &self,
        actor: &str,
        id: &DeviceId,
        overlap_secs: u32,
    ) -> Result<(DeviceKeyInfo, Secret), PortError> {
        Ok(Pki::rotate_device_key(self, actor, id, overlap_secs).await?)
    }

    async fn device_keys(&self, id: &DeviceId) -> Result<Vec<DeviceKeyInfo>, PortError> {
        Ok(Pki::device_keys(self, id).await?)
    }

    async fn delete_device_key(
        &self,
        actor: &str,
        id: &DeviceId,
        key_id: &DeviceKeyId,
    ) -> Result<bool, PortError> {
        Ok(Pki::delete_device_key(self, actor, id, key_id).await?)
    }

    async fn device_key_material(
        &self,
        id: &DeviceId,
    ) -> Result<Vec<DeviceKeyMaterial>, PortError> {
        Ok(Pki::device_key_material(self, id).await?)
    }
}
