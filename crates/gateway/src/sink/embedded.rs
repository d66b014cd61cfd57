//! The embedded sink: an append-only log in the data directory, needing no setup.
//!
//! Layout: `<dir>/<first seq, 20 digits>.ndjson` segments, one JSON object per line (a
//! [`StoredTelemetry`]: the record and its position `seq`). Appends are group-committed: the
//! gateway's pipeline (`crate::ingest`) hands over every message that queued while the
//! previous write ran, written with one `write`. The fsync policy ([`SyncPolicy`]) says
//! when that write is made durable:
//! - [`SyncPolicy::EveryBatch`] (the default): one `fdatasync` before any message of the batch
//!   is acknowledged, so `kill -9` — or a power cut, given honest disks — loses no
//!   acknowledged message;
//! - [`SyncPolicy::Interval`]: a batch is acknowledged once written (it is then in the kernel's
//!   page cache, which outlives the process: `kill -9` still loses nothing) and the log is
//!   `fdatasync`ed once per interval by a task of its own, as PostgreSQL does with
//!   `synchronous_commit = off` and NATS JetStream by default; a crash of the OS or a power cut
//!   may lose the acknowledged messages of the last interval. Readers see only synced records,
//!   so what a reader saw is never lost and never re-used for another record. A failed
//!   `fdatasync` (the kernel may have dropped the pages) refuses every later append until the
//!   node restarts: acknowledging on top of a hole would hide it.
//!
//! A segment is closed at `segment_bytes`; whole
//! segments are deleted, oldest first, when the log exceeds `max_bytes` or a segment's last
//! write is older than `max_age` — except a segment holding records the store's message
//! counters do not cover yet ([`EmbeddedLog::open_holding`]): after a crash those records are
//! the only copy of their devices' counters (`crate::counters_behind`), so the bounds wait
//! for the store (with a warning) rather than let a message be accepted twice.
//!
//! After a crash the last segment may end in a torn line (a batch that was being written and
//! so was never acknowledged): start-up cuts the file back to its last complete record.
//! Readers never see past the committed length, so a reader cannot observe a message before
//! it is acknowledged.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{NotInPlace, Sink, SinkError, TelemetryRecord};

/// When the log's writes are made durable (the module's doc says what each one promises).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// `fdatasync` before a batch is acknowledged.
    #[default]
    EveryBatch,
    /// Acknowledged once written; `fdatasync` once per this interval.
    Interval(Duration),
}

/// Bounds and fsync policy of the embedded log.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    pub segment_bytes: u64,
    pub max_bytes: u64,
    pub max_age: Duration,
    pub sync: SyncPolicy,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
            max_bytes: 1 << 30,
            max_age: Duration::from_secs(7 * 24 * 3600),
            sync: SyncPolicy::EveryBatch,
        }
    }
}

/// A record as the log holds it: its position and the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTelemetry {
    pub seq: u64,
    #[serde(flatten)]
    pub record: TelemetryRecord,
}

/// A position in the log: how far it is written, or how far durable (what readers may see).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Committed {
    /// The last position (0 = none yet).
    seq: u64,
    /// The segment being written and its length up to that position.
    segment: u64,
    len: u64,
}

struct Writer {
    dir: PathBuf,
    limits: EmbeddedOptions,
    file: File,
    segment: u64,
    len: u64,
    next_seq: u64,
    /// Records after this position are kept whatever the bounds say (`u64::MAX`: none is).
    hold: Arc<AtomicU64>,
    /// Set once the log cannot vouch for what it holds (a sync of what is acknowledged
    /// failed, a new segment's name could not be made durable, or a refused batch could not
    /// be taken back): no append is taken after it.
    stopped: Option<String>,
}

/// The embedded log; cheap to share.
#[derive(Clone)]
pub struct EmbeddedLog {
    dir: PathBuf,
    committed: watch::Receiver<Committed>,
    committed_tx: Arc<watch::Sender<Committed>>,
    writer: Arc<Mutex<Writer>>,
    hold: Arc<AtomicU64>,
    sync: SyncPolicy,
    /// Whether the interval's `fdatasync` task runs (started by the first append).
    syncing: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLog")
            .field("dir", &self.dir)
            .field("committed", &self.committed.borrow().seq)
            .finish()
    }
}

