//! Waking whoever waits for a device's commands on this node: its MQTT connection (once it
//! subscribed) and its HTTP long polls. A bell is a `watch` channel per device, made when the
//! first listener arrives and dropped with the last one, so idle devices cost nothing and a
//! ring between two looks at the store is never lost (a `watch` remembers that it changed).
//!
//! A ring only says "look again": what to deliver always comes from the store, so a ring
//! from another node (the change feed's `command:<id>`) and a local one are alike, and a
//! missed ring costs at most the listener's fallback poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use portcullis_core::device::DeviceId;
use tokio::sync::watch;

/// Every device bell of this node.
#[derive(Debug, Default)]
pub struct Doorbells {
    bells: Mutex<HashMap<DeviceId, watch::Sender<u64>>>,
}

impl Doorbells {
    /// Listens for `device`'s bell until the returned listener is dropped.
    pub fn listen(self: &Arc<Self>, device: &DeviceId) -> Doorbell {
        let receiver = self
            .lock()
            .entry(device.clone())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Doorbell {
            receiver,
            device: device.clone(),
            bells: Arc::clone(self),
        }
    }

    /// Rings `device`'s bell, if anyone listens.
    pub fn ring(&self, device: &DeviceId) {
        if let Some(bell) = self.lock().get(device) {
            bell.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Rings every bell (the change feed lost track: any device may have new commands).
    pub fn ring_all(&self) {
        for bell in self.lock().values() {
            bell.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// How many devices have a listener (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<DeviceId, watch::Sender<u64>>> {
        // Each operation is one map call: a panic elsewhere cannot leave it half-done.
        self.bells.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One listener of a device's bell.
#[derive(Debug)]
pub struct Doorbell {
    receiver: watch::Receiver<u64>,
    device: DeviceId,
    bells: Arc<Doorbells>,
}

impl Doorbell {
    /// Resolves at the next ring after the last one seen (at once if one came meanwhile);
    /// cancel-safe.
    pub async fn rung(&mut self) {
        // The sender lives in the map while this receiver does: `changed` cannot fail.
        let _ = self.receiver.changed().await;
    }
}

/// How often a waiting HTTP poll looks at the store even without a ring (a ring lost with a
/// reconnecting change feed costs at most this).
pub const POLL_FALLBACK_LOOK: std::time::Duration = std::time::Duration::from_secs(5);

impl Doorbell {
    /// A long poll's wait: `false` once `deadline` has passed (answer now); else waits for a
    /// ring, [`POLL_FALLBACK_LOOK`] or the deadline, whichever comes first, and says `true`
    /// (look again).
    pub async fn wait_until(&mut self, deadline: tokio::time::Instant) -> bool {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return false;
        }
        let look = (now + POLL_FALLBACK_LOOK).min(deadline);
        let _ = tokio::time::timeout_at(look, self.rung()).await;
        true
    }
}

impl Drop for Doorbell {
    fn drop(&mut self) {
        let mut bells = self.bells.lock();
        // This receiver still counts: one left means it was the last listener.
        if bells
            .get(&self.device)
            .is_some_and(|bell| bell.receiver_count() <= 1)
        {
            bells.remove(&self.device);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn id(s: &str) -> DeviceId {
        DeviceId::parse(s).unwrap()
    }

    #[tokio::test]
    async fn a_ring_before_the_wait_is_not_lost() {
        let bells = Arc::new(Doorbells::default());
        let mut bell = bells.listen(&id("valve-7"));
        bells.ring(&id("valve-7"));
        tokio::time::timeout(Duration::from_secs(1), bell.rung())
            .await
            .expect("the earlier ring wakes the wait");
        // Seen: the next wait sleeps until the next ring.
        assert!(tokio::time::timeout(Duration::from_millis(50), bell.rung())
            .await
            .is_err());
        bells.ring_all();
        tokio::time::timeout(Duration::from_secs(1), bell.rung())
            .await
            .expect("ring_all wakes it");
    }

    #[tokio::test]
    async fn other_devices_do_not_wake_it_and_the_last_listener_cleans_up() {
        let bells = Arc::new(Doorbells::default());
        let mut a = bells.listen(&id("a"));
        let b1 = bells.listen(&id("b"));
        let b2 = bells.listen(&id("b"));
        bells.ring(&id("b"));
        bells.ring(&id("nobody"));
        assert!(tokio::time::timeout(Duration::from_millis(50), a.rung())
            .await
            .is_err());
        assert_eq!(bells.len(), 2);
        drop(b1);
        assert_eq!(bells.len(), 2, "b still has a listener");
        drop(b2);
        drop(a);
        assert!(bells.is_empty());
    }
}
