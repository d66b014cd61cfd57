//! `/trust`: the gateway's operator keys — the trust root devices pin, and the command,
//! settings and update keys — and the trust list the root signs over them (issue #13,
//! `docs/signed-objects.md`). The admin API does not hold keys: it calls the [`TrustAdmin`]
//! the server gives it, which owns key custody and audits every change.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::AdminCaller;
use crate::errors::{AdminError, Problem};
use crate::extract::JsonBody;

/// One operator key as the admin API shows it: its public half, never key material.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OperatorKeyView {
    pub kid: String,
    /// `root`, `commands`, `settings` or `updates`.
    pub role: String,
    pub alg: String,
    /// `software` or `pkcs11`.
    pub backend: String,
    /// `active` or `retired`.
    pub state: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    /// The public key (JWK); a root key's is what devices pin at manufacturing.
    #[schema(value_type = Object)]
    pub public_jwk: serde_json::Value,
}

/// What an operator key signs.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OperatorRole {
    Root,
    Commands,
    Settings,
    Updates,
}

impl OperatorRole {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Commands => "commands",
            Self::Settings => "settings",
            Self::Updates => "updates",
        }
    }
}

/// The algorithms operator keys use: ones a constrained device verifies cheaply.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub enum OperatorAlg {
    ES256,
    ES384,
    EdDSA,
}

impl OperatorAlg {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }
}

/// `POST /trust/keys` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOperatorKeyRequest {
    pub role: OperatorRole,
    /// ES256 when left out.
    #[serde(default)]
    pub alg: Option<OperatorAlg>,
}

/// `POST /trust/publish` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishTrustRequest {
    /// How long the list is valid (default 30 days; 60 s to 400 days).
    #[serde(default)]
    #[schema(minimum = 60, maximum = 34_560_000)]
    pub valid_secs: Option<i64>,
}

/// A published trust list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublishedTrustList {
    pub ver: u64,
    pub iat: i64,
    pub exp: i64,
    /// The kids it lists (the root is not listed: devices pin it).
    pub kids: Vec<String>,
    /// The signed list (`COSE_Sign1`), base64url; also at `GET /gateway/v1/trust`.
    pub signed: String,
}

/// `POST /trust/keys/import` body: the public half of a root key kept offline.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRootRequest {
    /// Only `root`: operational keys are made in key custody.
    pub role: ImportRole,
    /// The root's public JWK (EC P-256/P-384 or OKP Ed25519, with `alg`); its `kid`, if
    /// given, must be the RFC 7638 thumbprint.
    pub public_jwk: RootJwk,
}

/// A root's public JWK as the import takes it (RFC 7517/7518/8037 members).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RootJwk {
    pub kty: RootKty,
    pub crv: RootCurve,
    /// base64url coordinate.
    #[schema(max_length = 128)]
    pub x: String,
    /// base64url coordinate (EC only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 128)]
    pub y: Option<String>,
    pub alg: OperatorAlg,
    /// The RFC 7638 thumbprint, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 128)]
    pub kid: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub enum RootKty {
    EC,
    OKP,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub enum RootCurve {
    #[serde(rename = "P-256")]
    P256,
    #[serde(rename = "P-384")]
    P384,
    Ed25519,
}

/// The one role an imported key may have.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImportRole {
    Root,
}

/// The next trust list, unsigned, for an offline root to sign.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DraftTrustList {
    pub ver: u64,
    pub iat: i64,
    pub exp: i64,
    pub kids: Vec<String>,
    /// The list's CBOR payload, base64url: what `portcullis trust sign` signs.
    pub payload: String,
}

/// `POST /trust/upload` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadTrustRequest {
    /// The signed list (`COSE_Sign1`), base64url: a trust list is a few hundred bytes.
    #[schema(max_length = 32768)]
    pub signed: String,
}

/// What the admin API needs from whoever keeps the operator keys.
#[async_trait]
pub trait TrustAdmin: Send + Sync {
    async fn list_operator_keys(&self) -> Result<Vec<OperatorKeyView>, AdminError>;
    async fn create_operator_key(
        &self,
        actor: &str,
        role: OperatorRole,
        alg: OperatorAlg,
    ) -> Result<OperatorKeyView, AdminError>;
    async fn retire_operator_key(
        &self,
        actor: &str,
        kid: &str,
    ) -> Result<OperatorKeyView, AdminError>;
    async fn publish_trust_list(
        &self,
        actor: &str,
        valid_secs: i64,
    ) -> Result<PublishedTrustList, AdminError>;
    async fn import_root_key(
        &self,
        actor: &str,
        public_jwk: RootJwk,
    ) -> Result<OperatorKeyView, AdminError>;
    async fn draft_trust_list(&self, valid_secs: i64) -> Result<DraftTrustList, AdminError>;
    async fn upload_trust_list(
        &self,
        actor: &str,
        signed: &str,
    ) -> Result<PublishedTrustList, AdminError>;
}

/// The shared handle the trust routes hold as state.
pub type SharedTrustAdmin = Arc<dyn TrustAdmin>;

/// Default validity of a published trust list.
pub const DEFAULT_TRUST_LIST_SECS: i64 = 30 * 86_400;

