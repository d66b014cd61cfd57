//! Software updates (issue #13, item 4): releases per model, each with a manifest signed by the
//! active `updates` key (`UpdateManifest`, `docs/signed-objects.md`): model, version, release
//! number, SHA-256, size, location, not-before and expiry. A device asks for the release it
//! should run (`GET /gateway/v1/updates/latest`), downloads the image (range requests), checks
//! it against the manifest and refuses a lower release (rollback) or an expired manifest
//! (freeze); it reports what it did, and `update status` shows the rollout.
//!
//! Releases of a model are one store settings record (`update-releases:<model>`), replaced by
//! compare-and-swap so two publishers never take one release number; reports are rows of
//! their own (`update_reports`, one per device and release) because a rollout has as many as
//! the model has devices. Images uploaded to a node are kept in its data directory, named by
//! their digest (`<data_dir>/updates/<sha256>`), and served by that node; a deployment of
//! several nodes gives the image's own URL (object storage, a CDN) instead, or shares the
//! directory.

pub mod http;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis_audit::AuditLog;
use portcullis_core::audit::{AuditAction, AuditEvent, Outcome};
use portcullis_core::device::DeviceId;
use portcullis_core::update::{
    latest_for, Release, ReleaseTarget, UpdateReportPayload, UpdateStatus,
};
use portcullis_core::{hex, UnixTime};
use portcullis_ports::DeviceRegistry;
use portcullis_store::{Store, UpdateReport};
use serde_json::{json, Value};

use crate::commands::CommandError;
use crate::records::json_or_cbor;
use crate::signed::{sign, Kind, OperatorKeys, Role, UpdateManifest};
use portcullis_store::swap_setting;

/// The store setting of a model's releases: this prefix and the model.
pub const RELEASES_PREFIX: &str = "update-releases:";
/// Scope to publish and withdraw releases (and read them).
pub const UPDATES_WRITE_SCOPE: &str = "updates:write";
/// Scope to read releases and their rollout.
pub const UPDATES_READ_SCOPE: &str = "updates:read";
/// Longest a manifest may be valid: 400 days.
pub const MAX_VALID_SECS: i64 = 400 * 86_400;
/// Tries of a compare-and-swap against concurrent publishers.
const CAS_TRIES: usize = 8;

/// Where a new release's image is.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// Uploaded to this node: already in its images directory under its digest.
    Stored { sha256: [u8; 32], size: u64 },
    /// Somewhere else; the publisher vouches for its digest and size (devices check both).
    External {
        url: String,
        sha256: [u8; 32],
        size: u64,
    },
}

/// What a publisher asks for.
#[derive(Debug, Clone)]
pub struct NewRelease {
    pub model: String,
    pub version: String,
    /// Absent: one above the model's highest.
    pub release: Option<u64>,
    pub image: ImageSource,
    pub target: ReleaseTarget,
    pub valid_secs: i64,
}

/// The update service of one node.
pub struct Updates {
    store: Arc<dyn Store>,
    registry: Arc<dyn DeviceRegistry>,
    keys: OperatorKeys,
    audit: AuditLog,
    images: PathBuf,
    /// This node's public base URL, for the URLs of stored images.
    public_url: String,
    clock: fn() -> UnixTime,
}

impl std::fmt::Debug for Updates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Updates")
            .field("images", &self.images)
            .finish_non_exhaustive()
    }
}

fn setting_name(model: &str) -> String {
    format!("{RELEASES_PREFIX}{model}")
}

/// A model name as releases carry it: 1 to 128 printable characters.
fn valid_model(model: &str) -> Result<(), CommandError> {
    if model.is_empty() || model.chars().count() > 128 || model.chars().any(char::is_control) {
        return Err(CommandError::Invalid(
            "model must be 1 to 128 printable characters".into(),
        ));
    }
    Ok(())
}

