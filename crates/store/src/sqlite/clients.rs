//! The `clients` table: one row per registered client, list-valued fields as JSON text.

use portcullis_core::client::Client;
use portcullis_core::ClientId;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, SqlitePool};

use super::bulk_insert::BulkInsert;
use crate::rows::{client_from_row, JsonColumns};
use crate::StoreError;

const COLUMNS: &str = "client_id, name, auth_method, scopes, audiences, token_ttl_secs, enabled, \
                       secret_hashes, sealed_secret, jwks, jwks_uri, created_at, updated_at, \
                       tls_client_auth, token_epoch, dpop_bound_access_tokens";

const INSERT: BulkInsert = BulkInsert {
    table: "clients",
    columns: COLUMNS,
    column_count: 16,
    suffix: "",
};

/// Adds every column of `c` in `COLUMNS` order.
fn bind_client<'a>(args: &mut SqliteArguments<'a>, c: &'a Client) -> Result<(), StoreError> {
    let json = JsonColumns::of(c)?;
    let bound = (|| {
        args.add(c.client_id.as_str())?;
        args.add(c.name.as_str())?;
        args.add(c.auth_method.as_str())?;
        args.add(json.scopes)?;
        args.add(json.audiences)?;
        args.add(i64::from(c.token_ttl_secs))?;
        args.add(c.enabled)?;
        args.add(json.secret_hashes)?;
        args.add(c.sealed_secret.as_deref())?;
        args.add(c.jwks.as_deref())?;
        args.add(c.jwks_uri.as_deref())?;
        args.add(c.created_at)?;
        args.add(c.updated_at)?;
        args.add(json.tls_client_auth)?;
        args.add(i64::from(c.token_epoch))?;
        args.add(c.dpop_bound_access_tokens)
    })();
    bound.map_err(|_| StoreError::corrupt_field("clients row", c.client_id.as_str()))
}

pub(super) async fn insert_one(pool: &SqlitePool, client: &Client) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    INSERT
        .run(&mut conn, std::slice::from_ref(client), bind_client)
        .await
}

/// All or nothing: one transaction, so a conflicting id leaves the table as it was.
pub(super) async fn insert_many(pool: &SqlitePool, clients: &[Client]) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    INSERT.run(&mut tx, clients, bind_client).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn get(pool: &SqlitePool, id: &ClientId) -> Result<Option<Client>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM clients WHERE client_id = ?");
    let row = sqlx::query(&sql)
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(client_from_row).transpose()
}

/// Keyset pagination: ids compare bytewise (SQLite's BINARY collation), the same order as
/// Rust's `String`, so `after` from one page starts the next exactly.
pub(super) async fn list(
    pool: &SqlitePool,
    after: Option<&ClientId>,
    limit: u32,
) -> Result<Vec<Client>, StoreError> {
    let sql =
        format!("SELECT {COLUMNS} FROM clients WHERE client_id > ? ORDER BY client_id LIMIT ?");
    // Ids are never empty, so "" sorts before every one of them.
    let after = after.map_or("", ClientId::as_str);
    let rows = sqlx::query(&sql)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(client_from_row).collect()
}

pub(super) async fn update(pool: &SqlitePool, client: &Client) -> Result<(), StoreError> {
    let json = JsonColumns::of(client)?;
    let c = client;
    let result = sqlx::query(
        "UPDATE clients SET name = ?, auth_method = ?, scopes = ?, audiences = ?, \
         token_ttl_secs = ?, enabled = ?, secret_hashes = ?, sealed_secret = ?, jwks = ?, \
         jwks_uri = ?, created_at = ?, updated_at = ?, tls_client_auth = ?, \
         token_epoch = ?, dpop_bound_access_tokens = ? WHERE client_id = ?",
    )
    .bind(c.name.as_str())
    .bind(c.auth_method.as_str())
    .bind(json.scopes)
    .bind(json.audiences)
    .bind(i64::from(c.token_ttl_secs))
    .bind(c.enabled)
    .bind(json.secret_hashes)
    .bind(c.sealed_secret.as_deref())
    .bind(c.jwks.as_deref())
    .bind(c.jwks_uri.as_deref())
    .bind(c.created_at)
    .bind(c.updated_at)
    .bind(json.tls_client_auth)
    .bind(i64::from(c.token_epoch))
    .bind(c.dpop_bound_access_tokens)
    .bind(c.client_id.as_str())
    .execute(pool)
    .await?;
    if result.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(super) async fn delete(pool: &SqlitePool, id: &ClientId) -> Result<bool, StoreError> {
    let result = sqlx::query("DELETE FROM clients WHERE client_id = ?")
        .bind(id.as_str())
        .execute(pool)
        .await?;
    Ok(result.rows_affected() > 0)
}
