//! The `signing_keys` table: the token signing keys and where each is in its rotation.

use portcullis_core::rotation::StoredKeyState;
use portcullis_core::{Kid, UnixTime};
use sqlx::PgPool;

use crate::rows::key_from_row;
use crate::{StoreError, StoredKey};

/// Stores a new key and announces `key:<kid>` in the same statement, so every node publishes
/// a pre-published key at once (not only the one that made it).
pub(super) async fn insert(pool: &PgPool, key: &StoredKey) -> Result<(), StoreError> {
    sqlx::query(
        "WITH inserted AS (INSERT INTO signing_keys (kid, alg, backend, sealed_private, \
         public_jwk, state, created_at, state_changed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING kid) \
         SELECT portcullis_notify_change('key', kid) FROM inserted",
    )
    .bind(key.kid.as_str())
    .bind(key.alg.as_str())
    .bind(key.backend.as_str())
    .bind(key.sealed_private.as_slice())
    .bind(key.public_jwk.as_str())
    .bind(key.state.as_str())
    .bind(key.created_at)
    .bind(key.state_changed_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Moves a key to `state` as of `at` and announces `key:<kid>` in the same statement;
/// `NotFound` if no key has that id.
pub(super) async fn update_state(
    pool: &PgPool,
    kid: &Kid,
    state: StoredKeyState,
    at: UnixTime,
) -> Result<(), StoreError> {
    let announced: Option<String> = sqlx::query_scalar(
        "WITH updated AS (UPDATE signing_keys SET state = $1, state_changed_at = $2 \
         WHERE kid = $3 RETURNING kid) \
         SELECT portcullis_notify_change('key', kid) FROM updated",
    )
    .bind(state.as_str())
    .bind(at)
    .bind(kid.as_str())
    .fetch_optional(pool)
    .await?;
    announced.map(drop).ok_or(StoreError::NotFound)
}

pub(super) async fn update_sealed(
    pool: &PgPool,
    kid: &Kid,
    sealed_private: &[u8],
) -> Result<(), StoreError> {
    let result = sqlx::query("UPDATE signing_keys SET sealed_private = $1 WHERE kid = $2")
        .bind(sealed_private)
        .bind(kid.as_str())
        .execute(pool)
        .await?;
    if result.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Oldest first, so the JWKS and the rotation logic see keys in the order they were made.
pub(super) async fn list(pool: &PgPool) -> Result<Vec<StoredKey>, StoreError> {
    let rows = sqlx::query(
        "SELECT kid, alg, backend, sealed_private, public_jwk, state, created_at, \
         state_changed_at FROM signing_keys ORDER BY created_at, kid",
    )
    .fetch_all(pool)
    .await?;
    rows.iter().map(key_from_row).collect()
}
