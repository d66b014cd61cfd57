//! Enrollments in one transaction (a group commit): the device becomes `enrolled` (spending its one-time
//! secret, when that is how it authenticated) and its new certificate is recorded; the
//! `device:<id>` notice is sent on commit.

use portcullis_core::device::DeviceState;
use sqlx::PgPool;

use super::{certificates, devices};
use crate::{Enrollment, StoreError};

pub(super) async fn record(pool: &PgPool, batch: &[Enrollment]) -> Result<Vec<bool>, StoreError> {
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
                let announced: Option<String> = sqlx::query_scalar(
                    "WITH enrolled AS (UPDATE devices SET state = 'enrolled', updated_at = $2 \
                     WHERE device_id = $1 AND state IN ('registered', 'enrolled') \
                     RETURNING device_id) \
                     SELECT portcullis_notify_change('device', device_id) FROM enrolled",
                )
                .bind(enrollment.device_id.as_str())
                .bind(enrollment.at)
                .fetch_optional(&mut *tx)
                .await?;
                announced.is_some()
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
