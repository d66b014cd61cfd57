//! Counters decided in memory (one node, embedded log: see `crate::replay`) reach the store
//! behind the messages, and are read back from the log after a crash.
//!
//! The log is what makes an acknowledged counter durable: each record holds its device's
//! counter, and the log is `fdatasync`ed before the device hears yes. The store's copy
//! (what `device counters`, `store copy` and the next start read) is brought up to date every
//! [`INTERVAL`] with one transaction, after which the log position it covers is recorded
//! ([`FLUSHED_SETTING`]). A crash loses at most the store's copy of the last interval's
//! counters; [`recover`] reads the log from the recorded position on and raises them
//! before the gateway accepts a message, so a message acknowledged before the crash is
//! still a replay after it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_core::device::DeviceId;
use portcullis_store::{swap_setting, Store};

use crate::replay::KnownCounters;
use crate::sink::embedded::EmbeddedLog;
use crate::sink::Sink;
use crate::GatewayError;

/// How often counters decided in memory are written to the store.
pub const INTERVAL: Duration = Duration::from_millis(100);
/// The settings record holding the log position up to which the store has every counter.
pub const FLUSHED_SETTING: &str = "gateway.counters_flushed_seq";
/// Log records read per page, and counters written per transaction, during recovery.
const PAGE: usize = 10_000;

/// Counters the sink holds and the store does not yet, in the order they were kept.
pub(crate) struct Behind {
    queue: Mutex<Queued>,
    /// Told each position the store comes to cover (it keeps the records after it).
    sink: Arc<dyn Sink>,
}

impl std::fmt::Debug for Behind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Behind")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Queued {
    counters: Vec<(DeviceId, u64)>,
    /// The sink's position once they were kept: every one of them lies at or below it.
    position: Option<u64>,
}

impl Behind {
    pub(crate) fn new(sink: Arc<dyn Sink>) -> Self {
        Self {
            queue: Mutex::default(),
            sink,
        }
    }

    pub(crate) fn queue(
        &self,
        counters: impl Iterator<Item = (DeviceId, u64)>,
        position: Option<u64>,
    ) {
        let mut queued = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        queued.counters.extend(counters);
        queued.position = queued.position.max(position);
    }

