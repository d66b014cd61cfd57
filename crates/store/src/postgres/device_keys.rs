//! The `device_keys` table: each device's symmetric keys, sealed under the master key. Every
//! write announces `device:<id>` in the writing statement, so it is heard exactly when it
//! commits and other nodes drop the credentials they cache for the device.

use portcullis_core::device::DeviceId;
use portcullis_core::device_key::DeviceKeyId;
use portcullis_core::UnixTime;
use sqlx::PgPool;

use crate::rows::{device_key_from_row, DEVICE_KEY_COLUMNS};
use crate::{StoreError, StoredDeviceKey};

/// Inserts and announces `device:<id>` in the same statement.
async fn insert_on(
    conn: impl sqlx::PgExecutor<'_>,
    key: &StoredDeviceKey,
) -> Result<(), StoreError> {
    let sql = format!(
        "WITH inserted AS (INSERT INTO device_keys ({DEVICE_KEY_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5) RETURNING device_id) \
         SELECT portcullis_notify_change('device', device_id) FROM inserted"
    );
    sqlx::query_scalar::<_, String>(&sql)
        .bind(key.info.device_id.as_str())
        .bind(key.info.key_id.as_str())
        .bind(key.sealed.as_slice())
        .bind(key.info.created_at)
        .bind(key.info.expires_at)
        .fetch_one(conn)
        .await
        .map_err(|e| StoreError::device_key_insert(e, key))?;
    Ok(())
}

pub(super) async fn insert(pool: &PgPool, key: &StoredDeviceKey) -> Result<(), StoreError> {
    insert_on(pool, key).await
}

/// One transaction: the new key (announced), then the others' deadline. A concurrent rotation
/// of the same device waits on the rows this one updates, then re-checks them, so both new
/// keys survive and each ends the keys it saw.
pub(super) async fn rotate(
    pool: &PgPool,
    new: &StoredDeviceKey,
    expire_others_at: UnixTime,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    insert_on(&mut *tx, new).await?;
    sqlx::query(
        "UPDATE device_keys SET expires_at = $1 WHERE device_id = $2 AND key_id <> $3 \
         AND (expires_at IS NULL OR expires_at > $1)",
    )
    .bind(expire_others_at)
    .bind(new.info.device_id.as_str())
    .bind(new.info.key_id.as_str())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn list_for_device(
    pool: &PgPool,
    id: &DeviceId,
) -> Result<Vec<StoredDeviceKey>, StoreError> {
    let sql = format!(
        "SELECT {DEVICE_KEY_COLUMNS} FROM device_keys WHERE device_id = $1 \
         ORDER BY created_at, key_id"
    );
    let rows = sqlx::query(&sql).bind(id.as_str()).fetch_all(pool).await?;
    rows.iter().map(device_key_from_row).collect()
}

/// Deletes and announces `device:<id>` when a row went.
pub(super) async fn delete(
    pool: &PgPool,
    id: &DeviceId,
    key_id: &DeviceKeyId,
) -> Result<bool, StoreError> {
    let announced: Option<String> = sqlx::query_scalar(
        "WITH deleted AS (DELETE FROM device_keys WHERE device_id = $1 AND key_id = $2 \
         RETURNING device_id) \
         SELECT portcullis_notify_change('device', device_id) FROM deleted",
    )
    .bind(id.as_str())
    .bind(key_id.as_str())
    .fetch_optional(pool)
    .await?;
    Ok(announced.is_some())
}

/// Keyset pagination over (device id, key id); both columns are `COLLATE "C"`, so the order is
/// bytewise, as on SQLite.
pub(super) async fn list_all(
    pool: &PgPool,
    after: Option<(&DeviceId, &DeviceKeyId)>,
    limit: u32,
) -> Result<Vec<StoredDeviceKey>, StoreError> {
    let sql = format!(
        "SELECT {DEVICE_KEY_COLUMNS} FROM device_keys \
         WHERE device_id > $1 OR (device_id = $1 AND key_id > $2) \
         ORDER BY device_id, key_id LIMIT $3"
    );
    let (device, key) = after.map_or(("", ""), |(d, k)| (d.as_str(), k.as_str()));
    let rows = sqlx::query(&sql)
        .bind(device)
        .bind(key)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(device_key_from_row).collect()
}

/// Replaces the sealed material and announces `device:<id>`; `NotFound` if no such key.
pub(super) async fn update_sealed(
    pool: &PgPool,
    id: &DeviceId,
    key_id: &DeviceKeyId,
    sealed: &[u8],
) -> Result<(), StoreError> {
    let announced: Option<String> = sqlx::query_scalar(
        "WITH updated AS (UPDATE device_keys SET sealed = $3 \
         WHERE device_id = $1 AND key_id = $2 RETURNING device_id) \
         SELECT portcullis_notify_change('device', device_id) FROM updated",
    )
    .bind(id.as_str())
    .bind(key_id.as_str())
    .bind(sealed)
    .fetch_optional(pool)
    .await?;
    announced.map(drop).ok_or(StoreError::NotFound)
}
