//! The one error type of the store, so callers can tell "no such row" and "already exists"
//! (answers for the client) from "database down" (retry, `/readyz` fails) and "bad row"
//! (an operator problem). Messages name tables, columns and ids, never values: rows hold
//! secret hashes and sealed keys.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The row to update does not exist.
    #[error("not found")]
    NotFound,
    /// A row with the same key already exists (or another constraint refused the write).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached, opened or written (I/O, lock timeout, closed pool).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored row does not decode into its domain type.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The schema could not be brought up to date.
    #[error("migration failed: {0}")]
    Migration(String),
}

impl StoreError {
    /// `Store::import_audit_anchor` on a log that already holds records (both backends).
    pub(crate) fn audit_log_not_empty() -> Self {
        Self::Conflict(
            "the audit log already holds records: an archive anchor is imported only before any"
                .into(),
        )
    }

    /// A JSON column that does not decode. serde_json quotes the offending value in its
    /// messages, so only the error's category and position are kept: the column may hold
    /// secret hashes.
    pub(crate) fn corrupt_json(column: &str, key: &str, err: &serde_json::Error) -> Self {
        Self::Corrupt(format!(
            "{column} of '{key}' is not valid JSON for its type ({:?} error at column {})",
            err.classify(),
            err.column()
        ))
    }

    /// A column whose value fails a domain rule (an id that does not parse, an unknown enum).
    pub(crate) fn corrupt_field(column: &str, key: &str) -> Self {
        Self::Corrupt(format!("{column} of '{key}' is not a valid value"))
    }

    /// Like the `From<sqlx::Error>` conversion, but a unique violation becomes a `Conflict`
    /// saying what clashed in the caller's words: `describe` gets the database's message, which
    /// names the violated constraint or column (never a value), to tell several keys apart.
    pub(crate) fn unique_as(err: sqlx::Error, describe: impl FnOnce(&str) -> String) -> Self {
        match err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Self::Conflict(describe(db.message()))
            }
            other => other.into(),
        }
    }

    /// A refused device-key insert: a duplicate key id is a `Conflict` naming the device and
    /// key, a missing device (the foreign key) is `NotFound`.
    pub(crate) fn device_key_insert(err: sqlx::Error, key: &crate::StoredDeviceKey) -> Self {
        match err {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => Self::NotFound,
            other => Self::unique_as(other, |_| {
                format!(
                    "device '{}' already has a key '{}'",
                    key.info.device_id, key.info.key_id
                )
            }),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::RowNotFound => Self::NotFound,
            // Database messages name the constraint ("UNIQUE constraint failed: clients.client_id"),
            // never the bound values.
            sqlx::Error::Database(db)
                if db.is_unique_violation()
                    || db.is_foreign_key_violation()
                    || db.is_check_violation() =>
            {
                Self::Conflict(db.message().to_owned())
            }
            sqlx::Error::Database(db) => Self::Unavailable(db.message().to_owned()),
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnIndexOutOfBounds { .. }
            | sqlx::Error::TypeNotFound { .. } => Self::Corrupt(err.to_string()),
            sqlx::Error::Migrate(m) => Self::Migration(m.to_string()),
            // A configuration error may quote a connection URL, which can carry a password.
            sqlx::Error::Configuration(_) => {
                Self::Unavailable("invalid database configuration".to_owned())
            }
            other => Self::Unavailable(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_row_maps_to_not_found() {
        assert!(matches!(
            StoreError::from(sqlx::Error::RowNotFound),
            StoreError::NotFound
        ));
    }

    #[test]
    fn closed_pool_maps_to_unavailable() {
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolClosed),
            StoreError::Unavailable(_)
        ));
    }

    #[test]
    fn configuration_errors_do_not_echo_their_text() {
        let err = sqlx::Error::Configuration("postgres://u:hunter2@db/x is bad".into());
        let shown = StoreError::from(err).to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn json_corruption_message_does_not_quote_the_value() {
        let err = serde_json::from_str::<Vec<u32>>("[\"s3cr3t-mac\"]").unwrap_err();
        let shown = StoreError::corrupt_json("clients.secret_hashes", "c1", &err).to_string();
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("clients.secret_hashes"));
    }
}
