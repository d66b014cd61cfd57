//! The JWT bearer grant's checks (RFC 7523 §3): the outside token's issuer is trusted, its
//! signature verifies with that issuer's keys, its claims satisfy the issuer's rules, its
//! `jti` (when present) is new, and a policy maps it to an enabled client.

use std::sync::Arc;

use portcullis_core::client::Client;
use portcullis_core::federation::{
    select_policy, ExternalTokenError, TrustPolicy, TrustedIssuer, SKEW_SECS,
};
use portcullis_core::token::FederatedSubject;
use portcullis_core::{ClientId, ErrorCode, OAuthError, ScopeSet};
use portcullis_keys::verify::{decode, Decoded};
use portcullis_keys::Algorithm;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::AuthServer;

/// Longest outside `jti` remembered; longer ones are refused rather than stored.
const MAX_JTI_LEN: usize = 256;

/// What a trusted outside token grants.
#[derive(Debug, Clone)]
pub struct FederatedGrant {
    /// The client the policy maps the token to.
    pub client: Arc<Client>,
    /// The outside token's issuer and subject, carried in the issued token.
    pub subject: FederatedSubject,
    /// The scopes the token may get: the policy's that the client also has.
    pub scopes: ScopeSet,
    /// The outside token's expiry: ours must not outlive it.
    pub expires_at: i64,
    /// The policy that matched (audited).
    pub policy: String,
}

/// An outside assertion's id, spent once per issuer.
pub(crate) struct SingleUse<'a> {
    /// The single-use scope: one per issuer, so two issuers' ids never collide.
    pub scope: String,
    pub id: &'a str,
    /// The refusal's description when it was already spent.
    pub what: &'static str,
}

pub(crate) fn invalid_grant(description: &'static str) -> Error {
    Error::OAuth(OAuthError::new(ErrorCode::InvalidGrant, description))
}

impl From<ExternalTokenError> for Error {
    fn from(e: ExternalTokenError) -> Self {
        invalid_grant(e.describe())
    }
}

impl AuthServer {
    /// RFC 7523 §3 for `assertion`; `authenticated` is the client the request authenticated
    /// as, if it did (client authentication is optional for this grant, §3.1): the policy
    /// must then map the token to that very client.
    pub(crate) async fn federated_grant(
        &self,
        assertion: &str,
        authenticated: Option<&ClientId>,
    ) -> Result<FederatedGrant, Error> {
        let decoded =
            decode(assertion).map_err(|_| invalid_grant("the assertion is not a compact JWS"))?;
        let claims: Map<String, Value> = decoded
            .claims_as()
            .map_err(|_| invalid_grant("the assertion's claims are not a JSON object"))?;
        let trust = self.federation.in_force();
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let issuer = trust
            .issuer(iss)
            .ok_or(ExternalTokenError::NoTrustedIssuer)?;
        self.verify_external_signature(issuer, &decoded).await?;
        let now = self.now();
        let expires_at = issuer.check_claims(&claims, now)?;
        let policy = select_policy(&trust.policies, &issuer.name, &claims)
            .ok_or(ExternalTokenError::NoPolicy)?;
        // RFC 7523 §3 item 7: a jti, when there is one, is accepted once per issuer.
        let jti = match claims.get("jti") {
            None => None,
            Some(jti) => Some(
                jti.as_str()
                    .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN)
                    .ok_or(invalid_grant(
                        "the assertion's jti is not a string of 1-256 characters",
                    ))?,
            ),
        };
        let subject = FederatedSubject {
            iss: issuer.issuer.clone(),
            sub: claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        };
        let once = jti.map(|id| SingleUse {
            scope: format!("#federation:{}", issuer.name),
            id,
            what: "the assertion was already used (jti)",
        });
        self.grant_by_policy(policy, authenticated, subject, expires_at, once)
            .await
    }

    /// What a verified outside assertion grants once `policy` matched it: the policy's
    /// client (enabled, and the authenticated one if the request authenticated), the
    /// assertion's id spent (when it has one), the policy's scopes that the client has.
    pub(crate) async fn grant_by_policy(
        &self,
        policy: &TrustPolicy,
        authenticated: Option<&ClientId>,
        subject: FederatedSubject,
        expires_at: i64,
        once: Option<SingleUse<'_>>,
    ) -> Result<FederatedGrant, Error> {
        let client_id = ClientId::parse(policy.client_id.as_str())
            .map_err(|_| invalid_grant("the policy names an invalid client id"))?;
        if authenticated.is_some_and(|a| *a != client_id) {
            return Err(invalid_grant(
                "the assertion maps to another client than the one authenticated",
            ));
        }
        let client = self
            .find_client(&client_id)
            .await?
            .filter(|c| c.enabled)
            .ok_or(invalid_grant(
                "the client the policy maps to does not exist or is disabled",
            ))?;
        if let Some(once) = once {
            if !self
                .single_use
                .spend(&once.scope, once.id, expires_at + SKEW_SECS, self.now())
                .await?
            {
                return Err(Error::Replayed(
                    OAuthError::new(ErrorCode::InvalidGrant, once.what),
                    Some(client_id),
                ));
            }
        }
        let allowed = ScopeSet::from_tokens(policy.scopes.clone())
            .map_err(|_| invalid_grant("the policy's scopes are invalid"))?;
        let scopes = ScopeSet::from_tokens(
            allowed
                .iter()
                .filter(|s| client.scopes.contains(s))
                .map(str::to_owned),
        )
        .map_err(|_| invalid_grant("the policy's scopes are invalid"))?;
        Ok(FederatedGrant {
            subject,
            client,
            scopes,
            expires_at,
            policy: policy.name.clone(),
        })
    }

    /// The outside token verifies with one of its issuer's keys (inline, at `jwks_uri`, or
    /// at the `jwks_uri` its discovery document names), the algorithm coming from the key
    /// and allowed for that issuer.
    async fn verify_external_signature(
        &self,
        issuer: &TrustedIssuer,
        decoded: &Decoded,
    ) -> Result<(), Error> {
        let allowed: Vec<Algorithm> = if issuer.algorithms.is_empty() {
            Algorithm::ALL.to_vec()
        } else {
            issuer
                .algorithms
                .iter()
                .filter_map(|a| Algorithm::parse(a).ok())
                .collect()
        };
        let keys = &self.client_keys;
        let verified = match &issuer.jwks {
            Some(jwks) => keys
                .verify_inline(&jwks.to_string(), &allowed, decoded)
                .map_err(|e| unavailable(issuer, &e.to_string()))?,
            None => {
                let uri = match &issuer.jwks_uri {
                    Some(uri) => uri.clone(),
                    None => keys
                        .discovered_jwks_uri(&issuer.issuer)
                        .await
                        .map_err(|e| unavailable(issuer, &e.to_string()))?,
                };
                keys.verify_with_uri(&uri, &allowed, decoded)
                    .await
                    .map_err(|e| unavailable(issuer, &e.to_string()))?
            }
        };
        if verified {
            Ok(())
        } else {
            Err(invalid_grant(
                "the assertion's signature does not verify with its issuer's keys",
            ))
        }
    }
}

/// The issuer's keys could not be had: logged with the reason, answered 503 (the token may
/// be fine; the caller should retry).
fn unavailable(issuer: &TrustedIssuer, why: &str) -> Error {
    tracing::warn!(issuer = %issuer.name, error = %why, "federation: the issuer's keys are unavailable");
    Error::OAuth(OAuthError::new(
        ErrorCode::TemporarilyUnavailable,
        "the assertion issuer's keys cannot be fetched now; retry later",
    ))
}
