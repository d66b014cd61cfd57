//! Short-lived "already seen" state: revoked access tokens (RFC 7009) and accepted client
//! assertion jtis (RFC 7523 §3 item 7). Both are kept only until the token or assertion would
//! have expired anyway, then purged.

use portcullis_core::{ClientId, UnixTime};
use sqlx::{PgPool, Row};

use crate::{RevokedToken, StoreError};

/// Idempotent: revoking a token twice keeps the first record. A new revocation is announced as
/// `revocation:<jti>` in the same statement, so other nodes hear of it when it commits.
pub(super) async fn revoke(pool: &PgPool, token: &RevokedToken) -> Result<(), StoreError> {
    let _announced: Option<String> = sqlx::query_scalar(
        "WITH inserted AS (INSERT INTO revoked_tokens (jti, client_id, expires_at) \
         VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING RETURNING jti) \
         SELECT portcullis_notify_change('revocation', jti) FROM inserted",
    )
    .bind(token.jti.as_str())
    .bind(token.client_id.as_str())
    .bind(token.expires_at)
    .fetch_optional(pool)
    .await?;
    Ok(())
}

pub(super) async fn is_revoked(pool: &PgPool, jti: &str) -> Result<bool, StoreError> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM revoked_tokens WHERE jti = $1")
        .bind(jti)
        .fetch_optional(pool)
        .await?;
    Ok(found.is_some())
}

/// A token is expired once `now >= exp` (RFC 7519 §4.1.4), so only `expires_at > now` is
/// still worth remembering.
pub(super) async fn list_unexpired(
    pool: &PgPool,
    now: UnixTime,
) -> Result<Vec<RevokedToken>, StoreError> {
    let rows = sqlx::query(
        "SELECT jti, client_id, expires_at FROM revoked_tokens WHERE expires_at > $1 \
         ORDER BY jti",
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

/// The insert that spends an id. One statement, so two requests replaying the same id at once — on the same node or
/// on two — cannot both win: the insert succeeds, or it meets the existing row (waiting for
/// a concurrent inserter to commit first) and replaces it only if that row has expired (a
/// leftover the purge has not reached yet). "Expired" is judged by `now`, the clock of the
/// node that just accepted the id as unexpired (see the trait).
const SPEND: &str = "INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at \
         WHERE assertion_jtis.expires_at <= $4";

pub(super) async fn record_single_use(
    pool: &PgPool,
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
    pool: &PgPool,
    items: &[crate::SingleUse],
    now: UnixTime,
) -> Result<Vec<bool>, StoreError> {
    let mut plan = crate::single_use::BatchPlan::new(items);
    for chunk in plan.chunks() {
        let sql = crate::single_use::BatchPlan::upsert_sql(chunk.len(), |n| format!("${n}"));
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

pub(super) async fn purge_expired(pool: &PgPool, now: UnixTime) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let tokens = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let jtis = sqlx::query("DELETE FROM assertion_jtis WHERE expires_at <= $1")
        .bind(now - crate::ASSERTION_JTI_GRACE_SECS)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(tokens.rows_affected() + jtis.rows_affected())
}

/// Unexpired rows of the `#` scopes (the assertion jtis of clients are not needed in memory),
/// or of every scope.
pub(super) async fn list_single_use(
    pool: &PgPool,
    scopes: crate::SingleUseScopes,
    now: UnixTime,
) -> Result<Vec<crate::SingleUse>, StoreError> {
    let rows = sqlx::query(
        "SELECT client_id, jti, expires_at FROM assertion_jtis \
         WHERE ($2 OR client_id LIKE '#%') AND expires_at > $1",
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
