//! Keeping connected devices honest after they were admitted: device changes announced by
//! the registry end the sessions of devices no longer active (or whose certificate or key
//! went), and credentials that expire end their sessions.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::device::DeviceId;
use tokio::sync::broadcast;

use super::Gateway;
use crate::credentials::CredentialMethod;
use crate::session::CloseReason;

impl Gateway {
    /// Follows device changes announced by the registry (this node's writes and, through
    /// the store's change feed, every other node's): drops cached credentials and ends the
    /// sessions of devices that are no longer active or whose certificate was revoked. Also
    /// ends sessions whose credential expired. Runs until the registry goes away.
    pub async fn follow_devices(
        self: Arc<Self>,
        mut changes: broadcast::Receiver<Option<DeviceId>>,
    ) {
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(Some(id)) => {
                        self.directory.forget(&id).await;
                        self.recheck(&id).await;
                    }
                    Ok(None) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.directory.forget_all();
                        for live in self.sessions.live() {
                            self.recheck(&live.device_id).await;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = sweep.tick() => {
                    let closed = self.sessions.close_expired(self.now());
                    if closed > 0 {
                        tracing::debug!(closed, "gateway sessions ended at their credential's expiry");
                    }
                }
            }
        }
    }

    /// Ends the device's session if it may no longer be connected.
    async fn recheck(&self, id: &DeviceId) {
        let Some(live) = self.sessions.live_credential(id) else {
            return;
        };
        let verdict = match self.directory.credentials(id).await {
            Ok(Some(creds)) if creds.active => {
                let now = self.now();
                match (live.method, live.credential.as_deref()) {
                    (CredentialMethod::Certificate, Some(serial)) => {
                        creds.certificates(Some(serial), now).next().is_some()
                    }
                    (CredentialMethod::DeviceToken, Some(key_id)) => {
                        // A token signed with a deleted key, or with a certificate now revoked,
                        // no longer admits the device.
                        creds.symmetric_key(key_id, now).is_some()
                            || creds.certificates(Some(key_id), now).next().is_some()
                    }
                    _ => true,
                }
            }
            Ok(_) => false,
            // The store is unreachable: keep the session; the next change or the cache's
            // time-to-live brings the check back.
            Err(_) => true,
        };
        if !verdict {
            self.sessions.close(id, CloseReason::DeviceInactive);
        }
    }

    /// Ends every session (shutdown).
    pub fn close_all(&self) {
        self.sessions.close_all(CloseReason::Shutdown);
    }

    /// At a clean stop: message counters decided in memory go to the store now, so a
    /// `store copy` of the stopped node carries them (a restart would read them back from
    /// the telemetry log anyway).
    pub async fn flush_counters(&self) {
        self.replay.flush().await;
    }
}