impl Updates {
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<dyn DeviceRegistry>,
        keys: OperatorKeys,
        audit: AuditLog,
        images: PathBuf,
        public_url: String,
        clock: fn() -> UnixTime,
    ) -> Self {
        Self {
            store,
            registry,
            keys,
            audit,
            images,
            public_url: public_url.trim_end_matches('/').to_owned(),
            clock,
        }
    }

    /// The directory uploaded images are kept in.
    pub fn images_dir(&self) -> &Path {
        &self.images
    }

    /// The stored image of this digest (lowercase hex), if this node has it.
    pub fn image_path(&self, sha256_hex: &str) -> Option<PathBuf> {
        let well_formed = sha256_hex.len() == 64
            && sha256_hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let path = self.images.join(sha256_hex);
        (well_formed && path.is_file()).then_some(path)
    }

    /// A model's releases, oldest first.
    pub async fn releases(&self, model: &str) -> Result<Vec<Release>, CommandError> {
        Ok(self.read(model).await?.map(|(_, r)| r).unwrap_or_default())
    }

    async fn read(&self, model: &str) -> Result<Option<(Vec<u8>, Vec<Release>)>, CommandError> {
        valid_model(model)?;
        let Some(bytes) = self.store.get_setting(&setting_name(model)).await? else {
            return Ok(None);
        };
        let releases = serde_json::from_slice(&bytes).map_err(|_| {
            CommandError::Unavailable(format!("the release record of {model} does not parse"))
        })?;
        Ok(Some((bytes, releases)))
    }

    async fn swap(
        &self,
        model: &str,
        expected: Option<Vec<u8>>,
        releases: &[Release],
    ) -> Result<bool, CommandError> {
        let bytes = serde_json::to_vec(releases)
            .map_err(|e| CommandError::Unavailable(format!("encoding releases: {e}")))?;
        let name = setting_name(model);
        Ok(swap_setting(self.store.as_ref(), &name, expected.as_deref(), &bytes).await?)
    }

    /// Publishes a release: numbered, its manifest signed, offered from now on.
    pub async fn publish(&self, actor: &str, new: NewRelease) -> Result<Release, CommandError> {
        valid_model(&new.model)?;
        if new.version.is_empty()
            || new.version.chars().count() > 64
            || new.version.chars().any(char::is_control)
        {
            return Err(CommandError::Invalid(
                "version must be 1 to 64 printable characters".into(),
            ));
        }
        if !(60..=MAX_VALID_SECS).contains(&new.valid_secs) {
            return Err(CommandError::Invalid(
                "a manifest is valid 60 seconds to 400 days".into(),
            ));
        }
        new.target.validate()?;
        let (url, sha256, size) = match &new.image {
            ImageSource::Stored { sha256, size } => (
                format!(
                    "{}/gateway/v1/updates/images/{}",
                    self.public_url,
                    hex::encode(sha256)
                ),
                *sha256,
                *size,
            ),
            ImageSource::External { url, sha256, size } => {
                if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2048
                {
                    return Err(CommandError::Invalid(
                        "url must be an http(s) URL of at most 2048 characters".into(),
                    ));
                }
                (url.clone(), *sha256, *size)
            }
        };
        let signer = self.keys.signer(Role::Updates).await?;
        for _ in 0..CAS_TRIES {
            let current = self.read(&new.model).await?;
            let mut releases = current.as_ref().map(|(_, r)| r.clone()).unwrap_or_default();
            let highest = releases.iter().map(|r| r.release).max().unwrap_or(0);
            let number = new.release.unwrap_or(highest + 1);
            if number <= highest {
                return Err(CommandError::Invalid(format!(
                    "release numbers rise: the highest of {} is {highest}",
                    new.model
                )));
            }
            if i64::try_from(number).is_err() {
                return Err(CommandError::Invalid("release number out of range".into()));
            }
            let now = (self.clock)();
            let manifest = UpdateManifest {
                model: new.model.clone(),
                version: new.version.clone(),
                release: number,
                sha256,
                size,
                url: url.clone(),
                nbf: now,
                exp: now + new.valid_secs,
            };
            let signed = sign(Kind::Manifest, &manifest, &*signer)?;
            let release = Release {
                model: new.model.clone(),
                version: new.version.clone(),
                release: number,
                sha256: hex::encode(&sha256),
                size,
                url: url.clone(),
                nbf: manifest.nbf,
                exp: manifest.exp,
                target: new.target.clone(),
                manifest: URL_SAFE_NO_PAD.encode(signed),
                published_at: now,
                published_by: actor.to_owned(),
                withdrawn: false,
            };
            releases.push(release.clone());
            if self
                .swap(&new.model, current.map(|(b, _)| b), &releases)
                .await?
            {
                self.audit(
                    AuditAction::UpdatePublished,
                    actor,
                    &new.model,
                    json!({
                        "release": number,
                        "version": release.version,
                        "sha256": release.sha256,
                        "size": size,
                        "target": release.target,
                    }),
                )
                .await;
                return Ok(release);
            }
        }
        Err(CommandError::Conflict(
            "the model's releases kept changing; try again".into(),
        ))
    }

    /// Withdraws a release: offered to no one from now on.
    pub async fn withdraw(
        &self,
        actor: &str,
        model: &str,
        number: u64,
    ) -> Result<Release, CommandError> {
        for _ in 0..CAS_TRIES {
            let Some((bytes, mut releases)) = self.read(model).await? else {
                return Err(CommandError::NotFound("release"));
            };
            let Some(release) = releases.iter_mut().find(|r| r.release == number) else {
                return Err(CommandError::NotFound("release"));
            };
            release.withdrawn = true;
            let withdrawn = release.clone();
            if self.swap(model, Some(bytes), &releases).await? {
                self.audit(
                    AuditAction::UpdateWithdrawn,
                    actor,
                    model,
                    json!({ "release": number }),
                )
                .await;
                return Ok(withdrawn);
            }
        }
        Err(CommandError::Conflict(
            "the model's releases kept changing; try again".into(),
        ))
    }

    /// The release `device` should run now, if any.
    pub async fn latest_for(&self, device: &DeviceId) -> Result<Option<Release>, CommandError> {
        let device = self.registry.device(device).await?;
        let Some(model) = device.model.as_deref() else {
            return Ok(None);
        };
        let releases = self.releases(model).await?;
        Ok(latest_for(&releases, &device, (self.clock)()).cloned())
    }

    /// Records a device's report about a release of its model; `false` if its model has no
    /// such release.
    pub async fn report(
        &self,
        device: &DeviceId,
        payload: &UpdateReportPayload,
    ) -> Result<bool, CommandError> {
        let registered = self.registry.device(device).await?;
        let Some(model) = registered.model.clone() else {
            return Ok(false);
        };
        if !self
            .releases(&model)
            .await?
            .iter()
            .any(|r| r.release == payload.release)
        {
            return Ok(false);
        }
        let report = UpdateReport {
            device_id: device.clone(),
            model,
            release: payload.release,
            status: payload.status,
            detail: payload.detail.clone(),
            reported_at: (self.clock)(),
        };
        self.store.record_update_report(&report).await?;
        if matches!(payload.status, UpdateStatus::Failed | UpdateStatus::Refused) {
            // A device refusing a manifest or an image may be under attack: worth a record.
            self.audit(
                AuditAction::UpdateRefused,
                device.as_str(),
                device.as_str(),
                json!({
                    "release": payload.release,
                    "status": payload.status.as_str(),
                    "detail": payload.detail,
                }),
            )
            .await;
        }
        Ok(true)
    }

    /// Devices per release and status of `model`.
    pub async fn rollout(
        &self,
        model: &str,
    ) -> Result<Vec<(u64, UpdateStatus, u64)>, CommandError> {
        valid_model(model)?;
        Ok(self.store.update_rollout(model).await?)
    }

    async fn audit(&self, action: AuditAction, actor: &str, subject: &str, detail: Value) {
        let event = AuditEvent {
            at: (self.clock)(),
            actor: actor.to_owned(),
            action: action.into(),
            subject: subject.to_owned(),
            outcome: if action == AuditAction::UpdateRefused {
                Outcome::Failure
            } else {
                Outcome::Success
            }
            .into(),
            detail,
        };
        if self.audit.record(event).await.is_err() {
            tracing::warn!(
                action = action.as_str(),
                "the audit log could not take an update record"
            );
        }
    }
}

/// Reads a device's update report: a JSON object or a CBOR map.
pub fn parse_report(payload: &[u8]) -> Result<UpdateReportPayload, CommandError> {
    let report: UpdateReportPayload = json_or_cbor(payload)
        .ok_or_else(|| CommandError::Invalid("not an update report".into()))?;
    Ok(report.validate()?)
}
