//! Token exchange (RFC 8693) at the token endpoint: the requesting client (authenticated)
//! presents a subject token — one of ours, or an outside JWT of a trusted federation issuer —
//! and, for delegation, its own token as `actor_token`; a rule of `[[token_exchange.rules]]`
//! or of the admin API's federation trust must allow it. The new token is about the subject
//! (`sub`), names the actor chain (`act`), carries no more scope than the subject token and
//! the rule allow, is for an audience the rule names, lives no longer than the subject token,
//! and ends when the subject token (or any token that one was exchanged from) is revoked. No
//! refresh token is ever issued.

use portcullis_core::token::{Actor, FederatedSubject, MAX_EXCHANGE_DEPTH};
use portcullis_core::token_exchange::{
    exchange_audiences, exchange_scope_bound, select_rule, ExchangeRequest, TokenKind,
};
use portcullis_core::{ClientId, ErrorCode, OAuthError, ScopeSet};

use crate::error::Error;
use crate::AuthServer;

/// What an allowed exchange yields, besides the requesting client.
#[derive(Debug, Clone)]
pub(crate) struct Exchanged {
    /// The new token's `sub`: the subject token's.
    pub sub: String,
    /// The most scope it may carry.
    pub scopes: ScopeSet,
    pub audiences: Vec<String>,
    /// When the subject token expires: the new one must not outlive it.
    pub expires_at: i64,
    pub act: Option<Actor>,
    pub federated: Option<FederatedSubject>,
    /// Our tokens it derives from (the subject token and its own sources), newest first.
    pub exchanged_from: Vec<String>,
    /// The rule that allowed it (audited).
    pub rule: String,
}

fn invalid_grant(description: &'static str) -> Error {
    Error::OAuth(OAuthError::new(ErrorCode::InvalidGrant, description))
}

/// What a verified subject token says.
struct Subject {
    sub: String,
    scopes: ScopeSet,
    expires_at: i64,
    act: Option<Actor>,
    federated: Option<FederatedSubject>,
    /// Our tokens the new one will derive from: this one, then its own sources.
    exchanged_from: Vec<String>,
}

/// RFC 8693 §5 `unauthorized_client`: no rule allows the exchange.
const NO_RULE: &str = "no token exchange rule lets this client exchange this subject's token (with or without an actor token)";

impl AuthServer {
    /// The subject token, verified: one of ours (active, not exchanged too often), or an
    /// outside token of a trusted issuer through the federation grant.
    async fn verified_subject(&self, request: &ExchangeRequest<'_>) -> Result<Subject, Error> {
        match request.subject_kind {
            TokenKind::AccessToken => {
                let claims = self
                    .check_active_token(request.subject_token)
                    .await
                    .map_err(|_| {
                        invalid_grant("the subject token is not an active token of this server")
                    })?;
                let scopes = ScopeSet::parse(claims.scope.as_deref().unwrap_or_default())
                    .map_err(|_| invalid_grant("the subject token's scope is malformed"))?;
                if claims.exchanged_from.len() >= MAX_EXCHANGE_DEPTH {
                    return Err(invalid_grant(
                        "the subject token was already exchanged too many times over",
                    ));
                }
                let mut exchanged_from = Vec::with_capacity(claims.exchanged_from.len() + 1);
                exchanged_from.push(claims.jti);
                exchanged_from.extend(claims.exchanged_from);
                Ok(Subject {
                    sub: claims.sub,
                    scopes,
                    expires_at: claims.exp,
                    act: claims.act,
                    federated: claims.federated,
                    exchanged_from,
                })
            }
            TokenKind::Jwt => {
                let granted = self.federated_grant(request.subject_token, None).await?;
                Ok(Subject {
                    sub: granted.client.client_id.to_string(),
                    scopes: granted.scopes,
                    expires_at: granted.expires_at,
                    act: None,
                    federated: Some(granted.subject),
                    exchanged_from: Vec::new(),
                })
            }
        }
    }

    /// RFC 8693 §2.1 for `request` by the authenticated `requester`.
    pub(crate) async fn exchange_token(
        &self,
        request: &ExchangeRequest<'_>,
        requester: &ClientId,
    ) -> Result<Exchanged, Error> {
        let subject = self.verified_subject(request).await?;
        // The actor is the requester itself, proven by a token of its own (§2.1, §4.1): a
        // client cannot name another party as the one acting.
        if let Some(actor_token) = request.actor_token {
            let actor = self.check_active_token(actor_token).await.map_err(|_| {
                invalid_grant("the actor token is not an active token of this server")
            })?;
            if actor.client_id != requester.as_str() {
                return Err(invalid_grant(
                    "the actor token must be the requesting client's own",
                ));
            }
        }
        // The configuration's rules, then the admin API's (`PUT /admin/v1/federation`).
        let trust = self.federation.in_force();
        let with_actor = request.actor_token.is_some();
        let rule = select_rule(
            &trust.exchange_rules,
            requester.as_str(),
            &subject.sub,
            with_actor,
        )
        .ok_or_else(|| Error::OAuth(OAuthError::new(ErrorCode::UnauthorizedClient, NO_RULE)))?;
        let audiences = exchange_audiences(rule, &request.audiences)?;
        let scopes = exchange_scope_bound(rule, &subject.scopes)
            .map_err(|_| invalid_grant("the rule's scopes are invalid"))?;
        let act = match request.actor_token {
            Some(_) => Some(Actor {
                sub: requester.to_string(),
                act: subject.act.map(Box::new),
            }),
            // Exchanged again without an actor, a delegated token keeps its chain.
            None => subject.act,
        };
        Ok(Exchanged {
            sub: subject.sub,
            scopes,
            audiences,
            expires_at: subject.expires_at,
            act,
            federated: subject.federated,
            exchanged_from: subject.exchanged_from,
            rule: rule.name.clone(),
        })
    }
}
