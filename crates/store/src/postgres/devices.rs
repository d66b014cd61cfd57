//! The `devices` table: one row per registered device, attributes as JSON text, the one-time
//! enrollment secret as its MAC and deadline until it is spent. Every write announces
//! `device:<id>` (a bulk insert `device:*`), inserts too: nodes cache unknown ids.

use portcullis_core::device::{Device, DeviceId, DeviceState};
use portcullis_core::UnixTime;
use sqlx::PgPool;

use crate::pki::inserted_in_input_order;
use crate::rows::{device_from_row, DeviceColumns, DEVICE_COLUMNS};
use crate::StoreError;

/// Rows per `INSERT ... SELECT FROM UNNEST` statement: eight arrays of this many elements are
/// a few megabytes at most.
const ROWS_PER_STATEMENT: usize = 10_000;

/// Inserts and announces `device:<id>` in the same statement.
pub(super) async fn insert_one(pool: &PgPool, device: &Device) -> Result<(), StoreError> {
    let columns = DeviceColumns::of(device)?;
    let sql = format!(
        "WITH inserted AS (INSERT INTO devices ({DEVICE_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING device_id) \
         SELECT portcullis_notify_change('device', device_id) FROM inserted"
    );
    sqlx::query_scalar::<_, String>(&sql)
        .bind(device.device_id.as_str())
        .bind(device.model.as_deref())
        .bind(columns.attrs)
        .bind(device.state.as_str())
        .bind(columns.secret_mac)
        .bind(columns.secret_expires_at)
        .bind(device.created_at)
        .bind(device.updated_at)
        .fetch_one(pool)
        .await
        .map_err(|e| {
            StoreError::unique_as(e, |_| {
                format!("device '{}' already exists", device.device_id)
            })
        })?;
    Ok(())
}

/// One transaction of `INSERT ... SELECT FROM UNNEST(arrays) ON CONFLICT DO NOTHING RETURNING
/// device_id`: existing ids are skipped (also ones a concurrent loader inserts meanwhile: the
/// insert waits for that transaction, then skips), and `RETURNING` says which rows were new.
/// Returns the inserted ids in the order of `devices`, each once. One `device:*` announces
/// them all (a notification per row would queue up to a million on every node).
pub(super) async fn insert_many(
    pool: &PgPool,
    devices: &[Device],
) -> Result<Vec<DeviceId>, StoreError> {
    if devices.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "INSERT INTO devices ({DEVICE_COLUMNS}) SELECT * FROM UNNEST($1::text[], $2::text[], \
         $3::text[], $4::text[], $5::text[], $6::int8[], $7::int8[], $8::int8[]) \
         ON CONFLICT (device_id) DO NOTHING RETURNING device_id"
    );
    let mut tx = pool.begin().await?;
    let mut returned = Vec::new();
    for chunk in devices.chunks(ROWS_PER_STATEMENT) {
        let n = chunk.len();
        let (mut id, mut model, mut attrs, mut state) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut mac, mut expires_at, mut created_at, mut updated_at) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for d in chunk {
            let columns = DeviceColumns::of(d)?;
            id.push(d.device_id.as_str());
            model.push(d.model.as_deref());
            attrs.push(columns.attrs);
            state.push(d.state.as_str());
            mac.push(columns.secret_mac);
            expires_at.push(columns.secret_expires_at);
            created_at.push(d.created_at);
            updated_at.push(d.updated_at);
        }
        let inserted: Vec<String> = sqlx::query_scalar(&sql)
            .bind(id)
            .bind(model)
            .bind(attrs)
            .bind(state)
            .bind(mac)
            .bind(expires_at)
            .bind(created_at)
            .bind(updated_at)
            .fetch_all(&mut *tx)
            .await?;
        returned.extend(inserted);
    }
    if !returned.is_empty() {
        sqlx::query("SELECT portcullis_notify_change('device', '*')")
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(inserted_in_input_order(devices, returned))
}

pub(super) async fn get(pool: &PgPool, id: &DeviceId) -> Result<Option<Device>, StoreError> {
    let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE device_id = $1");
    let row = sqlx::query(&sql)
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(device_from_row).transpose()
}

/// Keyset pagination: `device_id` is `COLLATE "C"`, so ids compare bytewise, as on SQLite.
pub(super) async fn list(
    pool: &PgPool,
    after: Option<&DeviceId>,
    limit: u32,
) -> Result<Vec<Device>, StoreError> {
    let sql = format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE device_id > $1 ORDER BY device_id LIMIT $2"
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

/// Replaces everything but the id and `created_at`, and announces `device:<id>` in the same
/// statement, so the notification is sent exactly when the update commits.
pub(super) async fn update(pool: &PgPool, device: &Device) -> Result<bool, StoreError> {
    let columns = DeviceColumns::of(device)?;
    let announced: Option<String> = sqlx::query_scalar(
        "WITH updated AS (UPDATE devices SET model = $2, attrs = $3, state = $4, \
         enrollment_secret_mac = $5, enrollment_secret_expires_at = $6, updated_at = $7 \
         WHERE device_id = $1 RETURNING device_id) \
         SELECT portcullis_notify_change('device', device_id) FROM updated",
    )
    .bind(device.device_id.as_str())
    .bind(device.model.as_deref())
    .bind(columns.attrs)
    .bind(device.state.as_str())
    .bind(columns.secret_mac)
    .bind(columns.secret_expires_at)
    .bind(device.updated_at)
    .fetch_optional(pool)
    .await?;
    Ok(announced.is_some())
}

/// One statement. Under READ COMMITTED a second UPDATE of the same row waits for the first to
/// commit and then re-checks its WHERE against the new row version, where the MAC is gone: of
/// several enrollments presenting the same secret, on any nodes, exactly one wins. The state is
/// checked here too, so a node whose cached copy still says `registered` cannot enroll a
/// device suspended (secret kept) elsewhere. The winner announces `device:<id>`.
pub(super) async fn consume_enrollment_secret(
    pool: impl sqlx::PgExecutor<'_>,
    id: &DeviceId,
    expected_mac: &str,
    state: DeviceState,
    now: UnixTime,
) -> Result<bool, StoreError> {
    let announced: Option<String> = sqlx::query_scalar(
        "WITH spent AS (UPDATE devices SET enrollment_secret_mac = NULL, \
         enrollment_secret_expires_at = NULL, state = $3, updated_at = $4 \
         WHERE device_id = $1 AND enrollment_secret_mac IS NOT NULL \
         AND enrollment_secret_mac = $2 AND state IN ('registered', 'enrolled') \
         RETURNING device_id) \
         SELECT portcullis_notify_change('device', device_id) FROM spent",
    )
    .bind(id.as_str())
    .bind(expected_mac)
    .bind(state.as_str())
    .bind(now)
    .fetch_optional(pool)
    .await?;
    Ok(announced.is_some())
}
