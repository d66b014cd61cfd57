//! Leases for leader-only jobs (see migrations/sqlite/0002_leases.sql).

use portcullis_core::UnixTime;
use sqlx::SqlitePool;

use crate::StoreError;

/// Takes or renews the lease: succeeds when it is free, expired, or already ours.
pub(super) async fn try_acquire(
    pool: &SqlitePool,
    name: &str,
    holder: &str,
    ttl_secs: i64,
    now: UnixTime,
) -> Result<bool, StoreError> {
    let won: Option<String> = sqlx::query_scalar(
        "INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
         WHERE leases.expires_at <= ?4 OR leases.holder = excluded.holder \
         RETURNING holder",
    )
    .bind(name)
    .bind(holder)
    .bind(now.saturating_add(ttl_secs))
    .bind(now)
    .fetch_optional(pool)
    .await?;
    Ok(won.is_some())
}

/// Deletes every lease of `holder`; the next contender takes each at once.
pub(super) async fn release_all(pool: &SqlitePool, holder: &str) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM leases WHERE holder = ?")
        .bind(holder)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
