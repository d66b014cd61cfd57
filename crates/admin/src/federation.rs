//! `/federation`: workload federation's trust (issue #15) — which outside token issuers (JWT
//! bearer grant) and SAML identity providers (SAML 2.0 bearer grant) are trusted, which of
//! their subjects become which client, and which clients may exchange whose tokens (token
//! exchange rules, RFC 8693)
//! (`portcullis_core::federation` has the rules).
//!
//! Two parts are in force, in this order: the node configuration's
//! (`[[federation.issuers]]`, `[[federation.policies]]`, read-only here) and the part set
//! through this API, which `PUT` replaces whole. The admin API does not hold the trust: it
//! calls the [`FederationAdmin`] the server gives it, which validates, stores (compare-and-
//! swap) and audits (`federation.changed`).

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::State;
use axum::Json;
use portcullis_core::federation::TrustSet;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::openapi::{ObjectBuilder, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::auth::AdminCaller;
use crate::errors::{AdminError, Problem};
use crate::extract::JsonBody;
use crate::openapi::{ID_PATTERN, SCOPE_PATTERN};

/// The trust in force: the configuration's part first, then the admin API's.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FederationView {
    /// From `[federation]` of the node's configuration: read-only here.
    #[schema(value_type = TrustSetSchema)]
    pub config: TrustSet,
    /// Set through `PUT /federation`.
    #[schema(value_type = TrustSetSchema)]
    pub admin: TrustSet,
    /// What would make a policy refuse every token though the trust is valid: a client it
    /// maps to that does not exist or is disabled (a policy may be written before its client,
    /// so this is said, not refused).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Where the trust lives; the server implements it over the authorization server.
#[async_trait]
pub trait FederationAdmin: Send + Sync {
    async fn federation(&self) -> Result<FederationView, AdminError>;
    /// Replaces the admin part (checked with the configuration's); `actor` is audited.
    async fn set_federation(
        &self,
        actor: &str,
        admin: TrustSet,
    ) -> Result<FederationView, AdminError>;
}

pub type SharedFederationAdmin = Arc<dyn FederationAdmin>;

/// The trust in force.
#[utoipa::path(
    get, path = "/federation", tag = "federation",
    responses((status = 200, description = "The trusted issuers and policies: the configuration's (read-only) and the admin API's", body = FederationView))
)]
pub async fn get_federation(
    State(federation): State<SharedFederationAdmin>,
    _caller: AdminCaller,
) -> Result<Json<FederationView>, AdminError> {
    Ok(Json(federation.federation().await?))
}

/// Replace the admin API's issuers and policies whole.
#[utoipa::path(
    put, path = "/federation", tag = "federation",
    request_body(content = TrustSetSchema, description = "The new admin part; {} removes it"),
    responses(
        (status = 200, description = "The trust now in force", body = FederationView),
        (status = 400, description = "An issuer or policy breaks a rule, a name is used twice (here or in the configuration), or a policy names no issuer", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The trust changed meanwhile (another admin, another node): read it again and retry", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_federation(
    State(federation): State<SharedFederationAdmin>,
    caller: AdminCaller,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<FederationView>, AdminError> {
    let admin: TrustSet = serde_json::from_value(body)
        .map_err(|e| AdminError::BadRequest(format!("federation: {e}")))?;
    Ok(Json(
        federation.set_federation(&caller.actor(), admin).await?,
    ))
}

/// The JSON Schema of a trust part (`{issuers, policies, saml_issuers, exchange_rules}`).
pub struct TrustSetSchema;

const NAME: &str = "^[A-Za-z0-9_.-]{1,64}$";

fn trust_set_schema() -> Value {
    let issuer = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "issuer", "audience"],
        "properties": {
            "name": {"type": "string", "pattern": NAME},
            "issuer": {"type": "string", "minLength": 1, "maxLength": 1024, "description": "the exact iss of its tokens: https, or http on loopback"},
            "jwks_uri": {"type": "string", "minLength": 1, "maxLength": 2048},
            "jwks": {"type": "object", "description": "its JWK Set inline"},
            "algorithms": {"type": "array", "items": {"enum": ["EdDSA", "Ed25519", "ES256", "ES384", "PS256", "RS256"]}},
            "audience": {"type": "string", "minLength": 1, "maxLength": 1024},
            "max_lifetime_secs": {"type": "integer", "minimum": 60, "maximum": 2_678_400},
        },
    });
    let saml_issuer = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "entity_id", "certificates"],
        "properties": {
            "name": {"type": "string", "pattern": NAME},
            "entity_id": {"type": "string", "minLength": 1, "maxLength": 1024, "description": "the exact saml:Issuer of its assertions"},
            "certificates": {"type": "array", "minItems": 1, "maxItems": 8, "items": {"type": "string", "description": "a PEM X.509 signing certificate"}},
            "audience": {"type": "string", "minLength": 1, "maxLength": 1024, "description": "the Audience its assertions must name (default: our issuer URL or token endpoint)"},
            "max_lifetime_secs": {"type": "integer", "minimum": 60, "maximum": 86_400},
        },
    });
    let policy = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "issuer", "claims", "client_id"],
        "properties": {
            "name": {"type": "string", "pattern": NAME},
            "issuer": {"type": "string", "pattern": NAME, "description": "an issuer's name"},
            "claims": {
                "type": "object",
                "required": ["sub"],
                "description": "claim name -> exact value, or a pattern where * stands for any run of characters",
                "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 1024},
            },
            "client_id": {"type": "string", "pattern": ID_PATTERN},
            "scopes": {"type": "array", "items": {"type": "string", "pattern": SCOPE_PATTERN}},
        },
    });
    let exchange_rule = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "clients", "subjects", "audiences"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 64},
            "clients": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": ID_PATTERN}, "description": "the clients that may ask"},
            "subjects": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}, "description": "patterns on the subject token's sub (* = any run of characters; not only *)"},
            "audiences": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1, "maxLength": 1024}},
            "scopes": {"type": "array", "items": {"type": "string", "pattern": SCOPE_PATTERN}, "description": "the most the new token may carry (empty: the subject token's)"},
            "require_actor": {"type": "boolean", "description": "delegation: the requester's own token must come as actor_token"},
        },
    });
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "exchange_rules": {"type": "array", "items": exchange_rule, "description": "token exchange rules (RFC 8693), after the configuration's [[token_exchange.rules]]"},
            "issuers": {"type": "array", "items": issuer},
            "policies": {"type": "array", "items": policy},
            "saml_issuers": {"type": "array", "items": saml_issuer, "description": "SAML 2.0 identity providers (RFC 7522 grant; builds with the saml feature)"},
        },
    })
}

impl PartialSchema for TrustSetSchema {
    fn schema() -> RefOr<Schema> {
        let mut object = ObjectBuilder::new().build();
        if let Value::Object(keywords) = trust_set_schema() {
            object
                .extensions
                .get_or_insert_with(Default::default)
                .extend(keywords);
        }
        RefOr::T(Schema::Object(object))
    }
}

impl ToSchema for TrustSetSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("FederationTrust")
    }
}
