//! The `settings` table: named values written once (the secret pepper, the bootstrap marker).

use sqlx::SqlitePool;

use crate::StoreError;

pub(super) async fn get(pool: &SqlitePool, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let value = sqlx::query_scalar("SELECT value FROM settings WHERE name = ?")
        .bind(name)
        .fetch_optional(pool)
        .await?;
    Ok(value)
}

/// First writer wins: the insert is skipped if the name exists, then whatever is stored is
/// returned, so two nodes starting at once end up with the same pepper. Settings are never
/// deleted, so the read after the insert always finds a row.
pub(super) async fn put_if_absent(
    pool: &SqlitePool,
    name: &str,
    value: &[u8],
) -> Result<Vec<u8>, StoreError> {
    sqlx::query("INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(value)
        .execute(pool)
        .await?;
    get(pool, name).await?.ok_or(StoreError::NotFound)
}

/// Compare-and-swap: replaces the value only if it is still `expected` (re-sealing the CA
/// under a new master key must not overwrite a CA another process changed meanwhile).
pub(super) async fn replace(
    pool: &SqlitePool,
    name: &str,
    expected: &[u8],
    value: &[u8],
) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE settings SET value = ? WHERE name = ? AND value = ?")
        .bind(value)
        .bind(name)
        .bind(expected)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Keyset pagination by name (`BINARY` collation: byte order, as on PostgreSQL's
/// `COLLATE "C"`); `''` is no setting's name, so it sorts before every one.
pub(super) async fn list(
    pool: &SqlitePool,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let rows =
        sqlx::query_as("SELECT name, value FROM settings WHERE name > ? ORDER BY name LIMIT ?")
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
    Ok(rows)
}
