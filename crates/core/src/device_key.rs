//! Symmetric device keys (issue #12): 256-bit keys for sensors that cannot do public-key
//! cryptography. A key is drawn by the registry, shown to the operator once, and stored only
//! sealed under the master key. The rules here — what a key id is, when a key is usable, how
//! many a device may hold, what a rotation does to the older keys — are pure, so the admin
//! API, the CLI and the gateway cannot disagree about them.

use serde::{Deserialize, Serialize};

use crate::device::{DeviceId, DeviceState};
use crate::{CoreError, UnixTime};

/// Length in bytes of a device key (HMAC-SHA256 / AES-256 key size).
pub const DEVICE_KEY_LEN: usize = 32;

/// Most keys a device may hold that are still usable: enough for a rotation overlap and a
/// spare, few enough that a device's keys are one small read.
pub const MAX_USABLE_KEYS: usize = 8;

/// Longest overlap a rotation may leave the older keys: 30 days.
pub const MAX_ROTATION_OVERLAP_SECS: u32 = 30 * 86_400;

/// Random bytes behind a generated key id (`k` + 8 hex digits).
pub const KEY_ID_RANDOM_BYTES: usize = 4;

/// The id of one of a device's keys, unique per device: what a device names when it says
/// which key it used.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceKeyId(String);

