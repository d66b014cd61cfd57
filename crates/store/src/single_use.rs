//! Spending single-use ids (DPoP proof `jti`s, outside tokens' `jti`s).
//!
//! On a shared store (PostgreSQL, many nodes) the store decides: an id is new only if its
//! insert wins, so two nodes cannot both accept it. The writer task sends every id that
//! arrived during the previous write as one multi-row upsert, so the check costs a commit per
//! batch, not per request — the audit log's group commit, for the replay table.
//!
//! On an embedded store (SQLite) there is one node: the ids it spent are kept in memory and
//! decided there, and the store is written behind (batches gathered off the answer's path,
//! appended in time order by [`Store::keep_spent`], no unique index to keep) so that a
//! restart loads them back ([`SingleUseBatcher::load`]). What a crash can lose is
//! the last batch not yet written, as the audit log's `async` mode can; a graceful stop
//! flushes it ([`SingleUseBatcher::flush`]).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};

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

/// Which unexpired single-use ids [`Store::list_single_use`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SingleUseScopes {
    /// The `#` scopes (DPoP proofs, outside tokens): what an embedded node decides in memory
    /// and loads at start. Clients' assertion ids are decided by the store itself.
    Outside,
    /// Those and every client's assertion ids: what `store copy` moves, so that nothing
    /// spent on the source can be spent again on the target.
    All,
}

/// A batch as the backends write it: each id once (a statement may not upsert one row
/// twice), in chunks of one multi-row upsert each, and the answers filled in from what the
/// upserts' `RETURNING` says they spent. The SQL differs between backends only in how
/// parameters are written (`?N` or `$N`).
pub(crate) struct BatchPlan<'a> {
    items: &'a [SingleUse],
    /// (scope, id) → index of its first occurrence in `items`.
    first: HashMap<(&'a str, &'a str), usize>,
    unique: Vec<&'a SingleUse>,
    fresh: Vec<bool>,
}

/// Rows per statement: 3 parameters each plus one for `now`, far below both backends' limits.
const ROWS_PER_STATEMENT: usize = 2_000;

impl<'a> BatchPlan<'a> {
    pub(crate) fn new(items: &'a [SingleUse]) -> Self {
        let mut first = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            first
                .entry((item.scope.as_str(), item.id.as_str()))
                .or_insert(i);
        }
        let unique = items
            .iter()
            .enumerate()
            .filter(|(i, item)| first.get(&(item.scope.as_str(), item.id.as_str())) == Some(i))
            .map(|(_, item)| item)
            .collect();
        Self {
            items,
            first,
            unique,
            fresh: vec![false; items.len()],
        }
    }

    /// The ids to send, a statement's worth at a time.
    pub(crate) fn chunks(&self) -> Vec<Vec<&'a SingleUse>> {
        self.unique
            .chunks(ROWS_PER_STATEMENT)
            .map(<[&SingleUse]>::to_vec)
            .collect()
    }

    /// The upsert of `rows` ids: parameters `(scope, id, expires_at)` per row, then `now`;
    /// `param(n)` writes the n-th parameter (1-based) in the backend's syntax.
    pub(crate) fn upsert_sql(rows: usize, param: impl Fn(usize) -> String) -> String {
        let values: Vec<String> = (0..rows)
            .map(|n| {
                format!(
                    "({}, {}, {})",
                    param(3 * n + 1),
                    param(3 * n + 2),
                    param(3 * n + 3)
                )
            })
            .collect();
        format!(
            "INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES {} \
             ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at \
             WHERE assertion_jtis.expires_at <= {} RETURNING client_id, jti",
            values.join(", "),
            param(3 * rows + 1)
        )
    }

    /// Marks `(scope, id)`, which an upsert returned, as spent now.
    pub(crate) fn spent(&mut self, scope: &str, id: &str) {
        if let Some(slot) = self
            .first
            .get(&(scope, id))
            .and_then(|i| self.fresh.get_mut(*i))
        {
            *slot = true;
        }
    }

    /// The answers, in the order of the items.
    pub(crate) fn answers(self) -> Vec<bool> {
        debug_assert_eq!(self.fresh.len(), self.items.len());
        self.fresh
    }
}

/// Most ids written in one transaction.
const MAX_BATCH: usize = 1024;
/// Written behind (embedded store: nobody waits for the row), ids are gathered this long
/// before a write, so that a flood of them costs the shared SQLite writer (the audit log's
/// too) a few transactions a second instead of one per handful of requests. A crash loses
/// at most what was queued — as before, since nobody waited for those rows anyway.
const BEHIND_GATHER: std::time::Duration = std::time::Duration::from_millis(100);
/// Most ids gathered for one written-behind write.
const MAX_BEHIND: usize = 8 * MAX_BATCH;
/// Requests waiting for the writer at most; more wait for room (back-pressure).
const QUEUE: usize = 16 * 1024;

enum Command {
    Spend {
        item: SingleUse,
        now: UnixTime,
        /// `None`: written behind (embedded store), nobody waits.
        reply: Option<oneshot::Sender<Result<bool, StoreError>>>,
    },
    /// Answered once everything queued before it is written.
    Flush(oneshot::Sender<()>),
}

/// The ids one node of an embedded store has spent: a keyed 128-bit hash of scope and id
/// (two independent SipHash keys, so nobody outside can aim a collision) → expiry.
struct LocalIds {
    keys: (RandomState, RandomState),
    spent: Mutex<(HashMap<u128, UnixTime>, usize)>,
}

