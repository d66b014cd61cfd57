//! DPoP proofs (RFC 9449): the rules a proof's claims must satisfy, with no cryptography.
//!
//! A proof is a JWT the client signs for one HTTP request with a key it keeps; the token it
//! obtains is bound to that key's thumbprint (`cnf.jkt`), so a stolen token is worthless
//! without the key. The signature and the key are checked by the caller (the `oauth` crate);
//! here are the checks of RFC 9449 §4.3 steps 7–12 that follow from the claims alone: the
//! method, the URI, the age, the access-token hash and the nonce.

use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::UnixTime;

/// The `typ` of a DPoP proof (RFC 9449 §4.2).
pub const PROOF_TYPE: &str = "dpop+jwt";

/// Longest `jti` accepted: RFC 9449 §4.2 asks for 96 bits of randomness; a kilobyte of id is
/// an attack on the replay store, not a nonce.
pub const MAX_JTI_LEN: usize = 256;

/// The claims of a proof (RFC 9449 §4.2). Unknown claims are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProofClaims {
    pub jti: String,
    pub htm: String,
    pub htu: String,
    pub iat: UnixTime,
    /// base64url SHA-256 of the access token, required when a token is presented (§4.2).
    #[serde(default)]
    pub ath: Option<String>,
    /// The server-provided nonce (§8), when one was asked for.
    #[serde(default)]
    pub nonce: Option<String>,
}

/// Why a proof is refused; each names the rule, never a value from the proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProofError {
    BadJti,
    WrongMethod,
    WrongUri,
    Stale,
    WrongAccessTokenHash,
    UnexpectedAccessTokenHash,
}

impl ProofError {
    /// The refusal's description, for an `error_description`.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::BadJti => "the DPoP proof's jti is empty or longer than 256 characters",
            Self::WrongMethod => "the DPoP proof's htm is not this request's method",
            Self::WrongUri => "the DPoP proof's htu is not this request's URI",
            Self::Stale => "the DPoP proof's iat is outside the accepted window",
            Self::WrongAccessTokenHash => {
                "the DPoP proof carries no ath, or one that is not the presented token's hash"
            }
            Self::UnexpectedAccessTokenHash => {
                "the DPoP proof carries an ath but no access token is presented"
            }
        }
    }
}

impl std::fmt::Display for ProofError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

impl std::error::Error for ProofError {}

/// How old, and how far in the future, a proof's `iat` may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofWindow {
    /// Oldest accepted `iat`, in seconds before now.
    pub max_age_secs: u32,
    /// Newest accepted `iat`, in seconds after now (clock skew).
    pub skew_secs: u32,
}

impl ProofWindow {
    /// When a proof issued at `iat` can no longer be accepted: the replay store must remember
    /// its `jti` at least until then.
    pub fn expires_at(self, iat: UnixTime) -> UnixTime {
        iat.saturating_add(i64::from(self.max_age_secs))
            .saturating_add(i64::from(self.skew_secs))
    }
}

/// The request a proof must describe.
#[derive(Debug, Clone, Copy)]
pub struct ProofTarget<'a> {
    /// The HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// The path of the request URI, without query or fragment.
    pub path: &'a str,
    /// The origins (`scheme://host[:port]`, normalised) clients reach this server by: the
    /// issuer's and, when there is one, the mutual-TLS listener's.
    pub origins: &'a [String],
    /// base64url SHA-256 of the presented access token; `None` at the token endpoint.
    pub access_token_hash: Option<&'a str>,
}

/// RFC 9449 §4.3 steps 7–12, except the signature, the key and the nonce (checked by the
/// caller, which holds the nonce key) and `jti` uniqueness (the replay store's).
pub fn check_claims(
    claims: &ProofClaims,
    target: &ProofTarget<'_>,
    window: ProofWindow,
    now: UnixTime,
) -> Result<(), ProofError> {
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err(ProofError::BadJti);
    }
    // RFC 9110 §9.1: methods are case-sensitive.
    if claims.htm != target.method {
        return Err(ProofError::WrongMethod);
    }
    let (origin, path) = normalize_htu(&claims.htu).ok_or(ProofError::WrongUri)?;
    if path != target.path || !target.origins.contains(&origin) {
        return Err(ProofError::WrongUri);
    }
    let oldest = now.saturating_sub(i64::from(window.max_age_secs));
    let newest = now.saturating_add(i64::from(window.skew_secs));
    if claims.iat < oldest || claims.iat > newest {
        return Err(ProofError::Stale);
    }
    match (target.access_token_hash, claims.ath.as_deref()) {
        (Some(expected), Some(ath)) if expected.as_bytes().ct_eq(ath.as_bytes()).into() => Ok(()),
        (Some(_), _) => Err(ProofError::WrongAccessTokenHash),
        (None, Some(_)) => Err(ProofError::UnexpectedAccessTokenHash),
        (None, None) => Ok(()),
    }
}

