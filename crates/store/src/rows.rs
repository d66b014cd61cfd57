//! Row codecs shared by every SQL backend: the same columns decode to the same domain values,
//! with the same corruption checks, whether the row came from SQLite or PostgreSQL. Each
//! backend's row type only says how to read one column ([`ColumnReader`]).

use portcullis_core::audit::{AuditEvent, AuditRecord};
use portcullis_core::client::{AuthMethod, Client};
use portcullis_core::{ClientId, Kid, ScopeSet, SecretHash};

use crate::{StoreError, StoredKey};

/// Reads one typed column of a row.
pub(crate) trait ColumnReader {
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    fn flag(&self, column: &str) -> Result<bool, StoreError>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError>;
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Implements [`ColumnReader`] for a sqlx row type with `try_get`.
macro_rules! column_reader {
    ($row:ty) => {
        impl $crate::rows::ColumnReader for $row {
            fn text(&self, column: &str) -> Result<String, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn int(&self, column: &str) -> Result<i64, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn flag(&self, column: &str) -> Result<bool, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn bytes(&self, column: &str) -> Result<Vec<u8>, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
        }
    };
}
pub(crate) use column_reader;

/// The JSON text of a client's list-valued columns.
pub(crate) struct JsonColumns {
    pub scopes: String,
    pub audiences: String,
    pub secret_hashes: String,
}

impl JsonColumns {
    pub fn of(client: &Client) -> Result<Self, StoreError> {
        let failed = |column| StoreError::corrupt_field(column, client.client_id.as_str());
        Ok(Self {
            scopes: serde_json::to_string(&client.scopes).map_err(|_| failed("clients.scopes"))?,
            audiences: serde_json::to_string(&client.audiences)
                .map_err(|_| failed("clients.audiences"))?,
            secret_hashes: serde_json::to_string(&client.secret_hashes)
                .map_err(|_| failed("clients.secret_hashes"))?,
        })
    }
}

fn json_column<T: serde::de::DeserializeOwned>(
    row: &impl ColumnReader,
    column: &str,
    id: &str,
) -> Result<T, StoreError> {
    let text = row.text(column)?;
    serde_json::from_str(&text)
        .map_err(|e| StoreError::corrupt_json(&format!("clients.{column}"), id, &e))
}

/// Decodes a client, checking every domain rule again: the database may have been edited by
/// hand.
pub(crate) fn client_from_row(row: &impl ColumnReader) -> Result<Client, StoreError> {
    let id = row.text("client_id")?;
    let client_id = ClientId::parse(id.as_str())
        .map_err(|_| StoreError::corrupt_field("clients.client_id", &id))?;
    let auth_method = AuthMethod::parse(&row.text("auth_method")?)
        .map_err(|_| StoreError::corrupt_field("clients.auth_method", &id))?;
    let token_ttl_secs = u32::try_from(row.int("token_ttl_secs")?)
        .map_err(|_| StoreError::corrupt_field("clients.token_ttl_secs", &id))?;
    Ok(Client {
        name: row.text("name")?,
        auth_method,
        scopes: json_column::<ScopeSet>(row, "scopes", &id)?,
        audiences: json_column::<Vec<String>>(row, "audiences", &id)?,
        token_ttl_secs,
        enabled: row.flag("enabled")?,
        secret_hashes: json_column::<Vec<SecretHash>>(row, "secret_hashes", &id)?,
        sealed_secret: row.opt_bytes("sealed_secret")?,
        jwks: row.opt_text("jwks")?,
        jwks_uri: row.opt_text("jwks_uri")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
        client_id,
    })
}

/// Decodes a signing key.
pub(crate) fn key_from_row(row: &impl ColumnReader) -> Result<StoredKey, StoreError> {
    let kid = row.text("kid")?;
    Ok(StoredKey {
        kid: Kid::parse(kid.as_str())
            .map_err(|_| StoreError::corrupt_field("signing_keys.kid", &kid))?,
        alg: row.text("alg")?,
        backend: row.text("backend")?,
        sealed_private: row.bytes("sealed_private")?,
        public_jwk: row.text("public_jwk")?,
        state: row.text("state")?,
        created_at: row.int("created_at")?,
        state_changed_at: row.int("state_changed_at")?,
    })
}

/// Decodes an audit record as stored, without judging it: checking the chain is the
/// verifier's job, and it must see an edited record to report it.
pub(crate) fn record_from_row(row: &impl ColumnReader) -> Result<AuditRecord, StoreError> {
    let seq = row.int("seq")?;
    let detail = serde_json::from_str(&row.text("detail")?)
        .map_err(|e| StoreError::corrupt_json("audit_log.detail", &seq.to_string(), &e))?;
    Ok(AuditRecord {
        seq,
        event: AuditEvent {
            at: row.int("at")?,
            actor: row.text("actor")?,
            action: row.text("action")?,
            subject: row.text("subject")?,
            outcome: row.text("outcome")?,
            detail,
        },
        prev_hash: row.text("prev_hash")?,
        hash: row.text("hash")?,
    })
}
