//! Replay protection for per-message authentication, on every node.
//!
//! A COSE message carries its device's counter and a timestamp. It is accepted only if its
//! timestamp is within `window` of this node's clock and its counter is above every counter
//! already accepted for that device — by any node. The guarantee across nodes comes from
//! the store, not from the nodes: a counter is *reserved* by a conditional write
//! (`advance_device_counters`: set the device's counter to `c` only where it is below `c`),
//! which PostgreSQL serialises per row and SQLite per database, so of two nodes offered the
//! same message at the same instant exactly one sees its write succeed. Reservations are
//! group-committed (one transaction for everything that queued meanwhile).
//!
//! The reservation comes before the sink: if the sink then fails, the reservation is taken
//! back (`revert_device_counter`, only if no later counter was accepted since), so the
//! device may retry the very same message and it is still accepted at most once.
//!
//! This node remembers the highest counter it knows is stored per device; a counter at or
//! below it is refused without a round trip (the store can only be higher, never lower).

use std::sync::Arc;

use moka::sync::Cache;
use portcullis_core::device::DeviceId;
use portcullis_core::UnixTime;
use portcullis_store::Store;

use crate::batch::Batcher;
use crate::GatewayError;

/// A reserved counter: the message may go to the sink.
#[derive(Debug)]
#[must_use = "a reservation is either kept (the sink took the message) or released"]
pub struct Reservation {
    device: DeviceId,
    counter: u64,
    previous: u64,
}

type Advance = Result<Option<u64>, String>;

pub struct ReplayGuard {
    window_secs: i64,
    known: Cache<DeviceId, u64>,
    store: Arc<dyn Store>,
    advances: Batcher<(DeviceId, u64), Advance>,
}

impl std::fmt::Debug for ReplayGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayGuard")
            .field("window_secs", &self.window_secs)
            .finish_non_exhaustive()
    }
}

impl ReplayGuard {
    /// A guard accepting timestamps within `window_secs` of the clock; must be called inside
    /// a Tokio runtime (it starts the batch task).
    pub fn new(store: Arc<dyn Store>, window_secs: i64) -> Self {
        let batch_store = Arc::clone(&store);
        let advances = Batcher::start(65_536, 2_048, move |batch: Vec<(DeviceId, u64)>| {
            let store = Arc::clone(&batch_store);
            async move {
                let n = batch.len();
                match store.advance_device_counters(&batch).await {
                    Ok(results) if results.len() == n => results.into_iter().map(Ok).collect(),
                    Ok(_) => vec![Err("the store answered a counter batch short".into()); n],
                    Err(e) => vec![Err(e.to_string()); n],
                }
            }
        });
        Self {
            window_secs,
            known: Cache::builder().max_capacity(1_000_000).build(),
            store,
            advances,
        }
    }

    /// Refuses a timestamp outside the window around `now`.
    pub fn check_time(&self, timestamp: i64, now: UnixTime) -> Result<(), GatewayError> {
        if timestamp.abs_diff(now) > self.window_secs.unsigned_abs() {
            return Err(GatewayError::Replay("stale_timestamp"));
        }
        Ok(())
    }

    /// Reserves `counter` for `device`: `Err(Replay)` if it is not above every counter
    /// accepted for the device so far, on any node.
    pub async fn reserve(
        &self,
        device: &DeviceId,
        counter: u64,
    ) -> Result<Reservation, GatewayError> {
        if self.known.get(device).is_some_and(|known| counter <= known) {
            return Err(GatewayError::Replay("counter_not_increasing"));
        }
        let answer = self
            .advances
            .submit((device.clone(), counter))
            .await
            .map_err(|_| GatewayError::Unavailable("the replay guard is shutting down".into()))?
            .map_err(GatewayError::Unavailable)?;
        match answer {
            Some(previous) => {
                self.raise(device, counter);
                Ok(Reservation {
                    device: device.clone(),
                    counter,
                    previous,
                })
            }
            None => Err(GatewayError::Replay("counter_not_increasing")),
        }
    }

    /// Takes a reservation back after the sink refused the message, so the device can send
    /// it again. If a later counter was accepted meanwhile the store keeps that one (the
    /// retry will be refused as a replay, which it then is).
    pub async fn release(&self, reservation: Reservation) {
        self.known.invalidate(&reservation.device);
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
        // Monotonic per device: never lower what this node knows.
        self.known
            .entry(device.clone())
            .and_compute_with(|old| match old {
                Some(entry) if *entry.value() >= counter => moka::ops::compute::Op::Nop,
                _ => moka::ops::compute::Op::Put(counter),
            });
    }
}