/// Splits an `htu` into its normalised origin and its path, dropping query and fragment
/// (RFC 9449 §4.3 step 9 with the syntax-based normalisation of RFC 3986 §6.2.2–6.2.3:
/// scheme and host lower-cased, the scheme's default port dropped, an empty path as `/`).
/// `None` for anything but an absolute `http` or `https` URI with a host and no user info.
pub fn normalize_htu(htu: &str) -> Option<(String, &str)> {
    let (scheme, rest) = htu.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let host = match authority.rsplit_once(':') {
        // An IPv6 literal's colons are inside brackets; only a colon after `]` is a port.
        Some((host, port)) if !port.contains(']') => {
            if !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            if port == default_port || port.is_empty() {
                host.to_owned()
            } else {
                authority.clone()
            }
        }
        _ => authority.clone(),
    };
    Some((format!("{scheme}://{host}"), path))
}

/// The normalised origin of a base URL such as the issuer (`None` if it is not one).
pub fn origin_of(base_url: &str) -> Option<String> {
    normalize_htu(base_url).map(|(origin, _)| origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: ProofWindow = ProofWindow {
        max_age_secs: 60,
        skew_secs: 5,
    };

    fn claims(htu: &str) -> ProofClaims {
        ProofClaims {
            jti: "j-1".into(),
            htm: "POST".into(),
            htu: htu.into(),
            iat: 1_000,
            ath: None,
            nonce: None,
        }
    }

    fn target<'a>(origins: &'a [String], ath: Option<&'a str>) -> ProofTarget<'a> {
        ProofTarget {
            method: "POST",
            path: "/oauth2/token",
            origins,
            access_token_hash: ath,
        }
    }

    #[test]
    fn htu_normalisation_follows_rfc_3986_section_6() {
        let cases = [
            (
                "https://AS.example/oauth2/token",
                "https://as.example",
                "/oauth2/token",
            ),
            ("HTTPS://as.example:443/x?q=1#f", "https://as.example", "/x"),
            ("http://127.0.0.1:80", "http://127.0.0.1", "/"),
            ("http://127.0.0.1:8080/a", "http://127.0.0.1:8080", "/a"),
            ("https://[::1]:8443/t", "https://[::1]:8443", "/t"),
            ("https://[::1]/t", "https://[::1]", "/t"),
        ];
        for (htu, origin, path) in cases {
            assert_eq!(normalize_htu(htu), Some((origin.to_owned(), path)), "{htu}");
        }
        for bad in [
            "ftp://x/y",
            "/oauth2/token",
            "https:///x",
            "https://user@as.example/",
            "https://as.example:8o/x",
        ] {
            assert_eq!(normalize_htu(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_proof_for_this_request_passes_and_every_mismatch_is_named() {
        let origins = vec!["https://as.example".to_owned()];
        let ok = claims("https://as.example/oauth2/token?x=1");
        assert_eq!(
            check_claims(&ok, &target(&origins, None), WINDOW, 1_010),
            Ok(())
        );

        let mut wrong = ok.clone();
        wrong.htm = "post".into();
        assert_eq!(
            check_claims(&wrong, &target(&origins, None), WINDOW, 1_010),
            Err(ProofError::WrongMethod)
        );
        for htu in [
            "https://as.example/oauth2/introspect",
            "https://evil.example/oauth2/token",
            "http://as.example/oauth2/token",
            "https://as.example:8443/oauth2/token",
        ] {
            assert_eq!(
                check_claims(&claims(htu), &target(&origins, None), WINDOW, 1_010),
                Err(ProofError::WrongUri),
                "{htu}"
            );
        }
        for now in [1_061, 994] {
            assert_eq!(
                check_claims(&ok, &target(&origins, None), WINDOW, now),
                Err(ProofError::Stale),
                "{now}"
            );
        }
        let mut jti = ok.clone();
        jti.jti = String::new();
        assert_eq!(
            check_claims(&jti, &target(&origins, None), WINDOW, 1_010),
            Err(ProofError::BadJti)
        );
        jti.jti = "x".repeat(MAX_JTI_LEN + 1);
        assert_eq!(
            check_claims(&jti, &target(&origins, None), WINDOW, 1_010),
            Err(ProofError::BadJti)
        );
    }

    #[test]
    fn ath_must_match_a_presented_token_and_be_absent_otherwise() {
        let origins = vec!["https://as.example".to_owned()];
        let mut with_ath = claims("https://as.example/oauth2/token");
        with_ath.ath = Some("hash-a".into());
        assert_eq!(
            check_claims(&with_ath, &target(&origins, Some("hash-a")), WINDOW, 1_000),
            Ok(())
        );
        assert_eq!(
            check_claims(&with_ath, &target(&origins, Some("hash-b")), WINDOW, 1_000),
            Err(ProofError::WrongAccessTokenHash)
        );
        assert_eq!(
            check_claims(&with_ath, &target(&origins, None), WINDOW, 1_000),
            Err(ProofError::UnexpectedAccessTokenHash)
        );
        let without = claims("https://as.example/oauth2/token");
        assert_eq!(
            check_claims(&without, &target(&origins, Some("hash-a")), WINDOW, 1_000),
            Err(ProofError::WrongAccessTokenHash)
        );
    }

    #[test]
    fn the_replay_store_remembers_a_jti_as_long_as_the_proof_is_acceptable() {
        assert_eq!(WINDOW.expires_at(1_000), 1_065);
        assert_eq!(WINDOW.expires_at(i64::MAX), i64::MAX);
    }
}
