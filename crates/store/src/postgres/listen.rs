//! The change feed of PostgreSQL: `LISTEN portcullis_changes` on a dedicated connection.
//!
//! When that connection is lost, notifications sent meanwhile are gone. The feed then
//! reconnects and LISTENs *first*, and only then says [`Change::Everything`]: the consumer's
//! flush and reload happen after the new LISTEN, so a change is either in what it reloads or
//! announced afterwards, never in neither.

use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::mpsc;

use crate::changes::{Change, ChangeFeed};

/// The channel `portcullis_notify_change` sends on (migrations/postgres).
const CHANNEL: &str = "portcullis_changes";
/// Changes buffered before the listener waits for the consumer.
const BUFFER: usize = 4096;

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Starts listening; the task ends when the receiver is dropped.
pub(super) async fn change_feed(pool: PgPool) -> Result<ChangeFeed, sqlx::Error> {
    let mut listener = listen(&pool).await?;
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(async move {
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    if tx.send(Change::parse(n.payload())).await.is_err() {
                        return;
                    }
                }
                Ok(None) | Err(_) => {
                    tracing::warn!(
                        "change feed lost its connection; reconnecting, then flushing caches"
                    );
                    let mut backoff = Duration::from_millis(50);
                    listener = loop {
                        if tx.is_closed() {
                            return;
                        }
                        match listen(&pool).await {
                            Ok(l) => break l,
                            Err(e) => {
                                tracing::warn!(error = %e, "change feed cannot reach PostgreSQL; retrying");
                                tokio::time::sleep(backoff).await;
                                backoff = (backoff * 2).min(Duration::from_secs(5));
                            }
                        }
                    };
                    if tx.send(Change::Everything).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok(rx)
}
