//! The audit writer. One background task drains a bounded queue in batches of up to
//! [`MAX_BATCH`] and appends each batch with a single store call (one transaction, one fsync
//! at most): the group commit that lets the chain keep up with tens of thousands of events per
//! second.
//!
//! How long a caller waits depends on what the event is and on `[audit] mode`:
//! - [`AuditLog::commit`] always returns only once the event is stored (or says it could not
//!   be, in time): for what a crash must never lose — admin actions, key changes,
//!   revocations. The caller refuses the request it cannot audit, as Vault does.
//! - [`AuditLog::record`] does the same in [`AuditMode::Durable`]; in [`AuditMode::Async`] it
//!   returns once the event is queued. Either way a full queue makes callers wait for room
//!   (back-pressure) instead of growing memory without bound.
//! - [`AuditLog::record_refusal`] is for refusals of unauthenticated requests: the first one
//!   from a source in a window is recorded, the rest are counted and written as one summary
//!   record when the window closes ([`crate::refusals`]), so a flood cannot grow the chain
//!   (which refuses deletes) faster than one record per source and window.
//!
//! A failed append is retried with backoff; queued events are never dropped while the process
//! lives (watch `portcullis_audit_queue_depth`).
//!
//! Nobody waits for an async record, so a batch of only those is gathered for up to
//! [`GATHER`] before it is written (until [`GATHER_ENOUGH`] are in hand, or a record, flush or
//! stop that someone waits for arrives, which is written at once with them). Measured
//! (docs/benchmarks.md): SQLite's cost per commit, not per row, dominated the audit write, and
//! batches gathered for 20 ms brought the token endpoint from 84 % to about 100 % of its
//! throughput without any audit write; a crash in async mode can lose those 20 ms of records,
//! as it could always lose what was queued.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_core::audit::AuditEvent;
use portcullis_store::Store;
use tokio::sync::{mpsc, oneshot};

use crate::refusals::Refusals;
use crate::sealing::AuditSealer;

/// Events appended per store call at most.
pub const MAX_BATCH: usize = 4096;
/// Events the queue holds before callers wait for room.
pub const QUEUE_CAPACITY: usize = 65_536;
/// How long a durable record may wait for its group commit before the request is refused.
pub const DURABLE_WAIT: Duration = Duration::from_secs(5);

/// Counter of events durably appended.
pub const EVENTS_WRITTEN_METRIC: &str = "portcullis_audit_events_written_total";
/// Gauge of events recorded but not yet stored.
pub const QUEUE_DEPTH_METRIC: &str = "portcullis_audit_queue_depth";
/// Counter of events recorded after shutdown, which cannot be stored.
pub const EVENTS_DROPPED_METRIC: &str = "portcullis_audit_events_dropped_total";
/// Counter of refusals folded into summary records instead of one record each.
pub const REFUSALS_SUMMARISED_METRIC: &str = "portcullis_audit_refusals_summarised_total";

/// How long the writer gathers records nobody waits for before writing them.
pub const GATHER: Duration = Duration::from_millis(20);
/// Records in hand that are written without gathering more.
pub const GATHER_ENOUGH: usize = 1024;
/// How often gathering looks at the queue.
pub const GATHER_TICK: Duration = Duration::from_millis(2);

const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

tokio::task_local! {
    /// The source address of the request being served, for the records it causes.
    static REQUEST_SOURCE: IpAddr;
}

/// Runs `work` as the serving of a request from `source`: every record it makes through
/// [`AuditLog::record`] or [`AuditLog::commit`] whose detail names no `source` of its own gets
/// this one, so an admin change says where it came from (and detection can judge networks).
pub async fn with_request_source<F: std::future::Future>(source: IpAddr, work: F) -> F::Output {
    REQUEST_SOURCE.scope(source, work).await
}

