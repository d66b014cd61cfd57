//! `GET /keys` and `POST /keys/rotate`: the signing keys and their rotation (issue #3).
//! The admin API does not manage keys itself: it calls the [`KeyAdmin`] the server gives it,
//! which owns key custody and the rotation timeline.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::AdminCaller;
use crate::errors::{AdminError, Problem};
use crate::extract::JsonBody;

/// One signing key as the admin API shows it (never key material).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyView {
    pub kid: String,
    pub alg: String,
    /// `software` or `pkcs11`.
    pub backend: String,
    /// `next`, `active`, `retired`, `revoked` or `removed`.
    pub state: String,
    pub created_at: i64,
    /// For `next` keys: when they start signing. For `retired`/`revoked`: when that happened.
    pub state_changed_at: i64,
    /// In JWKS now.
    pub published: bool,
    /// Signing new tokens now.
    pub signing: bool,
}

/// `POST /keys/rotate` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeysRequest {
    /// Emergency rotation: this key leaves JWKS at once and the tokens it signed become
    /// inactive; a successor signs immediately. Without it, a new key is published now and
    /// signs after the pre-publication period.
    #[serde(default)]
    pub compromised: Option<String>,
}

/// What the admin API needs from whoever manages the signing keys.
#[async_trait]
pub trait KeyAdmin: Send + Sync {
    /// Every key the store knows, newest first.
    async fn list_keys(&self) -> Result<Vec<KeyView>, AdminError>;
    /// Rotates (or, with `compromised`, revokes and replaces at once); `actor` is audited.
    async fn rotate_keys(
        &self,
        actor: &str,
        compromised: Option<&str>,
    ) -> Result<Vec<KeyView>, AdminError>;
    /// Retires one key (a pending one, or the active one when a successor is published).
    async fn retire_key(&self, actor: &str, kid: &str) -> Result<Vec<KeyView>, AdminError>;
    /// The key table as this server trusts it, for verifying audit checkpoints: each key's
    /// public half derived from the private key the custody opens, never read from the row.
    async fn checkpoint_keys(&self) -> Result<portcullis_audit::CheckpointKeys, AdminError>;
}

/// The shared handle the key routes hold as state.
pub type SharedKeyAdmin = Arc<dyn KeyAdmin>;

#[utoipa::path(
    get, path = "/keys", tag = "keys",
    responses((status = 200, description = "The signing keys, newest first", body = [KeyView]))
)]
pub async fn list_keys(
    State(keys): State<SharedKeyAdmin>,
    _caller: AdminCaller,
) -> Result<Json<Vec<KeyView>>, AdminError> {
    Ok(Json(keys.list_keys().await?))
}

#[utoipa::path(
    post, path = "/keys/rotate", tag = "keys",
    request_body(content = Option<RotateKeysRequest>, description = "May be omitted"),
    responses(
        (status = 200, description = "The keys after the rotation", body = [KeyView]),
        (status = 400, description = "Not a kid, or an invalid body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No signing key has the kid named as compromised", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rotate_keys(
    State(keys): State<SharedKeyAdmin>,
    caller: AdminCaller,
    JsonBody(request): JsonBody<RotateKeysRequest>,
) -> Result<Json<Vec<KeyView>>, AdminError> {
    let actor = format!("admin:{}", caller.client_id);
    Ok(Json(
        keys.rotate_keys(&actor, request.compromised.as_deref())
            .await?,
    ))
}

#[utoipa::path(
    post, path = "/keys/{kid}/retire", tag = "keys",
    params(("kid" = String, Path, description = "The key to retire")),
    responses(
        (status = 200, description = "The keys after the retirement", body = [KeyView]),
        (status = 400, description = "Not a kid", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No signing key has this kid", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The only signing key, without a published successor", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn retire_key(
    State(keys): State<SharedKeyAdmin>,
    caller: AdminCaller,
    axum::extract::Path(kid): axum::extract::Path<String>,
) -> Result<Json<Vec<KeyView>>, AdminError> {
    let actor = format!("admin:{}", caller.client_id);
    Ok(Json(keys.retire_key(&actor, &kid).await?))
}
