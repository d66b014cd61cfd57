//! What the device PKI persists besides devices themselves (`core::device::Device`): every
//! certificate the CA issued, with its revocation state, and the devices' symmetric keys,
//! sealed. The store is the one source of revocation truth: CRLs, OCSP answers and mTLS checks
//! are all derived from it.

use std::collections::HashSet;

use portcullis_core::device::{Device, DeviceId, RevocationReason};
use portcullis_core::device_key::DeviceKeyInfo;
use portcullis_core::UnixTime;

/// A device's symmetric key as stored: its facts and its material sealed under the master key
/// (bound to `portcullis_core::device_key::seal_aad`). Never plaintext; `Debug` shows only the
/// sealed blob's length.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredDeviceKey {
    pub info: DeviceKeyInfo,
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for StoredDeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredDeviceKey")
            .field("info", &self.info)
            .field("sealed_len", &self.sealed.len())
            .finish()
    }
}

/// A certificate the CA issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// The serial number as lowercase hex of the DER INTEGER's content with leading zero
    /// octets stripped (`portcullis_core::serial::serial_key`); the primary key.
    pub serial: String,
    /// The device it was issued to; `None` for certificates of the server itself.
    pub device_id: Option<DeviceId>,
    /// The subject DN as text, for listings.
    pub subject: String,
    pub not_before: UnixTime,
    pub not_after: UnixTime,
    /// Lowercase hex SHA-256 of the DER (RFC 8705's `x5t#S256` before base64url).
    pub sha256: String,
    /// The certificate itself.
    pub der: Vec<u8>,
    pub revoked_at: Option<UnixTime>,
    pub revocation_reason: Option<RevocationReason>,
}

/// One enrollment to record (see [`crate::Store::record_enrollments`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    pub device_id: DeviceId,
    /// The MAC of the one-time secret the device authenticated with, to spend; `None` for a
    /// certificate (IDevID or renewal) authentication.
    pub spend: Option<String>,
    pub at: UnixTime,
    pub cert: IssuedCertificate,
}

/// One entry of a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedCertificate {
    pub serial: String,
    pub revoked_at: UnixTime,
    pub reason: RevocationReason,
    pub not_after: UnixTime,
}

/// Filters for [`crate::Store::list_certificates`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateFilter {
    /// Only this device's certificates.
    pub device_id: Option<DeviceId>,
    /// Only certificates whose serial sorts after this one (keyset pagination).
    pub after_serial: Option<String>,
    /// Only revoked (`Some(true)`) or unrevoked (`Some(false)`) certificates.
    pub revoked: Option<bool>,
}

/// The ids of `devices` whose rows a bulk insert reported as inserted (`returned`, in whatever
/// order the database gave them), in the order of `devices` and each once: the answer of
/// [`crate::Store::insert_devices`] on every backend.
pub(crate) fn inserted_in_input_order(devices: &[Device], returned: Vec<String>) -> Vec<DeviceId> {
    let mut inserted: HashSet<String> = returned.into_iter().collect();
    devices
        .iter()
        .filter(|d| inserted.remove(d.device_id.as_str()))
        .map(|d| d.device_id.clone())
        .collect()
}

/// What a refused certificate insert clashed with, from the database's message (which names
/// the violated index or column): its SHA-256 or, otherwise, its serial.
pub(crate) fn certificate_conflict(cert: &IssuedCertificate, message: &str) -> String {
    if message.contains("sha256") {
        format!(
            "a certificate with SHA-256 {} is already recorded",
            cert.sha256
        )
    } else {
        format!("certificate serial {} already exists", cert.serial)
    }
}
