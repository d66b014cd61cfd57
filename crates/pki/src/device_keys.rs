//! Symmetric device keys (issue #12): 256 random bits per key for sensors that cannot do
//! public-key cryptography. A key is drawn here, returned to the operator once as base64url,
//! and stored only sealed under the master key, bound to its device and key id
//! (`portcullis_core::device_key::seal_aad`), the way `client_secret_jwt` secrets are sealed.
//! The rules (who may get a key, how many, what a rotation does) are
//! `portcullis_core::device_key`'s; this file carries them out and audits every change.
//!
//! Every write forgets the device's cache entry, which tells [`Pki::watch_devices`]'
//! subscribers (the gateway drops the device's cached credentials); other nodes hear it as
//! `device:<id>` from the store's change feed. Key material never reaches a log, an error or
//! an audit record.

use portcullis_core::audit::AuditAction;
use portcullis_core::device::DeviceId;
use portcullis_core::device_key::{
    may_add_key, seal_aad, DeviceKeyId, DeviceKeyInfo, KeyChange, DEVICE_KEY_LEN,
    KEY_ID_RANDOM_BYTES,
};
use portcullis_core::Secret;
use portcullis_keys::{software, KeyError};
use portcullis_ports::DeviceKeyMaterial;
use portcullis_store::{StoreError, StoredDeviceKey};
use serde_json::json;
use zeroize::Zeroizing;

use crate::service::Pki;
use crate::PkiError;

/// Fresh key ids drawn before giving up: a clash of 32 random bits within one device's few
/// keys is already a one-in-hundreds-of-millions event.
const KEY_ID_ATTEMPTS: usize = 3;

impl Pki {
    /// Draws a new key for device `id`; returns its facts and the key, base64url without
    /// padding, shown this once.
    pub async fn create_device_key(
        &self,
        actor: &str,
        id: &DeviceId,
    ) -> Result<(DeviceKeyInfo, Secret), PkiError> {
        self.add_device_key(actor, id, KeyChange::Create).await
    }

    /// Draws a new key for device `id` and, in the same transaction, makes every older key
    /// expire `overlap_secs` from now (0: at once), so a fleet can move to the new key.
    pub async fn rotate_device_key(
        &self,
        actor: &str,
        id: &DeviceId,
        overlap_secs: u32,
    ) -> Result<(DeviceKeyInfo, Secret), PkiError> {
        self.add_device_key(actor, id, KeyChange::Rotate { overlap_secs })
            .await
    }

    async fn add_device_key(
        &self,
        actor: &str,
        id: &DeviceId,
        change: KeyChange,
    ) -> Result<(DeviceKeyInfo, Secret), PkiError> {
        let now = self.now();
        let others_expire_at = change.others_expire_at(now)?;
        // The stored device and keys, not cached copies: a device revoked on another node a
        // moment ago must not get a key here.
        let device = self.device_to_change(id).await?;
        let existing: Vec<DeviceKeyInfo> = self
            .store
            .list_device_keys(id)
            .await?
            .into_iter()
            .map(|k| k.info)
            .collect();
        may_add_key(device.state, &existing, change, now)
            .map_err(|e| PkiError::NotPermitted(e.to_string()))?;
        let material = Zeroizing::new(portcullis_keys::random_array::<DEVICE_KEY_LEN>()?);
        let mut attempts = 0;
        let info = loop {
            attempts += 1;
            let info = DeviceKeyInfo {
                device_id: id.clone(),
                key_id: DeviceKeyId::from_random(portcullis_keys::random_array::<
                    KEY_ID_RANDOM_BYTES,
                >()?),
                created_at: now,
                expires_at: None,
            };
            let sealed = software::seal(
                &self.master,
                material.as_slice(),
                &seal_aad(id, &info.key_id),
            )?;
            let key = StoredDeviceKey { info, sealed };
            let written = {
                let _forget = self.devices.invalidate_on_drop(id.clone());
                match others_expire_at {
                    Some(at) => self.store.rotate_device_key(&key, at).await,
                    None => self.store.insert_device_key(&key).await,
                }
            };
            match written {
                Ok(()) => break key.info,
                Err(StoreError::Conflict(_)) if attempts < KEY_ID_ATTEMPTS => continue,
                Err(StoreError::NotFound) => {
                    return Err(PkiError::NotFound(format!("no device {id}")))
                }
                Err(e) => return Err(e.into()),
            }
        };
        let (action, detail) = match others_expire_at {
            Some(at) => (
                AuditAction::DeviceKeyRotated,
                json!({"key_id": info.key_id.as_str(), "others_expire_at": at}),
            ),
            None => (
                AuditAction::DeviceKeyCreated,
                json!({"key_id": info.key_id.as_str()}),
            ),
        };
        self.commit_audit(actor, action, id.as_str(), detail)
            .await?;
        Ok((info, Secret::from_random_bytes(material.as_slice())))
    }

    /// A known device's keys, expired ones included, oldest first; never their material.
    pub async fn device_keys(&self, id: &DeviceId) -> Result<Vec<DeviceKeyInfo>, PkiError> {
        self.device(id).await?;
        Ok(self
            .store
            .list_device_keys(id)
            .await?
            .into_iter()
            .map(|k| k.info)
            .collect())
    }

    /// Deletes one key of a known device; `false` if it has no key `key_id`.
    pub async fn delete_device_key(
        &self,
        actor: &str,
        id: &DeviceId,
        key_id: &DeviceKeyId,
    ) -> Result<bool, PkiError> {
        self.device(id).await?;
        let deleted = {
            let _forget = self.devices.invalidate_on_drop(id.clone());
            self.store.delete_device_key(id, key_id).await?
        };
        if deleted {
            self.commit_audit(
                actor,
                AuditAction::DeviceKeyDeleted,
                id.as_str(),
                json!({"key_id": key_id.as_str()}),
            )
            .await?;
        }
        Ok(deleted)
    }

    /// A known device's keys that are still usable now, unsealed, oldest first: what the
    /// gateway checks a device's proof against. The device's state is the caller's to check.
    /// A key that does not unseal (a wrong master key, a damaged or swapped row) fails the
    /// call; the log names the device and key, never material.
    pub async fn device_key_material(
        &self,
        id: &DeviceId,
    ) -> Result<Vec<DeviceKeyMaterial>, PkiError> {
        self.device(id).await?;
        let now = self.now();
        let mut usable = Vec::new();
        for stored in self.store.list_device_keys(id).await? {
            if !stored.info.usable_at(now) {
                continue;
            }
            let key = self.unseal_device_key(&stored).inspect_err(|e| {
                tracing::error!(
                    device = %id,
                    key_id = %stored.info.key_id,
                    error = %e,
                    "a device key does not unseal"
                );
            })?;
            usable.push(DeviceKeyMaterial {
                info: stored.info,
                key,
            });
        }
        Ok(usable)
    }

    fn unseal_device_key(
        &self,
        stored: &StoredDeviceKey,
    ) -> Result<Zeroizing<[u8; DEVICE_KEY_LEN]>, KeyError> {
        let aad = seal_aad(&stored.info.device_id, &stored.info.key_id);
        let plain = software::open(&self.master, &stored.sealed, &aad)?;
        let mut key = Zeroizing::new([0u8; DEVICE_KEY_LEN]);
        if plain.len() != DEVICE_KEY_LEN {
            return Err(KeyError::Corrupt(format!(
                "a device key must be {DEVICE_KEY_LEN} bytes"
            )));
        }
        key.copy_from_slice(&plain);
        Ok(key)
    }
}

#[cfg(test)]
#[path = "device_keys_tests.rs"]
mod tests;
