//! The device registry: registration at manufacturing (one-time enrollment secret, stored
//! only as an HMAC), bulk import of manufacturing lists, and state changes. Leaving the
//! states that may hold certificates revokes them, so a suspended device is refused by
//! brokers (CRL, OCSP) as well as by Portcullis.
//!
//! Reads go through the node's device cache; every write here forgets the written device's
//! entry, and a read-modify-write reads the store, never the cache, so it cannot write a
//! stale copy back.

use portcullis_core::audit::AuditAction;
use std::collections::BTreeMap;
use std::sync::Arc;

use portcullis_core::device::{Device, DeviceId, DeviceState, RevocationReason};
use portcullis_core::secret::{Secret, SecretHash};
use portcullis_store::StoreError;
use serde_json::json;

pub use portcullis_ports::{ImportOutcome, NewDevice};

use crate::service::Pki;
use crate::PkiError;

impl Pki {
    fn fresh_device(&self, new: NewDevice, now: i64) -> Result<(Device, Secret), PkiError> {
        let secret = Secret::from_random_bytes(&portcullis_keys::random_array::<32>()?);
        let device = Device {
            device_id: new.device_id,
            model: new.model,
            attrs: new.attrs,
            state: DeviceState::Registered,
            enrollment_secret: Some(SecretHash::of(&self.pepper, &secret, None)),
            created_at: now,
            updated_at: now,
        };
        device.validate()?;
        Ok((device, secret))
    }

    /// Registers one device; returns it and its one-time enrollment secret.
    pub async fn register_device(
        &self,
        actor: &str,
        new: NewDevice,
    ) -> Result<(Device, Secret), PkiError> {
        let (device, secret) = self.fresh_device(new, self.now())?;
        // The id may be cached as unknown (a refused enrollment before registration).
        let _forget = self.devices.invalidate_on_drop(device.device_id.clone());
        match self.store.insert_device(&device).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(PkiError::AlreadyExists(format!(
                    "device {} is already registered",
                    device.device_id
                )))
            }
            Err(e) => return Err(e.into()),
        }
        self.commit_audit(
            actor,
            AuditAction::DeviceRegistered,
            device.device_id.as_str(),
            json!({"model": device.model}),
        )
        .await?;
        Ok((device, secret))
    }

    /// Registers many devices in one transaction, skipping those already registered.
    pub async fn import_devices(
        &self,
        actor: &str,
        rows: Vec<NewDevice>,
    ) -> Result<ImportOutcome, PkiError> {
        let now = self.now();
        let mut devices = Vec::with_capacity(rows.len());
        let mut secrets = BTreeMap::new();
        for row in rows {
            let (device, secret) = self.fresh_device(row, now)?;
            secrets.insert(device.device_id.clone(), secret);
            devices.push(device);
        }
        let inserted = self.store.insert_devices(&devices).await;
        // Any of them may be cached as unknown; a failed insert may still have committed.
        for device in &devices {
            self.devices.invalidate(&device.device_id);
        }
        let inserted = inserted?;
        let mut outcome = ImportOutcome::default();
        for id in &inserted {
            if let Some(secret) = secrets.remove(id) {
                outcome.registered.push((id.clone(), secret));
            }
        }
        outcome.existing = secrets.into_keys().collect();
        self.commit_audit(
            actor,
            AuditAction::DeviceImported,
            "devices",
            json!({"registered": outcome.registered.len(), "existing": outcome.existing.len()}),
        )
        .await?;
        Ok(outcome)
    }

    /// The device with `id` as this node's cache has it (coherent across nodes through the
    /// change feed): what the admin API shows and the gateway checks.
    pub async fn device(&self, id: &DeviceId) -> Result<Arc<Device>, PkiError> {
        self.cached_device(id)
            .await?
            .ok_or_else(|| PkiError::NotFound(format!("no device {id}")))
    }

    /// The device with `id` from this node's cache (loaded on a miss); `None` if unknown.
    pub(crate) async fn cached_device(
        &self,
        id: &DeviceId,
    ) -> Result<Option<Arc<Device>>, PkiError> {
        Ok(self.devices.get(self.store.as_ref(), id).await?)
    }

    /// The device as stored, for changing it: never a cached copy, which could be stale.
    pub(crate) async fn device_to_change(&self, id: &DeviceId) -> Result<Device, PkiError> {
        self.store
            .get_device(id)
            .await?
            .ok_or_else(|| PkiError::NotFound(format!("no device {id}")))
    }

    /// Moves a device to `state`. Leaving `registered`/`enrolled` revokes its certificates
    /// (`certificateHold` for a suspension, `privilegeWithdrawn` / `cessationOfOperation`
    /// otherwise). Resuming a suspended device issues a new enrollment secret, returned here:
    /// held certificates stay revoked and the device enrolls again.
    pub async fn set_device_state(
        &self,
        actor: &str,
        id: &DeviceId,
        state: DeviceState,
    ) -> Result<(Device, Option<Secret>), PkiError> {
        let mut device = self.device_to_change(id).await?;
        let from = device.state;
        if state == DeviceState::Enrolled && from != DeviceState::Enrolled {
            return Err(PkiError::Invalid(
                "a device becomes enrolled only by enrolling over EST".into(),
            ));
        }
        from.may_become(state)?;
        let now = self.now();
        let mut secret = None;
        if from == DeviceState::Suspended && state == DeviceState::Registered {
            let s = Secret::from_random_bytes(&portcullis_keys::random_array::<32>()?);
            device.enrollment_secret = Some(SecretHash::of(&self.pepper, &s, None));
            secret = Some(s);
        }
        device.state = state;
        device.updated_at = now;
        let updated = {
            let _forget = self.devices.invalidate_on_drop(id.clone());
            self.store.update_device(&device).await?
        };
        if !updated {
            return Err(PkiError::NotFound(format!("no device {id}")));
        }
        if from.keeps_certificates() && !state.keeps_certificates() {
            let reason = match state {
                DeviceState::Suspended => RevocationReason::CertificateHold,
                DeviceState::Decommissioned => RevocationReason::CessationOfOperation,
                _ => RevocationReason::PrivilegeWithdrawn,
            };
            let serials = self
                .store
                .revoke_device_certificates(id, reason, now)
                .await?;
            for serial in &serials {
                self.certificate_changed(serial);
            }
        }
        self.commit_audit(
            actor,
            AuditAction::DeviceStateChanged,
            id.as_str(),
            json!({"from": from.as_str(), "to": state.as_str()}),
        )
        .await?;
        Ok((device, secret))
    }
}
