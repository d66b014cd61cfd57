//! The one place where admin failures become HTTP: every [`AdminError`] is rendered as an
//! RFC 9457 problem document (`application/problem+json`), so the CLI and any other caller
//! parse one error shape for every route.
//!
//! Problem `type`s are URNs (`urn:portcullis:problem:<slug>`): stable, machine-readable and
//! not dereferenceable, which RFC 9457 §3.1.1 allows. `detail` is written for the operator and
//! never carries a secret, a token, a hash or key material.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_audit::AuditError;
use portcullis_core::audit::ChainBreak;
use portcullis_core::CoreError;
use portcullis_ports::PortError;
use portcullis_store::StoreError;

pub use portcullis_http::{Problem, PROBLEM_JSON};

/// Everything that can go wrong in an admin request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// No `Authorization: Bearer` header (RFC 6750 §2.1).
    #[error("the request carries no bearer token; send Authorization: Bearer <token>")]
    MissingToken,
    /// The bearer token failed validation. The reason stays in the server log: telling a
    /// caller *why* a token failed helps an attacker more than an operator.
    #[error("the bearer token is invalid or expired")]
    InvalidToken,
    /// A DPoP-bound token without a valid proof, or a proof without the current nonce
    /// (RFC 9449 §7.1): answered 401 with a `DPoP` challenge naming `error`, and the nonce to
    /// retry with.
    #[error("the DPoP proof is missing or invalid ({error})")]
    DpopRefused {
        error: &'static str,
        nonce: Option<String>,
    },
    /// A valid token without the admin scope (RFC 6750 §3.1 `insufficient_scope`).
    #[error("the bearer token lacks the {0} scope")]
    InsufficientScope(&'static str),
    /// The body is not JSON, not an object of the expected shape, or sent with the wrong
    /// content type; the message names the problem precisely.
    #[error("{0}")]
    BadRequest(String),
    /// The body exceeded the admin API's body limit.
    #[error("the request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    /// A value broke a domain rule (name, scope, audience, ttl, id, key source).
    #[error(transparent)]
    Invalid(#[from] CoreError),
    /// The device or certificate named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A failure the caller cannot fix (key custody, randomness, encoding): logged with its
    /// detail, answered without it.
    #[error("internal: {0}")]
    Internal(String),
    /// The client named in the path does not exist.
    #[error("client '{0}' does not exist")]
    ClientNotFound(String),
    /// A client with the chosen id already exists.
    #[error("client '{0}' already exists")]
    ClientExists(String),
    /// The client's state does not allow the operation (e.g. rotating the secret of a
    /// `private_key_jwt` client, which has none).
    #[error("{0}")]
    Conflict(String),
    /// `POST /audit/verify` found the hash chain broken.
    #[error("the audit chain is broken: {0}")]
    ChainBroken(ChainBreak),
    /// No route matched.
    #[error("no admin endpoint at this path")]
    NoRoute,
    /// The route exists but not with this method.
    #[error("this admin endpoint does not support the request method")]
    MethodNotAllowed,
    /// The store failed; details go to the log, not to the caller.
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
    /// The change was made but its audit record could not be stored in time: answered 503,
    /// as a request that cannot be audited is not confirmed (the record stays queued).
    #[error("audit log unavailable")]
    AuditUnavailable(#[from] portcullis_audit::AuditUnavailable),
    /// The audit log failed in a way this crate does not know by name.
    #[error("audit log: {0}")]
    Audit(AuditError),
    /// Sealing a secret or drawing randomness failed.
    #[error("key operation failed: {0}")]
    Keys(#[from] portcullis_keys::KeyError),
}

impl From<AuditError> for AdminError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Broken(b) => Self::ChainBroken(b),
            AuditError::Store(s) => Self::Store(s),
            AuditError::Archive(why) => Self::Conflict(why),
            other => Self::Audit(other),
        }
    }
}

