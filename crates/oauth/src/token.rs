//! `POST /oauth2/token`: the client credentials grant (RFC 6749 §4.4) issuing JWT access
//! tokens (RFC 9068).
//!
//! This is the hot path (30 000+ tokens/s on two cores): a cached client, one HMAC for a
//! secret, one signature, and a non-blocking audit record. No store round trip happens for
//! secret clients, and the client is shared (`Arc`), never cloned.

use portcullis_core::audit::{AuditAction, Outcome};
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis_core::audit::AuditEvent;
use portcullis_core::client::Client;
use portcullis_core::scope::grant_scopes;
use portcullis_core::token::{
    parse_token_request, AccessTokenClaims, Audience, Confirmation, FederatedSubject, Grant,
    TokenRequest,
};
use portcullis_core::{ClientId, ErrorCode, OAuthError, ScopeSet, UnixTime};
use serde::Serialize;

use crate::client_auth::{authenticate_request, AuthenticatedClient};
use crate::dpop::ProofRefusal;
use crate::error::{json_no_store, Error, DPOP_NONCE};
use crate::router::{OAuthForm, SourceAddr};
use crate::token_exchange::Exchanged;
use crate::AuthServer;

/// RFC 6749 §5.1 successful response.
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    /// RFC 8693 §2.2.1: set for token exchange.
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_token_type: Option<&'static str>,
    token_type: &'static str,
    expires_in: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

/// Counts a request refused by an abuse limit. Not audited: a flood of them is exactly when
/// the audit log must not be flooded too.
pub(crate) fn count_rate_limited(endpoint: &'static str) {
    metrics::counter!("portcullis_rate_limited_total", "endpoint" => endpoint).increment(1);
}

/// `POST /oauth2/token`.
pub async fn token(
    State(server): State<Arc<AuthServer>>,
    SourceAddr(addr): SourceAddr,
    request: Result<OAuthForm, Error>,
) -> Response {
    if let Err(e) = server.limits.check_address(addr) {
        count_rate_limited("token");
        return Error::from(e).into_response();
    }
    let mut claimed = None;
    match issue_access_token(&server, addr, request, &mut claimed).await {
        Ok(response) => response,
        Err(Error::RateLimited { retry_after_secs }) => {
            count_rate_limited("token");
            Error::RateLimited { retry_after_secs }.into_response()
        }
        Err(e) => {
            // Every malformed request counts towards the address's lock-out, as failed
            // authentication does (counted where it is decided), so a loop of garbage is
            // refused after a few rather than answered forever.
            if matches!(
                e.code(),
                ErrorCode::InvalidRequest | ErrorCode::UnsupportedGrantType
            ) {
                server.limits.record_failure(addr);
            }
            audit_refusal(&server, claimed.as_ref(), &e, addr);
            e.into_response()
        }
    }
}

