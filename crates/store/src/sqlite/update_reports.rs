//! The `update_reports` table: what each device last said about each release of its model.
//! A report is an upsert on (device, model, release), so a device going downloading →
//! installed leaves one row, and reports arriving twice (a retried message) are harmless. The
//! rollout is counted by the database (`GROUP BY` over the `(model, release, device_id)`
//! index) rather than by paging every report into memory: a release may go to many devices.

use portcullis_core::device::DeviceId;
use portcullis_core::update::UpdateStatus;
use sqlx::SqlitePool;

use crate::rows::{
    release_as_stored, rollout_from_rows, update_report_error, update_report_from_row,
    UPDATE_REPORT_COLUMNS,
};
use crate::{StoreError, UpdateReport};

pub(super) async fn record(pool: &SqlitePool, report: &UpdateReport) -> Result<(), StoreError> {
    let release = release_as_stored(report.release)?;
    let sql = format!(
        "INSERT INTO update_reports ({UPDATE_REPORT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) \
         ON CONFLICT (device_id, model, release) DO UPDATE \
         SET status = excluded.status, detail = excluded.detail, \
         reported_at = excluded.reported_at"
    );
    sqlx::query(&sql)
        .bind(report.device_id.as_str())
        .bind(report.model.as_str())
        .bind(release)
        .bind(report.status.as_str())
        .bind(report.detail.as_deref())
        .bind(report.reported_at)
        .execute(pool)
        .await
        .map_err(update_report_error)?;
    Ok(())
}

/// A handful of rows (releases × four statuses), put in order by [`rollout_from_rows`].
pub(super) async fn rollout(
    pool: &SqlitePool,
    model: &str,
) -> Result<Vec<(u64, UpdateStatus, u64)>, StoreError> {
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT release, status, COUNT(*) FROM update_reports WHERE model = ? \
         GROUP BY release, status",
    )
    .bind(model)
    .fetch_all(pool)
    .await?;
    rollout_from_rows(model, rows)
}

/// Keyset pagination by device id; ids are never empty, so `''` sorts before every device.
/// A release that cannot be stored has no reports.
pub(super) async fn list(
    pool: &SqlitePool,
    model: &str,
    release: u64,
    after: Option<&DeviceId>,
    limit: u32,
) -> Result<Vec<UpdateReport>, StoreError> {
    let Ok(release) = release_as_stored(release) else {
        return Ok(Vec::new());
    };
    let sql = format!(
        "SELECT {UPDATE_REPORT_COLUMNS} FROM update_reports \
         WHERE model = ? AND release = ? AND device_id > ? ORDER BY device_id LIMIT ?"
    );
    let rows = sqlx::query(&sql)
        .bind(model)
        .bind(release)
        .bind(after.map_or("", DeviceId::as_str))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(update_report_from_row).collect()
}

/// Keyset pagination by (device id, model, release), the primary key's order; `''` sorts
/// before every device id.
pub(super) async fn list_all(
    pool: &SqlitePool,
    after: Option<(&DeviceId, &str, u64)>,
    limit: u32,
) -> Result<Vec<UpdateReport>, StoreError> {
    let (device, model, release) = match after {
        Some((device, model, release)) => (
            device.as_str(),
            model,
            // A release beyond what is stored sorts after every stored one.
            i64::try_from(release).unwrap_or(i64::MAX),
        ),
        None => ("", "", 0),
    };
    let sql = format!(
        "SELECT {UPDATE_REPORT_COLUMNS} FROM update_reports \
         WHERE (device_id, model, release) > (?, ?, ?) \
         ORDER BY device_id, model, release LIMIT ?"
    );
    let rows = sqlx::query(&sql)
        .bind(device)
        .bind(model)
        .bind(release)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(update_report_from_row).collect()
}
