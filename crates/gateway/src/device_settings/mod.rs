//! Desired settings per device (issue #13, item 3): a thermostat's set point, a meter's
//! reporting interval. A principal with `settings:write` replaces a device's desired values;
//! each change gets the next version and is signed at once by the active `settings` key
//! (`SettingsObject`, `docs/signed-objects.md`), so the device can check that its operator set
//! them, for it, and that they are newer than what it runs — it never applies an older
//! version. The device receives them over MQTT (`devices/{id}/settings`) or HTTP
//! (`GET /gateway/v1/settings?have=VER&wait=SECS`) and reports the version it applied in an
//! authenticated message (`Destination::SettingsApplied`).
//!
//! One record per device in the store's settings table (`device-settings:<id>`), replaced by
//! compare-and-swap: two concurrent changes on two nodes cannot both take one version, and the
//! write announces `setting:device-settings:<id>` to the other nodes, which ring the device's
//! doorbell (shared with commands) so its connection or poll looks again.

pub mod http;

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis_audit::AuditLog;
use portcullis_core::audit::{AuditAction, AuditEvent, Outcome};
use portcullis_core::device::{DeviceId, DeviceState};
use portcullis_core::UnixTime;
use portcullis_ports::DeviceRegistry;
use portcullis_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::commands::{CommandError, Doorbells};
use crate::records::json_or_cbor;
use crate::signed::{cbor_from_json, sign, Kind, OperatorKeys, Role, SettingsObject};
use portcullis_store::swap_setting;

/// The store setting of one device's settings: this prefix and the device id.
pub const SETTINGS_PREFIX: &str = "device-settings:";
/// Scope to change a device's desired settings (and read them).
pub const SETTINGS_WRITE_SCOPE: &str = "settings:write";
/// Scope to read a device's settings.
pub const SETTINGS_READ_SCOPE: &str = "settings:read";
/// Largest desired settings, as JSON.
pub const MAX_SETTINGS_BYTES: usize = 16 * 1024;
/// Tries of a compare-and-swap against concurrent writers before giving up.
const CAS_TRIES: usize = 8;

/// One device's settings as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceSettingsRecord {
    pub device_id: DeviceId,
    /// Rises by one with every change, from 1.
    pub version: u64,
    pub values: Map<String, Value>,
    /// The signed `SettingsObject` of this version, base64url.
    pub signed: String,
    pub updated_at: UnixTime,
    /// The principal (client id) that made this version.
    pub updated_by: String,
    /// The newest version the device reported applied.
    pub applied_version: Option<u64>,
    pub applied_at: Option<UnixTime>,
}

impl DeviceSettingsRecord {
    /// The signed object a device receives.
    pub fn signed_bytes(&self) -> Option<Vec<u8>> {
        URL_SAFE_NO_PAD.decode(&self.signed).ok()
    }
}

/// What a device reports after applying settings (the payload of its authenticated message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppliedReport {
    /// The version it now runs.
    pub ver: u64,
}

/// Reads a device's report: a JSON object or a CBOR map `{"ver": uint}`.
pub fn parse_applied(payload: &[u8]) -> Result<AppliedReport, CommandError> {
    let report: AppliedReport = json_or_cbor(payload)
        .ok_or_else(|| CommandError::Invalid("the report is not {\"ver\": N}".into()))?;
    if report.ver == 0 {
        return Err(CommandError::Invalid("versions start at 1".into()));
    }
    Ok(report)
}

/// The settings service of one node.
pub struct DeviceSettings {
    store: Arc<dyn Store>,
    registry: Arc<dyn DeviceRegistry>,
    keys: OperatorKeys,
    audit: AuditLog,
    bells: Arc<Doorbells>,
    clock: fn() -> UnixTime,
}

impl std::fmt::Debug for DeviceSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSettings").finish_non_exhaustive()
    }
}

fn setting_name(device: &DeviceId) -> String {
    format!("{SETTINGS_PREFIX}{device}")
}

