//! An enrollment in one transaction: the device becomes `enrolled` (spending its one-time
//! secret, when that is how it authenticated) and its new certificate is recorded; the
//! `device:<id>` notice is sent on commit.

use portcullis_core::device::{DeviceId, DeviceState};
use portcullis_core::UnixTime;
use sqlx::PgPool;

use super::{certificates, devices};
use crate::{IssuedCertificate, StoreError};

pub(super) async fn record(
    pool: &PgPool,
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
            let announced: Option<String> = sqlx::query_scalar(
                "WITH enrolled AS (UPDATE devices SET state = 'enrolled', updated_at = $2 \
                 WHERE device_id = $1 AND state IN ('registered', 'enrolled') \
                 RETURNING device_id) \
                 SELECT portcullis_notify_change('device', device_id) FROM enrolled",
            )
            .bind(id.as_str())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            announced.is_some()
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
