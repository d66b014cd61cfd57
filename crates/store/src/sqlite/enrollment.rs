//! An enrollment in one transaction: the device becomes `enrolled` (spending its one-time
//! secret, when that is how it authenticated) and its new certificate is recorded. One commit
//! instead of two halves the time an enrollment holds SQLite's single writer.

use portcullis_core::device::{DeviceId, DeviceState};
use portcullis_core::UnixTime;
use sqlx::SqlitePool;

use super::{certificates, devices};
use crate::{IssuedCertificate, StoreError};

pub(super) async fn record(
    pool: &SqlitePool,
    id: &DeviceId,
    spend: Option<&str>,
    now: UnixTime,
    cert: &IssuedCertificate,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let admitted = match spend {
        Some(mac) => {
            devices::consume_enrollment_secret(&mut *tx, id, mac, DeviceState::Enrolled, now)
                .await?
        }
        None => {
            sqlx::query(
                "UPDATE devices SET state = 'enrolled', updated_at = ? \
                 WHERE device_id = ? AND state IN ('registered', 'enrolled')",
            )
            .bind(now)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1
        }
    };
    if !admitted {
        tx.rollback().await?;
        return Ok(false);
    }
    certificates::insert(&mut *tx, cert).await?;
    tx.commit().await?;
    Ok(true)
}