/// The device a settings record's name is for, if it is one (the change feed's `setting:`
/// announcements).
pub fn device_of_setting(name: &str) -> Option<DeviceId> {
    DeviceId::parse(name.strip_prefix(SETTINGS_PREFIX)?).ok()
}

impl DeviceSettings {
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<dyn DeviceRegistry>,
        keys: OperatorKeys,
        audit: AuditLog,
        bells: Arc<Doorbells>,
        clock: fn() -> UnixTime,
    ) -> Self {
        Self {
            store,
            registry,
            keys,
            audit,
            bells,
            clock,
        }
    }

    /// The device's settings, if any were ever set.
    pub async fn get(
        &self,
        device: &DeviceId,
    ) -> Result<Option<DeviceSettingsRecord>, CommandError> {
        Ok(self.read(device).await?.map(|(_, record)| record))
    }

    async fn read(
        &self,
        device: &DeviceId,
    ) -> Result<Option<(Vec<u8>, DeviceSettingsRecord)>, CommandError> {
        let Some(bytes) = self.store.get_setting(&setting_name(device)).await? else {
            return Ok(None);
        };
        let record = serde_json::from_slice(&bytes).map_err(|_| {
            CommandError::Unavailable(format!("the settings record of {device} does not parse"))
        })?;
        Ok(Some((bytes, record)))
    }

    /// Replaces the device's desired values with the next version, signed. With
    /// `if_version`, only if the current version is that one (0: none yet), so an editor does
    /// not overwrite a change it has not seen.
    pub async fn put(
        &self,
        actor: &str,
        device: &DeviceId,
        values: Map<String, Value>,
        if_version: Option<u64>,
    ) -> Result<DeviceSettingsRecord, CommandError> {
        let size = serde_json::to_vec(&values).map_or(usize::MAX, |v| v.len());
        if size > MAX_SETTINGS_BYTES {
            return Err(CommandError::Invalid(
                "settings are at most 16 KiB as JSON".into(),
            ));
        }
        let registered = self.registry.device(device).await?;
        if !matches!(
            registered.state,
            DeviceState::Registered | DeviceState::Enrolled
        ) {
            return Err(CommandError::DeviceInactive);
        }
        let signer = self.keys.signer(Role::Settings).await?;
        let cbor_values = cbor_from_json(&Value::Object(values.clone()))?;
        for _ in 0..CAS_TRIES {
            let current = self.read(device).await?;
            let have = current.as_ref().map_or(0, |(_, r)| r.version);
            if if_version.is_some_and(|expected| expected != have) {
                return Err(CommandError::Stale(have));
            }
            let now = (self.clock)();
            let version = have + 1;
            let object = SettingsObject {
                dev: device.to_string(),
                ver: version,
                values: cbor_values.clone(),
                iat: now,
            };
            let signed = sign(Kind::Settings, &object, &*signer)?;
            let (applied_version, applied_at) = current
                .as_ref()
                .map_or((None, None), |(_, r)| (r.applied_version, r.applied_at));
            let record = DeviceSettingsRecord {
                device_id: device.clone(),
                version,
                values: values.clone(),
                signed: URL_SAFE_NO_PAD.encode(signed),
                updated_at: now,
                updated_by: actor.to_owned(),
                applied_version,
                applied_at,
            };
            let changed = changed_keys(current.as_ref().map(|(_, r)| &r.values), &values);
            if self
                .swap(device, current.map(|(bytes, _)| bytes), &record)
                .await?
            {
                self.bells.ring(device);
                self.audit(
                    AuditAction::SettingsChanged,
                    actor,
                    device,
                    json!({ "version": version, "keys": changed }),
                )
                .await;
                return Ok(record);
            }
        }
        Err(CommandError::Conflict(
            "the device's settings kept changing; try again".into(),
        ))
    }

    /// Records that the device applied `version` (a version it was given, above what it
    /// reported before). `false`: no such version, or not newer than the last report.
    pub async fn applied(&self, device: &DeviceId, version: u64) -> Result<bool, CommandError> {
        for _ in 0..CAS_TRIES {
            let Some((bytes, mut record)) = self.read(device).await? else {
                return Ok(false);
            };
            if version > record.version || record.applied_version.is_some_and(|v| version <= v) {
                return Ok(false);
            }
            record.applied_version = Some(version);
            record.applied_at = Some((self.clock)());
            if self.swap(device, Some(bytes), &record).await? {
                self.audit(
                    AuditAction::SettingsApplied,
                    device.as_str(),
                    device,
                    json!({ "version": version }),
                )
                .await;
                return Ok(true);
            }
        }
        Err(CommandError::Conflict(
            "the device's settings kept changing; try again".into(),
        ))
    }

    /// Writes `record` if the stored bytes are still `expected` (`None`: no record yet).
    async fn swap(
        &self,
        device: &DeviceId,
        expected: Option<Vec<u8>>,
        record: &DeviceSettingsRecord,
    ) -> Result<bool, CommandError> {
        let bytes = serde_json::to_vec(record)
            .map_err(|e| CommandError::Unavailable(format!("encoding settings: {e}")))?;
        let name = setting_name(device);
        Ok(swap_setting(self.store.as_ref(), &name, expected.as_deref(), &bytes).await?)
    }

    async fn audit(&self, action: AuditAction, actor: &str, device: &DeviceId, detail: Value) {
        let event = AuditEvent {
            at: (self.clock)(),
            actor: actor.to_owned(),
            action: action.into(),
            subject: device.to_string(),
            outcome: Outcome::Success.into(),
            detail,
        };
        if self.audit.record(event).await.is_err() {
            tracing::warn!(
                action = action.as_str(),
                "the audit log could not take a settings record"
            );
        }
    }
}

