//! The path of a verified message: its counter reserved (COSE messages), then the sink, then
//! the answer — as a two-stage pipeline of group commits.
//!
//! Both stages pay for a durable write (the counters' transaction, the sink's `fdatasync` or
//! JetStream acknowledgement) — except on one node with the embedded log, where stage 1
//! decides known devices' counters in memory and the log's `fdatasync` is the only one
//! (`crate::replay`). Each stage takes everything that queued while its previous
//! write ran and handles it with one write, so the cost per message falls as the rate rises,
//! and an idle gateway still answers a single message at once (no timer waits for company).
//! The stages overlap: while the sink writes batch N, the counters of batch N+1 are reserved.
//!
//! A message costs its caller one channel send and one wake-up for the answer ([`Answer`]),
//! and a caller may send the next message before the previous one is answered; everything
//! between happens in the two stage tasks. Once the send is done the pipeline owns the
//! message: a caller that goes away (an HTTP client hanging up, an MQTT session ended
//! mid-publish) cannot leave a counter reserved for a message that was not stored — a
//! message the sink refuses has its reservation given back before its caller hears no.
//!
//! Order is kept: jobs leave each stage in the order they entered it, so the counters of one
//! device, submitted in increasing order, are judged in that order.
//!
//! Deciding counters in memory, the two stages run as one task ([`local_stage`]): stage 1 is
//! then a memory operation for every known device, and a second task would cost each batch —
//! at a paced rate, each message — one more wake-up than the overlap saves; what queues
//! during the log's `fdatasync` is taken as one batch.
//!
//! One node with the embedded log syncing on an interval skips the pipeline for known
//! devices ([`InPlace`]): the caller reserves the counter in memory and writes the record
//! itself, under one lock, and has its answer when `send` returns (messages sent together
//! with `send_all` share the lock and one write). The pipeline then serves
//! only what needs the store or the disk (a device's first message since start, a write that
//! opens a segment), and while it holds anything every message follows it there.
//!
//! An operator may trade latency for CPU ([`Cadence`], `[gateway] sink_write_interval_ms`,
//! off by default): while messages come faster than the sink writes them, a batch is then
//! taken at most once per interval. Each batch costs a durable write and a round of thread
//! wake-ups (the blocking pool's, the workers'); without a floor a steady 40 000 msg/s on
//! two cores means ~1 600 batches and ~18 000 context switches a second. Messages that come
//! one at a time are written at once either way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use portcullis_core::device::DeviceId;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::replay::{ReplayGuard, Reservation};
use crate::sink::{NotInPlace, Sink, TelemetryRecord};
use crate::GatewayError;

/// Jobs waiting for the counter stage at most; past it, callers wait (back-pressure reaches
/// the sockets instead of memory growing).
const QUEUE: usize = 65_536;
/// Jobs per batch at most (one counters transaction, one sink write).
const MAX_BATCH: usize = 4_096;
/// Batches between the stages: enough to overlap them, few enough to bound memory.
const BATCHES_IN_FLIGHT: usize = 2;

type Reply = oneshot::Sender<Result<(), GatewayError>>;

/// One message on its way.
struct Job {
    record: TelemetryRecord,
    /// The device's counter to reserve first (COSE messages); `None`: straight to the sink.
    counter: Option<(DeviceId, u64)>,
    reply: Reply,
}

/// A job whose counter, if any, is reserved.
struct Reserved {
    record: TelemetryRecord,
    reservation: Option<Reservation>,
    reply: Reply,
}

/// The handle callers submit through; cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    route: Route,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest").finish_non_exhaustive()
    }
}

#[derive(Clone)]
enum Route {
    /// Through the stage tasks.
    Pipeline(mpsc::Sender<Job>),
    /// By the callers themselves, one at a time ([`InPlace`]).
    InPlace(Arc<InPlace>),
}

/// Counters decided in memory and a sink written in place (one node, the embedded log
/// syncing on an interval): each caller judges and writes its own message on its own thread,
/// taking turns. A paced message then costs no hand-over at all — no channel send waking a
/// stage task, no blocking-pool thread woken for the write and waking the stage back, no
/// wake-up for the answer; the few microseconds of a `write` into the page cache per message
/// cost less than the thread hand-overs that batching saved (docs/benchmarks.md).
///
/// A counter only the store can judge (a device's first message since start) goes through
/// the pipeline, which batches those into one store transaction; while any message is in
/// the pipeline every message follows it there, so a device's counters are still judged in
/// the order they came.
struct InPlace {
    /// Held while a counter is judged and its record written (or handed to the pipeline):
    /// no two writes interleave, and a message sees every earlier message's verdict.
    turn: std::sync::Mutex<()>,
    replay: Arc<ReplayGuard>,
    sink: Arc<dyn Sink>,
    pipeline: mpsc::Sender<Job>,
    /// Messages handed to the pipeline and not yet answered.
    in_pipeline: Arc<AtomicUsize>,
}