impl From<PortError> for AdminError {
    fn from(e: PortError) -> Self {
        match e {
            PortError::Invalid(e) => Self::Invalid(e),
            PortError::BadRequest(m) => Self::BadRequest(m),
            PortError::UnknownClient(id) => Self::ClientNotFound(id),
            PortError::ClientExists(id) => Self::ClientExists(id),
            PortError::NotFound(m) => Self::NotFound(m),
            PortError::Conflict(m) => Self::Conflict(m),
            PortError::Store(e) => Self::Store(e),
            PortError::AuditUnavailable => {
                Self::AuditUnavailable(portcullis_audit::AuditUnavailable)
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl AdminError {
    /// Status, problem-type slug and title: the whole mapping in one table.
    fn classify(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::MissingToken | Self::InvalidToken | Self::DpopRefused { .. } => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Authentication required",
            ),
            Self::InsufficientScope(_) => {
                (StatusCode::FORBIDDEN, "forbidden", "Insufficient scope")
            }
            Self::BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                "invalid-request",
                "Invalid request",
            ),
            Self::Invalid(CoreError::Conflict { .. }) => (
                StatusCode::CONFLICT,
                "conflict",
                "Operation conflicts with the current state",
            ),
            Self::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid-value", "Invalid value"),
            Self::PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Request body too large",
            ),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::ClientNotFound(_) => (
                StatusCode::NOT_FOUND,
                "client-not-found",
                "Client not found",
            ),
            Self::ClientExists(_) => (
                StatusCode::CONFLICT,
                "client-exists",
                "Client already exists",
            ),
            Self::Conflict(_) => (
                StatusCode::CONFLICT,
                "conflict",
                "Operation conflicts with the client's state",
            ),
            Self::ChainBroken(_) => (
                StatusCode::CONFLICT,
                "audit-chain-broken",
                "Audit chain broken",
            ),
            Self::NoRoute => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Self::Store(StoreError::NotFound) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::Store(StoreError::Conflict(_)) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Self::Store(StoreError::Unavailable(_)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Storage unavailable",
            ),
            Self::AuditUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "audit-unavailable",
                "Audit log unavailable",
            ),
            Self::Store(_) | Self::Keys(_) | Self::Audit(_) | Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        }
    }

    /// The `detail` shown to the caller. Server-side failures get a fixed text; their cause
    /// is logged instead, because it may describe internals (SQL, file paths).
    fn public_detail(&self) -> String {
        match self {
            Self::Store(StoreError::NotFound) => "the requested item does not exist".to_owned(),
            Self::Store(StoreError::Conflict(_)) => {
                "the change conflicts with stored state; retry".to_owned()
            }
            Self::Store(StoreError::Unavailable(_)) => {
                "the store is unavailable; retry later".to_owned()
            }
            Self::AuditUnavailable(_) => {
                "the change could not be audited in time: check the audit log before retrying"
                    .to_owned()
            }
            Self::Store(_) | Self::Keys(_) | Self::Audit(_) | Self::Internal(_) => {
                "the server could not complete the request".to_owned()
            }
            other => other.to_string(),
        }
    }

    /// The RFC 6750 §3 challenge for authentication failures.
    fn challenge(&self) -> Option<String> {
        match self {
            Self::MissingToken | Self::InvalidToken => {
                Some(r#"Bearer realm="portcullis-admin", error="invalid_token""#.to_owned())
            }
            Self::InsufficientScope(scope) => Some(format!(
                r#"Bearer realm="portcullis-admin", error="insufficient_scope", scope="{scope}""#
            )),
            _ => None,
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let (status, slug, title) = self.classify();
        Problem::new(status, slug, title, self.public_detail())
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        if problem.status >= 500 {
            tracing::error!(error = %self, "admin request failed");
        }
        let mut response = problem.into_response();
        if let Some(challenge) = self.challenge().and_then(|c| HeaderValue::try_from(c).ok()) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Self::DpopRefused { error, nonce } = &self {
            portcullis_http::insert_dpop_challenge(
                response.headers_mut(),
                "portcullis-admin",
                error,
                nonce.as_deref(),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_side_details_do_not_leak_to_the_caller() {
        let e = AdminError::Store(StoreError::Unavailable("connect to 10.0.0.5 failed".into()));
        let p = e.problem();
        assert_eq!(p.status, 503);
        assert!(!p.detail.contains("10.0.0.5"));
        let p = AdminError::Store(StoreError::Corrupt("row 7".into())).problem();
        assert_eq!(p.status, 500);
        assert!(!p.detail.contains("row 7"));
    }

    #[test]
    fn auth_failures_carry_the_rfc_6750_challenge() {
        let r = AdminError::InvalidToken.into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let challenge = r
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok());
        assert!(challenge.is_some_and(|c| c.contains(r#"error="invalid_token""#)));
        let r = AdminError::InsufficientScope("portcullis:admin").into_response();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let challenge = r
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok());
        assert!(challenge.is_some_and(|c| c.contains(r#"error="insufficient_scope""#)));
        assert_eq!(
            r.headers().get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
            Some(PROBLEM_JSON.as_bytes())
        );
    }

    #[test]
    fn problem_types_are_urns_and_status_matches() {
        let p = AdminError::ClientExists("c1".into()).problem();
        assert_eq!(p.kind, "urn:portcullis:problem:client-exists");
        assert_eq!(p.status, 409);
        assert_eq!(p.detail, "client 'c1' already exists");
    }
}
