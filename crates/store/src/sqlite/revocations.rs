//! Short-lived "already seen" state: revoked access tokens (RFC 7009), accepted client
//! assertion jtis (RFC 7523 §3 item 7) and the single-use ids this node decided in memory
//! (`spent_ids`). All are kept only until the token, assertion or proof would have expired
//! anyway, then purged.

use portcullis_core::{ClientId, UnixTime};
use sqlx::{Arguments, Row, SqlitePool};

use super::bulk_insert::BulkInsert;
use crate::{RevokedToken, StoreError};

/// Idempotent: revoking a token twice keeps the first record.
pub(super) async fn revoke(pool: &SqlitePool, token: &RevokedToken) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO revoked_tokens (jti, client_id, expires_at) VALUES (?, ?, ?) \
         ON CONFLICT (jti) DO NOTHING",
    )
    .bind(token.jti.as_str())
    .bind(token.client_id.as_str())
    .bind(token.expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn is_revoked(pool: &SqlitePool, jti: &str) -> Result<bool, StoreError> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM revoked_tokens WHERE jti = ?")
        .bind(jti)
        .fetch_optional(pool)
        .await?;
    Ok(found.is_some())
}

/// A token is expired once `now >= exp` (RFC 7519 §4.1.4), so only `expires_at > now` is
/// still worth remembering.
pub(super) async fn list_unexpired(
    pool: &SqlitePool,
    now: UnixTime,
) -> Result<Vec<RevokedToken>, StoreError> {
    let rows = sqlx::query(
        "SELECT jti, client_id, expires_at FROM revoked_tokens WHERE expires_at > ? ORDER BY jti",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let jti: String = row.try_get("jti")?;
            let client_id: String = row.try_get("client_id")?;
            let client_id = ClientId::parse(client_id)
                .map_err(|_| StoreError::corrupt_field("revoked_tokens.client_id", &jti))?;
            Ok(RevokedToken {
                jti,
                client_id,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .collect()
}

/// The insert that spends an id, replacing a row only if it has expired (a leftover the
/// purge has not reached yet).
const SPEND: &str = "INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at \
         WHERE assertion_jtis.expires_at <= ?4";

pub(super) async fn record_single_use(
    pool: &SqlitePool,
    scope: &str,
    id: &str,
    expires_at: UnixTime,
    now: UnixTime,
) -> Result<bool, StoreError> {
    let result = sqlx::query(SPEND)
        .bind(scope)
        .bind(id)
        .bind(expires_at)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(result.rows_affected() > 0)
}

/// Many ids in one statement (one commit for the batch): a multi-row upsert whose
/// `RETURNING` lists the ids it spent (`SingleUseBatcher`'s batches; `BatchPlan` has the rules).
pub(super) async fn record_single_use_batch(
    pool: &SqlitePool,
    items: &[crate::SingleUse],
    now: UnixTime,
) -> Result<Vec<bool>, StoreError> {
    let mut plan = crate::single_use::BatchPlan::new(items);
    for chunk in plan.chunks() {
        // Anonymous `?` (bound in order; `now` is the last and used once), not `?NNN`:
        // SQLite keeps numbered parameters in a list it scans linearly on every lookup, which
        // made preparing and binding a 6 000-parameter batch quadratic (6 % of a DPoP load's
        // CPU in `sqlite3_bind_parameter_name`).
        let sql = crate::single_use::BatchPlan::upsert_sql(chunk.len(), |_| "?".to_owned());
        let mut query = sqlx::query(&sql);
        for item in &chunk {
            query = query.bind(&item.scope).bind(&item.id).bind(item.expires_at);
        }
        for row in query.bind(now).fetch_all(pool).await? {
            let scope: String = row.try_get("client_id")?;
            let id: String = row.try_get("jti")?;
            plan.spent(&scope, &id);
        }
    }
    Ok(plan.answers())
}

const SPENT: BulkInsert = BulkInsert {
    table: "spent_ids",
    columns: "expires_at, scope, id",
    column_count: 3,
    suffix: "",
};

/// Appends ids this node already decided in memory (`Store::keep_spent`), one transaction.
pub(super) async fn keep_spent(
    pool: &SqlitePool,
    items: &[crate::SingleUse],
) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    SPENT
        .run(&mut tx, items, |args, item| {
            let bound = (|| {
                args.add(item.expires_at)?;
                args.add(item.scope.as_str())?;
                args.add(item.id.as_str())
            })();
            bound.map_err(|_| StoreError::corrupt_field("spent_ids row", &item.scope))
        })
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn purge_expired(pool: &SqlitePool, now: UnixTime) -> Result<u64, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let tokens = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at <= ?")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let jtis = sqlx::query("DELETE FROM assertion_jtis WHERE expires_at <= ?")
        .bind(now - crate::ASSERTION_JTI_GRACE_SECS)
        .execute(&mut *tx)
        .await?;
    let spent = sqlx::query("DELETE FROM spent_ids WHERE expires_at <= ?")
        .bind(now - crate::ASSERTION_JTI_GRACE_SECS)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(tokens.rows_affected() + jtis.rows_affected() + spent.rows_affected())
}

/// Unexpired rows of the `#` scopes (the assertion jtis of clients are not needed in memory),
/// or of every scope.
pub(super) async fn list_single_use(
    pool: &SqlitePool,
    scopes: crate::SingleUseScopes,
    now: UnixTime,
) -> Result<Vec<crate::SingleUse>, StoreError> {
    let rows = sqlx::query(
        "SELECT client_id, jti, expires_at FROM assertion_jtis \
         WHERE (?2 OR client_id LIKE '#%') AND expires_at > ?1 \
         UNION ALL SELECT scope, id, expires_at FROM spent_ids WHERE expires_at > ?1",
    )
    .bind(now)
    .bind(scopes == crate::SingleUseScopes::All)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(crate::SingleUse {
                scope: row.try_get("client_id")?,
                id: row.try_get("jti")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .collect()
}
