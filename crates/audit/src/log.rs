//! The audit writer. The token endpoint records an event on every request, so
//! [`AuditLog::record`] only pushes onto an unbounded in-memory queue; one background task
//! drains the queue in batches of up to [`MAX_BATCH`] and appends each batch with a single
//! store call (one transaction, one fsync at most), which is what lets the chain keep up with
//! tens of thousands of events per second.
//!
//! Events are never dropped while the process lives: a failed append is retried with backoff,
//! and the queue grows meanwhile (watch `portcullis_audit_queue_depth`).

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::audit::AuditEvent;
use portcullis_store::Store;
use tokio::sync::{mpsc, oneshot};

/// Events appended per store call at most.
pub const MAX_BATCH: usize = 4096;

/// Counter of events durably appended.
pub const EVENTS_WRITTEN_METRIC: &str = "portcullis_audit_events_written_total";
/// Gauge of events recorded but not yet stored.
pub const QUEUE_DEPTH_METRIC: &str = "portcullis_audit_queue_depth";
/// Counter of events recorded after shutdown, which cannot be stored.
pub const EVENTS_DROPPED_METRIC: &str = "portcullis_audit_events_dropped_total";

const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// What travels through the queue. Markers ride the same channel as events, so a marker is
/// seen only after every event queued before it.
enum Command {
    Record(AuditEvent),
    /// Answered once everything queued before it is stored.
    Flush(oneshot::Sender<()>),
    /// Like `Flush`, then the writer closes the queue and exits.
    Stop(oneshot::Sender<()>),
}

/// A handle to the audit writer; clones share one queue and one writer task.
#[derive(Debug, Clone)]
pub struct AuditLog {
    queue: mpsc::UnboundedSender<Command>,
}

impl AuditLog {
    /// Spawns the writer task on the current Tokio runtime (so it must be called inside one).
    pub fn start(store: Arc<dyn Store>) -> AuditLog {
        let (queue, commands) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(store, commands));
        AuditLog { queue }
    }

    /// Queues `event` for the chain. Never blocks or waits; the event is stored shortly after.
    pub fn record(&self, event: AuditEvent) {
        if let Err(mpsc::error::SendError(command)) = self.queue.send(Command::Record(event)) {
            metrics::counter!(EVENTS_DROPPED_METRIC).increment(1);
            if let Command::Record(event) = command {
                tracing::error!(
                    action = %event.action,
                    subject = %event.subject,
                    "audit log is shut down; event not recorded"
                );
            }
        }
    }

    /// Resolves once every event recorded before this call is stored.
    pub async fn flush(&self) {
        let (done, stored) = oneshot::channel();
        if self.queue.send(Command::Flush(done)).is_ok() {
            // An error here means the writer already exited, after storing everything.
            let _ = stored.await;
        }
    }

    /// Stores everything recorded so far and stops the writer. Events recorded through other
    /// clones afterwards are refused (and counted in `portcullis_audit_events_dropped_total`).
    /// Waits as long as the store keeps failing: bound it with a timeout at process exit.
    pub async fn shutdown(self) {
        let (done, stopped) = oneshot::channel();
        if self.queue.send(Command::Stop(done)).is_ok() {
            let _ = stopped.await;
        }
    }
}

/// The writer task: drain, append, acknowledge, until the queue is closed and empty.
async fn write_batches(store: Arc<dyn Store>, mut queue: mpsc::UnboundedReceiver<Command>) {
    let mut commands = Vec::with_capacity(MAX_BATCH);
    let mut stopped = Vec::new();
    // recv_many returns 0 only once the queue is closed (by a Stop, or every handle dropped)
    // and everything queued before that has been taken.
    while queue.recv_many(&mut commands, MAX_BATCH).await > 0 {
        let mut events = Vec::with_capacity(commands.len());
        let mut flushed = Vec::new();
        for command in commands.drain(..) {
            match command {
                Command::Record(event) => events.push(event),
                Command::Flush(done) => flushed.push(done),
                Command::Stop(done) => {
                    stopped.push(done);
                    queue.close();
                }
            }
        }
        append_until_stored(store.as_ref(), events, &queue).await;
        metrics::gauge!(QUEUE_DEPTH_METRIC).set(queue.len() as f64);
        for done in flushed {
            let _ = done.send(());
        }
    }
    for done in stopped {
        let _ = done.send(());
    }
}

/// Appends `events` as one batch, retrying the same batch with exponential backoff until the
/// store takes it: dropping audit events because the database blinked is not an option.
async fn append_until_stored(
    store: &dyn Store,
    events: Vec<AuditEvent>,
    queue: &mpsc::UnboundedReceiver<Command>,
) {
    if events.is_empty() {
        return;
    }
    let count = events.len();
    let mut delay = FIRST_RETRY_DELAY;
    loop {
        metrics::gauge!(QUEUE_DEPTH_METRIC).set((queue.len() + count) as f64);
        // The store consumes the batch, so each attempt gets a copy to keep the original for
        // a retry.
        match store.append_audit(events.clone()).await {
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