impl Ingest {
    /// Starts the stage tasks, taking a batch at most once per `write_interval` while
    /// messages come faster than they are written (zero: as soon as the previous one is
    /// written), and — on one node whose sink writes in place, without such a floor — lets
    /// callers write known devices' messages themselves ([`InPlace`]); must be called inside
    /// a Tokio runtime.
    pub fn start(
        replay: Arc<ReplayGuard>,
        sink: Arc<dyn Sink>,
        write_interval: Duration,
    ) -> Ingest {
        let (tx, rx) = mpsc::channel(QUEUE);
        let cadence = Cadence::new(write_interval);
        if !replay.is_local() {
            let (reserved_tx, reserved_rx) = mpsc::channel(BATCHES_IN_FLIGHT);
            tokio::spawn(reserve_stage(rx, Arc::clone(&replay), reserved_tx, cadence));
            tokio::spawn(store_stage(reserved_rx, replay, sink));
            return Ingest {
                route: Route::Pipeline(tx),
            };
        }
        tokio::spawn(Arc::clone(&replay).write_behind());
        let in_pipeline = (sink.writes_in_place() && write_interval.is_zero())
            .then(|| Arc::new(AtomicUsize::new(0)));
        let stage = local_stage(
            rx,
            Arc::clone(&replay),
            Arc::clone(&sink),
            cadence,
            in_pipeline.clone(),
        );
        tokio::spawn(stage);
        let route = match in_pipeline {
            Some(in_pipeline) => Route::InPlace(Arc::new(InPlace {
                turn: std::sync::Mutex::default(),
                replay,
                sink,
                pipeline: tx,
                in_pipeline,
            })),
            None => Route::Pipeline(tx),
        };
        Ingest { route }
    }

    /// Reserves `counter` (if any), stores the record, and answers once the sink holds it.
    #[cfg(test)]
    pub async fn submit(
        &self,
        record: TelemetryRecord,
        counter: Option<(DeviceId, u64)>,
    ) -> Result<(), GatewayError> {
        self.send(record, counter).await.take().await
    }

    /// Hands a record over (waiting only if the queue is full): the pipeline owns it from
    /// here. Records sent one after another are judged and stored in that order.
    pub async fn send(&self, record: TelemetryRecord, counter: Option<(DeviceId, u64)>) -> Answer {
        let mut answers = self.send_all(vec![(record, counter)]).await;
        answers
            .pop()
            .unwrap_or_else(|| Answer::now(Err(shutting_down())))
    }

    /// Hands records over together, one answer each, in order. Written in place, they share
    /// one turn and one write: an MQTT session sends what one read brought in.
    pub async fn send_all(&self, messages: Vec<Message>) -> Vec<Answer> {
        let tx = match &self.route {
            Route::Pipeline(tx) => tx,
            Route::InPlace(in_place) => return in_place.store_all(messages),
        };
        let mut answers = Vec::with_capacity(messages.len());
        for (record, counter) in messages {
            let (reply, rx) = oneshot::channel();
            let job = Job {
                record,
                counter,
                reply,
            };
            answers.push(match tx.send(job).await {
                Ok(()) => Answer::later(rx),
                Err(_) => Answer::now(Err(shutting_down())),
            });
        }
        answers
    }
}

/// A record, and the device's counter to reserve for it (COSE messages).
pub type Message = (TelemetryRecord, Option<(DeviceId, u64)>);

/// Messages judged in place and not yet written: their records, and for each its answer's
/// index and its reservation.
#[derive(Default)]
struct Judged {
    records: Vec<TelemetryRecord>,
    held: Vec<(usize, Option<Reservation>)>,
}

impl InPlace {
    /// Judges messages in one turn and writes those judged in place with one write; hands
    /// the rest to the pipeline, in order. Nothing here awaits: a caller cannot go away
    /// halfway, leaving a counter reserved for a message that was not written.
    fn store_all(&self, messages: Vec<Message>) -> Vec<Answer> {
        let _turn = self
            .turn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut answers = Vec::with_capacity(messages.len());
        let mut judged = Judged::default();
        for (record, counter) in messages {
            let verdict = if self.in_pipeline.load(Ordering::Acquire) > 0 {
                None
            } else {
                match &counter {
                    None => Some(Ok(None)),
                    Some((device, n)) => self
                        .replay
                        .reserve_known(device, *n)
                        .map(|verdict| verdict.map(Some)),
                }
            };
            match verdict {
                Some(Ok(reservation)) => {
                    // Yes once written (`write` answers otherwise if it is not).
                    judged.held.push((answers.len(), reservation));
                    judged.records.push(record);
                    answers.push(Answer::now(Ok(())));
                }
                Some(Err(e)) => answers.push(Answer::now(Err(e))),
                None => {
                    // What was judged before it is written before it is judged again.
                    self.write(&mut judged, &mut answers);
                    answers.push(self.hand_over(record, counter));
                }
            }
        }
        self.write(&mut judged, &mut answers);
        answers
    }

    /// Writes what was judged in place with one write. If the sink declines, the counters
    /// are given back and the messages handed to the pipeline; if it fails, refused.
    fn write(&self, judged: &mut Judged, answers: &mut [Answer]) {
        if judged.records.is_empty() {
            return;
        }
        let records = std::mem::take(&mut judged.records);
        let held = std::mem::take(&mut judged.held);
        let refused = match self.sink.put_in_place(records) {
            Ok(()) => {
                let kept = held.into_iter().filter_map(|(_, r)| r).collect();
                self.replay.kept(kept, self.sink.position());
                return;
            }
            Err(refused) => refused,
        };
        // Newest first: each release undoes only its device's latest counter.
        let mut given_back: Vec<(usize, Option<(DeviceId, u64)>)> = held
            .into_iter()
            .rev()
            .map(|(i, r)| (i, r.map(|r| self.replay.release_known(r))))
            .collect();
        given_back.reverse();
        let mut answer = |i: usize, a: Answer| {
            if let Some(slot) = answers.get_mut(i) {
                *slot = a;
            }
        };
        match refused {
            // Judged again in the pipeline, as this turn found them.
            NotInPlace::Declined(records) => {
                for ((i, counter), record) in given_back.into_iter().zip(records) {
                    answer(i, self.hand_over(record, counter));
                }
            }
            NotInPlace::Failed(e) => {
                for (i, _) in given_back {
                    answer(i, Answer::now(Err(GatewayError::Unavailable(e.0.clone()))));
                }
            }
        }
    }