/// Adds the serving request's source to `event`'s detail, unless it has one.
fn stamp_source(event: &mut AuditEvent) {
    let Ok(source) = REQUEST_SOURCE.try_with(|source| *source) else {
        return;
    };
    if source.is_unspecified() {
        return;
    }
    if let Some(detail) = event.detail.as_object_mut() {
        detail
            .entry("source")
            .or_insert_with(|| source.to_string().into());
    }
}

/// Sees every event as it is recorded, before refusals are summarised and before anything is
/// stored: real-time detection (the server's `detection` module) counts what happens here.
/// Called on the recording task, so it must be quick and must not block (queue, do not wait).
pub trait AuditObserver: Send + Sync {
    fn observe(&self, event: &AuditEvent);
}

/// `[audit] mode`: whether an ordinary event (an issued token) is answered before or after
/// its record is stored. Events that must survive a crash use [`AuditLog::commit`] in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditMode {
    /// The response waits for the record's group commit.
    Durable,
    /// The response goes out once the record is queued; a crash loses what was queued.
    #[default]
    Async,
}

impl AuditMode {
    /// Reads the configured spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "durable" => Some(Self::Durable),
            "async" => Some(Self::Async),
            _ => None,
        }
    }
}

/// The event could not be stored in time ([`DURABLE_WAIT`]) or the log is shut down: the
/// request it records must be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the audit log cannot store records now")]
pub struct AuditUnavailable;

/// What travels through the queue. Markers ride the same channel as events, so a marker is
/// seen only after every event queued before it.
enum Command {
    /// An event, with whom to tell once it is stored.
    Record(AuditEvent, Option<oneshot::Sender<()>>),
    /// Answered once everything queued before it is stored.
    Flush(oneshot::Sender<()>),
    /// Like `Flush`, then the writer closes the queue and exits.
    Stop(oneshot::Sender<()>),
}

/// A handle to the audit writer; clones share one queue and one writer task.
#[derive(Debug, Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<Command>,
    mode: AuditMode,
    refusals: Arc<Mutex<Refusals>>,
    /// Seals records before they are appended (`[audit] encrypt`); readers open them with it.
    sealer: Option<Arc<AuditSealer>>,
    /// Sees every event first (attack detection).
    observer: Option<Arc<dyn AuditObserver>>,
}

impl std::fmt::Debug for dyn AuditObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditObserver")
    }
}

impl AuditLog {
    /// Spawns the writer task on the current Tokio runtime (so it must be called inside one),
    /// in [`AuditMode::Async`] with a queue of [`QUEUE_CAPACITY`].
    pub fn start(store: Arc<dyn Store>) -> AuditLog {
        Self::start_with(store, AuditMode::Async, QUEUE_CAPACITY)
    }

    /// Spawns the writer task with `mode` and a queue of `capacity` events, and the task that
    /// writes refusal summaries when their window closes.
    pub fn start_with(store: Arc<dyn Store>, mode: AuditMode, capacity: usize) -> AuditLog {
        Self::start_sealed(store, mode, capacity, None)
    }

    /// Like [`Self::start_with`], sealing every record with `sealer` before it is appended
    /// (records are never stored in the clear while a sealer is set: a batch that cannot be
    /// sealed is retried like one the store refused).
    pub fn start_sealed(
        store: Arc<dyn Store>,
        mode: AuditMode,
        capacity: usize,
        sealer: Option<Arc<AuditSealer>>,
    ) -> AuditLog {
        let (queue, commands) = mpsc::channel(capacity.max(1));
        tokio::spawn(write_batches(store, commands, sealer.clone()));
        let log = AuditLog {
            queue,
            mode,
            refusals: Arc::new(Mutex::new(Refusals::default())),
            sealer,
            observer: None,
        };
        tokio::spawn(close_refusal_windows(log.clone()));
        log
    }

    /// The configured mode.
    pub fn mode(&self) -> AuditMode {
        self.mode
    }

    /// Shows every event recorded from now on through this handle and its later clones to
    /// `observer` first (set it before handing clones out).
    pub fn set_observer(&mut self, observer: Arc<dyn AuditObserver>) {
        self.observer = Some(observer);
    }

