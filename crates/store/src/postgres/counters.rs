//! Gateway message counters (replay protection) on PostgreSQL, where several nodes advance
//! them at once. One transaction per batch: make sure every device has a row, lock the rows
//! in device order (two nodes' batches never deadlock), judge each advance in Rust against
//! the locked values, write the new highs. A second node offered the same message waits on
//! the row lock and then sees the first node's value.

use portcullis_core::device::DeviceId;
use sqlx::PgPool;

use crate::counters::{as_stored, highest, judge, CounterAdvance};
use crate::StoreError;

pub(super) async fn advance(
    pool: &PgPool,
    batch: &[(DeviceId, u64)],
) -> Result<Vec<CounterAdvance>, StoreError> {
    let mut ids: Vec<&str> = batch.iter().map(|(d, _)| d.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO device_counters (device_id, counter) \
         SELECT id, 0 FROM unnest($1::text[]) AS id ON CONFLICT (device_id) DO NOTHING",
    )
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    let locked: Vec<(String, i64)> = sqlx::query_as(
        "SELECT device_id, counter FROM device_counters WHERE device_id = ANY($1) \
         ORDER BY device_id FOR UPDATE",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let (out, raised) = judge(batch, locked.into_iter().collect());
    if !raised.is_empty() {
        let (ids, counters): (Vec<&str>, Vec<i64>) = raised.into_iter().unzip();
        sqlx::query(
            "UPDATE device_counters AS d SET counter = u.counter \
             FROM unnest($1::text[], $2::bigint[]) AS u(device_id, counter) \
             WHERE d.device_id = u.device_id",
        )
        .bind(&ids)
        .bind(&counters)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(out)
}

/// `Store::raise_device_counters`: one upsert keeping the higher counter, rows in device
/// order (as `advance` locks them, so the two never deadlock).
pub(super) async fn raise(pool: &PgPool, highs: &[(DeviceId, u64)]) -> Result<(), StoreError> {
    let rows = highest(highs);
    if rows.is_empty() {
        return Ok(());
    }
    let (ids, counters): (Vec<&str>, Vec<i64>) = rows.into_iter().unzip();
    sqlx::query(
        "INSERT INTO device_counters (device_id, counter) \
         SELECT * FROM unnest($1::text[], $2::bigint[]) \
         ON CONFLICT (device_id) DO UPDATE \
         SET counter = GREATEST(device_counters.counter, excluded.counter)",
    )
    .bind(&ids)
    .bind(&counters)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn revert(
    pool: &PgPool,
    device: &DeviceId,
    counter: u64,
    previous: u64,
) -> Result<bool, StoreError> {
    let (Some(counter), Ok(previous)) = (as_stored(counter), i64::try_from(previous)) else {
        return Ok(false);
    };
    let done = sqlx::query(
        "UPDATE device_counters SET counter = $1 WHERE device_id = $2 AND counter = $3",
    )
    .bind(previous)
    .bind(device.as_str())
    .bind(counter)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(done == 1)
}

pub(super) async fn list(
    pool: &PgPool,
    after: Option<&DeviceId>,
    limit: u32,
) -> Result<Vec<(DeviceId, u64)>, StoreError> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT device_id, counter FROM device_counters WHERE device_id > $1 ORDER BY device_id LIMIT $2")
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
