//! Software releases and their rollout (issue #13, item 4): which release a device should run,
//! and what devices report about installing it. Pure: the gateway signs manifests and keeps
//! images; this decides who gets what.
//!
//! A release is for one model. It targets every device of the model, or those a selector
//! names (ids, attributes), or a stable `percent` of them: a device is in the first N percent
//! when the first two bytes of SHA-256(model, release, device id) fall below N% of 65536, so a
//! rollout widened from 10 to 50 percent keeps its first devices, and each release draws its
//! own sample. The newest release (by number) that targets a device and is not withdrawn is
//! the one it gets; a device never moves to a lower number (it refuses a rollback itself).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::device::Device;
use crate::{CoreError, UnixTime};

/// Which devices of the model a release goes to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseTarget {
    /// Only these device ids (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// Only devices with all these attributes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// Only this percentage (1 to 100) of the devices the rest selects; absent: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
}

impl ReleaseTarget {
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.percent.is_some_and(|p| !(1..=100).contains(&p)) {
            return Err(CoreError::invalid("percent", "must be 1 to 100"));
        }
        Ok(())
    }
}

/// One published release of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub model: String,
    /// As people write it (`2.4.1`).
    pub version: String,
    /// What devices compare; rises with every release of the model.
    pub release: u64,
    /// SHA-256 of the image, lowercase hex.
    pub sha256: String,
    pub size: u64,
    /// Where devices download the image.
    pub url: String,
    pub nbf: UnixTime,
    pub exp: UnixTime,
    #[serde(default)]
    pub target: ReleaseTarget,
    /// The signed manifest (`COSE_Sign1`), base64url.
    pub manifest: String,
    pub published_at: UnixTime,
    pub published_by: String,
    /// Withdrawn releases are offered to no one (devices that installed one keep it until a
    /// higher release comes).
    #[serde(default)]
    pub withdrawn: bool,
}

impl Release {
    /// Whether this release is for `device` (its model, the selector, the percentage).
    pub fn targets(&self, device: &Device) -> bool {
        if device.model.as_deref() != Some(self.model.as_str()) {
            return false;
        }
        let t = &self.target;
        if !t.ids.is_empty() && !t.ids.iter().any(|id| id == device.device_id.as_str()) {
            return false;
        }
        if !t
            .attributes
            .iter()
            .all(|(k, v)| device.attrs.get(k) == Some(v))
        {
            return false;
        }
        t.percent
            .is_none_or(|p| in_sample(&self.model, self.release, device.device_id.as_str(), p))
    }

    /// Whether a device may be offered it at `now`.
    pub fn offered_at(&self, now: UnixTime) -> bool {
        !self.withdrawn && now < self.exp
    }
}

/// Whether `device` falls in the first `percent` percent of `model`'s release `release`.
pub fn in_sample(model: &str, release: u64, device: &str, percent: u8) -> bool {
    let mut h = Sha256::new();
    h.update(model.as_bytes());
    h.update([0]);
    h.update(release.to_be_bytes());
    h.update(device.as_bytes());
    let d: [u8; 32] = h.finalize().into();
    let [first, second, ..] = d;
    let bucket = u32::from(u16::from_be_bytes([first, second]));
    bucket * 100 < u32::from(percent) * 65_536
}

/// The release `device` should run now: the highest-numbered one of `releases` that targets
/// it and is offered.
pub fn latest_for<'r>(
    releases: &'r [Release],
    device: &Device,
    now: UnixTime,
) -> Option<&'r Release> {
    releases
        .iter()
        .filter(|r| r.offered_at(now) && r.targets(device))
        .max_by_key(|r| r.release)
}

/// What a device says about a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateStatus {
    Downloading,
    Installed,
    Failed,
    /// The device refused the manifest or the image (bad signature, digest, rollback, expiry).
    Refused,
}

impl UpdateStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Downloading => "downloading",
            Self::Installed => "installed",
            Self::Failed => "failed",
            Self::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Result<Self, CoreError> {
        Ok(match s {
            "downloading" => Self::Downloading,
            "installed" => Self::Installed,
            "failed" => Self::Failed,
            "refused" => Self::Refused,
            _ => return Err(CoreError::invalid("status", "not an update status")),
        })
    }
}

