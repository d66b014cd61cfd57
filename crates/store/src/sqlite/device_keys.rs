//! The `device_keys` table: each device's symmetric keys, sealed under the master key. A key
//! insert names a device that must exist (the foreign key); a rotation inserts and sets the
//! others' deadline in one `BEGIN IMMEDIATE` transaction.

use portcullis_core::device::DeviceId;
use portcullis_core::device_key::DeviceKeyId;
use portcullis_core::UnixTime;
use sqlx::{SqliteConnection, SqlitePool};

use crate::rows::{device_key_from_row, DEVICE_KEY_COLUMNS};
use crate::{StoreError, StoredDeviceKey};

async fn insert_on(conn: &mut SqliteConnection, key: &StoredDeviceKey) -> Result<(), StoreError> {
    let sql = format!("INSERT INTO device_keys ({DEVICE_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?)");
    sqlx::query(&sql)
        .bind(key.info.device_id.as_str())
        .bind(key.info.key_id.as_str())
        .bind(key.sealed.as_slice())
        .bind(key.info.created_at)
        .bind(key.info.expires_at)
        .execute(conn)
        .await
        .map_err(|e| StoreError::device_key_insert(e, key))?;
    Ok(())
}

pub(super) async fn insert(pool: &SqlitePool, key: &StoredDeviceKey) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    insert_on(&mut conn, key).await
}

/// The new key, then every other key of the device that has no deadline or a later one gets
/// `expire_others_at`; all or nothing.
pub(super) async fn rotate(
    pool: &SqlitePool,
    new: &StoredDeviceKey,
    expire_others_at: UnixTime,
) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    insert_on(&mut tx, new).await?;
    sqlx::query(
        "UPDATE device_keys SET expires_at = ?1 WHERE device_id = ?2 AND key_id <> ?3 \
         AND (expires_at IS NULL OR expires_at > ?1)",
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
    pool: &SqlitePool,
    id: &DeviceId,
) -> Result<Vec<StoredDeviceKey>, StoreError> {
    let sql = format!(
        "SELECT {DEVICE_KEY_COLUMNS} FROM device_keys WHERE device_id = ? \
         ORDER BY created_at, key_id"
    );
    let rows = sqlx::query(&sql).bind(id.as_str()).fetch_all(pool).await?;
    rows.iter().map(device_key_from_row).collect()
}

pub(super) async fn delete(
    pool: &SqlitePool,
    id: &DeviceId,
    key_id: &DeviceKeyId,
) -> Result<bool, StoreError> {
    let result = sqlx::query("DELETE FROM device_keys WHERE device_id = ? AND key_id = ?")
        .bind(id.as_str())
        .bind(key_id.as_str())
        .execute(pool)
        .await?;
    Ok(result.rows_affected() > 0)
}

/// Keyset pagination over (device id, key id) in byte order; ids are never empty, so
/// `('', '')` sorts before every key.
pub(super) async fn list_all(
    pool: &SqlitePool,
    after: Option<(&DeviceId, &DeviceKeyId)>,
    limit: u32,
) -> Result<Vec<StoredDeviceKey>, StoreError> {
    let sql = format!(
        "SELECT {DEVICE_KEY_COLUMNS} FROM device_keys \
         WHERE device_id > ?1 OR (device_id = ?1 AND key_id > ?2) \
         ORDER BY device_id, key_id LIMIT ?3"
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

pub(super) async fn update_sealed(
    pool: &SqlitePool,
    id: &DeviceId,
    key_id: &DeviceKeyId,
    sealed: &[u8],
) -> Result<(), StoreError> {
    let result =
        sqlx::query("UPDATE device_keys SET sealed = ? WHERE device_id = ? AND key_id = ?")
            .bind(sealed)
            .bind(id.as_str())
            .bind(key_id.as_str())
            .execute(pool)
            .await?;
    if result.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
