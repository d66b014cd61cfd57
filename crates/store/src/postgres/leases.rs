//! Leases for leader-only jobs (see migrations/postgres/0002_leases.sql). Expiry is judged by
//! the database clock, so nodes with skewed clocks still agree on who holds a lease.

use sqlx::PgPool;

use crate::StoreError;

/// Takes or renews the lease: succeeds when it is free, expired, or already ours.
pub(super) async fn try_acquire(
    pool: &PgPool,
    name: &str,
    holder: &str,
    ttl_secs: i64,
) -> Result<bool, StoreError> {
    let won: Option<String> = sqlx::query_scalar(
        "INSERT INTO leases (name, holder, expires_at) \
         VALUES ($1, $2, floor(extract(epoch FROM now()))::bigint + $3) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
         WHERE leases.expires_at <= floor(extract(epoch FROM now()))::bigint OR leases.holder = excluded.holder \
         RETURNING holder",
    )
    .bind(name)
    .bind(holder)
    .bind(ttl_secs)
    .fetch_optional(pool)
    .await?;
    Ok(won.is_some())
}

/// Deletes every lease of `holder`; the next contender takes each at once.
pub(super) async fn release_all(pool: &PgPool, holder: &str) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM leases WHERE holder = $1")
        .bind(holder)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