    /// Hands a message to the pipeline (its turn held), without waiting: a full queue is a
    /// refusal to retry, as a full sink is.
    fn hand_over(&self, record: TelemetryRecord, counter: Option<(DeviceId, u64)>) -> Answer {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            record,
            counter,
            reply,
        };
        self.in_pipeline.fetch_add(1, Ordering::AcqRel);
        match self.pipeline.try_send(job) {
            Ok(()) => Answer::later(rx),
            Err(e) => {
                self.in_pipeline.fetch_sub(1, Ordering::AcqRel);
                Answer::now(Err(match e {
                    mpsc::error::TrySendError::Full(_) => {
                        GatewayError::Unavailable("the gateway is busy".into())
                    }
                    mpsc::error::TrySendError::Closed(_) => shutting_down(),
                }))
            }
        }
    }
}

/// Where a sent record's answer comes: `Ok` once the sink holds it.
#[derive(Debug)]
pub struct Answer(Awaited);

#[derive(Debug)]
enum Awaited {
    /// From the pipeline, which answers once the sink holds the record.
    Later(oneshot::Receiver<Result<(), GatewayError>>),
    /// In (at once when written in place, or received).
    Got(Result<(), GatewayError>),
}

impl Answer {
    fn later(rx: oneshot::Receiver<Result<(), GatewayError>>) -> Self {
        Self(Awaited::Later(rx))
    }

    fn now(answer: Result<(), GatewayError>) -> Self {
        Self(Awaited::Got(answer))
    }

    /// Whether the answer is in, without waiting.
    pub fn is_ready(&mut self) -> bool {
        if let Awaited::Later(rx) = &mut self.0 {
            self.0 = Awaited::Got(match rx.try_recv() {
                Ok(answer) => answer,
                Err(oneshot::error::TryRecvError::Empty) => return false,
                Err(oneshot::error::TryRecvError::Closed) => Err(shutting_down()),
            });
        }
        true
    }

    /// Waits for the answer without taking it; cancel-safe.
    pub async fn wait(&mut self) {
        if let Awaited::Later(rx) = &mut self.0 {
            self.0 = Awaited::Got(rx.await.unwrap_or_else(|_| Err(shutting_down())));
        }
    }

    /// The answer, once it is in.
    pub async fn take(self) -> Result<(), GatewayError> {
        match self.0 {
            Awaited::Got(answer) => answer,
            Awaited::Later(rx) => rx.await.unwrap_or_else(|_| Err(shutting_down())),
        }
    }
}

fn shutting_down() -> GatewayError {
    GatewayError::Unavailable("the gateway is shutting down".into())
}

/// When the next batch may be taken: group commit with a floor on the interval between
/// writes while messages come faster than they are written, so that a steady stream pays
/// one durable write per interval rather than one per few messages.
#[derive(Debug)]
struct Cadence {
    interval: Duration,
    /// When the previous batch was taken, and whether it held more than one message (the
    /// sign that messages queue while a write runs).
    last: Option<(Instant, bool)>,
}

impl Cadence {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
        }
    }

    /// With a batch's first jobs in `jobs`: if the previous batch held several messages and
    /// was taken less than the interval ago, waits out the rest and adds what arrived
    /// meanwhile; otherwise (messages one at a time, a quiet spell) returns at once.
    async fn gather(&mut self, rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>) {
        if let Some((last, true)) = self.last {
            let due = last + self.interval;
            if Instant::now() < due {
                // Tokio's timer counts whole milliseconds: the wait ends on the first tick
                // at or after `due`.
                tokio::time::sleep_until(due).await;
                while jobs.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(job) => jobs.push(job),
                        Err(_) => break,
                    }
                }
            }
        }
        if !self.interval.is_zero() {
            self.last = Some((Instant::now(), jobs.len() > 1));
        }
    }
}

/// Stage 1: one counters write per batch; refused jobs are answered here.
async fn reserve_stage(
    mut rx: mpsc::Receiver<Job>,
    replay: Arc<ReplayGuard>,
    next: mpsc::Sender<Vec<Reserved>>,
    mut cadence: Cadence,
) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        cadence.gather(&mut rx, &mut jobs).await;
        let reserved = reserve_batch(&mut jobs, &replay).await;
        if !reserved.is_empty() && next.send(reserved).await.is_err() {
            // The store stage is gone (shutdown): the dropped replies tell the callers.
            return;
        }
    }
}

