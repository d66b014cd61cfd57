//! The device registry: what the admin API (and the coming gateway) need of the device PKI.
//! Registration, life-cycle changes and revocation keep their rules in `pki`, which
//! implements this trait; enrollment secrets are drawn and hashed there and returned here
//! once.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use portcullis_core::device::{Device, DeviceId, DeviceState, RevocationReason};
use portcullis_core::{Secret, UnixTime};
use portcullis_store::{CertificateFilter, IssuedCertificate};

use crate::PortError;

/// A device to register.
#[derive(Debug, Clone)]
pub struct NewDevice {
    pub device_id: DeviceId,
    pub model: Option<String>,
    pub attrs: BTreeMap<String, String>,
}

/// What bulk registration did.
#[derive(Debug, Default)]
pub struct ImportOutcome {
    /// Newly registered devices with their one-time enrollment secrets.
    pub registered: Vec<(DeviceId, Secret)>,
    /// Devices that already existed (left untouched: importing is idempotent).
    pub existing: Vec<DeviceId>,
}

/// The CA's certificates in PEM, and where relying parties check revocation.
#[derive(Debug, Clone)]
pub struct CaCertificates {
    /// `generated` or `imported`.
    pub origin: String,
    /// Issuing CA then root.
    pub chain_pem: String,
    pub issuing_pem: String,
    pub root_pem: String,
    pub crl_url: String,
    pub ocsp_url: String,
}

/// Devices, their life cycle and their certificates.
#[async_trait]
pub trait DeviceRegistry: Send + Sync {
    /// The registry's clock (tests inject their own).
    fn now(&self) -> UnixTime;
    /// Registers one device; returns it and its one-time enrollment secret. `actor` is
    /// audited.
    async fn register(&self, actor: &str, new: NewDevice) -> Result<(Device, Secret), PortError>;
    /// Registers many devices in one transaction, skipping those already registered.
    async fn import(&self, actor: &str, rows: Vec<NewDevice>) -> Result<ImportOutcome, PortError>;
    /// The device as this node knows it (cached, coherent across nodes).
    async fn device(&self, id: &DeviceId) -> Result<Arc<Device>, PortError>;
    /// Up to `limit` devices ordered by id, after `after`.
    async fn devices(&self, after: Option<&DeviceId>, limit: u32)
        -> Result<Vec<Device>, PortError>;
    /// Moves a device to `state`; resuming a suspended device returns its new enrollment
    /// secret.
    async fn set_state(
        &self,
        actor: &str,
        id: &DeviceId,
        state: DeviceState,
    ) -> Result<(Device, Option<Secret>), PortError>;
    /// Revokes a device and every certificate it holds; returns the serials revoked now.
    async fn revoke_device(
        &self,
        actor: &str,
        id: &DeviceId,
        reason: RevocationReason,
    ) -> Result<Vec<String>, PortError>;
    /// Up to `limit` certificates matching `filter`, ordered by serial.
    async fn certificates(
        &self,
        filter: &CertificateFilter,
        limit: u32,
    ) -> Result<Vec<IssuedCertificate>, PortError>;
    /// One certificate by its serial's store key.
    async fn certificate(&self, serial: &str) -> Result<IssuedCertificate, PortError>;
    /// Revokes one certificate; returns it as stored afterwards (the first revocation
    /// stands).
    async fn revoke_certificate(
        &self,
        actor: &str,
        serial: &str,
        reason: RevocationReason,
    ) -> Result<IssuedCertificate, PortError>;
    /// The CA's certificates and revocation URLs.
    fn ca(&self) -> CaCertificates;
}