    fn take(&self) -> Queued {
        std::mem::take(
            &mut *self
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Puts back what could not be written, ahead of what was queued meanwhile.
    fn put_back(&self, mut failed: Queued) {
        let mut queued = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        failed.counters.append(&mut queued.counters);
        queued.counters = failed.counters;
        queued.position = queued.position.max(failed.position);
    }

    /// Writes what was queued every [`INTERVAL`], forever.
    pub(crate) async fn run(&self, store: &dyn Store, known: &KnownCounters) {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.flush(store, known).await;
        }
    }

    /// Writes what is queued now (also at a clean stop, so the store's copy is whole for
    /// `store copy`); on failure it stays queued.
    pub(crate) async fn flush(&self, store: &dyn Store, known: &KnownCounters) {
        let queued = self.take();
        if queued.counters.is_empty() && queued.position.is_none() {
            return;
        }
        if let Err(e) = write(store, &queued.counters).await {
            tracing::warn!(error = %e, counters = queued.counters.len(),
                "message counters could not be written to the store; retrying (the telemetry log keeps them)");
            self.put_back(queued);
            return;
        }
        for (device, count) in per_device(&queued.counters) {
            known.written(device, count);
        }
        if let Some(position) = queued.position {
            match record_flushed(store, position).await {
                Ok(()) => self.sink.covered_by_store(position),
                Err(e) => tracing::warn!(error = %e,
                    "the telemetry log position the store's counters cover was not recorded; a restart reads more of the log"),
            }
        }
    }
}

/// How many of `counters` belong to each device.
fn per_device(counters: &[(DeviceId, u64)]) -> HashMap<&DeviceId, u32> {
    let mut counts: HashMap<&DeviceId, u32> = HashMap::new();
    for (device, _) in counters {
        let n = counts.entry(device).or_default();
        *n = n.saturating_add(1);
    }
    counts
}

/// Raises the store's counters to the highest of `counters` per device (a counter already
/// at or above is left as it is). Not synced: a power cut may lose the last of these writes
/// and the position recorded after them, in that order, and recovery then reads more of the
/// log; the position recorded at a first start is made durable by the synced reservation
/// that precedes any in-memory decision (`crate::replay`).
async fn write(store: &dyn Store, counters: &[(DeviceId, u64)]) -> Result<(), GatewayError> {
    for chunk in counters.chunks(PAGE) {
        store
            .raise_device_counters(chunk)
            .await
            .map_err(|e| GatewayError::Unavailable(e.to_string()))?;
    }
    Ok(())
}

/// The log position up to which the store holds every counter, if one was recorded: what
/// the log must keep records after ([`EmbeddedLog::open_holding`]).
pub async fn covered(store: &dyn Store) -> Result<Option<u64>, GatewayError> {
    Ok(flushed_position(store).await?.map(|(_, position)| position))
}

async fn flushed_position(store: &dyn Store) -> Result<Option<(Vec<u8>, u64)>, GatewayError> {
    let Some(raw) = store
        .get_setting(FLUSHED_SETTING)
        .await
        .map_err(|e| GatewayError::Unavailable(e.to_string()))?
    else {
        return Ok(None);
    };
    let position = std::str::from_utf8(&raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| GatewayError::Internal(format!("{FLUSHED_SETTING} is not a number")))?;
    Ok(Some((raw, position)))
}

/// Records that the store has every counter at or below `position` (never moving back).
async fn record_flushed(store: &dyn Store, position: u64) -> Result<(), GatewayError> {
    for _ in 0..3 {
        let previous = flushed_position(store).await?;
        if previous.as_ref().is_some_and(|(_, p)| *p >= position) {
            return Ok(());
        }
        let swapped = swap_setting(
            store,
            FLUSHED_SETTING,
            previous.as_ref().map(|(raw, _)| raw.as_slice()),
            position.to_string().as_bytes(),
        )
        .await
        .map_err(|e| GatewayError::Unavailable(e.to_string()))?;
        if swapped {
            return Ok(());
        }
    }
    Err(GatewayError::Unavailable(format!(
        "{FLUSHED_SETTING} kept changing"
    )))
}

/// Before the first message: raises the store's counters to what the log holds beyond the
/// position the store was last known to cover, and records the log's end as covered.
/// Returns how many log records were read. A store that has never recorded a position
/// (a first start, or one before counters were decided in memory, when every counter was
/// in the store before its message was logged) starts covered at the log's end.
pub async fn recover(store: &dyn Store, log: &EmbeddedLog) -> Result<u64, GatewayError> {
    let end = log.last_seq();
    let Some((raw, mut from)) = flushed_position(store).await? else {
        record_flushed(store, end).await?;
        log.hold_after(end);
        return Ok(0);
    };
    if from > end {
        // The log is not the one the position was recorded in (its directory was emptied or
        // replaced): all of it is newer than the store's copy.
        tracing::warn!(
            recorded = from,
            end,
            "the telemetry log ends before the position the store's counters cover; reading it all"
        );
        let reset = swap_setting(store, FLUSHED_SETTING, Some(&raw), b"0")
            .await
            .map_err(|e| GatewayError::Unavailable(e.to_string()))?;
        if !reset {
            return Err(GatewayError::Unavailable(format!(
                "{FLUSHED_SETTING} changed while the gateway started"
            )));
        }
        from = 0;
    }
    let mut after = from;
    let mut read = 0u64;
    let mut highest: HashMap<String, u64> = HashMap::new();
    loop {
        let page = log
            .read_after(after, PAGE, None)
            .await
            .map_err(|e| GatewayError::Unavailable(format!("the telemetry log: {}", e.0)))?;
        let Some(last) = page.last() else { break };
        if read == 0 && page.first().is_some_and(|first| first.seq > from + 1) {
            // Retention removed records the store's copy never covered: their counters are
            // lost, and those messages could be accepted again within the window.
            tracing::error!(
                from,
                first = page.first().map(|f| f.seq),
                "the telemetry log no longer holds every record after the store's counters; counters of the missing records are unknown"
            );
        }
        after = last.seq;
        read += page.len() as u64;
        for stored in page {
            if let Some(counter) = stored.record.counter {
                let high = highest.entry(stored.record.device_id).or_default();
                *high = (*high).max(counter);
            }
        }
    }
    let counters: Vec<(DeviceId, u64)> = highest
        .into_iter()
        .filter_map(|(id, counter)| Some((DeviceId::parse(id).ok()?, counter)))
        .collect();
    write(store, &counters).await?;
    record_flushed(store, after.max(end)).await?;
    log.hold_after(after.max(end));
    if read > 0 {
        tracing::info!(
            records = read,
            devices = counters.len(),
            "message counters recovered from the telemetry log"
        );
    }
    Ok(read)
}
