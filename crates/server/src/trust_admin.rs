//! The admin API's `/trust` routes over the gateway's operator keys: every change audited
//! (`trust.key_created`, `trust.key_retired`, `trust.published`), gateway refusals mapped to
//! the admin API's problems.

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis_admin::trust::{
    DraftTrustList, OperatorAlg, OperatorKeyView, OperatorRole, PublishedTrustList, RootJwk,
    TrustAdmin,
};
use portcullis_admin::AdminError;
use portcullis_audit::AuditLog;
use portcullis_core::audit::{AuditAction, AuditEvent, Outcome};
use portcullis_gateway::signed::{OperatorKeys, Role, StoredOperatorKey, TrustedKey};
use portcullis_gateway::GatewayError;
use portcullis_keys::{Algorithm, Jwk};
use serde_json::json;

/// The operator keys as the admin API manages them.
pub struct GatewayTrustAdmin {
    pub keys: OperatorKeys,
    pub audit: AuditLog,
}

fn view(key: StoredOperatorKey) -> OperatorKeyView {
    OperatorKeyView {
        kid: key.kid,
        role: key.role.as_str().to_owned(),
        alg: key.alg,
        backend: key.backend,
        state: match key.state {
            portcullis_gateway::signed::OperatorKeyState::Active => "active",
            portcullis_gateway::signed::OperatorKeyState::Retired => "retired",
        }
        .to_owned(),
        created_at: key.created_at,
        retired_at: key.retired_at,
        public_jwk: serde_json::to_value(&key.public_jwk).unwrap_or_default(),
    }
}

fn admin_error(e: GatewayError) -> AdminError {
    match e {
        GatewayError::Forbidden("unknown_operator_key") => {
            AdminError::NotFound("no operator key has this kid".into())
        }
        GatewayError::Forbidden("last_trust_root") => AdminError::Conflict(
            "this is the last active trust root: create another root first".into(),
        ),
        GatewayError::Forbidden("operator_key_algorithm") => {
            AdminError::BadRequest("operator keys are ES256, ES384 or EdDSA".into())
        }
        GatewayError::Forbidden("trust_list_validity") => {
            AdminError::BadRequest("valid_secs must be 60 s to 400 days".into())
        }
        GatewayError::Forbidden("root_public_key") => AdminError::BadRequest(
            "public_jwk is not a public EC P-256/P-384 or Ed25519 key of its alg".into(),
        ),
        GatewayError::Forbidden("root_kid_not_thumbprint") => AdminError::BadRequest(
            "the JWK's kid must be its RFC 7638 thumbprint (or left out)".into(),
        ),
        GatewayError::Unavailable(why) => AdminError::Conflict(why),
        other => AdminError::Internal(other.to_string()),
    }
}

impl GatewayTrustAdmin {
    async fn audit(
        &self,
        actor: &str,
        action: AuditAction,
        subject: &str,
        detail: serde_json::Value,
    ) {
        let event = AuditEvent {
            at: crate::bootstrap::unix_now(),
            actor: actor.to_owned(),
            action: action.into(),
            subject: subject.to_owned(),
            outcome: Outcome::Success.into(),
            detail,
        };
        if self.audit.record(event).await.is_err() {
            tracing::warn!(
                subject,
                "the audit log could not take an operator key record"
            );
        }
    }
}

#[async_trait]
impl TrustAdmin for GatewayTrustAdmin {
    async fn list_operator_keys(&self) -> Result<Vec<OperatorKeyView>, AdminError> {
        let keys = self.keys.list().await.map_err(admin_error)?;
        Ok(keys.into_iter().map(view).collect())
    }

    async fn create_operator_key(
        &self,
        actor: &str,
        role: OperatorRole,
        alg: OperatorAlg,
    ) -> Result<OperatorKeyView, AdminError> {
        let role = Role::parse(role.as_str())
            .ok_or_else(|| AdminError::Internal(format!("role {} unknown", role.as_str())))?;
        let alg =
            Algorithm::parse(alg.as_str()).map_err(|e| AdminError::Internal(e.to_string()))?;
        let key = self.keys.create(role, alg).await.map_err(admin_error)?;
        self.audit(
            actor,
            AuditAction::TrustKeyCreated,
            &key.kid,
            json!({"role": role.as_str(), "alg": key.alg, "backend": key.backend}),
        )
        .await;
        Ok(view(key))
    }