impl LocalIds {
    fn key(&self, scope: &str, id: &str) -> u128 {
        let half = |k: &RandomState| k.hash_one((scope, id));
        (u128::from(half(&self.keys.0)) << 64) | u128::from(half(&self.keys.1))
    }

    /// True if the id was not spent (or its record has expired), and spends it.
    fn spend(&self, scope: &str, id: &str, expires_at: UnixTime, now: UnixTime) -> bool {
        let key = self.key(scope, id);
        let mut guard = self.spent.lock().unwrap_or_else(PoisonError::into_inner);
        let (spent, pruned_at) = &mut *guard;
        if spent.get(&key).is_some_and(|&until| until > now) {
            return false;
        }
        spent.insert(key, expires_at);
        // Expired entries go when the map has doubled since the last sweep: amortised O(1).
        if spent.len() >= 2 * (*pruned_at).max(1024) {
            spent.retain(|_, until| *until > now);
            *pruned_at = spent.len();
        }
        true
    }
}

/// A writer task spending ids in batches; cheap to clone.
#[derive(Clone)]
pub struct SingleUseBatcher {
    queue: mpsc::Sender<Command>,
    local: Option<Arc<LocalIds>>,
}

impl SingleUseBatcher {
    /// Starts the writer on the current runtime (it ends when every handle is dropped); ids
    /// are decided in memory when the store is not shared ([`Store::is_shared`]).
    pub fn start(store: Arc<dyn Store>) -> SingleUseBatcher {
        let local = (!store.is_shared()).then(|| {
            Arc::new(LocalIds {
                keys: (RandomState::new(), RandomState::new()),
                spent: Mutex::new((HashMap::new(), 0)),
            })
        });
        let (queue, rx) = mpsc::channel::<Command>(QUEUE);
        tokio::spawn(write(store, rx, local.is_some()));
        SingleUseBatcher { queue, local }
    }

    /// Loads the unexpired ids the store holds into memory (embedded store, at start); how
    /// many. Nothing to do on a shared store.
    pub async fn load(&self, store: &dyn Store, now: UnixTime) -> Result<usize, StoreError> {
        let Some(local) = &self.local else {
            return Ok(0);
        };
        let rows = store.list_single_use(SingleUseScopes::Outside, now).await?;
        for row in &rows {
            local.spend(&row.scope, &row.id, row.expires_at, now);
        }
        Ok(rows.len())
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
        let gone = || StoreError::Unavailable("the single-use writer has stopped".into());
        let item = SingleUse {
            scope: scope.to_owned(),
            id: id.to_owned(),
            expires_at,
        };
        if let Some(local) = &self.local {
            if !local.spend(scope, id, expires_at, now) {
                return Ok(false);
            }
            let behind = Command::Spend {
                item,
                now,
                reply: None,
            };
            self.queue.send(behind).await.map_err(|_| gone())?;
            return Ok(true);
        }
        let (reply, answer) = oneshot::channel();
        let command = Command::Spend {
            item,
            now,
            reply: Some(reply),
        };
        self.queue.send(command).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Waits until every id queued so far is in the store (a graceful stop calls it).
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.queue.send(Command::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

/// The writer: drain up to a batch (written behind: gathered for [`BEHIND_GATHER`]), write it
/// in one statement, answer, repeat.
async fn write(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Command>, behind: bool) {
    let mut commands: Vec<Command> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut commands, MAX_BATCH).await > 0 {
        let flushing = |c: &[Command]| c.iter().any(|c| matches!(c, Command::Flush(_)));
        if behind && !flushing(&commands) {
            tokio::time::sleep(BEHIND_GATHER).await;
            while commands.len() < MAX_BEHIND {
                match rx.try_recv() {
                    Ok(command) => commands.push(command),
                    Err(_) => break,
                }
            }
        }
        let mut items = Vec::new();
        let mut replies = Vec::new();
        let mut flushed = Vec::new();
        // Each caller's own clock judged its id unexpired; the batch is judged by the
        // earliest of them, so no row counts as expired to a lagging node.
        let mut now = UnixTime::MAX;
        for command in commands.drain(..) {
            match command {
                Command::Spend {
                    item,
                    now: at,
                    reply,
                } => {
                    now = now.min(at);
                    items.push(item);
                    replies.push(reply);
                }
                Command::Flush(done) => flushed.push(done),
            }
        }
        if behind && !items.is_empty() {
            // Decided already: the rows are only kept for a restart (`Store::keep_spent`).
            if let Err(e) = store.keep_spent(&items, now).await {
                tracing::warn!(error = %e, ids = items.len(), "keeping spent single-use ids failed");
            }
        } else if !items.is_empty() {
            match store.record_single_use_batch(&items, now).await {
                Ok(fresh) => {
                    for (reply, fresh) in replies.into_iter().zip(fresh) {
                        if let Some(reply) = reply {
                            let _ = reply.send(Ok(fresh));
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, ids = items.len(), "spending single-use ids failed");
                    let why = e.to_string();
                    for reply in replies.into_iter().flatten() {
                        let _ = reply.send(Err(StoreError::Unavailable(why.clone())));
                    }
                }
            }
        }
        for done in flushed {
            let _ = done.send(());
        }
    }
}
