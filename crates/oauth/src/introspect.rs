//! `POST /oauth2/introspect` (RFC 7662) and the access-token check behind it, which the admin
//! API reuses for its own bearer tokens.
//!
//! The check is synchronous and does no I/O: keys come from the key ring and revocations
//! from this node's revocation cache (fed by every revocation and by the store at start).

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portcullis_core::token::{AccessTokenClaims, Audience, Confirmation};
use portcullis_core::ClientId;
use portcullis_keys::verify;
use serde::Serialize;

use crate::client_auth::authenticate_request;
use crate::error::{json_no_store, Error};
use crate::router::{OAuthForm, SourceAddr};
use crate::AuthServer;
use portcullis_ports::TokenRejection;

/// RFC 9068 §4: `typ` is `at+jwt`, or the full media type `application/at+jwt`; media types
/// compare case-insensitively (RFC 7515 §4.1.9).
fn is_access_token_type(typ: Option<&str>) -> bool {
    typ.is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    })
}

impl AuthServer {
    /// Checks that `token` is an active access token issued by this server: our key by
    /// `kid`, a good signature (the algorithm comes from the key), `typ` `at+jwt`, our `iss`,
    /// `exp` in the future, and not revoked on this node. No I/O.
    pub fn validate_access_token(&self, token: &str) -> Result<AccessTokenClaims, TokenRejection> {
        let decoded = verify::decode(token).map_err(|_| TokenRejection::Malformed)?;
        let kid = decoded
            .header
            .kid
            .as_deref()
            .ok_or(TokenRejection::UnknownKey)?;
        let key = self
            .keys
            .verifying_key(kid)
            .ok_or(TokenRejection::UnknownKey)?;
        decoded
            .verify(&key)
            .map_err(|_| TokenRejection::BadSignature)?;
        if !is_access_token_type(decoded.header.typ.as_deref()) {
            return Err(TokenRejection::WrongType);
        }
        let claims: AccessTokenClaims =
            decoded.claims_as().map_err(|_| TokenRejection::Malformed)?;
        if claims.iss != self.settings.issuer {
            return Err(TokenRejection::WrongIssuer);
        }
        let now = self.now();
        if claims.exp <= now {
            return Err(TokenRejection::Expired);
        }
        // A token exchanged from a revoked token ends with it (an in-memory lookup each).
        if std::iter::once(&claims.jti)
            .chain(&claims.exchanged_from)
            .any(|jti| self.revocations.contains(jti, now))
        {
            return Err(TokenRejection::Revoked);
        }
        Ok(claims)
    }

    /// [`Self::validate_access_token`], and the client the token was issued to still exists
    /// and is enabled: deleting or disabling a client ends its tokens at once for everyone
    /// who asks us (introspection, the admin API), not only when they expire. The client
    /// comes from the cache, so this costs no I/O on a hit.
    pub async fn check_active_token(
        &self,
        token: &str,
    ) -> Result<AccessTokenClaims, TokenRejection> {
        let claims = self.validate_access_token(token)?;
        let client_id =
            ClientId::parse(claims.client_id.as_str()).map_err(|_| TokenRejection::Malformed)?;
        match self.find_client(&client_id).await {
            Ok(Some(client)) if client.backs_token_of_epoch(claims.client_epoch) => Ok(claims),
            Ok(Some(client)) if client.enabled => Err(TokenRejection::ClientChanged),
            Ok(_) => Err(TokenRejection::ClientGone),
            Err(_) => Err(TokenRejection::StoreUnavailable),
        }
    }
}

/// RFC 7662 §2.2 response for an active token.
#[derive(Serialize)]
struct ActiveToken<'a> {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    client_id: &'a str,
    sub: &'a str,
    aud: &'a Audience,
    iss: &'a str,
    exp: i64,
    iat: i64,
    jti: &'a str,
    token_type: &'static str,
    /// RFC 8705 §3.2 and RFC 9449 §6.2: the certificate or DPoP key a bound token is
    /// confirmed by.
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<&'a Confirmation>,
}

/// RFC 7662 §2.2: "If the introspection call is properly authorized but the token is not
/// active ... the authorization server MUST return ... {"active": false}".
const INACTIVE: &[u8] = br#"{"active":false}"#;

/// `POST /oauth2/introspect`: any enabled client may ask (RFC 7662 §2.1 requires the caller
/// to be authorized; every client here is a protected resource or talks to one).
pub async fn introspect(
    State(server): State<Arc<AuthServer>>,
    SourceAddr(addr): SourceAddr,
    request: Result<OAuthForm, Error>,
) -> Response {
    match introspect_token(&server, addr, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn introspect_token(
    server: &AuthServer,
    addr: IpAddr,
    request: Result<OAuthForm, Error>,
) -> Result<Response, Error> {
    server.limits.check_lockout(addr)?;
    let request = request?;
    let _caller = authenticate_request(server, addr, &request, &mut None).await?;
    // RFC 7662 §2.1: `token_type_hint` is only a hint; there is one kind of token here.
    let token = request.form.require("token")?;
    let body = match server.check_active_token(token).await {
        Ok(claims) => {
            metrics::counter!("portcullis_introspections_total", "active" => "true").increment(1);
            serde_json::to_vec(&ActiveToken {
                active: true,
                scope: claims.scope.as_deref(),
                client_id: &claims.client_id,
                sub: &claims.sub,
                aud: &claims.aud,
                iss: &claims.iss,
                exp: claims.exp,
                iat: claims.iat,
                jti: &claims.jti,
                // RFC 9449 §6.2: a DPoP-bound token is of type DPoP, with its cnf.jkt.
                token_type: claims.token_type(),
                cnf: claims.cnf.as_ref(),
            })?
        }
        Err(_) => {
            metrics::counter!("portcullis_introspections_total", "active" => "false").increment(1);
            INACTIVE.to_vec()
        }
    };
    Ok(json_no_store(StatusCode::OK, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_token_type_accepts_both_rfc_9068_spellings() {
        assert!(is_access_token_type(Some("at+jwt")));
        assert!(is_access_token_type(Some("application/AT+JWT")));
        assert!(!is_access_token_type(Some("JWT")));
        assert!(!is_access_token_type(None));
    }
}