/// The keys a new set of values changes against the old one: added, given another value, or
/// removed, in key order. The audit names them (never the values), so a reader sees what a
/// version changed rather than what it holds.
fn changed_keys(old: Option<&Map<String, Value>>, new: &Map<String, Value>) -> Vec<String> {
    let mut keys: Vec<String> = new
        .iter()
        .filter(|(k, v)| old.and_then(|o| o.get(*k)) != Some(*v))
        .map(|(k, _)| k.clone())
        .chain(
            old.into_iter()
                .flat_map(|o| o.keys())
                .filter(|k| !new.contains_key(*k))
                .cloned(),
        )
        .collect();
    keys.sort_unstable();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_names_the_keys_a_version_changes() {
        let map = |v: Value| v.as_object().unwrap().clone();
        let old = map(json!({"mode": "eco", "setpoint": 21.5, "fan": 2}));
        let new = map(json!({"setpoint": 21.5, "fan": 3, "light": true}));
        assert_eq!(changed_keys(Some(&old), &new), ["fan", "light", "mode"]);
        assert!(changed_keys(Some(&new), &new).is_empty(), "the same values");
        assert_eq!(changed_keys(None, &new), ["fan", "light", "setpoint"]);
        assert_eq!(
            changed_keys(Some(&old), &Map::new()),
            ["fan", "mode", "setpoint"]
        );
    }

    #[test]
    fn reports_are_read_from_json_or_cbor_and_name_a_version() {
        assert_eq!(parse_applied(br#"{"ver": 3}"#).unwrap().ver, 3);
        let mut cbor = Vec::new();
        ciborium::into_writer(&json!({"ver": 7}), &mut cbor).unwrap();
        assert_eq!(parse_applied(&cbor).unwrap().ver, 7);
        for bad in [
            &br#"{"ver": 0}"#[..],
            br#"{"ver": -1}"#,
            br#"{"ver": 1, "x": 2}"#,
            b"",
            &[0xff, 0x00],
        ] {
            assert!(parse_applied(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_settings_records_name_a_device() {
        assert_eq!(
            device_of_setting("device-settings:thermo-1"),
            Some(DeviceId::parse("thermo-1").unwrap())
        );
        assert_eq!(device_of_setting("gateway.trust_list"), None);
        assert_eq!(device_of_setting("device-settings:bad id"), None);
    }
}