/// A device's report, as the payload of its authenticated message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateReportPayload {
    pub release: u64,
    pub status: UpdateStatus,
    /// Why, for `failed` and `refused`: at most 256 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl UpdateReportPayload {
    pub fn validate(self) -> Result<Self, CoreError> {
        if self
            .detail
            .as_ref()
            .is_some_and(|d| d.chars().count() > 256)
        {
            return Err(CoreError::invalid(
                "detail",
                "is longer than 256 characters",
            ));
        }
        if self.release == 0 {
            return Err(CoreError::invalid("release", "releases start at 1"));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{DeviceId, DeviceState};

    fn device(id: &str, model: &str, attrs: &[(&str, &str)]) -> Device {
        Device {
            device_id: DeviceId::parse(id).unwrap(),
            model: Some(model.to_owned()),
            attrs: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            state: DeviceState::Enrolled,
            enrollment_secret: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn release(n: u64, target: ReleaseTarget) -> Release {
        Release {
            model: "cam-v1".into(),
            version: format!("1.{n}"),
            release: n,
            sha256: "00".repeat(32),
            size: 1,
            url: "http://x".into(),
            nbf: 0,
            exp: 1_000,
            target,
            manifest: String::new(),
            published_at: 0,
            published_by: "ops".into(),
            withdrawn: false,
        }
    }

    #[test]
    fn the_newest_offered_release_that_targets_the_device_wins() {
        let cam = device("cam-1", "cam-v1", &[("site", "home")]);
        let mut releases = vec![
            release(1, ReleaseTarget::default()),
            release(
                3,
                ReleaseTarget {
                    ids: vec!["cam-2".into()],
                    ..Default::default()
                },
            ),
            release(
                2,
                ReleaseTarget {
                    attributes: [("site".to_owned(), "home".to_owned())].into(),
                    ..Default::default()
                },
            ),
        ];
        assert_eq!(latest_for(&releases, &cam, 10).unwrap().release, 2);
        releases[2].withdrawn = true;
        assert_eq!(latest_for(&releases, &cam, 10).unwrap().release, 1);
        assert!(latest_for(&releases, &cam, 1_000).is_none(), "expired");
        let other_model = device("cam-1", "cam-v2", &[]);
        assert!(latest_for(&releases, &other_model, 10).is_none());
    }

    #[test]
    fn a_percentage_is_a_stable_sample_that_widens() {
        let devices: Vec<Device> = (0..2000)
            .map(|i| device(&format!("cam-{i}"), "cam-v1", &[]))
            .collect();
        let at = |p: u8| {
            let r = release(
                7,
                ReleaseTarget {
                    percent: Some(p),
                    ..Default::default()
                },
            );
            devices
                .iter()
                .filter(|d| r.targets(d))
                .map(|d| d.device_id.clone())
                .collect::<Vec<_>>()
        };
        let ten = at(10);
        let fifty = at(50);
        assert!((150..250).contains(&ten.len()), "{}", ten.len());
        assert!((900..1100).contains(&fifty.len()), "{}", fifty.len());
        assert!(
            ten.iter().all(|d| fifty.contains(d)),
            "widening keeps the first devices"
        );
        assert_eq!(at(100).len(), 2000);
        assert!(ReleaseTarget {
            percent: Some(0),
            ..Default::default()
        }
        .validate()
        .is_err());
    }

    #[test]
    fn reports_are_strict() {
        let ok: UpdateReportPayload =
            serde_json::from_str(r#"{"release": 3, "status": "installed"}"#).unwrap();
        assert!(ok.validate().is_ok());
        for bad in [
            r#"{"release": 3, "status": "done"}"#,
            r#"{"release": 3, "status": "failed", "extra": 1}"#,
        ] {
            assert!(serde_json::from_str::<UpdateReportPayload>(bad).is_err());
        }
        let long = UpdateReportPayload {
            release: 1,
            status: UpdateStatus::Failed,
            detail: Some("x".repeat(300)),
        };
        assert!(long.validate().is_err());
        assert!(UpdateStatus::parse("refused").is_ok());
    }
}
