//! The fixed device both gateway targets verify against: the key material of the pycose
//! fixtures (`crates/gateway/tests/fixtures/pycose/device.json`), so the seeds copied from
//! them reach the verifying paths.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use portcullis_core::device::DeviceId;
use portcullis_gateway::{CertificateKey, DeviceCredentials, MessageAuth, SymmetricKey};
use portcullis_keys::{Algorithm, VerifyingKey};
use zeroize::Zeroizing;

/// The fixtures' time: 2026-01-01T00:00:00Z.
pub const NOW: i64 = 1_767_225_600;
const DEVICE_ID: &str = "sensor-7";
const KEY_ID: &str = "k5e3a90c1";
const KEY: &str = "S6QZnMOijAHwAeSo-YmyA1kIanqGcE4_inQCcanHnRo";
const SERIAL: &str = "3c1f0a77d2";
const SPKI: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEVkxlmubcj60G2QBsMRmstlIUfEUzFQvzceeL3DbA7JNukaBN5sWb6KevURr1VI7DH9ATbakYaUKeb5h+9uhyiw==";

/// `None` only if the constants above were broken; the targets then stop at parsing.
pub fn credentials() -> Option<DeviceCredentials> {
    let key: [u8; 32] = URL_SAFE_NO_PAD.decode(KEY).ok()?.try_into().ok()?;
    let spki = STANDARD.decode(SPKI).ok()?;
    Some(DeviceCredentials {
        device_id: DeviceId::parse(DEVICE_ID).ok()?,
        model: None,
        active: true,
        message_auth: MessageAuth::Required,
        keys: vec![SymmetricKey {
            key_id: KEY_ID.to_owned(),
            key: Zeroizing::new(key),
            not_after: None,
        }],
        certificates: vec![CertificateKey {
            serial: SERIAL.to_owned(),
            verifiers: VerifyingKey::from_spki_der(&spki, &Algorithm::ALL).ok()?,
            not_after: NOW + 86_400,
        }],
    })
}