    async fn retire_operator_key(
        &self,
        actor: &str,
        kid: &str,
    ) -> Result<OperatorKeyView, AdminError> {
        let key = self.keys.retire(kid).await.map_err(admin_error)?;
        self.audit(
            actor,
            AuditAction::TrustKeyRetired,
            &key.kid,
            json!({"role": key.role.as_str()}),
        )
        .await;
        Ok(view(key))
    }

    async fn publish_trust_list(
        &self,
        actor: &str,
        valid_secs: i64,
    ) -> Result<PublishedTrustList, AdminError> {
        let published = self
            .keys
            .publish_trust_list(valid_secs)
            .await
            .map_err(admin_error)?;
        Ok(self.published(actor, &published, "online").await)
    }

    async fn import_root_key(
        &self,
        actor: &str,
        public_jwk: RootJwk,
    ) -> Result<OperatorKeyView, AdminError> {
        let value = serde_json::to_value(public_jwk)
            .map_err(|e| AdminError::Internal(format!("the JWK: {e}")))?;
        let jwk: Jwk = serde_json::from_value(value).map_err(|_| {
            AdminError::BadRequest("public_jwk is not a JWK (kty, crv, x, y, alg)".into())
        })?;
        let key = self.keys.import_root(&jwk).await.map_err(admin_error)?;
        self.audit(
            actor,
            AuditAction::TrustKeyCreated,
            &key.kid,
            json!({"role": "root", "alg": key.alg, "backend": key.backend}),
        )
        .await;
        Ok(view(key))
    }

    async fn draft_trust_list(&self, valid_secs: i64) -> Result<DraftTrustList, AdminError> {
        let list = self
            .keys
            .draft_trust_list(valid_secs)
            .await
            .map_err(admin_error)?;
        let payload = list.payload().map_err(admin_error)?;
        Ok(DraftTrustList {
            ver: list.ver,
            iat: list.iat,
            exp: list.exp,
            kids: list.keys.iter().filter_map(TrustedKey::kid).collect(),
            payload: URL_SAFE_NO_PAD.encode(payload),
        })
    }

    async fn upload_trust_list(
        &self,
        actor: &str,
        signed: &str,
    ) -> Result<PublishedTrustList, AdminError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(signed.trim_end_matches('='))
            .map_err(|_| AdminError::BadRequest("signed is not base64url".into()))?;
        let published = self
            .keys
            .upload_trust_list(&bytes)
            .await
            .map_err(|e| match e {
                GatewayError::Malformed(_)
                | GatewayError::Unauthenticated(_)
                | GatewayError::Forbidden(_)
                | GatewayError::Replay(_)
                | GatewayError::TooLarge => AdminError::BadRequest(format!(
                    "not a trust list an active root signed, unexpired and above the published \
                     version ({})",
                    e.reason()
                )),
                other => admin_error(other),
            })?;
        Ok(self.published(actor, &published, "offline").await)
    }
}

impl GatewayTrustAdmin {
    /// Audits a trust list that is now served and shows it.
    async fn published(
        &self,
        actor: &str,
        published: &portcullis_gateway::signed::PublishedTrustList,
        signed_by: &str,
    ) -> PublishedTrustList {
        let list = &published.list;
        let kids: Vec<String> = list.keys.iter().filter_map(TrustedKey::kid).collect();
        self.audit(
            actor,
            AuditAction::TrustListPublished,
            &format!("v{}", list.ver),
            json!({"ver": list.ver, "exp": list.exp, "kids": kids, "root": signed_by}),
        )
        .await;
        PublishedTrustList {
            ver: list.ver,
            iat: list.iat,
            exp: list.exp,
            kids,
            signed: URL_SAFE_NO_PAD.encode(&published.signed),
        }
    }
}
