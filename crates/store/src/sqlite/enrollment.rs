//! Enrollments in one transaction (a group commit): the device becomes `enrolled` (spending its one-time
//! secret, when that is how it authenticated) and its new certificate is recorded. One commit
//! instead of two halves the time an enrollment holds SQLite's single writer.

use portcullis_core::device::DeviceState;
use sqlx::SqlitePool;

use super::{certificates, devices};
use crate::{Enrollment, StoreError};

pub(super) async fn record(
    pool: &SqlitePool,
    batch: &[Enrollment],
) -> Result<Vec<bool>, StoreError> {
    let mut tx = pool.begin().await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for enrollment in batch {
        let admitted = match enrollment.spend.as_deref() {
            Some(mac) => {
                devices::consume_enrollment_secret(
                    &mut *tx,
                    &enrollment.device_id,
                    mac,
                    DeviceState::Enrolled,
                    enrollment.at,
                )
                .await?
            }
            None => {
                sqlx::query(
                    "UPDATE devices SET state = 'enrolled', updated_at = ? \
                     WHERE device_id = ? AND state IN ('registered', 'enrolled')",
                )
                .bind(enrollment.at)
                .bind(enrollment.device_id.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1
            }
        };
        if admitted {
            certificates::insert(&mut *tx, &enrollment.cert).await?;
        }
        outcomes.push(admitted);
    }
    tx.commit().await?;
    Ok(outcomes)
}