/// Both stages in one task, one batch after the other (counters decided in memory).
/// With `in_pipeline` ([`InPlace`]), counts down each job once it is answered.
async fn local_stage(
    mut rx: mpsc::Receiver<Job>,
    replay: Arc<ReplayGuard>,
    sink: Arc<dyn Sink>,
    mut cadence: Cadence,
    in_pipeline: Option<Arc<AtomicUsize>>,
) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        cadence.gather(&mut rx, &mut jobs).await;
        let taken = jobs.len();
        let reserved = reserve_batch(&mut jobs, &replay).await;
        if !reserved.is_empty() {
            store_batch(reserved, &replay, &*sink).await;
        }
        if let Some(in_pipeline) = &in_pipeline {
            in_pipeline.fetch_sub(taken, Ordering::AcqRel);
        }
    }
}

/// Reserves the counters of `jobs` (draining it) with one counters write at most; answers
/// the refused ones and returns the rest, in order.
async fn reserve_batch(jobs: &mut Vec<Job>, replay: &ReplayGuard) -> Vec<Reserved> {
    let wanted: Vec<(DeviceId, u64)> = jobs.iter().filter_map(|j| j.counter.clone()).collect();
    let mut verdicts = if wanted.is_empty() {
        Vec::new()
    } else {
        replay.reserve_all(&wanted).await
    }
    .into_iter();
    let mut reserved = Vec::with_capacity(jobs.len());
    for job in jobs.drain(..) {
        let reservation = match job.counter {
            None => None,
            Some(_) => match verdicts.next() {
                Some(Ok(reservation)) => Some(reservation),
                Some(Err(e)) => {
                    let _ = job.reply.send(Err(e));
                    continue;
                }
                None => {
                    let e = GatewayError::Internal("a counter verdict is missing".into());
                    let _ = job.reply.send(Err(e));
                    continue;
                }
            },
        };
        reserved.push(Reserved {
            record: job.record,
            reservation,
            reply: job.reply,
        });
    }
    reserved
}

/// Stage 2: one sink write per batch; a refused message's reservation is given back before
/// its caller is answered, so the device may send the very same message again (unless a
/// later message of the device was stored meanwhile: its counter stays, and the refused
/// message must be sent again with a new counter).
async fn store_stage(
    mut rx: mpsc::Receiver<Vec<Reserved>>,
    replay: Arc<ReplayGuard>,
    sink: Arc<dyn Sink>,
) {
    while let Some(batch) = rx.recv().await {
        store_batch(batch, &replay, &*sink).await;
    }
}

