//! Gateway message counters (replay protection) on SQLite: one transaction per batch, each
//! advance judged against the value the previous ones in the batch left.

use portcullis_core::device::DeviceId;
use std::collections::HashMap;

use sqlx::{Acquire as _, SqliteConnection, SqlitePool};

use crate::counters::{as_stored, highest, judge, CounterAdvance};
use crate::StoreError;

/// Device ids per statement: two variables each, far below SQLite's limit of 32 766.
const CHUNK: usize = 500;

/// One transaction per batch, two statements per 500 devices (read the stored counters,
/// upsert the new highs), whatever the batch's size: the cost per message falls as the
/// rate rises. The commit is synced (`synchronous = FULL` for this transaction only), like
/// the embedded sink's messages, so a power cut cannot forget a counter whose message was
/// acknowledged and let that message be accepted again.
pub(super) async fn advance(
    pool: &SqlitePool,
    batch: &[(DeviceId, u64)],
) -> Result<Vec<CounterAdvance>, StoreError> {
    let mut conn = pool.acquire().await?;
    sqlx::query("PRAGMA synchronous = FULL")
        .execute(&mut *conn)
        .await?;
    let result = advance_on(&mut conn, batch).await;
    // Back to the pool's setting, whatever happened (a connection keeps its pragmas).
    let reset = sqlx::query("PRAGMA synchronous = NORMAL")
        .execute(&mut *conn)
        .await;
    let out = result?;
    reset?;
    Ok(out)
}

/// `Store::raise_device_counters` at the pool's `synchronous = NORMAL`: one upsert per 500
/// devices keeping the higher counter, in one transaction; nothing is read back.
pub(super) async fn raise(pool: &SqlitePool, highs: &[(DeviceId, u64)]) -> Result<(), StoreError> {
    let rows = highest(highs);
    if rows.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    write_highs(&mut tx, &rows).await?;
    tx.commit().await?;
    Ok(())
}

/// Upserts `(device, counter)` rows, 500 per statement, keeping a stored counter that is
/// higher (an advance's rows never are: it judged them against what it read in the same
/// transaction; a raise's may be).
async fn write_highs(conn: &mut SqliteConnection, rows: &[(&str, i64)]) -> Result<(), StoreError> {
    for chunk in rows.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO device_counters (device_id, counter) VALUES {} \
             ON CONFLICT (device_id) DO UPDATE SET counter = max(counter, excluded.counter)",
            vec!["(?, ?)"; chunk.len()].join(", ")
        );
        let mut query = sqlx::query(&sql);
        for (id, counter) in chunk {
            query = query.bind(*id).bind(*counter);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

async fn advance_on(
    conn: &mut SqliteConnection,
    batch: &[(DeviceId, u64)],
) -> Result<Vec<CounterAdvance>, StoreError> {
    let mut ids: Vec<&str> = batch.iter().map(|(d, _)| d.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut tx = conn.begin().await?;
    let mut current = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let sql = format!(
            "SELECT device_id, counter FROM device_counters WHERE device_id IN ({})",
            vec!["?"; chunk.len()].join(", ")
        );
        let mut query = sqlx::query_as::<_, (String, i64)>(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        current.extend(query.fetch_all(&mut *tx).await?);
    }
    let (out, raised) = judge(batch, current);
    let raised: Vec<(&str, i64)> = raised.into_iter().collect();
    write_highs(&mut tx, &raised).await?;
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
