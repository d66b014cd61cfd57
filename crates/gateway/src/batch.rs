//! Group commit: many concurrent callers, one durable write. The replay guard's counter
//! updates and the embedded sink's appends both pay for a transaction or an `fsync` per
//! write; under load, everything that queued while the previous write ran goes in the next
//! one, so the cost per message falls as the rate rises, and an idle system still answers a
//! single message at once (no timer waits for company).

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

/// A request and where its answer goes.
type Job<Req, Resp> = (Req, oneshot::Sender<Resp>);

/// The handle callers submit through; cheap to clone.
pub struct Batcher<Req, Resp> {
    tx: mpsc::Sender<Job<Req, Resp>>,
}

impl<Req, Resp> Clone for Batcher<Req, Resp> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<Req, Resp> std::fmt::Debug for Batcher<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

/// The batch task went away (shutdown); the request was not processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatcherClosed;

impl<Req: Send + 'static, Resp: Send + 'static> Batcher<Req, Resp> {
    /// Starts the task that runs `process` over batches of at most `max_batch` requests.
    /// `process` gets the requests in arrival order and must return one answer per request,
    /// in the same order. `queue` bounds how many requests may wait: past it, callers wait
    /// (back-pressure reaches the sockets instead of memory growing).
    pub fn start<F, Fut>(queue: usize, max_batch: usize, mut process: F) -> Self
    where
        F: FnMut(Vec<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<Resp>> + Send,
    {
        let (tx, mut rx) = mpsc::channel::<Job<Req, Resp>>(queue.max(1));
        let max_batch = max_batch.max(1);
        tokio::spawn(async move {
            let mut jobs: Vec<Job<Req, Resp>> = Vec::with_capacity(max_batch);
            while rx.recv_many(&mut jobs, max_batch).await > 0 {
                let (requests, replies): (Vec<Req>, Vec<oneshot::Sender<Resp>>) =
                    jobs.drain(..).unzip();
                let answers = process(requests).await;
                debug_assert_eq!(answers.len(), replies.len());
                for (reply, answer) in replies.into_iter().zip(answers) {
                    // The caller may have given up (its connection closed); nothing to do.
                    let _ = reply.send(answer);
                }
            }
        });
        Self { tx }
    }

    /// Submits one request and waits for its answer.
    pub async fn submit(&self, request: Req) -> Result<Resp, BatcherClosed> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((request, reply))
            .await
            .map_err(|_| BatcherClosed)?;
        answer.await.map_err(|_| BatcherClosed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn concurrent_requests_share_batches_and_get_their_own_answers() {
        let batches = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&batches);
        let batcher = Batcher::start(1024, 64, move |reqs: Vec<u32>| {
            seen.fetch_add(1, Ordering::Relaxed);
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                reqs.into_iter().map(|r| r * 2).collect()
            }
        });
        let mut tasks = Vec::new();
        for i in 0..500u32 {
            let b = batcher.clone();
            tasks.push(tokio::spawn(async move { (i, b.submit(i).await.unwrap()) }));
        }
        for t in tasks {
            let (i, doubled) = t.await.unwrap();
            assert_eq!(doubled, i * 2);
        }
        let n = batches.load(Ordering::Relaxed);
        assert!(n < 500, "500 concurrent requests took {n} batches");
    }
}
