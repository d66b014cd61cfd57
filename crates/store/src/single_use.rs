//! Spending single-use ids (DPoP proof `jti`s, outside tokens' `jti`s) in batches: one
//! store transaction for every id that arrived while the previous one was being written, so
//! the replay check costs a commit per batch, not per request — the audit log's group commit,
//! for the replay table.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::{Store, StoreError};
use portcullis_core::UnixTime;

/// One id to spend: `scope`, `id`, remembered until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingleUse {
    pub scope: String,
    pub id: String,
    pub expires_at: UnixTime,
}

/// Most ids written in one transaction.
const MAX_BATCH: usize = 1024;
/// Requests waiting for the writer at most; more wait for room (back-pressure).
const QUEUE: usize = 16 * 1024;

struct Pending {
    item: SingleUse,
    now: UnixTime,
    reply: oneshot::Sender<Result<bool, StoreError>>,
}

/// A writer task spending ids in batches; cheap to clone.
#[derive(Clone)]
pub struct SingleUseBatcher {
    queue: mpsc::Sender<Pending>,
}

impl SingleUseBatcher {
    /// Starts the writer on the current runtime; it ends when every handle is dropped.
    pub fn start(store: Arc<dyn Store>) -> SingleUseBatcher {
        let (queue, mut rx) = mpsc::channel::<Pending>(QUEUE);
        tokio::spawn(async move {
            let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
            while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                // Each caller's own clock judged its id unexpired; the batch is judged by the
                // earliest of them, so no row counts as expired to a lagging node.
                let now = batch.iter().map(|p| p.now).min().unwrap_or_default();
                let items: Vec<SingleUse> = batch.iter().map(|p| p.item.clone()).collect();
                match store.record_single_use_batch(&items, now).await {
                    Ok(fresh) => {
                        for (pending, fresh) in batch.drain(..).zip(fresh) {
                            let _ = pending.reply.send(Ok(fresh));
                        }
                    }
                    Err(e) => {
                        let why = e.to_string();
                        for pending in batch.drain(..) {
                            let _ = pending
                                .reply
                                .send(Err(StoreError::Unavailable(why.clone())));
                        }
                    }
                }
                batch.clear();
            }
        });
        SingleUseBatcher { queue }
    }

    /// Spends `id` in `scope` until `expires_at`: true if it was new, false if already spent
    /// (on any node sharing the store).
    pub async fn spend(
        &self,
        scope: &str,
        id: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            item: SingleUse {
                scope: scope.to_owned(),
                id: id.to_owned(),
                expires_at,
            },
            now,
            reply,
        };
        let gone = || StoreError::Unavailable("the single-use writer has stopped".into());
        self.queue.send(pending).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}
