//! The JWS algorithms Portcullis signs and verifies with, and nothing else.
//!
//! The set is closed on purpose: `none` (RFC 7518 §3.6) and the HMAC family (§3.2) can never
//! name a key here, so a token cannot talk a verifier into a weaker algorithm. HMAC appears
//! only in `verify::verify_hmac`, for `client_secret_jwt`.

use crate::KeyError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An asymmetric JWS signature algorithm (RFC 7518 §3.1, RFC 8037 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Ed25519 (RFC 8037 §3.1).
    EdDSA,
    /// ECDSA with P-256 and SHA-256 (RFC 7518 §3.4).
    ES256,
    /// ECDSA with P-384 and SHA-384 (RFC 7518 §3.4).
    ES384,
    /// RSASSA-PSS with SHA-256 and MGF1 SHA-256 (RFC 7518 §3.5).
    PS256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3).
    RS256,
}

impl Algorithm {
    /// Every supported algorithm, for "allow all" verification and for tests.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::EdDSA,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::PS256,
        Algorithm::RS256,
    ];

    /// The `alg` header value of RFC 7518 §3.1 / RFC 8037 §3.1.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::PS256 => "PS256",
            Algorithm::RS256 => "RS256",
        }
    }

    /// Whether a JWS header's `alg` names this algorithm: its own name, or for EdDSA also
    /// `Ed25519`, the fully-specified name of RFC 9864 §2.2 that newer JOSE libraries
    /// (jose, oauth4webapi) write for the same signature.
    pub fn matches_header(self, alg: &str) -> bool {
        alg == self.as_str() || (self == Algorithm::EdDSA && alg == "Ed25519")
    }

    /// Parses an `alg` value; exact, case-sensitive match (RFC 7515 §4.1.1) of a name
    /// [`matches_header`](Self::matches_header) accepts, so `none`, `HS256` and unknown names
    /// are all `UnsupportedAlgorithm`.
    pub fn parse(alg: &str) -> Result<Algorithm, KeyError> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.matches_header(alg))
            .ok_or_else(|| KeyError::UnsupportedAlgorithm(crate::error::shorten(alg)))
    }

    /// Length of a signature in bytes, when the algorithm alone fixes it (RSA depends on the
    /// modulus, so `None`).
    pub(crate) fn fixed_signature_len(self) -> Option<usize> {
        match self {
            Algorithm::EdDSA | Algorithm::ES256 => Some(64),
            Algorithm::ES384 => Some(96),
            Algorithm::PS256 | Algorithm::RS256 => None,
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Algorithm {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Algorithm {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Algorithm::parse(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_parses_back_from_its_name() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::parse(alg.as_str()).ok(), Some(alg));
        }
    }

    #[test]
    fn ed25519_is_eddsa_under_its_rfc_9864_name_and_nothing_else_is_aliased() {
        assert_eq!(Algorithm::parse("Ed25519").ok(), Some(Algorithm::EdDSA));
        assert!(Algorithm::EdDSA.matches_header("Ed25519"));
        assert!(!Algorithm::ES256.matches_header("Ed25519"));
        assert!(Algorithm::parse("Ed448").is_err());
        assert!(Algorithm::parse("ed25519").is_err());
    }

    #[test]
    fn none_hmac_and_unknown_names_are_unsupported() {
        for name in [
            "none", "None", "HS256", "HS384", "HS512", "es256", "RS384", "", "ES256 ",
        ] {
            assert!(
                matches!(
                    Algorithm::parse(name),
                    Err(KeyError::UnsupportedAlgorithm(_))
                ),
                "{name:?} must be rejected"
            );
        }
    }

    #[test]
    fn serde_uses_the_jws_name() {
        assert_eq!(
            serde_json::to_string(&Algorithm::PS256).ok().as_deref(),
            Some("\"PS256\"")
        );
        assert_eq!(
            serde_json::from_str::<Algorithm>("\"EdDSA\"").ok(),
            Some(Algorithm::EdDSA)
        );
        assert!(serde_json::from_str::<Algorithm>("\"none\"").is_err());
    }
}
