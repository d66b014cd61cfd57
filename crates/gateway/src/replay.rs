//! Replay protection for per-message authentication, on every node.
//!
//! A COSE message carries its device's counter and a timestamp. It is accepted only if its
//! timestamp is within `window` of this node's clock and its counter is above every counter
//! already accepted for that device — by any node. The guarantee across nodes comes from
//! the store, not from the nodes: a counter is *reserved* by a conditional write
//! (`advance_device_counters`: set the device's counter to `c` only where it is below `c`),
//! which PostgreSQL serialises per row and SQLite per database, so of two nodes offered the
//! same message at the same instant exactly one sees its write succeed. Reservations are
//! group-committed by the ingest pipeline (`crate::ingest`: one transaction for everything
//! that queued meanwhile).
//!
//! The reservation comes before the sink: if the sink then fails, the reservation is taken
//! back (`revert_device_counter`, only if no later counter was accepted since), so the
//! device may retry the very same message and it is still accepted at most once.
//!
//! This node remembers the highest counter it knows is stored per device; a counter at or
//! below it is refused without a round trip (the store can only be higher, never lower).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use portcullis_core::device::DeviceId;
use portcullis_core::UnixTime;
use portcullis_store::Store;

use crate::GatewayError;

/// A reserved counter: the message may go to the sink.
#[derive(Debug)]
#[must_use = "a reservation is either kept (the sink took the message) or released"]
pub struct Reservation {
    device: DeviceId,
    counter: u64,
    previous: u64,
}

pub struct ReplayGuard {
    window_secs: i64,
    known: KnownCounters,
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for ReplayGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayGuard")
            .field("window_secs", &self.window_secs)
            .finish_non_exhaustive()
    }
}

impl Reservation {
    /// The device whose counter is reserved.
    pub fn device(&self) -> &DeviceId {
        &self.device
    }
}

impl ReplayGuard {
    /// A guard accepting timestamps within `window_secs` of the clock.
    pub fn new(store: Arc<dyn Store>, window_secs: i64) -> Self {
        Self {
            window_secs,
            known: KnownCounters::new(1_000_000),
            store,
        }
    }

    /// Refuses a timestamp outside the window around `now`.
    pub fn check_time(&self, timestamp: i64, now: UnixTime) -> Result<(), GatewayError> {
        if timestamp.abs_diff(now) > self.window_secs.unsigned_abs() {
            return Err(GatewayError::Replay("stale_timestamp"));
        }
        Ok(())
    }

    /// Refuses, without a round trip, a counter at or below one this node knows is stored
    /// for the device (the store can only be higher). Passing this is no reservation.
    pub fn check_known(&self, device: &DeviceId, counter: u64) -> Result<(), GatewayError> {
        if self.known.get(device).is_some_and(|known| counter <= known) {
            return Err(GatewayError::Replay("counter_not_increasing"));
        }
        Ok(())
    }

    /// Reserves each `(device, counter)` in order, with one store write for all of them:
    /// `Err(Replay)` for a counter not above every counter accepted for its device so far,
    /// on any node (earlier entries of the same batch included).
    pub async fn reserve_all(
        &self,
        wanted: &[(DeviceId, u64)],
    ) -> Vec<Result<Reservation, GatewayError>> {
        let answers = match self.store.advance_device_counters(wanted).await {
            Ok(answers) if answers.len() == wanted.len() => answers,
            Ok(_) => {
                let e = "the store answered a counter batch short";
                return unavailable_all(wanted.len(), e);
            }
            Err(e) => return unavailable_all(wanted.len(), &e.to_string()),
        };
        wanted
            .iter()
            .zip(answers)
            .map(|((device, counter), answer)| match answer {
                Some(previous) => {
                    self.raise(device, *counter);
                    Ok(Reservation {
                        device: device.clone(),
                        counter: *counter,
                        previous,
                    })
                }
                None => Err(GatewayError::Replay("counter_not_increasing")),
            })
            .collect()
    }

    /// Takes a reservation back after the sink refused the message, so the device can send
    /// it again. If a later counter was accepted meanwhile the store keeps that one (the
    /// retry will be refused as a replay, which it then is).
    pub async fn release(&self, reservation: Reservation) {
        self.known.forget(&reservation.device);
        if let Err(e) = self
            .store
            .revert_device_counter(
                &reservation.device,
                reservation.counter,
                reservation.previous,
            )
            .await
        {
            tracing::warn!(device = %reservation.device, error = %e,
                "a message the sink refused keeps its counter reserved; the device must send it with a new counter");
        }
    }

    fn raise(&self, device: &DeviceId, counter: u64) {
        self.known.raise(device, counter);
    }
}

/// The highest counter this node knows is stored, per device: a hint that spares the store
/// a round trip for an obvious replay, never the decision (the store decides). Sharded
/// maps under short locks: it is read and raised once per message, where a general cache's
/// bookkeeping (moka's) cost more than the lookup. Bounded by forgetting a whole shard when
/// it is full — forgetting only costs a round trip.
struct KnownCounters {
    shards: [Mutex<HashMap<DeviceId, u64>>; SHARDS],
    per_shard: usize,
    hasher: RandomState,
}

const SHARDS: usize = 64;

impl KnownCounters {
    fn new(capacity: usize) -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::default()),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, device: &DeviceId) -> std::sync::MutexGuard<'_, HashMap<DeviceId, u64>> {
        let i = usize::try_from(self.hasher.hash_one(device) % SHARDS as u64).unwrap_or(0);
        #[allow(clippy::indexing_slicing)] // i < SHARDS, the array's length
        let shard = &self.shards[i];
        shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, device: &DeviceId) -> Option<u64> {
        self.shard(device).get(device).copied()
    }

    /// Monotonic per device: never lowers what this node knows.
    fn raise(&self, device: &DeviceId, counter: u64) {
        let mut shard = self.shard(device);
        if let Some(known) = shard.get_mut(device) {
            *known = (*known).max(counter);
            return;
        }
        if shard.len() >= self.per_shard {
            shard.clear();
        }
        shard.insert(device.clone(), counter);
    }

    fn forget(&self, device: &DeviceId) {
        self.shard(device).remove(device);
    }
}

fn unavailable_all(n: usize, why: &str) -> Vec<Result<Reservation, GatewayError>> {
    (0..n)
        .map(|_| Err(GatewayError::Unavailable(why.to_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(n: usize) -> DeviceId {
        DeviceId::parse(format!("dev-{n}")).unwrap()
    }

    #[test]
    fn known_counters_only_rise_and_can_be_forgotten() {
        let known = KnownCounters::new(1_000);
        let d = device(1);
        assert_eq!(known.get(&d), None);
        known.raise(&d, 7);
        known.raise(&d, 3);
        assert_eq!(known.get(&d), Some(7));
        known.forget(&d);
        assert_eq!(known.get(&d), None);
    }

    #[test]
    fn known_counters_stay_within_their_bound() {
        let known = KnownCounters::new(SHARDS * 4);
        for n in 0..10_000 {
            known.raise(&device(n), 1);
        }
        let held: usize = known.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(held <= SHARDS * 4, "{held} entries held");
        // The latest one is remembered.
        assert_eq!(known.get(&device(9_999)), Some(1));
    }
}
