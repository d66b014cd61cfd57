//! The `settings` table: named values (the secret pepper, the bootstrap marker, the CA record,
//! the published CRL). Every write announces `setting:<name>`, so nodes holding a copy (the
//! CRL) reload it.

use sqlx::PgPool;

use crate::StoreError;

pub(super) async fn get(pool: &PgPool, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let value = sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await?;
    Ok(value)
}

/// First writer wins, across nodes: the insert is skipped if the name exists (a concurrent
/// insert of the same name waits for the other transaction, then skips), and whatever is
/// stored is returned, so two nodes starting at once end up with the same pepper. Settings are
/// never deleted, so the read after the insert always finds a row.
pub(super) async fn put_if_absent(
    pool: &PgPool,
    name: &str,
    value: &[u8],
) -> Result<Vec<u8>, StoreError> {
    sqlx::query(
        "WITH inserted AS (INSERT INTO settings (name, value) VALUES ($1, $2) \
         ON CONFLICT (name) DO NOTHING RETURNING name) \
         SELECT portcullis_notify_change('setting', name) FROM inserted",
    )
    .bind(name)
    .bind(value)
    .fetch_optional(pool)
    .await?;
    get(pool, name).await?.ok_or(StoreError::NotFound)
}

/// Compare-and-swap: replaces the value only if it is still `expected` (re-sealing the CA
/// under a new master key must not overwrite a CA another process changed meanwhile).
pub(super) async fn replace(
    pool: &PgPool,
    name: &str,
    expected: &[u8],
    value: &[u8],
) -> Result<bool, StoreError> {
    let announced: Option<String> = sqlx::query_scalar(
        "WITH updated AS (UPDATE settings SET value = $1 WHERE name = $2 AND value = $3 \
         RETURNING name) SELECT portcullis_notify_change('setting', name) FROM updated",
    )
    .bind(value)
    .bind(name)
    .bind(expected)
    .fetch_optional(pool)
    .await?;
    Ok(announced.is_some())
}

/// Keyset pagination by name (`COLLATE "C"`: byte order, as on SQLite); `''` is no setting's
/// name, so it sorts before every one.
pub(super) async fn list(
    pool: &PgPool,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let rows =
        sqlx::query_as("SELECT name, value FROM settings WHERE name > $1 ORDER BY name LIMIT $2")
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
    Ok(rows)
}
