//! Access-token authentication of admin callers: `Bearer` (RFC 6750 §2.1) or `DPoP`
//! (RFC 9449 §7.1).
//!
//! A middleware rather than a per-handler extractor: it runs on every protected route before
//! any body is read, so an unauthenticated caller learns nothing about request validation,
//! and a new handler cannot forget to check. Admin tokens are ordinary access tokens issued by
//! this server; what makes one an admin token is the [`ADMIN_SCOPE`].

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use portcullis_core::audit::{AuditAction, AuditEvent, Outcome};
use portcullis_http::presented_access_token;
use portcullis_ports::TokenValidator;

use crate::errors::AdminError;

/// The scope an access token needs to use the admin API.
pub const ADMIN_SCOPE: &str = "portcullis:admin";

/// The authenticated caller of an admin request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminCaller {
    /// The `client_id` of the bearer token.
    pub client_id: String,
}

impl AdminCaller {
    /// The `actor` of audit events this caller causes.
    pub fn actor(&self) -> String {
        format!("admin:{}", self.client_id)
    }

    /// A successful `action` of this caller on `subject` at `at`.
    pub fn event(
        &self,
        at: portcullis_core::UnixTime,
        action: AuditAction,
        subject: impl Into<String>,
        detail: serde_json::Value,
    ) -> AuditEvent {
        AuditEvent {
            at,
            actor: self.actor(),
            action: action.into(),
            subject: subject.into(),
            outcome: Outcome::Success.into(),
            detail,
        }
    }
}

/// The scope that reads audit records (`GET /audit`, `/audit/stream`): separate from
/// [`ADMIN_SCOPE`], so a client can administer without reading the trail, or audit without
/// administering.
pub const AUDIT_READ_SCOPE: &str = "audit:read";

/// Which bearer tokens a group of routes accepts: those carrying any one of `any_of`.
#[derive(Clone)]
pub struct ScopeGate {
    tokens: Arc<dyn TokenValidator>,
    any_of: &'static [&'static str],
}

impl ScopeGate {
    /// Routes for tokens with at least one of `any_of` (the first is named in refusals).
    pub fn new(tokens: Arc<dyn TokenValidator>, any_of: &'static [&'static str]) -> Self {
        Self { tokens, any_of }
    }
}

/// Checks the request's bearer token and, if it carries one of the gate's scopes, records
/// the caller in the request extensions for [`AdminCaller`] to pick up.
pub async fn require_scope(
    State(gate): State<ScopeGate>,
    request: Request,
    next: Next,
) -> Result<Response, AdminError> {
    let (parts, body) = request.into_parts();
    // The token with what proves possession of the key it may be bound to: the client
    // certificate of a TLS connection (RFC 8705 §3), a DPoP proof (RFC 9449 §7.1).
    let (token, presented) = presented_access_token(&parts).ok_or(AdminError::MissingToken)?;
    let claims = gate
        .tokens
        .presented_token(token, presented)
        .await
        .map_err(|rejection| {
            // The reason helps the operator reading the log; the token itself is never logged.
            tracing::debug!(reason = %rejection, "admin token rejected");
            match rejection.dpop_error() {
                Some(error) => AdminError::DpopRefused {
                    error,
                    nonce: gate.tokens.dpop_nonce(),
                },
                None => AdminError::InvalidToken,
            }
        })?;
    if !gate.any_of.iter().any(|scope| claims.has_scope(scope)) {
        return Err(AdminError::InsufficientScope(
            gate.any_of.first().copied().unwrap_or(ADMIN_SCOPE),
        ));
    }
    let mut parts = parts;
    parts.extensions.insert(AdminCaller {
        client_id: claims.client_id,
    });
    // Every record this request causes says where the caller was (unless it names a source).
    let source = portcullis_http::client_address(&parts);
    let request = Request::from_parts(parts, body);
    Ok(portcullis_audit::with_request_source(source, next.run(request)).await)
}

impl<S: Send + Sync> FromRequestParts<S> for AdminCaller {
    type Rejection = AdminError;

    /// Reads what [`require_scope`] stored; a handler mounted without that middleware
    /// therefore refuses every request instead of running unauthenticated.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AdminError> {
        parts
            .extensions
            .get::<AdminCaller>()
            .cloned()
            .ok_or(AdminError::MissingToken)
    }
}
