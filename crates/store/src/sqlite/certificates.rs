//! The `certificates` table: every certificate the CA issued, with its revocation state.

use portcullis_core::device::{DeviceId, RevocationReason};
use portcullis_core::UnixTime;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use crate::pki::{certificate_conflict, CertificateFilter, IssuedCertificate, RevokedCertificate};
use crate::rows::{
    certificate_from_row, reason_code, revoked_from_row, CERTIFICATE_COLUMNS, REVOKED_COLUMNS,
};
use crate::StoreError;

pub(super) async fn insert(
    pool: impl sqlx::SqliteExecutor<'_>,
    cert: &IssuedCertificate,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO certificates ({CERTIFICATE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    );
    sqlx::query(&sql)
        .bind(cert.serial.as_str())
        .bind(cert.device_id.as_ref().map(DeviceId::as_str))
        .bind(cert.subject.as_str())
        .bind(cert.not_before)
        .bind(cert.not_after)
        .bind(cert.sha256.as_str())
        .bind(cert.der.as_slice())
        .bind(cert.revoked_at)
        .bind(cert.revocation_reason.map(reason_code))
        .execute(pool)
        .await
        .map_err(|e| StoreError::unique_as(e, |message| certificate_conflict(cert, message)))?;
    Ok(())
}

pub(super) async fn get(
    pool: &SqlitePool,
    serial: &str,
) -> Result<Option<IssuedCertificate>, StoreError> {
    let sql = format!("SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE serial = ?");
    let row = sqlx::query(&sql).bind(serial).fetch_optional(pool).await?;
    row.as_ref().map(certificate_from_row).transpose()
}

/// Keyset pagination in serial order; only the filters given become conditions, so each
/// combination gets the plan that suits it (the device index for one device's certificates).
pub(super) async fn list(
    pool: &SqlitePool,
    filter: &CertificateFilter,
    limit: u32,
) -> Result<Vec<IssuedCertificate>, StoreError> {
    let mut query: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
        "SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE serial > "
    ));
    // Serials are never empty, so "" sorts before every one of them.
    query.push_bind(filter.after_serial.as_deref().unwrap_or(""));
    if let Some(id) = &filter.device_id {
        query.push(" AND device_id = ").push_bind(id.as_str());
    }
    match filter.revoked {
        Some(true) => query.push(" AND revoked_at IS NOT NULL"),
        Some(false) => query.push(" AND revoked_at IS NULL"),
        None => &mut query,
    };
    query
        .push(" ORDER BY serial LIMIT ")
        .push_bind(i64::from(limit));
    let rows = query.build().fetch_all(pool).await?;
    rows.iter().map(certificate_from_row).collect()
}

/// Revokes only a certificate not revoked yet, so the first revocation's time and reason stand.
pub(super) async fn revoke(
    pool: &SqlitePool,
    serial: &str,
    reason: RevocationReason,
    at: UnixTime,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "UPDATE certificates SET revoked_at = ?, revocation_reason = ? \
         WHERE serial = ? AND revoked_at IS NULL",
    )
    .bind(at)
    .bind(reason_code(reason))
    .bind(serial)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() > 0)
}

/// One statement, so a certificate issued meanwhile is either revoked here or issued after.
/// Returns the revoked serials in order.
pub(super) async fn revoke_for_device(
    pool: &SqlitePool,
    id: &DeviceId,
    reason: RevocationReason,
    at: UnixTime,
) -> Result<Vec<String>, StoreError> {
    let mut serials: Vec<String> = sqlx::query_scalar(
        "UPDATE certificates SET revoked_at = ?, revocation_reason = ? \
         WHERE device_id = ? AND revoked_at IS NULL RETURNING serial",
    )
    .bind(at)
    .bind(reason_code(reason))
    .bind(id.as_str())
    .fetch_all(pool)
    .await?;
    serials.sort_unstable();
    Ok(serials)
}

/// The CRL's entries: revoked certificates with `not_after > now` (an expired certificate may
/// leave the CRL, RFC 5280 §3.3). Reads only the partial covering index `certificates_revoked`.
pub(super) async fn list_revoked(
    pool: &SqlitePool,
    now: UnixTime,
) -> Result<Vec<RevokedCertificate>, StoreError> {
    let sql = format!(
        "SELECT {REVOKED_COLUMNS} FROM certificates \
         WHERE revoked_at IS NOT NULL AND not_after > ? ORDER BY serial"
    );
    let rows = sqlx::query(&sql).bind(now).fetch_all(pool).await?;
    rows.iter().map(revoked_from_row).collect()
}