    fn observe(&self, event: &AuditEvent) {
        if let Some(observer) = &self.observer {
            observer.observe(event);
        }
    }

    /// The sealer records are encrypted with, if `[audit] encrypt` is on.
    pub fn sealer(&self) -> Option<&Arc<AuditSealer>> {
        self.sealer.as_ref()
    }

    /// Records an ordinary event as `[audit] mode` says: stored before this returns
    /// (durable), or queued (async). Waits for room when the queue is full.
    pub async fn record(&self, mut event: AuditEvent) -> Result<(), AuditUnavailable> {
        stamp_source(&mut event);
        self.observe(&event);
        match self.mode {
            AuditMode::Durable => self.commit_observed(event).await,
            AuditMode::Async => self.enqueue(event, None).await,
        }
    }

    /// Returns once `event` is stored, whatever the mode: for events a crash must not lose.
    pub async fn commit(&self, mut event: AuditEvent) -> Result<(), AuditUnavailable> {
        stamp_source(&mut event);
        self.observe(&event);
        self.commit_observed(event).await
    }

    async fn commit_observed(&self, event: AuditEvent) -> Result<(), AuditUnavailable> {
        let (done, stored) = oneshot::channel();
        self.enqueue(event, Some(done)).await?;
        match tokio::time::timeout(DURABLE_WAIT, stored).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(AuditUnavailable),
        }
    }

    /// A refusal of an unauthenticated request from `source`: recorded at once if it is the
    /// first of its kind from that source in the current window, otherwise counted into the
    /// window's summary record. Never waits for the store.
    pub fn record_refusal(&self, source: IpAddr, event: AuditEvent) {
        self.observe(&event);
        let first = match self.refusals.lock() {
            Ok(mut refusals) => refusals.note(std::time::Instant::now(), source, event),
            // A poisoned lock means a panic mid-update of counters: record the event plainly.
            Err(_) => Some(event),
        };
        match first {
            Some(event) => self.try_enqueue(event),
            None => metrics::counter!(REFUSALS_SUMMARISED_METRIC).increment(1),
        }
    }

    async fn enqueue(
        &self,
        event: AuditEvent,
        done: Option<oneshot::Sender<()>>,
    ) -> Result<(), AuditUnavailable> {
        match self.queue.send(Command::Record(event, done)).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendError(command)) => {
                dropped(command);
                Err(AuditUnavailable)
            }
        }
    }

    /// Queues without waiting; a full queue drops the event (counted and logged). Only for
    /// refusal records, whose summary still counts them.
    fn try_enqueue(&self, event: AuditEvent) {
        if let Err(e) = self.queue.try_send(Command::Record(event, None)) {
            dropped(e.into_inner());
        }
    }

    /// Writes the summaries of every refusal window that has closed.
    pub async fn close_refusal_windows(&self) {
        self.write_summaries(|refusals| refusals.take_closed(std::time::Instant::now()))
            .await;
    }

    /// Queues the summaries `take` closes (a poisoned lock has none to give).
    async fn write_summaries(&self, take: impl FnOnce(&mut Refusals) -> Vec<AuditEvent>) {
        let summaries = match self.refusals.lock() {
            Ok(mut refusals) => take(&mut refusals),
            Err(_) => Vec::new(),
        };
        for summary in summaries {
            let _ = self.enqueue(summary, None).await;
        }
    }

    /// Resolves once every event recorded before this call is stored.
    pub async fn flush(&self) {
        let (done, stored) = oneshot::channel();
        if self.queue.send(Command::Flush(done)).await.is_ok() {
            // An error here means the writer already exited, after storing everything.
            let _ = stored.await;
        }
    }

    /// Writes the open refusal summaries, stores everything recorded so far and stops the
    /// writer. Events recorded through other clones afterwards are refused (and counted in
    /// `portcullis_audit_events_dropped_total`). Waits as long as the store keeps failing:
    /// bound it with a timeout at process exit.
    pub async fn shutdown(self) {
        self.write_summaries(Refusals::take_all).await;
        let (done, stopped) = oneshot::channel();
        if self.queue.send(Command::Stop(done)).await.is_ok() {
            let _ = stopped.await;
        }
    }
}

