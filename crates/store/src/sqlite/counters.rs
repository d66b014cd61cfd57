//! Gateway message counters (replay protection): one transaction per batch, each advance
//! judged against the value the previous ones in the batch left.

use portcullis_core::device::DeviceId;
use sqlx::SqlitePool;

use crate::counters::{as_stored, CounterAdvance};
use crate::StoreError;

pub(super) async fn advance(
    pool: &SqlitePool,
    batch: &[(DeviceId, u64)],
) -> Result<Vec<CounterAdvance>, StoreError> {
    let mut tx = pool.begin().await?;
    let mut out = Vec::with_capacity(batch.len());
    for (device, counter) in batch {
        let Some(counter) = as_stored(*counter) else {
            out.push(None);
            continue;
        };
        let previous: Option<i64> =
            sqlx::query_scalar("SELECT counter FROM device_counters WHERE device_id = ?")
                .bind(device.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let previous = previous.unwrap_or(0);
        if counter > previous {
            sqlx::query(
                "INSERT INTO device_counters (device_id, counter) VALUES (?, ?) \
                 ON CONFLICT (device_id) DO UPDATE SET counter = excluded.counter",
            )
            .bind(device.as_str())
            .bind(counter)
            .execute(&mut *tx)
            .await?;
            out.push(Some(previous.unsigned_abs()));
        } else {
            out.push(None);
        }
    }
    tx.commit().await?;
    Ok(out)
}

pub(super) async fn revert(
    pool: &SqlitePool,
    device: &DeviceId,
    counter: u64,
    previous: u64,
) -> Result<bool, StoreError> {
    let (Some(counter), Ok(previous)) = (as_stored(counter), i64::try_from(previous)) else {
        return Ok(false);
    };
    let done =
        sqlx::query("UPDATE device_counters SET counter = ? WHERE device_id = ? AND counter = ?")
            .bind(previous)
            .bind(device.as_str())
            .bind(counter)
            .execute(pool)
            .await?
            .rows_affected();
    Ok(done == 1)
}

pub(super) async fn list(
    pool: &SqlitePool,
    after: Option<&DeviceId>,
    limit: u32,
) -> Result<Vec<(DeviceId, u64)>, StoreError> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT device_id, counter FROM device_counters WHERE device_id > ? ORDER BY device_id LIMIT ?")
        .bind(after.map_or("", DeviceId::as_str))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.into_iter()
        .map(|(id, counter)| {
            let id = DeviceId::parse(id).map_err(|_| {
                StoreError::Corrupt("device_counters.device_id is not a device id".into())
            })?;
            Ok((id, counter.unsigned_abs()))
        })
        .collect()
}