/// 1 while the log takes no appends until restart ([`EmbeddedLog::stopped`]), else 0: for
/// an alert that pages someone (`/readyz` only tells the load balancer).
const STOPPED_METRIC: &str = "portcullis_gateway_log_stopped";

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.ndjson"))
}

/// The segments in the directory, by first position.
fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut firsts: Vec<u64> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name();
            let name = name.to_str()?;
            name.strip_suffix(".ndjson")?.parse().ok()
        })
        .collect();
    firsts.sort_unstable();
    Ok(firsts)
}

/// Cuts a segment back to its last complete, parseable record; returns (length, last seq).
fn recover_segment(path: &Path) -> io::Result<(u64, Option<u64>)> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut reader = BufReader::new(&mut file);
    let mut good_len = 0u64;
    let mut last = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        match serde_json::from_slice::<StoredTelemetry>(&line) {
            Ok(stored) => {
                last = Some(stored.seq);
                good_len += n as u64;
            }
            Err(_) => break,
        }
    }
    drop(reader);
    if file.metadata()?.len() != good_len {
        tracing::warn!(
            segment = %path.display(),
            kept = good_len,
            "telemetry log ended in an unfinished write (never acknowledged); cut it back"
        );
        file.set_len(good_len)?;
        file.sync_all()?;
    }
    Ok((good_len, last))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Writer {
    fn open(dir: &Path, limits: EmbeddedOptions, hold: Arc<AtomicU64>) -> io::Result<Writer> {
        fs::create_dir_all(dir)?;
        let firsts = segments(dir)?;
        let (segment, len, next_seq) = match firsts.last() {
            Some(&first) => {
                let (len, last) = recover_segment(&segment_path(dir, first))?;
                (first, len, last.map_or(first, |s| s + 1))
            }
            None => (1, 0, 1),
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(dir, segment))?;
        // What a killed node wrote under the interval policy may still be only in the page
        // cache: readers are about to see it, so it is made durable first.
        file.sync_data()?;
        sync_dir(dir)?;
        Ok(Writer {
            dir: dir.to_owned(),
            limits,
            file,
            segment,
            len,
            next_seq,
            hold,
            stopped: None,
        })
    }

    fn committed(&self) -> Committed {
        Committed {
            seq: self.next_seq - 1,
            segment: self.segment,
            len: self.len,
        }
    }

    /// Writes a batch (and makes it durable under [`SyncPolicy::EveryBatch`]); on failure
    /// nothing of it stays.
    fn append(&mut self, records: Vec<TelemetryRecord>) -> io::Result<Vec<u64>> {
        if let Some(why) = &self.stopped {
            return Err(io::Error::other(format!(
                "the telemetry log is stopped ({why}); restart the node"
            )));
        }
        if self.len >= self.limits.segment_bytes {
            self.rotate()?;
        }
        let mut buf = Vec::with_capacity(records.len() * 512);
        let mut seqs = Vec::with_capacity(records.len());
        for (i, record) in records.into_iter().enumerate() {
            let seq = self.next_seq + i as u64;
            serde_json::to_writer(&mut buf, &StoredTelemetry { seq, record })?;
            buf.push(b'\n');
            seqs.push(seq);
        }
        let every_batch = self.limits.sync == SyncPolicy::EveryBatch;
        let written = self.file.write_all(&buf).and_then(|()| {
            if every_batch {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            // Take back whatever part of the batch reached the file: none of it is
            // acknowledged, and a later batch must not follow a torn line (the readers would
            // stop at it). If even that fails, nothing more is appended: at the next start
            // the torn line is the last one, and cut.
            if let Err(cut) = self.file.set_len(self.len) {
                stop(self, TAKE_BACK_FAILED, &cut);
            }
            return Err(e);
        }
        self.len += buf.len() as u64;
        self.next_seq += seqs.len() as u64;
        Ok(seqs)
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.limits.sync != SyncPolicy::EveryBatch {
            // The interval's task syncs only the segment being written. This segment holds
            // acknowledged records: a failure here is the interval sync's failure.
            if let Err(e) = self.file.sync_data() {
                stop(self, SYNC_FAILED, &e);
                return Err(e);
            }
        }
        let path = segment_path(&self.dir, self.next_seq);
        self.file = OpenOptions::new().create(true).append(true).open(path)?;
        self.segment = self.next_seq;
        self.len = 0;
        // The new segment's name must be durable before a record in it is acknowledged;
        // after a failed directory sync nothing says it is, so the log stops, as after any
        // failed sync (appending on would acknowledge records a power cut could unname).
        if let Err(e) = sync_dir(&self.dir) {
            stop(self, DIR_SYNC_FAILED, &e);
            return Err(e);
        }
        self.enforce_retention()
    }

    /// Deletes whole closed segments, oldest first, past the size or age bound, but none
    /// holding a record after the hold.
    fn enforce_retention(&self) -> io::Result<()> {
        let firsts = segments(&self.dir)?;
        let mut sized: Vec<(u64, u64, SystemTime)> = Vec::new();
        for &first in &firsts {
            let meta = fs::metadata(segment_path(&self.dir, first))?;
            sized.push((first, meta.len(), meta.modified()?));
        }
        let mut total: u64 = sized.iter().map(|s| s.1).sum();
        let now = SystemTime::now();
        let hold = self.hold.load(Ordering::Acquire);
        // A closed segment's last record is just before the next segment's first; the zip
        // leaves out the last segment, the one being written.
        let nexts = firsts.iter().skip(1);
        for ((first, len, modified), next) in sized.into_iter().zip(nexts) {
            let too_old = now
                .duration_since(modified)
                .is_ok_and(|age| age > self.limits.max_age);
            if total <= self.limits.max_bytes && !too_old {
                break;
            }
            if next.saturating_sub(1) > hold {
                tracing::warn!(
                    segment = first,
                    covered = hold,
                    "the telemetry log is past its bounds but keeps records the store's message counters do not cover yet"
                );
                break;
            }
            fs::remove_file(segment_path(&self.dir, first))?;
            total -= len;
        }
        Ok(())
    }
}

impl EmbeddedLog {
    /// Opens (or creates) the log in `dir`, recovering from an unfinished write.
    pub fn open(dir: &Path, limits: EmbeddedOptions) -> io::Result<EmbeddedLog> {
        Self::open_holding(dir, limits, u64::MAX)
    }

    /// [`Self::open`] for a node deciding message counters in memory: records after
    /// `covered` (the position up to which the store holds every counter; `u64::MAX`: no
    /// hold) survive the bounds until the store covers them ([`Self::hold_after`],
    /// [`Sink::covered_by_store`]). A `covered` beyond the log's end (a log emptied or
    /// replaced) holds all of it.
    pub fn open_holding(
        dir: &Path,
        limits: EmbeddedOptions,
        covered: u64,
    ) -> io::Result<EmbeddedLog> {
        let hold = Arc::new(AtomicU64::new(u64::MAX));
        let sync = limits.sync;
        let writer = Writer::open(dir, limits, Arc::clone(&hold))?;
        let last = writer.next_seq - 1;
        hold.store(
            if covered != u64::MAX && covered > last {
                0
            } else {
                covered
            },
            Ordering::Release,
        );
        writer.enforce_retention()?;
        metrics::gauge!(STOPPED_METRIC).set(0.0);
        let (committed_tx, committed) = watch::channel(writer.committed());
        Ok(EmbeddedLog {
            dir: dir.to_owned(),
            committed,
            committed_tx: Arc::new(committed_tx),
            writer: Arc::new(Mutex::new(writer)),
            hold,
            sync,
            syncing: Arc::default(),
        })
    }

    /// The position after which records are kept whatever the bounds say.
    #[cfg(test)]
    pub(crate) fn held_after(&self) -> u64 {
        self.hold.load(Ordering::Acquire)
    }

    /// Sets the position after which records are kept whatever the bounds say (recovery
    /// sets it to what it recorded; later flushes only raise it).
    pub fn hold_after(&self, covered: u64) {
        self.hold.store(covered, Ordering::Release);
    }

    /// Appends one record; returns its position once it is durable.
    pub async fn append(&self, record: TelemetryRecord) -> Result<u64, SinkError> {
        let seqs = self.append_all(vec![record]).await?;
        seqs.first()
            .copied()
            .ok_or_else(|| SinkError("the telemetry log gave no position".into()))
    }

    /// Appends records with one write (and one `fdatasync` under [`SyncPolicy::EveryBatch`]);
    /// returns their positions once they are written as the policy says. On failure none of
    /// them is kept.
    pub async fn append_all(&self, records: Vec<TelemetryRecord>) -> Result<Vec<u64>, SinkError> {
        let writer = Arc::clone(&self.writer);
        let committed_tx = Arc::clone(&self.committed_tx);
        let seqs = tokio::task::spawn_blocking(move || {
            let mut w = writer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            write_locked(&mut w, &committed_tx, records)
        })
        .await
        .map_err(|e| SinkError(e.to_string()))??;
        self.start_interval_sync();
        Ok(seqs)
    }

    /// Under [`SyncPolicy::Interval`], starts the task that syncs the log (once; it ends when
    /// the log is dropped). Started by an append rather than by `open`, which may run outside
    /// a runtime.
    fn start_interval_sync(&self) {
        let SyncPolicy::Interval(every) = self.sync else {
            return;
        };
        // Called for every write in place: a read first, so that the flag's cache line is
        // not written (and bounced between cores) once the task runs.
        if self.syncing.load(Ordering::Acquire) || self.syncing.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::spawn(sync_every(
            Arc::downgrade(&self.writer),
            Arc::clone(&self.committed_tx),
            every,
        ));
    }

    /// Why the log takes no more appends until the node restarts (see where `stop` is called),
    /// or `None` while it takes them. `/readyz` reports it, so a load balancer sends devices
    /// to other nodes until this one is restarted.
    pub fn stopped(&self) -> Option<String> {
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .stopped
            .clone()
    }

    /// The last durable position (0 when the log is empty).
    pub fn last_seq(&self) -> u64 {
        self.committed.borrow().seq
    }

    /// Waits until a position after `after` is durable, or `timeout` passes.
    pub async fn wait_after(&self, after: u64, timeout: Duration) {
        let mut rx = self.committed.clone();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|c| c.seq > after)).await;
    }

    /// Up to `limit` records after position `after` (oldest first), only durable ones,
    /// optionally of one device. Positions deleted by retention are skipped: the first
    /// record returned may be later than `after + 1`.
    pub async fn read_after(
        &self,
        after: u64,
        limit: usize,
        device: Option<String>,
    ) -> Result<Vec<StoredTelemetry>, SinkError> {
        let dir = self.dir.clone();
        let committed = *self.committed.borrow();
        tokio::task::spawn_blocking(move || read_segments(&dir, committed, after, limit, device))
            .await
            .map_err(|e| SinkError(e.to_string()))?
            .map_err(|e| SinkError(e.to_string()))
    }
}