fn dropped(command: Command) {
    metrics::counter!(EVENTS_DROPPED_METRIC).increment(1);
    if let Command::Record(event, _) = command {
        tracing::error!(
            action = %event.action,
            subject = %event.subject,
            "audit queue closed or full; event not recorded"
        );
    }
}

/// Every second, the summaries of refusal windows that have closed go into the queue. Ends
/// when the log is shut down.
async fn close_refusal_windows(log: AuditLog) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if log.queue.is_closed() {
            return;
        }
        log.close_refusal_windows().await;
    }
}

/// The writer task: drain, append, acknowledge, until the queue is closed and empty.
async fn write_batches(
    store: Arc<dyn Store>,
    mut queue: mpsc::Receiver<Command>,
    sealer: Option<Arc<AuditSealer>>,
) {
    let mut commands = Vec::with_capacity(MAX_BATCH);
    // Kept across batches, as `commands` is: a fresh batch-sized buffer each time came from
    // fresh allocator pages, and their page faults showed on the token path.
    let mut events = Vec::with_capacity(MAX_BATCH);
    let mut stopped = Vec::new();
    // recv_many returns 0 only once the queue is closed (by a Stop, or every handle dropped)
    // and everything queued before that has been taken.
    while queue.recv_many(&mut commands, MAX_BATCH).await > 0 {
        gather(&mut queue, &mut commands).await;
        let mut stored = Vec::new();
        let mut flushed = Vec::new();
        for command in commands.drain(..) {
            match command {
                Command::Record(event, done) => {
                    events.push(event);
                    stored.extend(done);
                }
                Command::Flush(done) => flushed.push(done),
                Command::Stop(done) => {
                    stopped.push(done);
                    queue.close();
                }
            }
        }
        if let Some(sealer) = &sealer {
            seal_until_sealed(sealer, &mut events).await;
        }
        append_until_stored(store.as_ref(), &events, &queue).await;
        events.clear();
        metrics::gauge!(QUEUE_DEPTH_METRIC).set(queue.len() as f64);
        for done in stored.into_iter().chain(flushed) {
            let _ = done.send(());
        }
    }
    for done in stopped {
        let _ = done.send(());
    }
}

/// Adds to `commands` what arrives within [`GATHER`], while all of them are records nobody
/// waits for and fewer than [`GATHER_ENOUGH`]. It looks every [`GATHER_TICK`] rather than
/// waiting on the queue: a waiting receiver is woken by every record sent, about once per
/// token under load, and those wake-ups cost the node more than writing the records did. A
/// record somebody waits for (a flush, durable mode) ends the gathering at the next tick.
async fn gather(queue: &mut mpsc::Receiver<Command>, commands: &mut Vec<Command>) {
    let unwaited = |c: &Command| matches!(c, Command::Record(_, None));
    if !commands.iter().all(unwaited) {
        return;
    }
    let deadline = tokio::time::Instant::now() + GATHER;
    while commands.len() < GATHER_ENOUGH {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return;
        }
        tokio::time::sleep_until((now + GATHER_TICK).min(deadline)).await;
        let before = commands.len();
        loop {
            if commands.len() >= MAX_BATCH {
                return;
            }
            match queue.try_recv() {
                Ok(command) => commands.push(command),
                Err(mpsc::error::TryRecvError::Empty) => break,
                // Closed: everything queued is taken.
                Err(mpsc::error::TryRecvError::Disconnected) => return,
            }
        }
        if !commands.iter().skip(before).all(unwaited) {
            return;
        }
    }
}

