//! The `certificates` table: every certificate the CA issued, with its revocation state.
//! Revocations announce `cert:<serial>`, so every node refreshes its OCSP answers and CRL.

use portcullis_core::device::{DeviceId, RevocationReason};
use portcullis_core::UnixTime;
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::pki::{certificate_conflict, CertificateFilter, IssuedCertificate, RevokedCertificate};
use crate::rows::{
    certificate_from_row, reason_code, revoked_from_row, CERTIFICATE_COLUMNS, REVOKED_COLUMNS,
};
use crate::StoreError;

pub(super) async fn insert(
    pool: impl sqlx::PgExecutor<'_>,
    cert: &IssuedCertificate,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO certificates ({CERTIFICATE_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
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
    pool: &PgPool,
    serial: &str,
) -> Result<Option<IssuedCertificate>, StoreError> {
    let sql = format!("SELECT {CERTIFICATE_COLUMNS} FROM certificates WHERE serial = $1");
    let row = sqlx::query(&sql).bind(serial).fetch_optional(pool).await?;
    row.as_ref().map(certificate_from_row).transpose()
}

/// Keyset pagination in serial order (`COLLATE "C"`: bytewise, as on SQLite); only the filters
/// given become conditions, so each combination gets the plan that suits it.
pub(super) async fn list(
    pool: &PgPool,
    filter: &CertificateFilter,
    limit: u32,
) -> Result<Vec<IssuedCertificate>, StoreError> {
    let mut query: QueryBuilder<Postgres> = QueryBuilder::new(format!(
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

/// Revokes only a certificate not revoked yet, so the first revocation's time and reason
/// stand, and announces `cert:<serial>` in the same statement when it did.
pub(super) async fn revoke(
    pool: &PgPool,
    serial: &str,
    reason: RevocationReason,
    at: UnixTime,
) -> Result<bool, StoreError> {
    let announced: Option<String> = sqlx::query_scalar(
        "WITH revoked AS (UPDATE certificates SET revoked_at = $2, revocation_reason = $3 \
         WHERE serial = $1 AND revoked_at IS NULL RETURNING serial) \
         SELECT portcullis_notify_change('cert', serial) FROM revoked",
    )
    .bind(serial)
    .bind(at)
    .bind(reason_code(reason))
    .fetch_optional(pool)
    .await?;
    Ok(announced.is_some())
}

/// One statement revoking and announcing `cert:<serial>` for each certificate it revoked.
/// Returns the revoked serials in order.
pub(super) async fn revoke_for_device(
    pool: &PgPool,
    id: &DeviceId,
    reason: RevocationReason,
    at: UnixTime,
) -> Result<Vec<String>, StoreError> {
    let revoked: Vec<(String, String)> = sqlx::query_as(
        "WITH revoked AS (UPDATE certificates SET revoked_at = $2, revocation_reason = $3 \
         WHERE device_id = $1 AND revoked_at IS NULL RETURNING serial) \
         SELECT serial, portcullis_notify_change('cert', serial) FROM revoked",
    )
    .bind(id.as_str())
    .bind(at)
    .bind(reason_code(reason))
    .fetch_all(pool)
    .await?;
    let mut serials: Vec<String> = revoked.into_iter().map(|(serial, _)| serial).collect();
    serials.sort_unstable();
    Ok(serials)
}

/// The CRL's entries: revoked certificates with `not_after > now` (an expired certificate may
/// leave the CRL, RFC 5280 §3.3). An index-only scan of the partial index
/// `certificates_revoked`, already in serial order.
pub(super) async fn list_revoked(
    pool: &PgPool,
    now: UnixTime,
) -> Result<Vec<RevokedCertificate>, StoreError> {
    let sql = format!(
        "SELECT {REVOKED_COLUMNS} FROM certificates \
         WHERE revoked_at IS NOT NULL AND not_after > $1 ORDER BY serial"
    );
    let rows = sqlx::query(&sql).bind(now).fetch_all(pool).await?;
    rows.iter().map(revoked_from_row).collect()
}