/// Appends records, the writer's lock held (and publishes the committed position under
/// [`SyncPolicy::EveryBatch`]); blocks for the write, and for the `fdatasync` under that
/// policy.
fn write_locked(
    w: &mut Writer,
    committed_tx: &watch::Sender<Committed>,
    records: Vec<TelemetryRecord>,
) -> Result<Vec<u64>, SinkError> {
    let seqs = w.append(records).map_err(|e| {
        tracing::error!(error = %e, "the telemetry log cannot be written");
        SinkError(e.to_string())
    })?;
    if w.limits.sync == SyncPolicy::EveryBatch {
        // Published under the lock: readers never see the committed position go back.
        committed_tx.send_replace(w.committed());
    }
    Ok(seqs)
}

/// Syncs what was written since the last time, once per `every`, and lets readers see it;
/// ends when the log is dropped or a sync fails.
async fn sync_every(
    writer: std::sync::Weak<Mutex<Writer>>,
    committed: Arc<watch::Sender<Committed>>,
    every: Duration,
) {
    // The first sync one interval after the first append, not at once.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(writer) = writer.upgrade() else {
            return;
        };
        // Under this policy only this task publishes: what readers see is what was synced.
        let synced = committed.borrow().seq;
        match tokio::task::spawn_blocking(move || sync_written(&writer, synced)).await {
            Ok(Ok(Some(synced))) => {
                committed.send_if_modified(|seen| {
                    let newer = synced.seq > seen.seq;
                    if newer {
                        *seen = synced;
                    }
                    newer
                });
            }
            Ok(Ok(None)) => {}
            Ok(Err(())) | Err(_) => return,
        }
    }
}

