//! Enrollment (EST `simpleenroll`) and re-enrollment (`simplereenroll`), RFC 7030 §4.2.
//!
//! First enrollment proves the device with its one-time secret (HTTP Basic over TLS) or with
//! a manufacturer certificate (IDevID) from a trusted manufacturer CA; re-enrollment with
//! the certificate we issued, still valid and unrevoked. The request is checked completely
//! before the secret is spent, and the secret is spent atomically, so a replayed or
//! concurrently reused secret gets nothing.

use portcullis_core::audit::AuditAction;
use portcullis_core::device::{Device, DeviceId, DeviceState};
use portcullis_core::secret::verify_secret;
use portcullis_store::IssuedCertificate;
use serde_json::json;

use crate::chain::validate_issued;
use crate::csr::check_csr;
use crate::service::Pki;
use crate::PkiError;

/// How a first enrollment is authenticated.
pub enum EnrollAuth<'a> {
    /// HTTP Basic: device id and one-time enrollment secret.
    Secret {
        device_id: &'a str,
        secret: &'a [u8],
    },
    /// A client certificate presented over TLS (leaf first): an IDevID from a manufacturer
    /// CA, or a certificate we issued (then this is a renewal).
    Certificate { chain: &'a [Vec<u8>] },
}

/// Every authentication failure looks the same to the caller (no device enumeration).
fn refused() -> PkiError {
    PkiError::NotAuthenticated("device authentication failed".into())
}

fn usable(device: &Device, first: bool) -> Result<(), PkiError> {
    match device.state {
        DeviceState::Registered if first => Ok(()),
        DeviceState::Enrolled => Ok(()),
        DeviceState::Registered => Err(PkiError::NotPermitted(format!(
            "device {} has not enrolled yet; use simpleenroll",
            device.device_id
        ))),
        other => Err(PkiError::NotPermitted(format!(
            "device {} is {} and may not enroll",
            device.device_id,
            other.as_str()
        ))),
    }
}

impl Pki {
    async fn issue_and_record(
        &self,
        device: &DeviceId,
        key: &crate::csr::SubjectKey,
        action: AuditAction,
        via: &str,
        spend: Option<&str>,
    ) -> Result<IssuedCertificate, PkiError> {
        let now = self.now();
        let cert = self.ca.issue_device(device, key, now)?;
        // One transaction (shared with concurrent enrollments): the device's state (and its
        // one-time secret, if that is what it used) and the new certificate. Losing a race — the secret spent by a concurrent
        // request, the device suspended meanwhile — writes nothing, and this certificate,
        // signed but never recorded or returned, is simply dropped.
        let recorded = self
            .enrollments
            .record(portcullis_store::Enrollment {
                device_id: device.clone(),
                spend: spend.map(str::to_owned),
                at: now,
                cert: cert.clone(),
            })
            .await?;
        if !recorded {
            return Err(refused());
        }
        self.record_audit(
            device.as_str(),
            action,
            &cert.serial,
            json!({"device_id": device, "via": via, "key": key.key_type.as_str(), "not_after": cert.not_after}),
        )
        .await?;
        Ok(cert)
    }

    /// `simpleenroll`: a device's first certificate (or a renewal when it authenticates with
    /// a certificate we issued). A refusal is audited by the EST edge, which knows the
    /// source to summarise it under.
    pub async fn enroll(
        &self,
        auth: EnrollAuth<'_>,
        csr_der: &[u8],
    ) -> Result<IssuedCertificate, PkiError> {
        match auth {
            EnrollAuth::Secret { device_id, secret } => {
                let id = DeviceId::parse(device_id).map_err(|_| refused())?;
                // From the cache: a stale copy can only refuse wrongly, never admit — the
                // secret is spent by a compare-and-swap that also re-checks the state.
                let device = self.cached_device(&id).await?.ok_or_else(refused)?;
                let stored = device.enrollment_secret.clone().ok_or_else(refused)?;
                if !verify_secret(
                    &self.pepper,
                    secret,
                    std::slice::from_ref(&stored),
                    self.now(),
                ) {
                    return Err(refused());
                }
                usable(&device, true)?;
                let csr = check_csr(csr_der, Some(&id), self.ca.profile())?;
                // The secret is spent only now that the request is known good.
                self.issue_and_record(
                    &id,
                    &csr.key,
                    AuditAction::DeviceEnrolled,
                    "secret",
                    Some(&stored.mac),
                )
                .await
            }
            EnrollAuth::Certificate { chain } => {
                let leaf = chain.first().ok_or_else(refused)?;
                if let Ok(ours) =
                    validate_issued(&self.issuing_anchor, self.store.as_ref(), leaf, self.now())
                        .await
                {
                    let id = ours.device_id().ok_or_else(refused)?;
                    return self.renew(&id, csr_der).await;
                }
                let idevid = self
                    .manufacturers
                    .iter()
                    .find_map(|anchor| anchor.verify(leaf, self.now()).ok())
                    .ok_or_else(refused)?;
                let id = idevid.device_id().ok_or_else(refused)?;
                let device = self.cached_device(&id).await?.ok_or_else(refused)?;
                usable(&device, true)?;
                let csr = check_csr(csr_der, Some(&id), self.ca.profile())?;
                self.issue_and_record(&id, &csr.key, AuditAction::DeviceEnrolled, "idevid", None)
                    .await
            }
        }
    }

    /// `simplereenroll`: a new certificate for a device that authenticates with a valid,
    /// unrevoked certificate we issued.
    pub async fn reenroll(
        &self,
        chain: &[Vec<u8>],
        csr_der: &[u8],
    ) -> Result<IssuedCertificate, PkiError> {
        let leaf = chain.first().ok_or_else(|| {
            PkiError::NotAuthenticated(
                "re-enrollment needs the current certificate over TLS".into(),
            )
        })?;
        let current =
            validate_issued(&self.issuing_anchor, self.store.as_ref(), leaf, self.now()).await?;
        let id = current.device_id().ok_or_else(refused)?;
        self.renew(&id, csr_der).await
    }

    async fn renew(&self, id: &DeviceId, csr_der: &[u8]) -> Result<IssuedCertificate, PkiError> {
        let device = self.cached_device(id).await?.ok_or_else(refused)?;
        usable(&device, false)?;
        let csr = check_csr(csr_der, Some(id), self.ca.profile())?;
        self.issue_and_record(
            id,
            &csr.key,
            AuditAction::DeviceReenrolled,
            "certificate",
            None,
        )
        .await
    }
}
