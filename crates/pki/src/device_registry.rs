//! The device PKI as the [`DeviceRegistry`] port: how the admin API (and the gateway) reach
//! registration, life-cycle changes and revocation without importing this crate. Each method
//! forwards to the `Pki` operation that holds the rule; this file only translates errors.

use std::sync::Arc;

use async_trait::async_trait;
use portcullis_core::device::{Device, DeviceId, DeviceState, RevocationReason};
use portcullis_core::{Secret, UnixTime};
use portcullis_ports::{CaCertificates, DeviceRegistry, ImportOutcome, NewDevice, PortError};
use portcullis_store::{CertificateFilter, IssuedCertificate};

use crate::ca::pem;
use crate::{Pki, PkiError};

impl From<PkiError> for PortError {
    fn from(e: PkiError) -> Self {
        match e {
            PkiError::Invalid(m) | PkiError::NotPermitted(m) | PkiError::NotAuthenticated(m) => {
                PortError::BadRequest(m)
            }
            PkiError::NotFound(m) => PortError::NotFound(m),
            PkiError::AlreadyExists(m) => PortError::Conflict(m),
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
}
