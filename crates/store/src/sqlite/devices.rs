//! The `devices` table: one row per registered device, attributes as JSON text, the one-time
//! enrollment secret as its MAC and deadline until it is spent.

use portcullis_core::device::{Device, DeviceId, DeviceState};
use portcullis_core::UnixTime;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, SqlitePool};

use super::bulk_insert::BulkInsert;
use crate::pki::inserted_in_input_order;
use crate::rows::{device_from_row, DeviceColumns, DEVICE_COLUMNS};
use crate::StoreError;

/// Manufacturing lists are re-run after partial failures: rows already there are skipped, and
/// `RETURNING` says which rows were new.
const INSERT_NEW: BulkInsert = BulkInsert {
    table: "devices",
    columns: DEVICE_COLUMNS,
    column_count: 8,
    suffix: " ON CONFLICT (device_id) DO NOTHING RETURNING device_id",
};

/// Adds every column of `d` in `DEVICE_COLUMNS` order.
fn bind_device<'a>(args: &mut SqliteArguments<'a>, d: &'a Device) -> Result<(), StoreError> {
    let columns = DeviceColumns::of(d)?;
    let bound = (|| {
        args.add(d.device_id.as_str())?;
        args.add(d.model.as_deref())?;
        args.add(columns.attrs)?;
        args.add(d.state.as_str())?;
        args.add(columns.secret_mac)?;
        args.add(columns.secret_expires_at)?;
        args.add(d.created_at)?;
        args.add(d.updated_at)
    })();
    bound.map_err(|_| StoreError::corrupt_field("devices row", d.device_id.as_str()))
}

pub(super) async fn insert_one(pool: &SqlitePool, device: &Device) -> Result<(), StoreError> {
    let columns = DeviceColumns::of(device)?;
    let sql = format!("INSERT INTO devices ({DEVICE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    sqlx::query(&sql)
        .bind(device.device_id.as_str())
        .bind(device.model.as_deref())
        .bind(columns.attrs)
        .bind(device.state.as_str())
        .bind(columns.secret_mac)
        .bind(columns.secret_expires_at)
        .bind(device.created_at)
        .bind(device.updated_at)
        .execute(pool)
        .await
        .map_err(|e| {
            StoreError::unique_as(e, |_| {
                format!("device '{}' already exists", device.device_id)
            })
        })?;
    Ok(())
}

/// One `BEGIN IMMEDIATE` transaction of multi-row inserts that skip existing ids. Returns the
/// inserted ids in the order of `devices` (an id listed twice is inserted, and returned, once).
pub(super) async fn insert_many(
    pool: &SqlitePool,
    devices: &[Device],
) -> Result<Vec<DeviceId>, StoreError> {
    if devices.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let returned = INSERT_NEW
        .run_returning(&mut tx, devices, bind_device)
        .await?;
    tx.commit().await?;
    Ok(inserted_in_input_order(devices, returned))
}

pub(super) async fn get(pool: &SqlitePool, id: &DeviceId) -> Result<Option<Device>, StoreError> {
    let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE device_id = ?");
    let row = sqlx::query(&sql)
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(device_from_row).transpose()
}

/// Keyset pagination in bytewise id order, like `clients::list`.
pub(super) async fn list(
    pool: &SqlitePool,
    after: Option<&DeviceId>,
    limit: u32,
) -> Result<Vec<Device>, StoreError> {
    let sql = format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE device_id > ? ORDER BY device_id LIMIT ?"
    );
    // Ids are never empty, so "" sorts before every one of them.
    let after = after.map_or("", DeviceId::as_str);
    let rows = sqlx::query(&sql)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(device_from_row).collect()
}

/// Replaces everything but the id and `created_at`.
pub(super) async fn update(pool: &SqlitePool, device: &Device) -> Result<bool, StoreError> {
    let columns = DeviceColumns::of(device)?;
    let result = sqlx::query(
        "UPDATE devices SET model = ?, attrs = ?, state = ?, enrollment_secret_mac = ?, \
         enrollment_secret_expires_at = ?, updated_at = ? WHERE device_id = ?",
    )
    .bind(device.model.as_deref())
    .bind(columns.attrs)
    .bind(device.state.as_str())
    .bind(columns.secret_mac)
    .bind(columns.secret_expires_at)
    .bind(device.updated_at)
    .bind(device.device_id.as_str())
    .execute(pool)
    .await?;
    Ok(result.rows_affected() > 0)
}

/// One statement: SQLite runs one writer at a time, so of several enrollments presenting the
/// same secret exactly one finds the MAC still there. Only a device that may enroll
/// (`registered` or `enrolled`) spends it: suspension keeps the secret.
pub(super) async fn consume_enrollment_secret(
    pool: impl sqlx::SqliteExecutor<'_>,
    id: &DeviceId,
    expected_mac: &str,
    state: DeviceState,
    now: UnixTime,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "UPDATE devices SET enrollment_secret_mac = NULL, enrollment_secret_expires_at = NULL, \
         state = ?, updated_at = ? \
         WHERE device_id = ? AND enrollment_secret_mac IS NOT NULL AND enrollment_secret_mac = ? \
         AND state IN ('registered', 'enrolled')",
    )
    .bind(state.as_str())
    .bind(now)
    .bind(id.as_str())
    .bind(expected_mac)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}
