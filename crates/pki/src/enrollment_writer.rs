//! Group commit for enrollments. Every enrollment writes the device's new state and its
//! certificate; one transaction per enrollment made the store's single writer (and, on SQLite,
//! the commit and the thread hand-offs around it) the ceiling of EST throughput. Concurrent
//! enrollments queue here and are written together: one task takes whatever is waiting (up
//! to [`MAX_BATCH`]) and records it in one transaction, then answers each caller. The task
//! also drops each enrolled device from the node's cache, so the invalidation happens even if
//! the request that asked has gone.

use std::sync::Arc;

use portcullis_store::{DeviceCache, Enrollment, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::PkiError;

/// Most enrollments in one transaction.
pub const MAX_BATCH: usize = 256;
/// Enrollments waiting beyond this make callers wait for room (back-pressure).
const QUEUE: usize = 4096;

/// One batch's outcome for one caller; a failed commit fails every enrollment in it, so the
/// callers share the one error.
type Reply = oneshot::Sender<Result<bool, Arc<StoreError>>>;

/// The handle enrollments are recorded through; cheap to clone.
#[derive(Debug, Clone)]
pub struct EnrollmentWriter {
    queue: mpsc::Sender<(Enrollment, Reply)>,
}

impl EnrollmentWriter {
    /// Starts the writer task on the current tokio runtime; it invalidates every device of a
    /// batch in `devices` once the batch is written (or failed: it may have committed).
    pub fn start(store: Arc<dyn Store>, devices: Arc<DeviceCache>) -> EnrollmentWriter {
        let (queue, mut rx) = mpsc::channel::<(Enrollment, Reply)>(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            let mut replies = Vec::with_capacity(MAX_BATCH);
            while let Some((first, reply)) = rx.recv().await {
                batch.push(first);
                replies.push(reply);
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok((next, reply)) => {
                            batch.push(next);
                            replies.push(reply);
                        }
                        Err(_) => break,
                    }
                }
                let recorded = store.record_enrollments(&batch).await;
                for enrollment in &batch {
                    devices.invalidate(&enrollment.device_id);
                }
                match recorded {
                    Ok(outcomes) => {
                        for (reply, ok) in replies.drain(..).zip(outcomes) {
                            let _ = reply.send(Ok(ok));
                        }
                    }
                    Err(e) => {
                        let shared = Arc::new(e);
                        for reply in replies.drain(..) {
                            let _ = reply.send(Err(shared.clone()));
                        }
                    }
                }
                batch.clear();
            }
        });
        EnrollmentWriter { queue }
    }

    /// Records one enrollment with whatever else is waiting; `false` as in
    /// [`Store::record_enrollments`].
    pub async fn record(&self, enrollment: Enrollment) -> Result<bool, PkiError> {
        let (reply, answer) = oneshot::channel();
        let gone = || PkiError::Store(StoreError::Unavailable("enrollment writer stopped".into()));
        self.queue
            .send((enrollment, reply))
            .await
            .map_err(|_| gone())?;
        answer
            .await
            .map_err(|_| gone())?
            .map_err(|e| PkiError::Store(StoreError::Unavailable(e.to_string())))
    }
}
