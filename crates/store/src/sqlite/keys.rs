//! The `signing_keys` table: the token signing keys and where each is in its rotation.

use portcullis_core::rotation::StoredKeyState;
use portcullis_core::{Kid, UnixTime};
use sqlx::SqlitePool;

use crate::rows::key_from_row;
use crate::{StoreError, StoredKey};

pub(super) async fn insert(pool: &SqlitePool, key: &StoredKey) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, alg, backend, sealed_private, public_jwk, state, \
         created_at, state_changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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

/// Moves a key to `state` as of `at`; `NotFound` if no key has that id.
pub(super) async fn update_state(
    pool: &SqlitePool,
    kid: &Kid,
    state: StoredKeyState,
    at: UnixTime,
) -> Result<(), StoreError> {
    let result =
        sqlx::query("UPDATE signing_keys SET state = ?, state_changed_at = ? WHERE kid = ?")
            .bind(state.as_str())
            .bind(at)
            .bind(kid.as_str())
            .execute(pool)
            .await?;
    if result.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(super) async fn update_sealed(
    pool: &SqlitePool,
    kid: &Kid,
    sealed_private: &[u8],
) -> Result<(), StoreError> {
    let result = sqlx::query("UPDATE signing_keys SET sealed_private = ? WHERE kid = ?")
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
pub(super) async fn list(pool: &SqlitePool) -> Result<Vec<StoredKey>, StoreError> {
    let rows = sqlx::query(
        "SELECT kid, alg, backend, sealed_private, public_jwk, state, created_at, \
         state_changed_at FROM signing_keys ORDER BY created_at, kid",
    )
    .fetch_all(pool)
    .await?;
    rows.iter().map(key_from_row).collect()
}
