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
//!
//! **One node, embedded log** ([`ReplayGuard::deciding_locally`]): when no other node shares
//! the store (SQLite) and the sink is the embedded log, nobody else can advance a counter,
//! so what this node remembers is not a hint but the value itself. A device's first message
//! since start is reserved in the store as above, which tells the exact counter; from then
//! on its counters are decided in memory, and the message's own durable write — the log's
//! `fdatasync`, which records the counter with the message — is the only one on its path.
//! The store is brought up to date behind ([`crate::counters_behind`]), and after a crash
//! the counters of whatever the log holds beyond the last such write are read back from the
//! log before the gateway serves ([`crate::counters_behind::recover`]). An entry whose
//! counter is not yet in the store is never forgotten.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use portcullis_core::device::DeviceId;
use portcullis_core::UnixTime;
use portcullis_store::Store;

use crate::counters_behind::Behind;
use crate::sink::Sink;
use crate::GatewayError;

/// A reserved counter: the message may go to the sink.
#[derive(Debug)]
#[must_use = "a reservation is either kept (the sink took the message) or released"]
pub struct Reservation {
    device: DeviceId,
    counter: u64,
    previous: u64,
    /// Decided in memory (not yet in the store) rather than by a store write.
    local: bool,
}

pub struct ReplayGuard {
    window_secs: i64,
    known: KnownCounters,
    store: Arc<dyn Store>,
    /// Set when this node alone decides counters (see the module docs).
    behind: Option<Behind>,
}