/// Parses the request, authenticates the client, narrows scope and audience, and signs.
async fn issue_access_token(
    server: &AuthServer,
    addr: IpAddr,
    request: Result<OAuthForm, Error>,
    claimed: &mut Option<ClientId>,
) -> Result<Response, Error> {
    let request = request?;
    // The grant is checked before the client: a removed grant is refused the same way
    // whoever asks, with a description that says what to use instead.
    let TokenRequest {
        grant,
        scope,
        resources,
    } = parse_token_request(&request.form)?;
    let proof = portcullis_http::dpop_proof(&request.headers)
        .map_err(|()| invalid_dpop_proof("send exactly one DPoP header"))?;
    let Granted {
        client,
        method,
        allowed,
        ttl_secs,
        ends,
        federated,
        exchanged,
    } = authorize(server, addr, &request, grant, claimed).await?;
    server.limits.check_client(&client.client_id)?;
    // RFC 9449 §5: checked once the client is authenticated, so an anonymous flood cannot
    // spend replay-store writes; a client that must use DPoP gets nothing without it.
    let jkt = match proof {
        Some(proof) => Some(dpop_key(server, proof).await?),
        None if client.dpop_bound_access_tokens => {
            return Err(invalid_dpop_proof(
                "this client must send a DPoP proof (dpop_bound_access_tokens)",
            ))
        }
        None => None,
    };
    let scopes = grant_scopes(scope, allowed.as_ref().unwrap_or(&client.scopes))?;
    let issuer = server.settings.issuer.as_str();
    let audience = match &exchanged {
        Some(e) => e.audiences.clone(),
        None => client.select_audience(&resources, issuer)?,
    };
    let jti = URL_SAFE_NO_PAD.encode(portcullis_keys::random_id::<16>()?);
    let now = server.now();
    let ttl_secs = token_lifetime(ttl_secs, ends, now)?;
    let mut claims =
        AccessTokenClaims::for_client(issuer, &client, audience, &scopes, now, ttl_secs, jti);
    let policy = federated.as_ref().map(|(_, policy)| policy.clone());
    claims.federated = federated.map(|(subject, _)| subject);
    let rule = exchanged.as_ref().map(|e| e.rule.clone());
    if let Some(e) = exchanged {
        // RFC 8693 §2.1: the new token is about the subject; `client_id` stays the
        // requester's, so the requester's state and epoch decide whether it is active.
        claims.sub = e.sub;
        claims.act = e.act;
        claims.federated = claims.federated.or(e.federated);
        claims.exchanged_from = e.exchanged_from;
    }
    // RFC 8705 §3: over a connection with a client certificate, whatever the authentication
    // method, the token is bound to that certificate. Without one, nothing is computed.
    if let Some(peer) = &request.peer_certificates {
        claims.cnf = crate::mtls::confirmation(peer);
    }
    // RFC 9449 §6.1: bound to the proof's key as well (a token may be bound to both).
    if let Some(jkt) = jkt {
        claims.cnf.get_or_insert_with(Confirmation::default).jkt = Some(jkt);
    }
    let token_type = claims.token_type();
    let access_token = server
        .keys
        .active()
        .sign_claims_json(&serde_json::to_vec(&claims)?)?;
    let body = serde_json::to_vec(&TokenResponse {
        access_token: &access_token,
        issued_token_type: rule
            .is_some()
            .then_some(portcullis_core::token_exchange::ACCESS_TOKEN_TYPE),
        token_type,
        expires_in: ttl_secs,
        scope: claims.scope.as_deref(),
    })?;

    server.issued.increment(method);
    let AccessTokenClaims {
        jti,
        aud,
        scope,
        cnf,
        federated,
        sub,
        act,
        ..
    } = claims;
    let aud = match aud {
        Audience::One(a) => serde_json::Value::String(a),
        Audience::Many(v) => v.into_iter().map(serde_json::Value::String).collect(),
    };
    let mut detail = serde_json::json!({ "scope": scope, "aud": aud, "auth_method": method });
    if let (Some(subject), Some(map)) = (federated, detail.as_object_mut()) {
        map.insert(
            "federated".into(),
            serde_json::json!({ "iss": subject.iss, "sub": subject.sub, "policy": policy }),
        );
    }
    if let (Some(rule), Some(map)) = (rule, detail.as_object_mut()) {
        map.insert(
            "exchange".into(),
            serde_json::json!({ "rule": rule, "sub": sub, "act": act }),
        );
    }
    if let (Some(cnf), Some(map)) = (cnf, detail.as_object_mut()) {
        if let Some(x5t) = cnf.x5t_s256 {
            map.insert("x5t#S256".into(), x5t.into());
        }
        if let Some(jkt) = cnf.jkt {
            map.insert("jkt".into(), jkt.into());
        }
    }
    // `[audit] mode = "durable"`: the token is answered only once its record is stored.
    server
        .audit
        .record(AuditEvent {
            at: now,
            actor: client.client_id.to_string(),
            action: AuditAction::TokenIssued.into(),
            subject: jti,
            outcome: Outcome::Success.into(),
            detail,
        })
        .await?;
    let mut response = json_no_store(StatusCode::OK, body);
    // RFC 9449 §8.2: a fresh nonce with every answer, so a client never has to fail first.
    if let Some(nonce) = server.current_dpop_nonce() {
        if let Ok(value) = HeaderValue::from_str(&nonce) {
            response.headers_mut().insert(DPOP_NONCE, value);
        }
    }
    Ok(response)
}