/// Writes `batch` to the sink with one write and answers each job.
async fn store_batch(batch: Vec<Reserved>, replay: &ReplayGuard, sink: &dyn Sink) {
    let mut records = Vec::with_capacity(batch.len());
    let mut waiting = Vec::with_capacity(batch.len());
    for job in batch {
        records.push(job.record);
        waiting.push((job.reservation, job.reply));
    }
    let results = sink.put_batch(records).await;
    let position = sink.position();
    let mut kept = Vec::new();
    let mut refused = Vec::new();
    for ((reservation, reply), result) in waiting.into_iter().zip(results) {
        match result {
            Ok(()) => {
                kept.extend(reservation);
                let _ = reply.send(Ok(()));
            }
            Err(e) => refused.push((reservation, reply, e)),
        }
    }
    replay.kept(kept, position);
    if refused.is_empty() {
        return;
    }
    // Given back newest first per device (each release only undoes the latest counter),
    // devices side by side.
    let mut by_device: HashMap<DeviceId, Vec<Reservation>> = HashMap::new();
    for reservation in refused.iter_mut().filter_map(|(r, _, _)| r.take()) {
        by_device
            .entry(reservation.device().clone())
            .or_default()
            .push(reservation);
    }
    join_all(by_device.into_values().map(|reservations| async move {
        for reservation in reservations.into_iter().rev() {
            replay.release(reservation).await;
        }
    }))
    .await;
    for (_, reply, e) in refused {
        let _ = reply.send(Err(GatewayError::Unavailable(e.0)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::embedded::{EmbeddedLog, EmbeddedOptions, SyncPolicy};

    /// The real parts: counters in an SQLite store, the embedded log, in a fresh directory.
    async fn pipeline() -> (Ingest, EmbeddedLog, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("store.db").display());
        let store = portcullis_store::open(&url).await.unwrap();
        let log =
            EmbeddedLog::open(&dir.path().join("telemetry"), EmbeddedOptions::default()).unwrap();
        let replay = Arc::new(ReplayGuard::new(store, 300));
        let ingest = Ingest::start(replay, Arc::new(log.clone()), Duration::ZERO);
        (ingest, log, dir)
    }

    /// The real parts deciding counters in memory, as one node with the embedded log does;
    /// the write-behind task is not started, so nothing reaches the store unless flushed.
    async fn local_pipeline(
        dir: &std::path::Path,
        sink: impl FnOnce(&EmbeddedLog) -> Arc<dyn Sink>,
    ) -> (
        Ingest,
        Arc<ReplayGuard>,
        Arc<dyn portcullis_store::Store>,
        EmbeddedLog,
    ) {
        local_pipeline_paced(dir, sink, Duration::ZERO).await
    }

    /// The same, a batch taken at most once per `interval` while messages come in batches.
    async fn local_pipeline_paced(
        dir: &std::path::Path,
        sink: impl FnOnce(&EmbeddedLog) -> Arc<dyn Sink>,
        interval: Duration,
    ) -> (
        Ingest,
        Arc<ReplayGuard>,
        Arc<dyn portcullis_store::Store>,
        EmbeddedLog,
    ) {
        let url = format!("sqlite:{}", dir.join("store.db").display());
        let store = portcullis_store::open(&url).await.unwrap();
        let log = EmbeddedLog::open(&dir.join("telemetry"), EmbeddedOptions::default()).unwrap();
        crate::counters_behind::recover(&*store, &log)
            .await
            .unwrap();
        let sink = sink(&log);
        let replay = Arc::new(ReplayGuard::deciding_locally(
            Arc::clone(&store),
            300,
            Arc::clone(&sink),
        ));
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(local_stage(
            rx,
            Arc::clone(&replay),
            sink,
            Cadence::new(interval),
            None,
        ));
        (
            Ingest {
                route: Route::Pipeline(tx),
            },
            replay,
            store,
            log,
        )
    }

    async fn stored_counter(store: &dyn portcullis_store::Store, device: &str) -> Option<u64> {
        let all = store.list_device_counters(None, 100).await.unwrap();
        all.into_iter()
            .find(|(d, _)| d.as_str() == device)
            .map(|(_, c)| c)
    }

    #[tokio::test]
    async fn deciding_locally_refuses_replays_and_writes_counters_behind() {
        let dir = tempfile::tempdir().unwrap();
        let (ingest, replay, store, log) = local_pipeline(dir.path(), the_log).await;
        for n in 1..=3 {
            ingest.submit_counted("dev-5", n).await.unwrap();
        }
        for n in [3, 2] {
            let again = ingest.submit_counted("dev-5", n).await;
            assert!(
                matches!(again, Err(GatewayError::Replay(_))),
                "{n}: {again:?}"
            );
        }
        // The first counter was reserved in the store (nothing was known of the device);
        // the next ones were decided in memory and are written behind.
        assert_eq!(stored_counter(&*store, "dev-5").await, Some(1));
        replay.flush().await;
        assert_eq!(stored_counter(&*store, "dev-5").await, Some(3));
        let flushed = store
            .get_setting(crate::counters_behind::FLUSHED_SETTING)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(flushed, log.last_seq().to_string().into_bytes());
        assert_eq!(
            log.held_after(),
            log.last_seq(),
            "the log may let covered records go"
        );
        assert_eq!(stored(&log).await, ["dev-5-1", "dev-5-2", "dev-5-3"]);
    }

    #[tokio::test]
    async fn deciding_locally_judges_one_devices_counters_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (ingest, _replay, _store, log) = local_pipeline(dir.path(), the_log).await;
        // Unknown device: its whole first batch is judged by the store, in order.
        let first: Vec<_> = [1, 2, 2]
            .into_iter()
            .map(|n| ingest.submit_counted("dev-9", n))
            .collect();
        let refused: Vec<bool> = join_all(first).await.iter().map(Result::is_err).collect();
        assert_eq!(refused, [false, false, true]);
        // Known now: decided in memory, in order.
        let next: Vec<_> = [3, 4, 4, 3, 5]
            .into_iter()
            .map(|n| ingest.submit_counted("dev-9", n))
            .collect();
        let refused: Vec<bool> = join_all(next).await.iter().map(Result::is_err).collect();
        assert_eq!(refused, [false, false, true, true, false]);
        assert_eq!(
            stored(&log).await,
            ["dev-9-1", "dev-9-2", "dev-9-3", "dev-9-4", "dev-9-5"]
        );
    }

    /// A crash after the log's `fdatasync` and before the store's copy: the restarted node
    /// reads the counters back from the log before judging any message.
    #[tokio::test]
    async fn counters_the_store_missed_are_recovered_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (ingest, _replay, _store, _log) = local_pipeline(dir.path(), the_log).await;
            for n in 1..=4 {
                ingest.submit_counted("dev-6", n).await.unwrap();
            }
            // Dropped without a flush: the store has counter 1 only.
        }
        let (ingest, _replay, store, _log) = local_pipeline(dir.path(), the_log).await;
        assert_eq!(stored_counter(&*store, "dev-6").await, Some(4));
        let again = ingest.submit_counted("dev-6", 4).await;
        assert!(matches!(again, Err(GatewayError::Replay(_))), "{again:?}");
        ingest.submit_counted("dev-6", 5).await.unwrap();
    }

    #[tokio::test]
    async fn a_log_emptied_since_the_recorded_position_is_read_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (ingest, replay, _store, _log) = local_pipeline(dir.path(), the_log).await;
            for n in 1..=3 {
                ingest.submit_counted("dev-10", n).await.unwrap();
            }
            replay.flush().await;
        }
        // An operator empties the log; a new one starts at position 1.
        std::fs::remove_dir_all(dir.path().join("telemetry")).unwrap();
        {
            let (ingest, _replay, _store, _log) = local_pipeline(dir.path(), the_log).await;
            for n in 4..=5 {
                ingest.submit_counted("dev-10", n).await.unwrap();
            }
            // Killed before the write-behind.
        }
        let (ingest, _replay, store, _log) = local_pipeline(dir.path(), the_log).await;
        assert_eq!(stored_counter(&*store, "dev-10").await, Some(5));
        assert!(ingest.submit_counted("dev-10", 5).await.is_err());
    }

    #[tokio::test]
    async fn a_first_start_counts_the_log_as_covered() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("store.db").display());
        let store = portcullis_store::open(&url).await.unwrap();
        let log =
            EmbeddedLog::open(&dir.path().join("telemetry"), EmbeddedOptions::default()).unwrap();
        log.append_all(vec![record("dev-7", 9)]).await.unwrap();
        // Written before counters were decided in memory: the store had every counter first.
        let read = crate::counters_behind::recover(&*store, &log)
            .await
            .unwrap();
        assert_eq!(read, 0);
        let flushed = store
            .get_setting(crate::counters_behind::FLUSHED_SETTING)
            .await
            .unwrap();
        assert_eq!(flushed, Some(b"1".to_vec()));
    }

    fn the_log(log: &EmbeddedLog) -> Arc<dyn Sink> {
        Arc::new(log.clone())
    }

    /// The real log, counting its writes and refusing one batch when told to (`refused`
    /// set back to false).
    #[derive(Debug)]
    struct WatchedLog {
        log: EmbeddedLog,
        refused: Arc<std::sync::atomic::AtomicBool>,
        writes: Arc<std::sync::atomic::AtomicUsize>,
    }

    #[async_trait::async_trait]
    impl Sink for WatchedLog {
        async fn put(&self, record: TelemetryRecord) -> Result<(), crate::sink::SinkError> {
            self.put_batch(vec![record]).await.remove(0)
        }
        async fn put_batch(
            &self,
            records: Vec<TelemetryRecord>,
        ) -> Vec<Result<(), crate::sink::SinkError>> {
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if !self.refused.swap(true, std::sync::atomic::Ordering::SeqCst) {
                let e = || Err(crate::sink::SinkError("disk full".into()));
                return records.iter().map(|_| e()).collect();
            }
            self.log.put_batch(records).await
        }
        fn writes_in_place(&self) -> bool {
            self.log.writes_in_place()
        }
        fn put_in_place(&self, records: Vec<TelemetryRecord>) -> Result<(), NotInPlace> {
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if !self.refused.swap(true, std::sync::atomic::Ordering::SeqCst) {
                return Err(NotInPlace::Failed(crate::sink::SinkError(
                    "disk full".into(),
                )));
            }
            self.log.put_in_place(records)
        }
        fn kind(&self) -> &'static str {
            "embedded"
        }
        fn position(&self) -> Option<u64> {
            self.log.position()
        }
    }

    #[tokio::test]
    async fn a_counter_decided_in_memory_is_given_back_when_the_sink_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let refused = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = Arc::clone(&refused);
        let (ingest, _replay, _store, log) = local_pipeline(dir.path(), move |log| {
            Arc::new(WatchedLog {
                log: log.clone(),
                refused: flag,
                writes: Arc::default(),
            })
        })
        .await;
        ingest.submit_counted("dev-8", 1).await.unwrap();
        refused.store(false, std::sync::atomic::Ordering::SeqCst);
        let refused = ingest.submit_counted("dev-8", 2).await;
        assert!(
            matches!(refused, Err(GatewayError::Unavailable(_))),
            "{refused:?}"
        );
        // The very same message is accepted when sent again, once.
        ingest.submit_counted("dev-8", 2).await.unwrap();
        assert!(ingest.submit_counted("dev-8", 2).await.is_err());
        assert_eq!(stored(&log).await, ["dev-8-1", "dev-8-2"]);
    }

    /// Messages one at a time are written at once; after a batch of several, the next
    /// waits for the rest of the interval and what arrives meanwhile joins its write.
    /// Without an interval each is written as it comes.
    #[tokio::test]
    async fn messages_close_together_share_a_write_and_a_lone_one_waits_for_nothing() {
        for (interval, expected_writes) in [(Duration::from_millis(300), 4), (Duration::ZERO, 5)] {
            let dir = tempfile::tempdir().unwrap();
            let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let counter = Arc::clone(&writes);
            let (ingest, _replay, _store, log) = local_pipeline_paced(
                dir.path(),
                move |log| {
                    Arc::new(WatchedLog {
                        log: log.clone(),
                        refused: Arc::new(true.into()),
                        writes: counter,
                    })
                },
                interval,
            )
            .await;
            // One at a time: no wait, whatever the interval.
            let started = Instant::now();
            ingest.submit_counted("dev-11", 1).await.unwrap();
            ingest.submit_counted("dev-11", 2).await.unwrap();
            assert!(
                started.elapsed() < Duration::from_millis(250),
                "{interval:?}: single messages waited {:?}",
                started.elapsed()
            );
            // Two sent together: one batch of several.
            let (a, b) = tokio::join!(
                ingest.submit_counted("dev-11", 3),
                ingest.submit_counted("dev-12", 1)
            );
            a.unwrap();
            b.unwrap();
            // The next waits for the interval, and the one sent meanwhile joins it.
            let next = {
                let ingest = ingest.clone();
                tokio::spawn(async move {
                    let sent = Instant::now();
                    ingest.submit_counted("dev-11", 4).await.unwrap();
                    sent.elapsed()
                })
            };
            tokio::time::sleep(Duration::from_millis(50)).await;
            ingest.submit_counted("dev-12", 2).await.unwrap();
            let waited = next.await.unwrap();
            let writes = writes.load(std::sync::atomic::Ordering::SeqCst);
            assert_eq!(writes, expected_writes, "{interval:?}");
            if !interval.is_zero() {
                assert!(waited >= Duration::from_millis(200), "{waited:?}");
            }
            let mut ids = stored(&log).await;
            ids.sort();
            assert_eq!(
                ids,
                ["dev-11-1", "dev-11-2", "dev-11-3", "dev-11-4", "dev-12-1", "dev-12-2"]
            );
        }
    }

    fn record(device: &str, counter: u64) -> TelemetryRecord {
        TelemetryRecord {
            message_id: format!("{device}-{counter}"),
            device_id: device.into(),
            model: None,
            stream: "default".into(),
            method: "cose_mac0".into(),
            key_id: None,
            counter: Some(counter),
            sent_at: None,
            received_at_ms: 0,
            payload: bytes::Bytes::from_static(b"x"),
        }
    }

    impl Ingest {
        /// Submits `device`'s message with `counter`.
        async fn submit_counted(&self, device: &str, counter: u64) -> Result<(), GatewayError> {
            let (record, counted) = counted(device, counter);
            self.submit(record, counted).await
        }
    }

    fn counted(device: &str, counter: u64) -> (TelemetryRecord, Option<(DeviceId, u64)>) {
        let id = DeviceId::parse(device.to_owned()).unwrap();
        (record(device, counter), Some((id, counter)))
    }

    async fn stored(log: &EmbeddedLog) -> Vec<String> {
        let all = log.read_after(0, 10_000, None).await.unwrap();
        all.into_iter().map(|s| s.record.message_id).collect()
    }

    /// One node with the log syncing on an interval: callers write in place.
    async fn in_place_pipeline(dir: &std::path::Path, segment_bytes: u64) -> (Ingest, EmbeddedLog) {
        in_place_pipeline_over(dir, segment_bytes, the_log).await
    }

    /// The same, the log seen through `sink`.
    async fn in_place_pipeline_over(
        dir: &std::path::Path,
        segment_bytes: u64,
        sink: impl FnOnce(&EmbeddedLog) -> Arc<dyn Sink>,
    ) -> (Ingest, EmbeddedLog) {
        let url = format!("sqlite:{}", dir.join("store.db").display());
        let store = portcullis_store::open(&url).await.unwrap();
        let options = EmbeddedOptions {
            segment_bytes,
            sync: SyncPolicy::Interval(Duration::from_millis(10)),
            ..EmbeddedOptions::default()
        };
        let log = EmbeddedLog::open(&dir.join("telemetry"), options).unwrap();
        crate::counters_behind::recover(&*store, &log)
            .await
            .unwrap();
        let sink = sink(&log);
        let replay = Arc::new(ReplayGuard::deciding_locally(store, 300, Arc::clone(&sink)));
        let ingest = Ingest::start(replay, sink, Duration::ZERO);
        assert!(matches!(ingest.route, Route::InPlace(_)));
        (ingest, log)
    }

    /// Synced records (what readers see) once the log holds more than `after`.
    async fn stored_after_sync(log: &EmbeddedLog, after: u64) -> Vec<String> {
        log.wait_after(after, Duration::from_secs(10)).await;
        stored(log).await
    }

    #[tokio::test]
    async fn known_devices_are_written_in_place_and_answered_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (ingest, log) = in_place_pipeline(dir.path(), 64 << 20).await;
        // Nothing is known of the device yet: the store judges its first counter.
        ingest.submit_counted("dev-20", 1).await.unwrap();
        // Known now: judged and written by the caller, answered when `send` returns.
        for (n, accepted) in [(2, true), (2, false), (1, false), (3, true)] {
            let (record, counter) = counted("dev-20", n);
            let mut answer = ingest.send(record, counter).await;
            assert!(answer.is_ready(), "{n}");
            assert_eq!(answer.take().await.is_ok(), accepted, "{n}");
        }
        let mut uncounted = ingest.send(record("dev-21", 1), None).await;
        assert!(uncounted.is_ready());
        uncounted.take().await.unwrap();
        assert_eq!(
            stored_after_sync(&log, 3).await,
            ["dev-20-1", "dev-20-2", "dev-20-3", "dev-21-1"]
        );
    }

    /// What one MQTT read brings in is judged in order in one turn and written with one
    /// write; a device the store must judge, and whatever follows it, go to the pipeline
    /// behind what was judged before it; a failed write refuses them all and gives their
    /// counters back, so the same messages are taken when sent again.
    #[tokio::test]
    async fn messages_sent_together_are_judged_in_order_and_written_at_once() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
        let dir = tempfile::tempdir().unwrap();
        let refused = Arc::new(AtomicBool::new(true));
        let writes = Arc::new(AtomicUsize::new(0));
        let (r, w) = (Arc::clone(&refused), Arc::clone(&writes));
        let watched = move |log: &EmbeddedLog| -> Arc<dyn Sink> {
            Arc::new(WatchedLog {
                log: log.clone(),
                refused: r,
                writes: w,
            })
        };
        let (ingest, log) = in_place_pipeline_over(dir.path(), 64 << 20, watched).await;
        ingest.submit_counted("dev-40", 1).await.unwrap();
        let send_all = |messages: Vec<Message>| ingest.send_all(messages);
        let outcomes = |answers: Vec<Answer>| async {
            let mut outcomes = Vec::new();
            for answer in answers {
                outcomes.push(answer.take().await.is_ok());
            }
            outcomes
        };

        let before = writes.load(SeqCst);
        let mut answers = send_all(vec![
            counted("dev-40", 2),
            counted("dev-40", 2),
            counted("dev-40", 3),
            (record("dev-41", 1), None),
            counted("dev-40", 4),
        ])
        .await;
        assert!(answers.iter_mut().all(Answer::is_ready));
        assert_eq!(outcomes(answers).await, [true, false, true, true, true]);
        assert_eq!(
            writes.load(SeqCst),
            before + 1,
            "one write for the four kept"
        );

        // dev-42 is new: the store judges it, and dev-40's 6 follows it to the pipeline.
        let mut answers = send_all(vec![
            counted("dev-40", 5),
            counted("dev-42", 1),
            counted("dev-40", 6),
        ])
        .await;
        assert!(answers[0].is_ready());
        assert_eq!(outcomes(answers).await, [true, true, true]);

        // The disk refuses one write: both are refused, and both taken when sent again
        // (their counters given back newest first).
        refused.store(false, SeqCst);
        for expected in [[false, false], [true, true]] {
            let answers = send_all(vec![counted("dev-40", 7), counted("dev-40", 8)]).await;
            assert_eq!(outcomes(answers).await, expected);
        }
        assert_eq!(
            stored_after_sync(&log, 9).await,
            [
                "dev-40-1", "dev-40-2", "dev-40-3", "dev-41-1", "dev-40-4", "dev-40-5", "dev-42-1",
                "dev-40-6", "dev-40-7", "dev-40-8"
            ]
        );
    }

    /// A write that would open a segment goes through the pipeline, and the messages sent
    /// meanwhile follow it there: each device's counters are still judged in order (one
    /// judged out of order would be refused as a replay), none is lost or stored twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn messages_follow_the_pipeline_in_order_while_it_opens_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (ingest, log) = in_place_pipeline(dir.path(), 4096).await;
        // Each device known first (its first counter judged by the store), so that the
        // messages below are written in place until a segment is full.
        for d in 0..4 {
            ingest
                .submit_counted(&format!("dev-3{d}"), 1)
                .await
                .unwrap();
        }
        let mut devices = Vec::new();
        for d in 0..4 {
            let ingest = ingest.clone();
            devices.push(tokio::spawn(async move {
                let device = format!("dev-3{d}");
                // Sent back to back, answered later: several in flight, as over MQTT.
                let mut answers = Vec::new();
                for n in 2..=150 {
                    let (record, counter) = counted(&device, n);
                    answers.push(ingest.send(record, counter).await);
                    // Bursts of five (a connection reading several at once), then a pause.
                    if n % 5 == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                for (n, answer) in (2..).zip(answers) {
                    answer
                        .take()
                        .await
                        .unwrap_or_else(|e| panic!("{device} {n}: {e:?}"));
                }
            }));
        }
        for device in devices {
            device.await.unwrap();
        }
        let mut ids = stored_after_sync(&log, 599).await;
        assert_eq!(ids.len(), 600);
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 600, "a message stored twice");
        let segments = std::fs::read_dir(dir.path().join("telemetry"))
            .unwrap()
            .count();
        assert!(segments > 10, "{segments} segments");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_messages_are_each_stored_once_and_answered() {
        let (ingest, log, _dir) = pipeline().await;
        let mut tasks = Vec::new();
        for n in 0..500u32 {
            let ingest = ingest.clone();
            tasks.push(tokio::spawn(async move {
                ingest.submit_counted(&format!("dev-{n}"), 7).await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let mut ids = stored(&log).await;
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 500);
    }

    #[tokio::test]
    async fn a_replayed_counter_is_refused_and_not_stored() {
        let (ingest, log, _dir) = pipeline().await;
        ingest.submit_counted("dev-1", 5).await.unwrap();
        for n in [5, 4] {
            let again = ingest.submit_counted("dev-1", n).await;
            assert!(
                matches!(again, Err(GatewayError::Replay(_))),
                "{n}: {again:?}"
            );
        }
        assert_eq!(stored(&log).await, ["dev-1-5"]);
    }

    #[tokio::test]
    async fn one_devices_counters_submitted_together_are_judged_in_order() {
        let (ingest, log, _dir) = pipeline().await;
        // Sent before any answer: they share a batch, and are judged in submission order.
        let calls: Vec<_> = [1, 2, 2, 3]
            .into_iter()
            .map(|n| ingest.submit_counted("dev-2", n))
            .collect();
        let answers = join_all(calls).await;
        let refused: Vec<bool> = answers.iter().map(Result::is_err).collect();
        assert_eq!(refused, [false, false, true, false], "{answers:?}");
        assert_eq!(stored(&log).await, ["dev-2-1", "dev-2-2", "dev-2-3"]);
    }

    #[tokio::test]
    async fn a_message_without_a_counter_goes_straight_to_the_sink() {
        let (ingest, log, _dir) = pipeline().await;
        ingest.submit(record("dev-3", 1), None).await.unwrap();
        ingest.submit(record("dev-3", 1), None).await.unwrap();
        assert_eq!(stored(&log).await, ["dev-3-1", "dev-3-1"]);
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_still_has_its_message_stored_once() {
        let (ingest, log, _dir) = pipeline().await;
        let call = ingest.submit_counted("dev-4", 1);
        // Polled until the job is sent, then dropped before the answer.
        let _ = tokio::time::timeout(std::time::Duration::from_micros(1), call).await;
        log.wait_after(0, std::time::Duration::from_secs(5)).await;
        assert_eq!(stored(&log).await, ["dev-4-1"]);
        let again = ingest.submit_counted("dev-4", 1).await;
        assert!(matches!(again, Err(GatewayError::Replay(_))), "{again:?}");
    }
}
