//! `POST /oauth2/revoke` (RFC 7009): a client withdraws one of its own access tokens.
//!
//! RFC 7009 §2.2: "invalid tokens do not cause an error response", so the answer is 200
//! whatever the token is. A token of another client is not revoked (§2.1: the server must
//! check that the token was issued to the caller) and answered 200 too, so the endpoint tells
//! a caller nothing about tokens it does not own; that refusal is audited.

use portcullis_core::audit::{AuditAction, Outcome};
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portcullis_core::audit::AuditEvent;
use portcullis_store::RevokedToken;

use crate::client_auth::authenticate_request;
use crate::error::{json_no_store, Error};
use crate::router::{OAuthForm, SourceAddr};
use crate::AuthServer;

/// `POST /oauth2/revoke`.
pub async fn revoke(
    State(server): State<Arc<AuthServer>>,
    SourceAddr(addr): SourceAddr,
    request: Result<OAuthForm, Error>,
) -> Response {
    match revoke_token(&server, addr, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn revoke_token(
    server: &AuthServer,
    addr: IpAddr,
    request: Result<OAuthForm, Error>,
) -> Result<Response, Error> {
    server.limits.check_lockout(addr)?;
    let request = request?;
    let caller = authenticate_request(server, addr, &request, &mut None).await?;
    // Revocations are stored until the token expires: a client's revocation rate is bounded
    // like its token rate, so one client cannot grow the revocation set without bound.
    server.limits.check_client(&caller.client.client_id)?;
    // RFC 7009 §2.1: `token_type_hint` may be ignored; every token here is an access token,
    // and a `refresh_token` hint is handled the same way.
    let token = request.form.require("token")?;
    let Ok(claims) = server.validate_access_token(token) else {
        return Ok(revoked());
    };
    let caller_id = &caller.client.client_id;
    let now = server.now();
    if claims.client_id != caller_id.as_str() {
        server.audit.commit(AuditEvent {
            at: now,
            actor: caller_id.to_string(),
            action: AuditAction::TokenRevokeRefused.into(),
            subject: claims.jti,
            outcome: Outcome::Failure.into(),
            detail: serde_json::json!({ "reason": "token belongs to another client", "source": addr.to_string() }),
        })
        .await?;
        return Ok(revoked());
    }
    // The store makes the revocation reach every node and survive restarts; it is kept until
    // the token would have expired anyway. Only then is this node's cache updated, so a 200
    // always means the revocation is durable.
    server
        .store
        .revoke_token(&RevokedToken {
            jti: claims.jti.clone(),
            client_id: caller_id.clone(),
            expires_at: claims.exp,
        })
        .await?;
    server.revocations.insert(claims.jti.clone(), claims.exp);
    // A revocation is confirmed only once its record is stored, in either audit mode.
    server
        .audit
        .commit(AuditEvent {
            at: now,
            actor: caller_id.to_string(),
            action: AuditAction::TokenRevoked.into(),
            subject: claims.jti,
            outcome: Outcome::Success.into(),
            detail: serde_json::json!({ "source": addr.to_string() }),
        })
        .await?;
    Ok(revoked())
}

/// RFC 7009 §2.2: HTTP 200; "the content of the response body is ignored by the client".
fn revoked() -> Response {
    json_no_store(StatusCode::OK, b"{}".to_vec())
}