/// Makes what is written beyond position `synced` durable, without holding the writer's lock
/// through the `fdatasync`; returns the position it covers (`None`: nothing new). On failure
/// the log takes no more appends.
fn sync_written(writer: &Mutex<Writer>, synced: u64) -> Result<Option<Committed>, ()> {
    let lock = || {
        writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let (written, file) = {
        let w = lock();
        let written = w.committed();
        if written.seq <= synced {
            return Ok(None);
        }
        // The same open file: syncing it syncs the segment being written, even if the
        // writer moves to the next one meanwhile (it syncs a segment before leaving it).
        match w.file.try_clone() {
            Ok(file) => (written, file),
            Err(e) => {
                drop(w);
                stop(&mut lock(), SYNC_FAILED, &e);
                return Err(());
            }
        }
    };
    if let Err(e) = file.sync_data() {
        stop(&mut lock(), SYNC_FAILED, &e);
        return Err(());
    }
    Ok(Some(written))
}

const SYNC_FAILED: &str = "the telemetry log could not be synced (acknowledged messages since the last sync may be lost on a power cut)";
const TAKE_BACK_FAILED: &str = "a refused batch could not be taken back from the telemetry log";
const DIR_SYNC_FAILED: &str =
    "the telemetry log's directory could not be synced after a new segment";

/// Takes no more appends until the node restarts, and says why ([`EmbeddedLog::stopped`],
/// `/readyz`, the gauge).
fn stop(w: &mut Writer, what: &str, e: &io::Error) {
    tracing::error!(error = %e, "{what}; no more telemetry is taken until the node restarts");
    w.stopped = Some(format!("{what}: {e}"));
    metrics::gauge!(STOPPED_METRIC).set(1.0);
}

impl Drop for Writer {
    /// A clean stop under the interval policy leaves nothing unsynced.
    fn drop(&mut self) {
        if self.limits.sync != SyncPolicy::EveryBatch {
            let _ = self.file.sync_data();
        }
    }
}

fn read_segments(
    dir: &Path,
    committed: Committed,
    after: u64,
    limit: usize,
    device: Option<String>,
) -> io::Result<Vec<StoredTelemetry>> {
    let mut out = Vec::new();
    if committed.seq <= after || limit == 0 {
        return Ok(out);
    }
    let firsts = segments(dir)?;
    // Start in the last segment whose first position is at or before `after + 1`.
    let start = firsts
        .iter()
        .rposition(|&f| f <= after.saturating_add(1))
        .unwrap_or(0);
    for &first in firsts.iter().skip(start) {
        if first > committed.seq {
            break;
        }
        let file = match File::open(segment_path(dir, first)) {
            Ok(f) => f,
            // Deleted by retention between the listing and now.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let readable = if first == committed.segment {
            committed.len
        } else {
            u64::MAX
        };
        let mut reader = BufReader::new(file.take(readable));
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            let Ok(stored) = serde_json::from_slice::<StoredTelemetry>(&line) else {
                break;
            };
            if stored.seq <= after || stored.seq > committed.seq {
                continue;
            }
            if device
                .as_deref()
                .is_some_and(|d| d != stored.record.device_id)
            {
                continue;
            }
            out.push(stored);
            if out.len() >= limit {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

#[async_trait]
impl Sink for EmbeddedLog {
    async fn put(&self, record: TelemetryRecord) -> Result<(), SinkError> {
        self.append(record).await.map(|_| ())
    }

    async fn put_batch(&self, records: Vec<TelemetryRecord>) -> Vec<Result<(), SinkError>> {
        let n = records.len();
        match self.append_all(records).await {
            Ok(_) => (0..n).map(|_| Ok(())).collect(),
            Err(e) => (0..n).map(|_| Err(SinkError(e.0.clone()))).collect(),
        }
    }

    /// Under the interval policy an append is a `write` into the page cache: acknowledged
    /// once written (what `kill -9` cannot take), synced behind by its own task.
    fn writes_in_place(&self) -> bool {
        matches!(self.sync, SyncPolicy::Interval(_))
    }

    /// Declines under the other policy, and when the segment is full: the next write opens
    /// a new one, syncing the last segment and the directory — a wait for the disk that
    /// would hold up every connection of the caller's thread.
    fn put_in_place(&self, records: Vec<TelemetryRecord>) -> Result<(), NotInPlace> {
        if !self.writes_in_place() {
            return Err(NotInPlace::Declined(records));
        }
        {
            let mut w = self
                .writer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if w.len >= w.limits.segment_bytes {
                return Err(NotInPlace::Declined(records));
            }
            write_locked(&mut w, &self.committed_tx, records).map_err(NotInPlace::Failed)?;
        }
        self.start_interval_sync();
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn position(&self) -> Option<u64> {
        Some(self.last_seq())
    }

    fn covered_by_store(&self, position: u64) {
        self.hold.fetch_max(position, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn record(device: &str, n: u64) -> TelemetryRecord {
        TelemetryRecord {
            message_id: format!("m{n}"),
            device_id: device.into(),
            model: None,
            stream: "default".into(),
            method: "cose_mac0".into(),
            key_id: Some("k1".into()),
            counter: Some(n),
            sent_at: Some(1_700_000_000),
            received_at_ms: 1_700_000_000_000,
            payload: Bytes::from(format!("reading {n}")),
        }
    }

    #[tokio::test]
    async fn appends_are_positioned_durable_and_readable_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).unwrap();
        let mut tasks = Vec::new();
        for n in 1..=200u64 {
            let log = log.clone();
            tasks.push(tokio::spawn(
                async move { log.append(record("d1", n)).await },
            ));
        }
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap().unwrap());
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
        assert_eq!(log.last_seq(), 200);
        let page = log.read_after(150, 10, None).await.unwrap();
        assert_eq!(page.first().unwrap().seq, 151);
        assert_eq!(page.len(), 10);
        drop(log);

        let reopened = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).unwrap();
        assert_eq!(reopened.last_seq(), 200);
        assert_eq!(reopened.append(record("d2", 1)).await.unwrap(), 201);
        let d2 = reopened
            .read_after(0, 100, Some("d2".into()))
            .await
            .unwrap();
        assert_eq!(d2.len(), 1);
        assert_eq!(d2[0].record.payload, Bytes::from("reading 1"));
    }

    #[tokio::test]
    async fn a_torn_last_line_is_cut_back_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).unwrap();
        for n in 1..=3 {
            log.append(record("d1", n)).await.unwrap();
        }
        drop(log);
        let path = segment_path(dir.path(), 1);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"seq":4,"message_id":"m4","dev"#)
            .unwrap();
        drop(file);

        let log = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).unwrap();
        assert_eq!(log.last_seq(), 3);
        assert_eq!(log.append(record("d1", 4)).await.unwrap(), 4);
        let all = log.read_after(0, 100, None).await.unwrap();
        assert_eq!(
            all.iter().map(|s| s.seq).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
    }

    fn interval(ms: u64) -> EmbeddedOptions {
        EmbeddedOptions {
            sync: SyncPolicy::Interval(Duration::from_millis(ms)),
            ..EmbeddedOptions::default()
        }
    }

    /// The positions a reader sees now, from the start.
    async fn readable_seqs(log: &EmbeddedLog) -> Vec<u64> {
        let records = log.read_after(0, 1_000, None).await.unwrap();
        records.iter().map(|s| s.seq).collect()
    }

    /// Under the interval policy an append returns once written, and readers see it only
    /// once the interval's sync made it durable.
    #[tokio::test]
    async fn under_the_interval_policy_readers_see_records_once_synced() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), interval(300)).unwrap();
        let started = std::time::Instant::now();
        assert_eq!(log.append(record("d1", 1)).await.unwrap(), 1);
        assert_eq!(log.append(record("d1", 2)).await.unwrap(), 2);
        if started.elapsed() < Duration::from_millis(250) {
            // Still before the first sync: written, not yet readable.
            assert_eq!(log.last_seq(), 0);
            assert!(log.read_after(0, 10, None).await.unwrap().is_empty());
        }
        log.wait_after(1, Duration::from_secs(5)).await;
        assert_eq!(log.last_seq(), 2);
        assert_eq!(readable_seqs(&log).await, vec![1, 2]);
    }

    /// What was written and not yet synced is there after the log is dropped (a clean stop
    /// syncs) or the process killed (the page cache outlives it; the next open syncs).
    #[tokio::test]
    async fn under_the_interval_policy_a_reopened_log_holds_every_written_record() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), interval(10_000)).unwrap();
        for n in 1..=50 {
            log.append(record("d1", n)).await.unwrap();
        }
        assert_eq!(log.last_seq(), 0, "the first sync is 10 s away");
        drop(log);
        let log = EmbeddedLog::open(dir.path(), interval(10_000)).unwrap();
        assert_eq!(log.last_seq(), 50);
        assert_eq!(log.read_after(0, 100, None).await.unwrap().len(), 50);
        assert_eq!(log.append(record("d1", 51)).await.unwrap(), 51);
    }

    /// Segments rotate under the interval policy too (each synced as it is left), and
    /// readers follow across them.
    #[tokio::test]
    async fn under_the_interval_policy_segments_rotate_and_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let options = EmbeddedOptions {
            segment_bytes: 2_000,
            ..interval(20)
        };
        let log = EmbeddedLog::open(dir.path(), options).unwrap();
        for n in 1..=100 {
            log.append(record("d1", n)).await.unwrap();
        }
        assert!(segments(dir.path()).unwrap().len() >= 2);
        log.wait_after(99, Duration::from_secs(5)).await;
        assert_eq!(readable_seqs(&log).await, (1..=100).collect::<Vec<_>>());
    }

    /// After a failed sync the kernel may have dropped written pages: nothing more is
    /// acknowledged on top of that hole, and the log says why it stopped (for `/readyz`).
    /// (The `FailingDisk` tests of `gateway_http` fail real syncs and writes through FUSE.)
    #[tokio::test]
    async fn after_a_failed_sync_no_append_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), interval(100)).unwrap();
        log.append(record("d1", 1)).await.unwrap();
        assert_eq!(log.stopped(), None);
        stop(
            &mut log.writer.lock().unwrap(),
            SYNC_FAILED,
            &io::Error::other("EIO"),
        );
        let refused = log.append(record("d1", 2)).await.unwrap_err();
        assert!(refused.to_string().contains("restart"), "{refused}");
        assert_eq!(log.writer.lock().unwrap().next_seq, 2);
        assert!(log.stopped().is_some_and(|why| why.contains("EIO")));
    }

    /// Segments of 2 000 bytes, 6 000 in all: a few hundred records rotate and go.
    fn small_segments() -> EmbeddedOptions {
        EmbeddedOptions {
            segment_bytes: 2_000,
            max_bytes: 6_000,
            max_age: Duration::from_secs(3600),
            sync: SyncPolicy::EveryBatch,
        }
    }

    #[tokio::test]
    async fn segments_rotate_and_the_oldest_go_past_the_size_bound() {
        let dir = tempfile::tempdir().unwrap();
        let limits = small_segments();
        let log = EmbeddedLog::open(dir.path(), limits).unwrap();
        for n in 1..=200 {
            log.append(record("d1", n)).await.unwrap();
        }
        let firsts = segments(dir.path()).unwrap();
        assert!(firsts.len() >= 2, "{firsts:?}");
        let total: u64 = firsts
            .iter()
            .map(|f| fs::metadata(segment_path(dir.path(), *f)).unwrap().len())
            .sum();
        assert!(total <= 6_000 + 2_000 + 1_000, "{total}");
        assert_ne!(firsts[0], 1, "the oldest segment was deleted");
        // Reading from the start skips what retention removed.
        let page = log.read_after(0, 5, None).await.unwrap();
        assert_eq!(page[0].seq, firsts[0]);
        assert_eq!(log.read_after(195, 100, None).await.unwrap().len(), 5);
    }

    /// A node deciding counters in memory: records the store's counters do not cover stay
    /// past the size bound, and go once the store covers them.
    #[tokio::test]
    async fn records_the_store_does_not_cover_survive_the_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let limits = small_segments();
        let log = EmbeddedLog::open_holding(dir.path(), limits.clone(), 0).unwrap();
        for n in 1..=200 {
            log.append(record("d1", n)).await.unwrap();
        }
        assert_eq!(
            segments(dir.path()).unwrap()[0],
            1,
            "nothing covered, nothing deleted"
        );
        assert_eq!(log.read_after(0, 1, None).await.unwrap()[0].seq, 1);

        // The store covers up to 100: segments wholly at or below it may go.
        log.covered_by_store(100);
        for n in 201..=260 {
            log.append(record("d1", n)).await.unwrap();
        }
        let firsts = segments(dir.path()).unwrap();
        assert_ne!(firsts[0], 1, "covered segments went: {firsts:?}");
        assert!(
            firsts[0] <= 101,
            "a segment with an uncovered record went: {firsts:?}"
        );

        // Reopened with the covered position beyond the log's end (the log was replaced):
        // all of it is held.
        drop(log);
        let first_now = segments(dir.path()).unwrap()[0];
        let log = EmbeddedLog::open_holding(dir.path(), limits, 1_000_000).unwrap();
        for n in 261..=400 {
            log.append(record("d1", n)).await.unwrap();
        }
        assert_eq!(segments(dir.path()).unwrap()[0], first_now);
    }
}
