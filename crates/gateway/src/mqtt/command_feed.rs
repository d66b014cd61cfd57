//! Commands down an MQTT connection (issue #13): once a device subscribes to its own
//! `devices/{id}/commands`, its queued commands are published to it with QoS 1, in sequence
//! order, each as the signed `COSE_Sign1` (MQTT 5: content type `application/cose`). A command
//! counts as delivered when the device acknowledges it (PUBACK); one not acknowledged when the
//! connection ends stays queued and goes out again on the next connection — the device's
//! sequence check makes a second copy harmless (`docs/signed-objects.md`).
//!
//! The feed looks at the store when the device subscribes, when its doorbell rings (a command
//! queued on this node, or announced by another), after acknowledgements when more may be
//! waiting, and every [`FALLBACK_LOOK`] in case a ring was lost with the change feed.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use portcullis_core::command::CommandRecord;
use portcullis_core::device::DeviceId;
use tokio::time::Instant;

use super::codec;
use super::protocol::Version;
use crate::commands::Doorbell;
use crate::service::Gateway;

/// The packet ids of commands are 1 to this; settings use the ones above, so a PUBACK names
/// its feed.
pub const LAST_COMMAND_PKID: u16 = 0x7FFF;
/// Commands published and not yet acknowledged, at most.
const WINDOW: usize = 8;
/// How often the feed looks at the store without a ring.
const FALLBACK_LOOK: Duration = Duration::from_secs(30);

/// The command topic of `device`.
pub fn command_topic(device: &str) -> String {
    format!("devices/{device}/commands")
}

/// A subscribed device's command feed.
pub struct CommandFeed {
    device: DeviceId,
    topic: String,
    bell: Doorbell,
    /// Published, waiting for their PUBACK, oldest first.
    unacked: VecDeque<(u16, CommandRecord)>,
    /// PUBACKs read and not yet recorded.
    acked: Vec<u16>,
    next_pkid: u16,
    /// Look at the store at the next pump.
    look: bool,
    next_fallback: Instant,
}

impl CommandFeed {
    /// A feed for `device`, which looks at the store at once.
    pub fn new(gateway: &Gateway, device: &DeviceId) -> Self {
        Self {
            device: device.clone(),
            topic: command_topic(device.as_str()),
            bell: gateway.commands().listen(device),
            unacked: VecDeque::new(),
            acked: Vec::new(),
            next_pkid: 1,
            look: true,
            next_fallback: Instant::now() + FALLBACK_LOOK,
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
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

    /// Notes a PUBACK (recorded at the next pump). One for no command of ours is ignored.
    pub fn acked(&mut self, pkid: u16) {
        self.acked.push(pkid);
    }

    /// Records acknowledgements and publishes what is waiting, into `out` (the caller
    /// flushes). Store failures are logged and retried at the next look, never fatal to the
    /// connection: telemetry keeps flowing while commands wait.
    pub async fn pump(&mut self, version: Version, out: &mut BytesMut, gateway: &Gateway) {
        let commands = gateway.commands();
        for pkid in std::mem::take(&mut self.acked) {
            let Some(at) = self.unacked.iter().position(|(p, _)| *p == pkid) else {
                continue;
            };
            let Some((_, record)) = self.unacked.remove(at) else {
                continue;
            };
            if let Err(e) = commands.delivered(&record, "mqtt").await {
                tracing::warn!(error = %e, command = %record.command_id, "recording a delivery failed");
            }
            // A full window may have left commands behind.
            self.look = true;
        }
        if !self.look || self.unacked.len() >= WINDOW {
            return;
        }
        self.look = false;
        let ready = match commands.deliverable(&self.device, WINDOW as u32).await {
            Ok(ready) => ready,
            Err(e) => {
                tracing::warn!(error = %e, "looking for a device's commands failed");
                return;
            }
        };
        for record in ready {
            if self.unacked.len() >= WINDOW {
                break;
            }
            if self
                .unacked
                .iter()
                .any(|(_, r)| r.command_id == record.command_id)
            {
                continue;
            }
            let Some(signed) = record.signed.clone() else {
                continue;
            };
            let pkid = self.take_pkid();
            if codec::publish_command(version, out, &self.topic, pkid, Bytes::from(signed)).is_err()
            {
                tracing::warn!(command = %record.command_id, "a command could not be encoded");
                continue;
            }
            self.unacked.push_back((pkid, record));
        }
    }

    /// The next packet id not in use by an unacknowledged command, from 1 to
    /// [`LAST_COMMAND_PKID`] (the settings feed uses those above).
    fn take_pkid(&mut self) -> u16 {
        loop {
            let pkid = self.next_pkid;
            self.next_pkid = if pkid >= LAST_COMMAND_PKID {
                1
            } else {
                pkid + 1
            };
            if !self.unacked.iter().any(|(p, _)| *p == pkid) {
                return pkid;
            }
        }
    }
}
