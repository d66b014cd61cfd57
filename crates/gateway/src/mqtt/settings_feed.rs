//! Desired settings down an MQTT connection (issue #13): once a device subscribes to its own
//! `devices/{id}/settings`, the newest signed settings are published to it (QoS 1, MQTT 5:
//! content type `application/cose`) — at once if it has not reported applying them, and then
//! each new version. The device applies only a version above the one it runs
//! (`docs/signed-objects.md`), so a repeat is harmless; it reports what it applied to
//! `devices/{id}/settings/applied`.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use portcullis_core::device::DeviceId;
use tokio::time::Instant;

use super::codec;
use super::command_feed::LAST_COMMAND_PKID;
use super::protocol::Version;
use crate::commands::Doorbell;
use crate::service::Gateway;

/// How often the feed looks at the store without a ring.
const FALLBACK_LOOK: Duration = Duration::from_secs(30);

/// The settings topic of `device`.
pub fn settings_topic(device: &str) -> String {
    format!("devices/{device}/settings")
}

/// A subscribed device's settings feed.
pub struct SettingsFeed {
    device: DeviceId,
    topic: String,
    bell: Doorbell,
    /// The newest version published on this connection (0: none).
    published: u64,
    /// The version published and not yet acknowledged, with its packet id.
    unacked: Option<(u16, u64)>,
    next_pkid: u16,
    look: bool,
    next_fallback: Instant,
}

impl SettingsFeed {
    pub fn new(gateway: &Gateway, device: &DeviceId) -> Self {
        Self {
            device: device.clone(),
            topic: settings_topic(device.as_str()),
            bell: gateway.commands().listen(device),
            published: 0,
            unacked: None,
            next_pkid: LAST_COMMAND_PKID + 1,
            look: true,
            next_fallback: Instant::now() + FALLBACK_LOOK,
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Whether a PUBACK's packet id is one of this feed's.
    pub fn owns(pkid: u16) -> bool {
        pkid > LAST_COMMAND_PKID
    }

    /// Resolves when the feed should look at the store again; cancel-safe.
    pub async fn rung(&mut self) {
        tokio::select! {
            () = self.bell.rung() => {}
            () = tokio::time::sleep_until(self.next_fallback) => {}
        }
        self.look = true;
        self.next_fallback = Instant::now() + FALLBACK_LOOK;
    }

    pub fn acked(&mut self, pkid: u16) {
        if self.unacked.is_some_and(|(p, _)| p == pkid) {
            self.unacked = None;
            self.look = true;
        }
    }

    /// Publishes the newest settings into `out` if there is a version this connection has
    /// not carried (the caller flushes). One unacknowledged version at a time.
    pub async fn pump(&mut self, version: Version, out: &mut BytesMut, gateway: &Gateway) {
        if !self.look || self.unacked.is_some() {
            return;
        }
        self.look = false;
        let record = match gateway.settings().get(&self.device).await {
            Ok(Some(record)) => record,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "looking for a device's settings failed");
                return;
            }
        };
        let applied = record.applied_version.unwrap_or(0);
        if record.version <= self.published.max(applied) {
            return;
        }
        let Some(signed) = record.signed_bytes() else {
            return;
        };
        let pkid = self.next_pkid;
        self.next_pkid = self
            .next_pkid
            .checked_add(1)
            .unwrap_or(LAST_COMMAND_PKID + 1);
        if codec::publish_command(version, out, &self.topic, pkid, Bytes::from(signed)).is_err() {
            tracing::warn!("settings could not be encoded");
            return;
        }
        self.published = record.version;
        self.unacked = Some((pkid, record.version));
    }
}
