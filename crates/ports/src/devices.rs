//! The device registry: what the admin API (and the coming gateway) need of the device PKI.
//! Registration, life-cycle changes, revocation and symmetric device keys keep their rules in
//! `pki`, which implements this trait; enrollment secrets and device keys are drawn there and
//! returned here once.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use portcullis_core::device::{Device, DeviceId, DeviceState, RevocationReason};
use portcullis_core::device_key::{DeviceKeyId, DeviceKeyInfo, DEVICE_KEY_LEN};
use portcullis_core::{Secret, UnixTime};
use portcullis_store::{CertificateFilter, IssuedCertificate};
use tokio::sync::broadcast;
use zeroize::Zeroizing;

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

/// A device key unsealed, for the gateway to check what a device presents. Zeroized on drop;
/// `Debug` never shows the material.
pub struct DeviceKeyMaterial {
    pub info: DeviceKeyInfo,
    pub key: Zeroizing<[u8; DEVICE_KEY_LEN]>,
}

impl std::fmt::Debug for DeviceKeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceKeyMaterial")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Devices, their life cycle, their certificates and their symmetric keys.
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

    /// Device changes from now on, for state derived from devices (the gateway's cached
    /// credentials): `Some(id)` when that device (its state or its keys) changed, on this node
    /// or, through the change feed, on another; `None` when every device may have. A receiver
    /// that lags (`RecvError::Lagged`) must treat every device as changed.
    fn watch_devices(&self) -> broadcast::Receiver<Option<DeviceId>>;

    /// Draws a new 256-bit key for the device; returns its facts and the key as base64url
    /// without padding, shown this once (only its sealed form is kept). Refused for an unknown
    /// device (`NotFound`), a revoked or decommissioned one and one whose usable keys are at
    /// the limit (`Conflict`). `actor` is audited.
    async fn create_device_key(
        &self,
        actor: &str,
        id: &DeviceId,
    ) -> Result<(DeviceKeyInfo, Secret), PortError>;
    /// Like [`DeviceRegistry::create_device_key`], and every older key of the device expires
    /// `overlap_secs` from now (0: at once; at most 30 days), in one transaction.
    async fn rotate_device_key(
        &self,
        actor: &str,
        id: &DeviceId,
        overlap_secs: u32,
    ) -> Result<(DeviceKeyInfo, Secret), PortError>;
    /// A known device's keys, expired ones included, oldest first; never their material.
    async fn device_keys(&self, id: &DeviceId) -> Result<Vec<DeviceKeyInfo>, PortError>;
    /// Deletes one key of a known device; `false` if it has no key with that id.
    async fn delete_device_key(
        &self,
        actor: &str,
        id: &DeviceId,
        key_id: &DeviceKeyId,
    ) -> Result<bool, PortError>;
    /// A known device's keys not yet expired, unsealed, oldest first. The device's state is
    /// not checked here: the caller checks it. A key that does not unseal fails the call
    /// (`Internal`), logged without its material.
    async fn device_key_material(&self, id: &DeviceId)
        -> Result<Vec<DeviceKeyMaterial>, PortError>;
}
