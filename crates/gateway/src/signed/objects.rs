//! The payloads of signed objects and the checks a device makes before it acts on one. The
//! checks are pure (the time, the device's own id and what it already has are passed in):
//! Rust devices can call them as they are, and `docs/signed-objects.md` states them for
//! devices written with anything else.

use coset::cbor::value::Value;
use portcullis_core::UnixTime;
use portcullis_keys::verify::VerifyingKey;
use portcullis_keys::Algorithm;
use serde::{Deserialize, Serialize};

use super::{jwk_from_cose_key, open, Kind, Role};
use crate::error::GatewayError;

/// How far an object's issue time may be ahead of the device's clock.
pub const CLOCK_SKEW_SECS: i64 = 60;

/// Operational keys may use these; RSA is left to the root (constrained devices verify
/// ECDSA and EdDSA far more cheaply).
const OPERATIONAL_ALGS: [Algorithm; 3] = [Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA];

/// One operational key and the role it signs for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrustedKey {
    pub role: Role,
    /// The public key as a COSE_Key map (with its `kid`, label 2).
    pub key: Value,
}

impl TrustedKey {
    /// The key's id (COSE_Key label 2), if it has a readable one.
    pub fn kid(&self) -> Option<String> {
        jwk_from_cose_key(&self.key).ok()?.kid
    }
}

/// The list of current operational keys, signed by the root (TUF's root metadata): a device
/// pins the root key only and learns the others from here; a key missing from the newest
/// list is no longer believed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustList {
    /// Rises with every list; a device never goes back to a lower one.
    pub ver: u64,
    pub iat: i64,
    /// After this the list is stale and the device asks for a new one (no freeze attack:
    /// an attacker cannot keep serving an old list forever).
    pub exp: i64,
    pub keys: Vec<TrustedKey>,
}

impl TrustList {
    /// Opens a trust list signed by the pinned `root` key, newer than or equal to the one
    /// the device has (`have_ver`), not expired at `now`.
    pub fn open(
        bytes: &[u8],
        root: &VerifyingKey,
        now: UnixTime,
        have_ver: Option<u64>,
    ) -> Result<TrustList, GatewayError> {
        let list: TrustList = open(bytes, Kind::Trust, |kid| {
            (root.kid() == Some(kid)).then(|| root.clone())
        })?;
        if now >= list.exp {
            return Err(GatewayError::Replay("expired"));
        }
        if have_ver.is_some_and(|have| list.ver < have) {
            return Err(GatewayError::Replay("older_trust_list"));
        }
        Ok(list)
    }

    /// Reads a trust list **without verifying it**: for the publisher's own records (the next
    /// version, what was just published), never for a device.
    pub(crate) fn peek(bytes: &[u8]) -> Result<TrustList, GatewayError> {
        let sign1 = super::decode_sign1(bytes)?;
        let payload = sign1.payload.unwrap_or_default();
        ciborium::from_reader(payload.as_slice()).map_err(|_| GatewayError::Malformed("payload"))
    }

    /// The list as the CBOR payload a root signs (a draft for an offline root).
    pub fn payload(&self) -> Result<Vec<u8>, GatewayError> {
        let mut bytes = Vec::new();
        ciborium::into_writer(self, &mut bytes)
            .map_err(|e| GatewayError::Internal(format!("encoding a trust list: {e}")))?;
        Ok(bytes)
    }

    /// Reads a draft's payload (what [`TrustList::payload`] wrote): for the offline signer,
    /// which signs what it was given after showing it.
    pub fn from_payload(bytes: &[u8]) -> Result<TrustList, GatewayError> {
        ciborium::from_reader(bytes).map_err(|_| GatewayError::Malformed("trust_list_payload"))
    }

    /// The verifying key `kid` names, if the list gives it `role`.
    pub fn key(&self, role: Role, kid: &str) -> Option<VerifyingKey> {
        self.keys
            .iter()
            .filter(|k| k.role == role)
            .filter_map(|k| jwk_from_cose_key(&k.key).ok())
            .filter(|jwk| jwk.kid.as_deref() == Some(kid))
            .find_map(|jwk| VerifyingKey::from_jwk(&jwk, &OPERATIONAL_ALGS).ok())
    }
}

/// A command for one device (`docs/signed-objects.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandObject {
    /// The device it is for.
    pub dev: String,
    /// The command's id (status and results refer to it).
    pub cid: String,
    pub name: String,
    pub args: Value,
    pub iat: i64,
    /// Never executed after this.
    pub exp: i64,
    /// Rises by one per command for this device: a replayed or reordered command is refused.
    pub seq: u64,
}