#[utoipa::path(
    get, path = "/trust/keys", tag = "trust",
    responses((status = 200, description = "The operator keys, oldest first", body = [OperatorKeyView]))
)]
pub async fn list_operator_keys(
    State(trust): State<SharedTrustAdmin>,
    _caller: AdminCaller,
) -> Result<Json<Vec<OperatorKeyView>>, AdminError> {
    Ok(Json(trust.list_operator_keys().await?))
}

#[utoipa::path(
    post, path = "/trust/keys", tag = "trust",
    request_body = CreateOperatorKeyRequest,
    responses(
        (status = 201, description = "The new key, active", body = OperatorKeyView),
        (status = 400, description = "Not one of the roles or algorithms", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_operator_key(
    State(trust): State<SharedTrustAdmin>,
    caller: AdminCaller,
    JsonBody(request): JsonBody<CreateOperatorKeyRequest>,
) -> Result<(axum::http::StatusCode, Json<OperatorKeyView>), AdminError> {
    let actor = format!("admin:{}", caller.client_id);
    let alg = request.alg.unwrap_or(OperatorAlg::ES256);
    let key = trust.create_operator_key(&actor, request.role, alg).await?;
    Ok((axum::http::StatusCode::CREATED, Json(key)))
}

#[utoipa::path(
    post, path = "/trust/keys/{kid}/retire", tag = "trust",
    params(("kid" = String, Path, description = "The key to retire")),
    responses(
        (status = 200, description = "The key, retired: left out of the next trust list", body = OperatorKeyView),
        (status = 404, description = "No operator key has this kid", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The last active trust root", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn retire_operator_key(
    State(trust): State<SharedTrustAdmin>,
    caller: AdminCaller,
    Path(kid): Path<String>,
) -> Result<Json<OperatorKeyView>, AdminError> {
    let actor = format!("admin:{}", caller.client_id);
    Ok(Json(trust.retire_operator_key(&actor, &kid).await?))
}

#[utoipa::path(
    post, path = "/trust/publish", tag = "trust",
    request_body(content = Option<PublishTrustRequest>, description = "May be omitted"),
    responses(
        (status = 200, description = "The trust list now served at GET /gateway/v1/trust", body = PublishedTrustList),
        (status = 400, description = "A validity outside 60 s to 400 days", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No active trust root", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn publish_trust_list(
    State(trust): State<SharedTrustAdmin>,
    caller: AdminCaller,
    JsonBody(request): JsonBody<PublishTrustRequest>,
) -> Result<Json<PublishedTrustList>, AdminError> {
    let actor = format!("admin:{}", caller.client_id);
    let secs = request.valid_secs.unwrap_or(DEFAULT_TRUST_LIST_SECS);
    Ok(Json(trust.publish_trust_list(&actor, secs).await?))
}

#[utoipa::path(
    post, path = "/trust/keys/import", tag = "trust",
    request_body = ImportRootRequest,
    responses(
        (status = 201, description = "The offline root, active: trust lists are drafted here and signed where it is", body = OperatorKeyView),
        (status = 400, description = "Not a public EC/OKP key of ES256, ES384 or EdDSA, or a kid that is not its thumbprint", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn import_root_key(
    State(trust): State<SharedTrustAdmin>,
    caller: AdminCaller,
    JsonBody(request): JsonBody<ImportRootRequest>,
) -> Result<(axum::http::StatusCode, Json<OperatorKeyView>), AdminError> {
    let actor = format!("admin:{}", caller.client_id);
    let ImportRole::Root = request.role;
    let key = trust.import_root_key(&actor, request.public_jwk).await?;
    Ok((axum::http::StatusCode::CREATED, Json(key)))
}

#[utoipa::path(
    post, path = "/trust/draft", tag = "trust",
    request_body(content = Option<PublishTrustRequest>, description = "May be omitted"),
    responses(
        (status = 200, description = "The next trust list, unsigned (`portcullis trust sign` signs it)", body = DraftTrustList),
        (status = 400, description = "A validity outside 60 s to 400 days", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn draft_trust_list(
    State(trust): State<SharedTrustAdmin>,
    _caller: AdminCaller,
    JsonBody(request): JsonBody<PublishTrustRequest>,
) -> Result<Json<DraftTrustList>, AdminError> {
    let secs = request.valid_secs.unwrap_or(DEFAULT_TRUST_LIST_SECS);
    Ok(Json(trust.draft_trust_list(secs).await?))
}

#[utoipa::path(
    post, path = "/trust/upload", tag = "trust",
    request_body = UploadTrustRequest,
    responses(
        (status = 200, description = "The uploaded list, verified with an active root and now served at GET /gateway/v1/trust", body = PublishedTrustList),
        (status = 400, description = "Not a trust list an active root signed, expired, or not above the published version", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn upload_trust_list(
    State(trust): State<SharedTrustAdmin>,
    caller: AdminCaller,
    JsonBody(request): JsonBody<UploadTrustRequest>,
) -> Result<Json<PublishedTrustList>, AdminError> {
    let actor = format!("admin:{}", caller.client_id);
    Ok(Json(
        trust.upload_trust_list(&actor, &request.signed).await?,
    ))
}
