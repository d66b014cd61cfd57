//! Revoking certificates: one by serial, or all of a device's (`device revoke`). The store
//! records the first revocation only, so repeating a revocation is harmless and never moves
//! its time.

use portcullis_core::audit::AuditAction;
use portcullis_core::device::{DeviceId, DeviceState, RevocationReason};
use portcullis_store::IssuedCertificate;
use serde_json::json;

use crate::service::Pki;
use crate::PkiError;

impl Pki {
    pub async fn certificate(&self, serial: &str) -> Result<IssuedCertificate, PkiError> {
        self.store
            .get_certificate(serial)
            .await?
            .ok_or_else(|| PkiError::NotFound(format!("no certificate with serial {serial}")))
    }

    /// Revokes one certificate; returns it as stored afterwards. Revoking an already revoked
    /// certificate is not an error (the first revocation stands).
    pub async fn revoke_certificate(
        &self,
        actor: &str,
        serial: &str,
        reason: RevocationReason,
    ) -> Result<IssuedCertificate, PkiError> {
        let now = self.now();
        let changed = self.store.revoke_certificate(serial, reason, now).await?;
        let cert = self.certificate(serial).await?;
        if changed {
            self.certificate_changed(serial);
            // The device's credentials (the gateway's verifying keys) include this
            // certificate's key: announce the device so they are rebuilt without it.
            if let Some(device) = &cert.device_id {
                self.devices.invalidate(device);
            }
            self.commit_audit(
                actor,
                AuditAction::CertRevoked,
                serial,
                json!({"reason": reason.as_str(), "device_id": cert.device_id}),
            )
            .await?;
        }
        Ok(cert)
    }

    /// Revokes a device: every certificate it holds, and it may never enroll again.
    pub async fn revoke_device(
        &self,
        actor: &str,
        id: &DeviceId,
        reason: RevocationReason,
    ) -> Result<Vec<String>, PkiError> {
        let mut device = self.device_to_change(id).await?;
        if device.state != DeviceState::Revoked {
            device.state.may_become(DeviceState::Revoked)?;
            device.state = DeviceState::Revoked;
            device.updated_at = self.now();
            let _forget = self.devices.invalidate_on_drop(id.clone());
            self.store.update_device(&device).await?;
        }
        let serials = self
            .store
            .revoke_device_certificates(id, reason, self.now())
            .await?;
        for serial in &serials {
            self.certificate_changed(serial);
        }
        self.commit_audit(
            actor,
            AuditAction::DeviceRevoked,
            id.as_str(),
            json!({"reason": reason.as_str(), "certificates": serials}),
        )
        .await?;
        Ok(serials)
    }
}