/// Seals `events` in place, retrying with backoff: a batch is never stored in the clear.
/// (Sealing fails only if the random generator does, or the active key vanished.)
async fn seal_until_sealed(sealer: &AuditSealer, events: &mut [AuditEvent]) {
    let mut delay = FIRST_RETRY_DELAY;
    loop {
        match sealer.seal_batch(events) {
            Ok(()) => return,
            Err(err) => {
                tracing::error!(error = %err, events = events.len(), retry_in_ms = delay.as_millis() as u64, "sealing an audit batch failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
        }
    }
}

/// Appends `events` as one batch, retrying the same batch with exponential backoff until the
/// store takes it: dropping audit events because the database blinked is not an option.
async fn append_until_stored(
    store: &dyn Store,
    events: &[AuditEvent],
    queue: &mpsc::Receiver<Command>,
) {
    if events.is_empty() {
        return;
    }
    let count = events.len();
    let mut delay = FIRST_RETRY_DELAY;
    loop {
        metrics::gauge!(QUEUE_DEPTH_METRIC).set((queue.len() + count) as f64);
        // Borrowed: the same batch again on a retry.
        match store.append_audit_batch(events).await {
            Ok(_) => {
                metrics::counter!(EVENTS_WRITTEN_METRIC).increment(count as u64);
                return;
            }
            Err(err) => {
                // Only the first event's action and subject: details may hold addresses and
                // scopes that do not belong in operational logs.
                let first = events.first();
                tracing::warn!(
                    error = %err,
                    events = count,
                    first_action = first.map_or("", |e| e.action.as_str()),
                    first_subject = first.map_or("", |e| e.subject.as_str()),
                    retry_in_ms = delay.as_millis() as u64,
                    "audit append failed; retrying the same batch"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::audit::{AuditAction, Outcome};

    fn event() -> AuditEvent {
        AuditEvent {
            at: 1,
            actor: "svc".into(),
            action: AuditAction::TokenIssued.into(),
            subject: "jti".into(),
            outcome: Outcome::Success.into(),
            detail: serde_json::json!({}),
        }
    }

    fn record() -> Command {
        Command::Record(event(), None)
    }

    #[tokio::test(start_paused = true)]
    async fn records_nobody_waits_for_are_gathered_for_the_gather_time() {
        let (tx, mut rx) = mpsc::channel(QUEUE_CAPACITY);
        let mut commands = vec![record()];
        let sender = tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                tx.send(record()).await.unwrap();
            }
            tx
        });
        let start = tokio::time::Instant::now();
        gather(&mut rx, &mut commands).await;
        assert_eq!(commands.len(), 4);
        assert_eq!(start.elapsed(), GATHER);
        drop(sender.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_caller_ends_the_gathering_at_the_next_tick() {
        let (tx, mut rx) = mpsc::channel(QUEUE_CAPACITY);
        let mut commands = vec![record()];
        let (done, _stored) = oneshot::channel();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(3)).await;
            tx.send(Command::Flush(done)).await.unwrap();
            // Held open: only the flush may end the gathering.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(tx);
        });
        let start = tokio::time::Instant::now();
        gather(&mut rx, &mut commands).await;
        assert_eq!(commands.len(), 2);
        // Sent at 3 ms, seen at the tick after it (4 ms), not at the end of GATHER (20 ms).
        assert_eq!(start.elapsed(), GATHER_TICK * 2);

        // A batch that holds a waiter already is not gathered at all.
        let (done, _stored) = oneshot::channel();
        let mut commands = vec![record(), Command::Record(event(), Some(done))];
        let start = tokio::time::Instant::now();
        gather(&mut rx, &mut commands).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_large_batch_is_written_without_gathering() {
        let (tx, mut rx) = mpsc::channel(QUEUE_CAPACITY);
        let mut commands: Vec<Command> = (0..GATHER_ENOUGH).map(|_| record()).collect();
        let start = tokio::time::Instant::now();
        gather(&mut rx, &mut commands).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        drop(tx);
    }
}
