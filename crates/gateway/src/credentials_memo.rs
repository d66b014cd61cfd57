//! A session's own copy of its device's credentials, so that a connection sending thousands of
//! messages does not look its device up in the shared cache for each one (a hash of the id,
//! a clone of it and the cache's bookkeeping: ~5 % of a paced message's CPU,
//! docs/benchmarks.md "COSE read without value trees").
//!
//! The copy is believed only while nothing changed: the directory's generation moves on every
//! change it is told of (a device suspended, a key added or withdrawn, on any node), and a
//! copy taken at another generation is fetched again; a copy older than [`MAX_AGE`] is
//! fetched again too, so a lost change notification is bounded here as the cache's own
//! time-to-live bounds it there.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::credentials::DeviceCredentials;

/// The longest a session uses a copy without asking the directory again.
pub const MAX_AGE: Duration = Duration::from_secs(5);

/// The copy; empty until the first message.
#[derive(Debug, Default)]
pub struct CredentialsMemo(Mutex<Option<Memo>>);

#[derive(Debug)]
struct Memo {
    generation: u64,
    taken: Instant,
    creds: Arc<DeviceCredentials>,
}

impl CredentialsMemo {
    /// The copy, if it was taken at `generation` and is young enough.
    pub fn get(&self, generation: u64) -> Option<Arc<DeviceCredentials>> {
        let slot = self.0.lock().ok()?;
        let memo = slot.as_ref()?;
        (memo.generation == generation && memo.taken.elapsed() < MAX_AGE)
            .then(|| Arc::clone(&memo.creds))
    }

    /// Keeps `creds`, read after the directory's generation was `generation`.
    pub fn keep(&self, generation: u64, creds: &Arc<DeviceCredentials>) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(Memo {
                generation,
                taken: Instant::now(),
                creds: Arc::clone(creds),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::MessageAuth;
    use portcullis_core::device::DeviceId;

    fn creds() -> Arc<DeviceCredentials> {
        Arc::new(DeviceCredentials {
            device_id: DeviceId::parse("sensor-1").unwrap(),
            model: None,
            active: true,
            message_auth: MessageAuth::Required,
            keys: Vec::new(),
            certificates: Vec::new(),
        })
    }

    #[test]
    fn a_copy_is_used_only_at_the_generation_it_was_taken() {
        let memo = CredentialsMemo::default();
        assert!(memo.get(0).is_none());
        memo.keep(3, &creds());
        assert!(memo.get(3).is_some());
        assert!(memo.get(4).is_none(), "a change since the copy");
        assert!(memo.get(2).is_none());
    }
}
