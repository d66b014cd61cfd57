//! Errors of the domain core, and the OAuth 2.0 error vocabulary (RFC 6749 §5.2) that the
//! HTTP edge turns into response bodies.

use std::borrow::Cow;

/// The `error` codes of RFC 6749 §5.2, RFC 6750 §3.1, RFC 7009 §2.2.1 and RFC 8707 §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    UnsupportedTokenType,
    InvalidScope,
    InvalidTarget,
    InvalidToken,
    InvalidDpopProof,
    /// RFC 9449 §8: the proof must carry the nonce the `DPoP-Nonce` header gives.
    UseDpopNonce,
    SlowDown,
    ServerError,
    TemporarilyUnavailable,
}

impl ErrorCode {
    /// The registered string for the `error` member.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::InvalidToken => "invalid_token",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::SlowDown => "slow_down",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    /// The HTTP status RFC 6749 §5.2 prescribes: 401 for client authentication failures,
    /// 429 for rate limits, 5xx for server trouble, 400 otherwise.
    pub const fn http_status(self) -> u16 {
        match self {
            Self::InvalidClient | Self::InvalidToken => 401,
            Self::SlowDown => 429,
            Self::ServerError => 500,
            Self::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

/// An OAuth error ready to be rendered as an RFC 6749 §5.2 JSON body.
///
/// The description is written for the developer of the calling machine; it never contains a
/// secret, a token or key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Cow<'static, str>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }
    pub fn invalid_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClient, description)
    }
    pub fn server_error() -> Self {
        Self::new(
            ErrorCode::ServerError,
            "the server could not complete the request",
        )
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}

/// Validation failures of domain values (identifiers, scopes, client settings).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    #[error("invalid {what}: {why}")]
    Invalid {
        what: &'static str,
        why: Cow<'static, str>,
    },
    /// The request is well formed but the current state does not allow it (retiring the only
    /// signing key): an HTTP edge answers 409, not 400.
    #[error("{what}: {why}")]
    Conflict {
        what: &'static str,
        why: Cow<'static, str>,
    },
}

impl CoreError {
    pub fn conflict(what: &'static str, why: impl Into<Cow<'static, str>>) -> Self {
        Self::Conflict {
            what,
            why: why.into(),
        }
    }

    pub fn invalid(what: &'static str, why: impl Into<Cow<'static, str>>) -> Self {
        Self::Invalid {
            what,
            why: why.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_authentication_failures_are_401_and_others_400() {
        assert_eq!(ErrorCode::InvalidClient.http_status(), 401);
        assert_eq!(ErrorCode::InvalidScope.http_status(), 400);
        assert_eq!(ErrorCode::SlowDown.http_status(), 429);
        assert_eq!(ErrorCode::InvalidTarget.as_str(), "invalid_target");
    }
}