/// Who a token request gets a token for, and within what.
struct Granted {
    client: Arc<Client>,
    /// How the request proved it (metrics label, audit detail).
    method: &'static str,
    /// The scopes it may ask for; `None`: the client's own (not copied for every token).
    allowed: Option<ScopeSet>,
    /// The token's longest lifetime: the client's.
    ttl_secs: u32,
    /// When the credential the token is granted on ends (an outside token or assertion, an
    /// exchanged token), and the refusal if it has by the time the token is signed.
    ends: Option<(UnixTime, &'static str)>,
    /// For the JWT bearer grant: the outside subject and the policy that mapped it.
    federated: Option<(FederatedSubject, String)>,
    /// For token exchange: the subject, audiences, actor chain and rule.
    exchanged: Option<Exchanged>,
}

/// Authenticates the client (client credentials), or checks the outside token and its policy
/// (JWT bearer, where client authentication is optional, RFC 7523 §3.1, and if sent must be
/// the client the policy names).
async fn authorize(
    server: &AuthServer,
    addr: IpAddr,
    request: &OAuthForm,
    grant: Grant<'_>,
    claimed: &mut Option<ClientId>,
) -> Result<Granted, Error> {
    match grant {
        Grant::ClientCredentials => {
            let AuthenticatedClient { client, method } =
                authenticate_request(server, addr, request, claimed).await?;
            Ok(Granted {
                allowed: None,
                ttl_secs: client.token_ttl_secs,
                ends: None,
                client,
                method: method.as_str(),
                federated: None,
                exchanged: None,
            })
        }
        Grant::TokenExchange(exchange) => {
            // RFC 8693 §2.1: the client authenticates as it would for any grant.
            let AuthenticatedClient { client, method } =
                authenticate_request(server, addr, request, claimed).await?;
            let exchanged = server.exchange_token(&exchange, &client.client_id).await?;
            Ok(Granted {
                allowed: Some(exchanged.scopes.clone()),
                ttl_secs: client.token_ttl_secs,
                ends: Some((exchanged.expires_at, "the subject token has expired")),
                client,
                method: method.as_str(),
                federated: None,
                exchanged: Some(exchanged),
            })
        }
        Grant::JwtBearer { assertion } | Grant::Saml2Bearer { assertion } => {
            let saml = matches!(grant, Grant::Saml2Bearer { .. });
            let authenticated = if sends_client_credentials(request) {
                Some(authenticate_request(server, addr, request, claimed).await?)
            } else {
                None
            };
            let client_id = authenticated.as_ref().map(|a| &a.client.client_id);
            let granted = if saml {
                server.saml_grant(assertion, client_id).await?
            } else {
                server.federated_grant(assertion, client_id).await?
            };
            *claimed = Some(granted.client.client_id.clone());
            Ok(Granted {
                method: authenticated
                    .map_or(if saml { "saml2_bearer" } else { "jwt_bearer" }, |a| {
                        a.method.as_str()
                    }),
                allowed: Some(granted.scopes),
                ttl_secs: granted.client.token_ttl_secs,
                ends: Some((granted.expires_at, "the assertion has expired")),
                client: granted.client,
                federated: Some((granted.subject, granted.policy)),
                exchanged: None,
            })
        }
    }
}

/// The lifetime of a token signed at `now`: `ttl_secs`, cut so that the token ends no later
/// than the credential it is granted on. Counted from the instant the token is signed, not
/// from when the credential was checked, so the time spent in between (DPoP, store round
/// trips) cannot carry the token past it; a credential that ended meanwhile is refused with
/// `invalid_grant`, never given a token of a second.
fn token_lifetime(
    ttl_secs: u32,
    ends: Option<(UnixTime, &'static str)>,
    now: UnixTime,
) -> Result<u32, Error> {
    let Some((ends_at, expired)) = ends else {
        return Ok(ttl_secs);
    };
    let left = ends_at.saturating_sub(now);
    if left <= 0 {
        return Err(Error::OAuth(OAuthError::new(
            ErrorCode::InvalidGrant,
            expired,
        )));
    }
    Ok(u32::try_from(left).unwrap_or(u32::MAX).min(ttl_secs))
}

/// Whether the request tries to authenticate a client (a header, a secret or an assertion in
/// the form); a bare `client_id` does not.
fn sends_client_credentials(request: &OAuthForm) -> bool {
    request
        .headers
        .contains_key(axum::http::header::AUTHORIZATION)
        || request.form.get("client_secret").is_some()
        || request.form.get("client_assertion").is_some()
}

fn invalid_dpop_proof(description: &'static str) -> Error {
    Error::OAuth(OAuthError::new(ErrorCode::InvalidDpopProof, description))
}

/// Accepts the token request's DPoP proof (`htm` POST, `htu` the token endpoint, no `ath`)
/// and returns its key's thumbprint.
async fn dpop_key(server: &AuthServer, proof: &str) -> Result<String, Error> {
    match server
        .accept_dpop_proof(proof, "POST", "/oauth2/token", None)
        .await
    {
        Ok(verified) => Ok(verified.jkt),
        Err(ProofRefusal::Replayed) => Err(Error::Replayed(
            OAuthError::new(
                ErrorCode::InvalidDpopProof,
                "the DPoP proof was already used",
            ),
            None,
        )),
        Err(ProofRefusal::Invalid(why)) => Err(invalid_dpop_proof(why)),
        Err(ProofRefusal::NonceRequired) => Err(Error::UseDpopNonce {
            nonce: server.dpop.nonce(server.now()),
        }),
        Err(ProofRefusal::StoreUnavailable) => Err(Error::Store(
            portcullis_store::StoreError::Unavailable("DPoP replay check".into()),
        )),
    }
}

/// Audits a refused token request: the error code, the source address and the client id
/// the request claimed — as a claim, not as the actor, since nobody was authenticated —
/// never the credentials. Refusals are summarised per source and window, so a flood of them
/// cannot grow the chain.
fn audit_refusal(server: &AuthServer, claimed: Option<&ClientId>, error: &Error, addr: IpAddr) {
    server.audit.record_refusal(
        addr,
        AuditEvent {
            at: server.now(),
            actor: "anonymous".to_owned(),
            action: AuditAction::TokenRefused.into(),
            subject: "-".to_owned(),
            outcome: Outcome::Failure.into(),
            detail: {
                let mut detail = serde_json::json!({ "error": error.code().as_str(), "source": addr.to_string() });
                if let Some(map) = detail.as_object_mut() {
                    let replayed_for = match error {
                        Error::Replayed(_, client) => client.as_ref(),
                        _ => None,
                    };
                    if let Some(id) = claimed.or(replayed_for) {
                        map.insert("claimed_client_id".into(), id.as_str().into());
                    }
                    // Kept in the (sealed) audit record only; the answer stays `invalid_client`.
                    if let Some(reason) = error.audit_reason() {
                        map.insert("reason".into(), reason.into());
                    }
                }
                detail
            },
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = 1_800_000_000;

    #[test]
    fn a_token_never_outlives_the_credential_it_is_granted_on() {
        let expired = "the assertion has expired";
        // Expiring in 30 s: the token lives 30 s at most, whatever the client's TTL.
        assert_eq!(
            token_lifetime(600, Some((NOW + 30, expired)), NOW).ok(),
            Some(30)
        );
        // The client's TTL, when shorter, still bounds it.
        assert_eq!(
            token_lifetime(10, Some((NOW + 30, expired)), NOW).ok(),
            Some(10)
        );
        assert_eq!(token_lifetime(600, None, NOW).ok(), Some(600));
        // Ended by the time the token is signed (checked a moment earlier): refused, not a
        // token of one second that ends after it.
        for ends_at in [NOW, NOW - 30] {
            match token_lifetime(600, Some((ends_at, expired)), NOW) {
                Err(Error::OAuth(e)) => {
                    assert_eq!(e.code, ErrorCode::InvalidGrant);
                    assert_eq!(e.description, expired);
                }
                other => panic!("{ends_at}: {other:?}"),
            }
        }
    }
}