impl std::fmt::Debug for ReplayGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayGuard")
            .field("window_secs", &self.window_secs)
            .field("local", &self.behind.is_some())
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
    /// A guard accepting timestamps within `window_secs` of the clock; every counter is
    /// reserved in the store.
    pub fn new(store: Arc<dyn Store>, window_secs: i64) -> Self {
        Self {
            window_secs,
            known: KnownCounters::new(1_000_000),
            store,
            behind: None,
        }
    }

    /// A guard for a node that alone writes `store` and whose sink it can read back: known
    /// devices' counters are decided in memory and written to the store behind. The caller
    /// runs [`crate::counters_behind::recover`] before the first message, and the ingest
    /// pipeline starts the writer ([`ReplayGuard::write_behind`]).
    /// `sink` is told each position the store comes to cover, so that it keeps what the
    /// store does not hold yet.
    pub fn deciding_locally(store: Arc<dyn Store>, window_secs: i64, sink: Arc<dyn Sink>) -> Self {
        Self {
            behind: Some(Behind::new(sink)),
            ..Self::new(store, window_secs)
        }
    }

    /// Whether counters are decided in memory.
    pub fn is_local(&self) -> bool {
        self.behind.is_some()
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

    /// Reserves each `(device, counter)` in order: `Err(Replay)` for a counter not above
    /// every counter accepted for its device so far, on any node (earlier entries of the
    /// same batch included). One store write for all of them — or, deciding locally, none
    /// for the devices whose exact counter this node holds.
    pub async fn reserve_all(
        &self,
        wanted: &[(DeviceId, u64)],
    ) -> Vec<Result<Reservation, GatewayError>> {
        if self.behind.is_none() {
            return self.reserve_in_store(wanted).await;
        }
        let mut out: Vec<Option<Result<Reservation, GatewayError>>> =
            wanted.iter().map(|_| None).collect();
        // A device not held exactly at the batch's start goes to the store for every one of
        // its entries in this batch, so its entries are still judged in order.
        let mut via_store: HashSet<&DeviceId> = HashSet::new();
        let mut to_store = Vec::new();
        for (i, (device, counter)) in wanted.iter().enumerate() {
            if !via_store.contains(device) {
                match self.reserve_known(device, *counter) {
                    Some(verdict) => {
                        if let Some(slot) = out.get_mut(i) {
                            *slot = Some(verdict);
                        }
                        continue;
                    }
                    None => {
                        via_store.insert(device);
                    }
                }
            }
            to_store.push((i, (device.clone(), *counter)));
        }
        if !to_store.is_empty() {
            let (at, batch): (Vec<usize>, Vec<(DeviceId, u64)>) = to_store.into_iter().unzip();
            for (i, verdict) in at.into_iter().zip(self.reserve_in_store(&batch).await) {
                if let Some(slot) = out.get_mut(i) {
                    *slot = Some(verdict);
                }
            }
        }
        out.into_iter()
            .map(|verdict| {
                verdict.unwrap_or_else(|| {
                    Err(GatewayError::Internal(
                        "a counter verdict is missing".into(),
                    ))
                })
            })
            .collect()
    }

    /// Deciding locally, reserves a counter of a device whose exact counter this node holds:
    /// in memory, at once. `None` when the store must decide (counters are not decided
    /// locally, or the device is not held exactly): [`Self::reserve_all`] then.
    pub fn reserve_known(
        &self,
        device: &DeviceId,
        counter: u64,
    ) -> Option<Result<Reservation, GatewayError>> {
        self.behind.as_ref()?;
        let verdict = self.known.reserve_exact(device, counter)?;
        Some(verdict.map(|previous| Reservation {
            device: device.clone(),
            counter,
            previous,
            local: true,
        }))
    }

    /// One store write for the batch; each accepted counter is then known (exactly, when
    /// deciding locally: nobody else writes the store).
    async fn reserve_in_store(
        &self,
        wanted: &[(DeviceId, u64)],
    ) -> Vec<Result<Reservation, GatewayError>> {
        // Synced even when deciding locally: every in-memory decision about a device then
        // follows a durable commit made since start, and so does the recorded log position
        // recovery starts from (`counters_behind`, whose own writes are not synced).
        let answers = match self.store.advance_device_counters(wanted).await {
            Ok(answers) if answers.len() == wanted.len() => answers,
            Ok(_) => {
                let e = "the store answered a counter batch short";
                return unavailable_all(wanted.len(), e);
            }
            Err(e) => return unavailable_all(wanted.len(), &e.to_string()),
        };
        let exact = self.behind.is_some();
        wanted
            .iter()
            .zip(answers)
            .map(|((device, counter), answer)| match answer {
                Some(previous) => {
                    self.known.raise(device, *counter, exact);
                    Ok(Reservation {
                        device: device.clone(),
                        counter: *counter,
                        previous,
                        local: false,
                    })
                }
                None => Err(GatewayError::Replay("counter_not_increasing")),
            })
            .collect()
    }

    /// The sink holds the messages of `kept` (in the order they were reserved) at or below
    /// `position`: counters decided in memory are queued for the store.
    pub fn kept(&self, kept: Vec<Reservation>, position: Option<u64>) {
        if let Some(behind) = &self.behind {
            let local = kept
                .into_iter()
                .filter(|r| r.local)
                .map(|r| (r.device, r.counter));
            behind.queue(local, position);
        }
    }

    /// Takes a reservation back after the sink refused the message, so the device can send
    /// it again. If a later counter was accepted meanwhile the store keeps that one (the
    /// retry will be refused as a replay, which it then is).
    pub async fn release(&self, reservation: Reservation) {
        if reservation.local {
            let _ = self.release_known(reservation);
            return;
        }
        if self.behind.is_some() && self.known.get(&reservation.device) != Some(reservation.counter)
        {
            // A later counter of the device was decided in memory since (and is not in the
            // store yet): it stays, as the store's conditional revert decides on a shared
            // store.
            return;
        }
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

    /// Takes back, at once, a reservation decided in memory ([`Self::reserve_known`]); gives
    /// the counter it held, to be judged again elsewhere. A device's reservations are taken
    /// back newest first (each undoes only the latest).
    pub fn release_known(&self, reservation: Reservation) -> (DeviceId, u64) {
        debug_assert!(
            reservation.local,
            "a store's reservation is released by release"
        );
        self.known.give_back(
            &reservation.device,
            reservation.counter,
            reservation.previous,
        );
        (reservation.device, reservation.counter)
    }

    /// Writes the counters decided in memory and not yet written to the store, now.
    pub async fn flush(&self) {
        if let Some(behind) = &self.behind {
            behind.flush(&*self.store, &self.known).await;
        }
    }

    /// Writes the counters decided in memory to the store, every interval, forever.
    pub async fn write_behind(self: Arc<Self>) {
        let Some(behind) = &self.behind else { return };
        behind.run(&*self.store, &self.known).await;
    }
}

/// What this node holds of one device's counter.
#[derive(Debug, Clone, Copy)]
struct Known {
    /// The highest counter known to be accepted.
    counter: u64,
    /// `counter` is the device's counter itself, not a lower bound (deciding locally).
    exact: bool,
    /// Counters decided in memory and not yet in the store: the entry must stay.
    unwritten: u32,
}

/// The highest counter this node knows is accepted, per device: a hint that spares the store
/// a round trip for an obvious replay — or, deciding locally, the counter itself. Sharded
/// maps under short locks: it is read and raised once per message, where a general cache's
/// bookkeeping (moka's) cost more than the lookup. Bounded by forgetting a whole shard when
/// it is full — except entries the store does not have yet; forgetting only costs a round
/// trip.
pub(crate) struct KnownCounters {
    shards: [Mutex<HashMap<DeviceId, Known>>; SHARDS],
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

    fn shard(&self, device: &DeviceId) -> std::sync::MutexGuard<'_, HashMap<DeviceId, Known>> {
        let i = usize::try_from(self.hasher.hash_one(device) % SHARDS as u64).unwrap_or(0);
        #[allow(clippy::indexing_slicing)] // i < SHARDS, the array's length
        let shard = &self.shards[i];
        shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, device: &DeviceId) -> Option<u64> {
        self.shard(device).get(device).map(|k| k.counter)
    }

    /// Monotonic per device: never lowers what this node knows.
    fn raise(&self, device: &DeviceId, counter: u64, exact: bool) {
        let mut shard = self.shard(device);
        if let Some(known) = shard.get_mut(device) {
            known.counter = known.counter.max(counter);
            known.exact |= exact;
            return;
        }
        if shard.len() >= self.per_shard {
            shard.retain(|_, k| k.unwritten > 0);
        }
        shard.insert(
            device.clone(),
            Known {
                counter,
                exact,
                unwritten: 0,
            },
        );
    }

    /// Decides `counter` in memory if the device's exact counter is held: `Some(Ok(previous))`
    /// (now reserved), `Some(Err(Replay))`, or `None` (not held: ask the store).
    fn reserve_exact(&self, device: &DeviceId, counter: u64) -> Option<Result<u64, GatewayError>> {
        let mut shard = self.shard(device);
        let known = shard.get_mut(device).filter(|k| k.exact)?;
        if counter <= known.counter {
            return Some(Err(GatewayError::Replay("counter_not_increasing")));
        }
        let previous = known.counter;
        known.counter = counter;
        known.unwritten = known.unwritten.saturating_add(1);
        Some(Ok(previous))
    }

    /// Undoes an in-memory reservation the sink refused: back to `previous` unless a later
    /// counter was accepted meanwhile.
    fn give_back(&self, device: &DeviceId, counter: u64, previous: u64) {
        if let Some(known) = self.shard(device).get_mut(device) {
            if known.counter == counter {
                known.counter = previous;
            }
            known.unwritten = known.unwritten.saturating_sub(1);
        }
    }

    /// `count` in-memory reservations of the device are now in the store.
    pub(crate) fn written(&self, device: &DeviceId, count: u32) {
        if let Some(known) = self.shard(device).get_mut(device) {
            known.unwritten = known.unwritten.saturating_sub(count);
        }
    }

    fn forget(&self, device: &DeviceId) {
        let mut shard = self.shard(device);
        if shard.get(device).is_some_and(|k| k.unwritten == 0) {
            shard.remove(device);
        }
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
        known.raise(&d, 7, false);
        known.raise(&d, 3, false);
        assert_eq!(known.get(&d), Some(7));
        known.forget(&d);
        assert_eq!(known.get(&d), None);
    }

    #[test]
    fn known_counters_stay_within_their_bound() {
        let known = KnownCounters::new(SHARDS * 4);
        for n in 0..10_000 {
            known.raise(&device(n), 1, false);
        }
        let held: usize = known.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(held <= SHARDS * 4, "{held} entries held");
        // The latest one is remembered.
        assert_eq!(known.get(&device(9_999)), Some(1));
    }

    #[test]
    fn a_counter_decided_in_memory_is_kept_until_written_to_the_store() {
        let known = KnownCounters::new(SHARDS);
        let pinned = device(0);
        known.raise(&pinned, 1, true);
        assert_eq!(known.reserve_exact(&pinned, 2).unwrap().unwrap(), 1);
        assert!(
            known.reserve_exact(&pinned, 2).unwrap().is_err(),
            "a replay"
        );
        // Enough other devices to fill every shard several times over.
        for n in 1..2_000 {
            known.raise(&device(n), 1, true);
        }
        assert_eq!(known.get(&pinned), Some(2), "not forgotten while unwritten");
        known.written(&pinned, 1);
        known.forget(&pinned);
        assert_eq!(known.get(&pinned), None, "forgettable once written");
        assert!(
            known.reserve_exact(&pinned, 3).is_none(),
            "unknown: ask the store"
        );
    }

    #[test]
    fn a_counter_given_back_restores_the_previous_one_unless_a_later_one_was_taken() {
        let known = KnownCounters::new(SHARDS);
        let d = device(1);
        known.raise(&d, 4, true);
        assert_eq!(known.reserve_exact(&d, 5).unwrap().unwrap(), 4);
        known.give_back(&d, 5, 4);
        assert_eq!(known.get(&d), Some(4));
        assert_eq!(known.reserve_exact(&d, 5).unwrap().unwrap(), 4);
        assert_eq!(known.reserve_exact(&d, 6).unwrap().unwrap(), 5);
        known.give_back(&d, 5, 4);
        assert_eq!(known.get(&d), Some(6), "the later counter stands");
    }

    /// The shared store's rule, kept when the later counter is only in memory: a refused
    /// message's counter is given back unless a later one was reserved since.
    #[tokio::test]
    async fn a_store_reservation_given_back_after_a_later_one_in_memory_leaves_the_later_one() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("store.db").display());
        let store = portcullis_store::open(&url).await.unwrap();
        let log = crate::sink::embedded::EmbeddedLog::open(
            &dir.path().join("telemetry"),
            crate::sink::embedded::EmbeddedOptions::default(),
        )
        .unwrap();
        let guard = ReplayGuard::deciding_locally(store, 300, Arc::new(log));
        let d = device(3);
        let mut first = guard.reserve_all(&[(d.clone(), 1)]).await;
        let r1 = first.remove(0).unwrap();
        assert!(!r1.local, "unknown: reserved in the store");
        let r2 = guard
            .reserve_all(&[(d.clone(), 2)])
            .await
            .remove(0)
            .unwrap();
        assert!(r2.local, "known: decided in memory");
        // Both messages refused by the sink, the first one first.
        guard.release(r1).await;
        guard.release(r2).await;
        let stored = guard.store.list_device_counters(None, 10).await.unwrap();
        assert_eq!(
            stored,
            [(d.clone(), 1)],
            "counter 1 stays spent in the store too"
        );
        let again = |n| {
            let guard = &guard;
            let d = d.clone();
            async move { guard.reserve_all(&[(d, n)]).await.remove(0) }
        };
        assert!(
            again(1).await.is_err(),
            "counter 2 had been reserved after it"
        );
        assert!(again(2).await.unwrap().local);
    }

    #[test]
    fn a_hint_is_never_decided_in_memory() {
        let known = KnownCounters::new(SHARDS);
        let d = device(2);
        known.raise(&d, 4, false);
        assert!(known.reserve_exact(&d, 5).is_none());
    }
}