impl DeviceKeyId {
    /// Validates a key id: 1 to 64 characters of `A-Z a-z 0-9 - _ .`.
    pub fn parse(s: impl Into<String>) -> Result<Self, CoreError> {
        let s = s.into();
        if s.is_empty() || s.len() > 64 {
            return Err(CoreError::invalid("key_id", "must be 1 to 64 characters"));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if !s.chars().all(allowed) {
            return Err(CoreError::invalid(
                "key_id",
                "may contain only A-Z a-z 0-9 - _ .",
            ));
        }
        Ok(Self(s))
    }

    /// A fresh id from random bytes the caller drew (the core does no I/O): `k` and 8 hex
    /// digits.
    pub fn from_random(bytes: [u8; KEY_ID_RANDOM_BYTES]) -> Self {
        Self(format!("k{}", crate::hex::encode(&bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DeviceKeyId {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, CoreError> {
        Self::parse(s)
    }
}

impl From<DeviceKeyId> for String {
    fn from(id: DeviceKeyId) -> String {
        id.0
    }
}

impl std::fmt::Display for DeviceKeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What is known of a device key besides its material: safe to list, log and audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceKeyInfo {
    pub device_id: DeviceId,
    pub key_id: DeviceKeyId,
    pub created_at: UnixTime,
    /// When the key stops being accepted (set by a rotation); `None` = no deadline.
    pub expires_at: Option<UnixTime>,
}

impl DeviceKeyInfo {
    /// Whether the key is accepted at `now`: it has no deadline, or the deadline is still
    /// ahead (a key expiring at `now` is already refused, so an overlap of 0 ends it at once).
    pub fn usable_at(&self, now: UnixTime) -> bool {
        self.expires_at.is_none_or(|deadline| now < deadline)
    }
}

/// The additional authenticated data a key's sealed material is bound to, so a sealed blob
/// copied onto another device's (or another key's) row does not open.
pub fn seal_aad(device_id: &DeviceId, key_id: &DeviceKeyId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(12 + device_id.as_str().len() + key_id.as_str().len());
    aad.extend_from_slice(b"device-key\0");
    aad.extend_from_slice(device_id.as_str().as_bytes());
    aad.push(0);
    aad.extend_from_slice(key_id.as_str().as_bytes());
    aad
}

/// A change to a device's keys, as far as the limits care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChange {
    /// A key is added; the others stay as they are.
    Create,
    /// A key is added and every other one expires `overlap_secs` from now.
    Rotate { overlap_secs: u32 },
}

impl KeyChange {
    /// When the other keys expire after a rotation at `now`: `now + overlap` (a key already
    /// expiring earlier keeps its deadline); `None` for a plain creation. Refuses an overlap
    /// beyond [`MAX_ROTATION_OVERLAP_SECS`].
    pub fn others_expire_at(self, now: UnixTime) -> Result<Option<UnixTime>, CoreError> {
        match self {
            Self::Create => Ok(None),
            Self::Rotate { overlap_secs } if overlap_secs > MAX_ROTATION_OVERLAP_SECS => {
                Err(CoreError::invalid(
                    "overlap_secs",
                    format!("must be at most {MAX_ROTATION_OVERLAP_SECS} (30 days)"),
                ))
            }
            Self::Rotate { overlap_secs } => Ok(Some(now + i64::from(overlap_secs))),
        }
    }
}

/// Whether a device in `state` with `existing` keys may get a new key at `now` by `change`.
///
/// Revoked and decommissioned devices get no new keys (a suspended one may: suspension is
/// temporary, and the gateway refuses it while it lasts). At most [`MAX_USABLE_KEYS`] keys may
/// be usable at once: a creation counts the usable keys plus the new one; a rotation without
/// overlap always passes (the others end at once), one with an overlap counts like a creation.
/// Expired keys do not count.
pub fn may_add_key(
    state: DeviceState,
    existing: &[DeviceKeyInfo],
    change: KeyChange,
    now: UnixTime,
) -> Result<(), CoreError> {
    if matches!(state, DeviceState::Revoked | DeviceState::Decommissioned) {
        return Err(CoreError::conflict(
            "device",
            format!("a {} device cannot get new keys", state.as_str()),
        ));
    }
    let usable = existing.iter().filter(|k| k.usable_at(now)).count();
    let after = match change {
        KeyChange::Rotate { overlap_secs: 0 } => 1,
        KeyChange::Create | KeyChange::Rotate { .. } => usable + 1,
    };
    if after > MAX_USABLE_KEYS {
        return Err(CoreError::conflict(
            "device keys",
            format!(
                "a device may hold at most {MAX_USABLE_KEYS} usable keys; delete one, or rotate \
                 with a shorter overlap"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(key: &str, expires_at: Option<UnixTime>) -> DeviceKeyInfo {
        DeviceKeyInfo {
            device_id: DeviceId::parse("d1").unwrap(),
            key_id: DeviceKeyId::parse(key).unwrap(),
            created_at: 100,
            expires_at,
        }
    }

    #[test]
    fn key_ids_allow_only_short_safe_text() {
        for ok in ["k0a1b2c3d", "K", "a-b_c.d", &"x".repeat(64)] {
            assert!(DeviceKeyId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a:b", "a/b", "é", "k\0", &"x".repeat(65)] {
            assert!(DeviceKeyId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<DeviceKeyId>("\"k 1\"").is_err());
    }

    #[test]
    fn generated_key_ids_are_k_and_eight_hex_digits_and_parse() {
        let id = DeviceKeyId::from_random([0x0a, 0xff, 0x00, 0x12]);
        assert_eq!(id.as_str(), "k0aff0012");
        assert_eq!(DeviceKeyId::parse(id.as_str()).unwrap(), id);
    }

    #[test]
    fn a_key_is_usable_until_its_deadline_and_not_at_it() {
        assert!(info("a", None).usable_at(i64::MAX));
        assert!(info("a", Some(200)).usable_at(199));
        assert!(!info("a", Some(200)).usable_at(200));
        assert!(!info("a", Some(200)).usable_at(201));
    }

    #[test]
    fn the_aad_binds_device_and_key_without_ambiguity() {
        let aad = |d: &str, k: &str| {
            seal_aad(
                &DeviceId::parse(d).unwrap(),
                &DeviceKeyId::parse(k).unwrap(),
            )
        };
        assert_eq!(aad("d1", "k1"), b"device-key\0d1\0k1");
        assert_ne!(aad("d1", "1k"), aad("d11", "k"));
    }

    #[test]
    fn a_rotation_ends_the_others_after_the_overlap_which_is_bounded() {
        assert_eq!(KeyChange::Create.others_expire_at(1000).unwrap(), None);
        let rotate = |overlap_secs| KeyChange::Rotate { overlap_secs }.others_expire_at(1000);
        assert_eq!(rotate(0).unwrap(), Some(1000));
        assert_eq!(rotate(60).unwrap(), Some(1060));
        assert!(rotate(MAX_ROTATION_OVERLAP_SECS).is_ok());
        let err = rotate(MAX_ROTATION_OVERLAP_SECS + 1).unwrap_err();
        assert!(err.to_string().contains("overlap_secs"), "{err}");
    }

    #[test]
    fn final_states_get_no_keys_and_usable_keys_are_capped() {
        use DeviceState::*;
        for state in [Revoked, Decommissioned] {
            let err = may_add_key(state, &[], KeyChange::Create, 0).unwrap_err();
            assert!(matches!(err, CoreError::Conflict { .. }), "{err}");
        }
        for state in [Registered, Enrolled, Suspended] {
            assert!(may_add_key(state, &[], KeyChange::Create, 0).is_ok());
        }
        let full: Vec<_> = (0..MAX_USABLE_KEYS)
            .map(|i| info(&format!("k{i}"), None))
            .collect();
        let err = may_add_key(Registered, &full, KeyChange::Create, 0).unwrap_err();
        assert!(matches!(err, CoreError::Conflict { .. }), "{err}");
        let overlap = KeyChange::Rotate { overlap_secs: 60 };
        assert!(may_add_key(Registered, &full, overlap, 0).is_err());
        let at_once = KeyChange::Rotate { overlap_secs: 0 };
        assert!(may_add_key(Registered, &full, at_once, 0).is_ok());
        // Expired keys do not count.
        let mut mixed = full.clone();
        mixed[0].expires_at = Some(50);
        assert!(may_add_key(Registered, &mixed, KeyChange::Create, 50).is_ok());
        assert!(may_add_key(Registered, &mixed, KeyChange::Create, 49).is_err());
    }
}