impl CommandObject {
    /// What a device checks before it executes a command: signed by a command key of its
    /// trust list, for itself, issued (give or take the skew) and not expired at `now`, and
    /// newer than the last command it took (`last_seq`).
    pub fn open(
        bytes: &[u8],
        trust: &TrustList,
        device_id: &str,
        now: UnixTime,
        last_seq: u64,
    ) -> Result<CommandObject, GatewayError> {
        let command: CommandObject =
            open(bytes, Kind::Command, |kid| trust.key(Role::Commands, kid))?;
        for_me(&command.dev, device_id)?;
        fresh(command.iat, Some(command.exp), now)?;
        if command.seq <= last_seq {
            return Err(GatewayError::Replay("sequence_not_increasing"));
        }
        Ok(command)
    }
}

/// The settings a device should apply, versioned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsObject {
    pub dev: String,
    /// Rises with every change: a device never applies an older version than it has.
    pub ver: u64,
    pub values: Value,
    pub iat: i64,
}

impl SettingsObject {
    /// Signed by a settings key of the trust list, for this device, newer than `have_ver`.
    pub fn open(
        bytes: &[u8],
        trust: &TrustList,
        device_id: &str,
        now: UnixTime,
        have_ver: u64,
    ) -> Result<SettingsObject, GatewayError> {
        let settings: SettingsObject =
            open(bytes, Kind::Settings, |kid| trust.key(Role::Settings, kid))?;
        for_me(&settings.dev, device_id)?;
        fresh(settings.iat, None, now)?;
        if settings.ver <= have_ver {
            return Err(GatewayError::Replay("version_not_newer"));
        }
        Ok(settings)
    }
}

/// A software release for one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateManifest {
    pub model: String,
    /// The version as people write it (`2.4.1`).
    pub version: String,
    /// The release number the device compares: a lower one is a rollback.
    pub release: u64,
    /// SHA-256 of the image.
    #[serde(with = "serde_bytes_32")]
    pub sha256: [u8; 32],
    pub size: u64,
    /// Where the image is (relative to the gateway, or an absolute URL).
    pub url: String,
    pub nbf: i64,
    pub exp: i64,
}

impl UpdateManifest {
    /// Signed by an update key of the trust list, for the device's model, valid at `now`
    /// (an expired manifest means the device is being frozen on an old release), and above
    /// the release it runs (`installed`).
    pub fn open(
        bytes: &[u8],
        trust: &TrustList,
        model: &str,
        now: UnixTime,
        installed: u64,
    ) -> Result<UpdateManifest, GatewayError> {
        let manifest: UpdateManifest =
            open(bytes, Kind::Manifest, |kid| trust.key(Role::Updates, kid))?;
        if manifest.model != model {
            return Err(GatewayError::Forbidden("other_model"));
        }
        if now < manifest.nbf.saturating_sub(CLOCK_SKEW_SECS) {
            return Err(GatewayError::Replay("not_yet_valid"));
        }
        if now >= manifest.exp {
            return Err(GatewayError::Replay("expired"));
        }
        if manifest.release <= installed {
            return Err(GatewayError::Replay("rollback"));
        }
        Ok(manifest)
    }

    /// Whether `image` is the one the manifest describes (size, then digest).
    pub fn check_image(&self, image: &[u8]) -> Result<(), GatewayError> {
        let size_ok = u64::try_from(image.len()).is_ok_and(|n| n == self.size);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, image);
        if !size_ok || digest.as_ref() != self.sha256.as_slice() {
            return Err(GatewayError::Unauthenticated("image_digest"));
        }
        Ok(())
    }
}

fn for_me(dev: &str, device_id: &str) -> Result<(), GatewayError> {
    if dev != device_id {
        return Err(GatewayError::Forbidden("other_device"));
    }
    Ok(())
}

fn fresh(iat: i64, exp: Option<i64>, now: UnixTime) -> Result<(), GatewayError> {
    if iat > now.saturating_add(CLOCK_SKEW_SECS) {
        return Err(GatewayError::Replay("issued_in_the_future"));
    }
    if exp.is_some_and(|exp| now >= exp) {
        return Err(GatewayError::Replay("expired"));
    }
    Ok(())
}

/// A 32-byte digest as a CBOR byte string.
mod serde_bytes_32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(digest: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(digest)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let value = coset::cbor::value::Value::deserialize(d)?;
        match value {
            coset::cbor::value::Value::Bytes(b) => <[u8; 32]>::try_from(b.as_slice())
                .map_err(|_| serde::de::Error::custom("sha256 must be 32 bytes")),
            _ => Err(serde::de::Error::custom("sha256 must be a byte string")),
        }
    }
}
