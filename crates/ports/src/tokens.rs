//! Checking a bearer access token of this server: what every endpoint of ours that takes one
//! (admin API, gateway, telemetry stream) asks the authorization server.

use async_trait::async_trait;
use portcullis_core::token::AccessTokenClaims;
pub use portcullis_http::{DpopPresentation, Presentation};

/// Why a token is not active. Introspection answers every case alike (`{"active":false}`,
/// RFC 7662 §2.2); the reason is for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenRejection {
    /// Not a compact JWS, or claims that are not RFC 9068 access-token claims.
    Malformed,
    /// No `kid`, or a `kid` that is not one of our keys (a foreign token).
    UnknownKey,
    /// The signature does not verify with the key the `kid` names.
    BadSignature,
    /// `typ` is not `at+jwt` (RFC 9068 §4): an ID token or other JWT signed by the same key.
    WrongType,
    /// `iss` is not this server.
    WrongIssuer,
    /// `exp` is not in the future.
    Expired,
    /// The token was revoked (RFC 7009).
    Revoked,
    /// The client it was issued to has since been deleted or disabled.
    ClientGone,
    /// The client has changed since the token was issued in a way that ends its tokens
    /// (re-created, secret rotated without overlap, scopes or audiences narrowed,
    /// credentials replaced, disabled and enabled again).
    ClientChanged,
    /// The client could not be looked up (store unavailable); treated as inactive.
    StoreUnavailable,
    /// The token is bound to a certificate (`cnf.x5t#S256`, RFC 8705 §3) and the connection
    /// it came over presented none, or another one.
    CertificateMismatch,
    /// The token is bound to a DPoP key (`cnf.jkt`) and came as `Bearer`, or as `DPoP`
    /// without a `DPoP` proof header (RFC 9449 §7.1).
    DpopProofMissing,
    /// The DPoP proof is malformed, badly signed, for another request, stale, or signed by
    /// another key than the token's (RFC 9449 §4.3, §7.1).
    DpopProofInvalid,
    /// The DPoP proof was already used (RFC 9449 §11.1): answered as `invalid_dpop_proof`,
    /// told apart so the audit record and detection see a replay.
    DpopProofReplayed,
    /// The DPoP proof lacks the current server nonce (RFC 9449 §9): the endpoint answers
    /// `use_dpop_nonce` with a fresh `DPoP-Nonce`.
    DpopNonceRequired,
    /// The token came as `DPoP` but is not bound to a DPoP key.
    NotDpopBound,
}

impl TokenRejection {
    /// A short, stable name for logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::WrongType => "wrong_type",
            Self::WrongIssuer => "wrong_issuer",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::ClientGone => "client_gone",
            Self::ClientChanged => "client_changed",
            Self::StoreUnavailable => "store_unavailable",
            Self::CertificateMismatch => "certificate_mismatch",
            Self::DpopProofMissing => "dpop_proof_missing",
            Self::DpopProofInvalid => "dpop_proof_invalid",
            Self::DpopProofReplayed => "dpop_proof_replayed",
            Self::DpopNonceRequired => "dpop_nonce_required",
            Self::NotDpopBound => "not_dpop_bound",
        }
    }

    /// The RFC 9449 §12.2 error code a `WWW-Authenticate: DPoP` challenge carries for this
    /// rejection, or `None` when the plain `invalid_token` fits.
    pub const fn dpop_error(self) -> Option<&'static str> {
        match self {
            Self::DpopProofInvalid | Self::DpopProofReplayed | Self::DpopProofMissing => {
                Some("invalid_dpop_proof")
            }
            Self::DpopNonceRequired => Some("use_dpop_nonce"),
            _ => None,
        }
    }
}

impl TokenRejection {
    /// Whether the token itself was genuine and active but the request failed to prove
    /// possession of what it is bound to (its certificate or DPoP key): what a stolen bound
    /// token looks like, audited with the token's client.
    pub const fn is_possession_failure(self) -> bool {
        matches!(
            self,
            Self::CertificateMismatch
                | Self::DpopProofMissing
                | Self::DpopProofInvalid
                | Self::DpopProofReplayed
        )
    }
}

impl std::fmt::Display for TokenRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Validates bearer access tokens issued by this server.
#[async_trait]
pub trait TokenValidator: Send + Sync {
    /// The claims of a token presented to one of our own endpoints as `presented` says, if
    /// the token is active now: genuine, unexpired, unrevoked, its client still exists, is
    /// enabled and has not changed in a way that ends its tokens; when the token is
    /// certificate-bound the connection presents that very certificate (RFC 8705 §3), and
    /// when it is DPoP-bound it came as `DPoP` with a fresh, unreplayed proof for this
    /// request signed by its key (RFC 9449 §7.1) — so a stolen bound token is worthless
    /// without the private key. The one way in: an endpoint cannot check a token and forget
    /// the binding.
    async fn presented_token(
        &self,
        token: &str,
        presented: Presentation<'_>,
    ) -> Result<AccessTokenClaims, TokenRejection>;

    /// A fresh DPoP nonce for a `DPoP-Nonce` header (RFC 9449 §9), when nonces are required.
    fn dpop_nonce(&self) -> Option<String>;
}
