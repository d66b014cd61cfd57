//! Workload federation (RFC 7523 §2.1 JWT bearer grant): which outside token issuers are
//! trusted, and which of their subjects become which Portcullis client with which scopes.
//!
//! A Kubernetes service-account token, a CI job's OIDC token or a SPIFFE JWT-SVID is signed by
//! an issuer we trust ([`TrustedIssuer`]); a [`TrustPolicy`] says which claim values of that
//! issuer's tokens map to one client. Everything here is a rule on values already verified
//! (the signature is the `oauth` crate's): the issuer's own constraints on a token, and the
//! policy match.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{ClientId, CoreError, ScopeSet, UnixTime};

/// Longest accepted external token lifetime when an issuer sets none: a day.
pub const DEFAULT_MAX_LIFETIME_SECS: u32 = 86_400;
/// Clock skew tolerated on `iat` and `nbf` of external tokens: a token issued by a clock a
/// little ahead of ours is not refused. Not on `exp` (which RFC 7523 §3 item 4 would allow):
/// the issued token must end no later than the outside one, and a token accepted after its
/// `exp` could not.
pub const SKEW_SECS: i64 = 60;

/// An outside issuer whose tokens may be exchanged (`[[federation.issuers]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuer {
    /// How policies refer to it, e.g. `k8s-prod`.
    pub name: String,
    /// The exact `iss` its tokens carry, e.g. `https://token.actions.githubusercontent.com`.
    pub issuer: String,
    /// Where its keys are: a JWK Set URL. Without this or `jwks`, the issuer's OpenID
    /// discovery document (`{issuer}/.well-known/openid-configuration`) names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Its keys inline, as a JWK Set (for issuers that publish none, e.g. an offline cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    /// Signature algorithms accepted from it (default: every asymmetric one we know).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub algorithms: Vec<String>,
    /// The audience its tokens must carry for us (e.g. our issuer URL or `sts.example`).
    pub audience: String,
    /// Longest accepted lifetime (`exp - iat`) of its tokens.
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime_secs: u32,
}

fn default_max_lifetime() -> u32 {
    DEFAULT_MAX_LIFETIME_SECS
}

/// Which tokens of one issuer become which client (`[[federation.policies]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustPolicy {
    pub name: String,
    /// The [`TrustedIssuer::name`] whose tokens it matches.
    pub issuer: String,
    /// Claim name → pattern; every one must match a string claim of the token. `sub` is
    /// required. A pattern is the exact value, or has `*` standing for any run of characters
    /// (`system:serviceaccount:prod:*`, `repo:acme/*:ref:refs/heads/main`).
    pub claims: BTreeMap<String, String>,
    /// The Portcullis client the token acts as.
    pub client_id: String,
    /// The scopes such a token may get (the request's `scope` narrows them; none asked = all).
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// Why an external token is refused; each names the rule, never a claim's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExternalTokenError {
    NoTrustedIssuer,
    WrongAudience,
    Expired,
    NotYetValid,
    TooLong,
    MissingClaim(&'static str),
    NoPolicy,
}

impl ExternalTokenError {
    /// The `error_description` of the `invalid_grant` answer.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::NoTrustedIssuer => "the assertion's issuer is not trusted",
            Self::WrongAudience => "the assertion is not for this server (aud)",
            Self::Expired => "the assertion has expired",
            Self::NotYetValid => "the assertion is not valid yet (iat or nbf in the future)",
            Self::TooLong => "the assertion lives longer than its issuer's max_lifetime_secs",
            Self::MissingClaim(_) => "the assertion lacks iss, sub, aud or exp",
            Self::NoPolicy => "no trust policy maps this assertion's subject to a client",
        }
    }
}

impl std::fmt::Display for ExternalTokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

impl std::error::Error for ExternalTokenError {}

impl TrustedIssuer {
    /// Checks its settings: a name, an absolute `https` issuer (or `http` on loopback, for
    /// tests and local issuers), an audience, at most one key source.
    pub fn validate(&self) -> Result<(), CoreError> {
        check_name("federation issuer name", &self.name)?;
        if !is_issuer_url(&self.issuer) {
            return Err(CoreError::invalid(
                "federation issuer",
                "must be an https URL (http only for loopback)",
            ));
        }
        if self.audience.is_empty() || self.audience.len() > 1024 {
            return Err(CoreError::invalid(
                "federation audience",
                "must be 1-1024 characters",
            ));
        }
        if self.jwks_uri.is_some() && self.jwks.is_some() {
            return Err(CoreError::invalid(
                "federation issuer keys",
                "give jwks_uri or jwks, not both",
            ));
        }
        if self.jwks.as_ref().is_some_and(|j| !j.is_object()) {
            return Err(CoreError::invalid(
                "federation jwks",
                "must be a JWK Set object",
            ));
        }
        if !(60..=31 * 86_400).contains(&self.max_lifetime_secs) {
            return Err(CoreError::invalid(
                "federation max_lifetime_secs",
                "must be from 60 to 2678400 (31 days)",
            ));
        }
        Ok(())
    }

    /// RFC 7523 §3 items 3–5 and the issuer's lifetime limit, on claims whose signature has
    /// been verified with this issuer's keys. Returns the token's expiry.
    pub fn check_claims(
        &self,
        claims: &Map<String, Value>,
        now: UnixTime,
    ) -> Result<UnixTime, ExternalTokenError> {
        use ExternalTokenError::*;
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(NoTrustedIssuer);
        }
        if claims
            .get("sub")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(MissingClaim("sub"));
        }
        let for_us = match claims.get("aud") {
            Some(Value::String(a)) => *a == self.audience,
            Some(Value::Array(all)) => all.iter().any(|a| a.as_str() == Some(&self.audience)),
            _ => return Err(MissingClaim("aud")),
        };
        if !for_us {
            return Err(WrongAudience);
        }
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or(MissingClaim("exp"))?;
        // RFC 7523 §3 item 4, without the skew it allows: see SKEW_SECS.
        if exp <= now {
            return Err(Expired);
        }
        for name in ["iat", "nbf"] {
            if claims
                .get(name)
                .and_then(Value::as_i64)
                .is_some_and(|t| t > now + SKEW_SECS)
            {
                return Err(NotYetValid);
            }
        }
        // Without iat, the remaining lifetime is what counts.
        let start = claims.get("iat").and_then(Value::as_i64).unwrap_or(now);
        if exp.saturating_sub(start) > i64::from(self.max_lifetime_secs) {
            return Err(TooLong);
        }
        Ok(exp)
    }
}

impl TrustPolicy {
    /// Checks its settings (the issuer's existence is [`validate_trust`]'s).
    pub fn validate(&self) -> Result<(), CoreError> {
        check_name("federation policy name", &self.name)?;
        ClientId::parse(self.client_id.as_str())?;
        ScopeSet::from_tokens(self.scopes.clone())?;
        if !self.claims.contains_key("sub") {
            return Err(CoreError::invalid(
                "federation policy claims",
                "must constrain sub",
            ));
        }
        for (name, pattern) in &self.claims {
            if name.is_empty() || pattern.is_empty() || pattern.len() > 1024 {
                return Err(CoreError::invalid(
                    "federation policy claims",
                    "names and patterns must be 1-1024 characters",
                ));
            }
            if pattern.chars().all(|c| c == '*') {
                return Err(CoreError::invalid(
                    "federation policy claims",
                    "a pattern of only '*' matches anything; name the values",
                ));
            }
        }
        Ok(())
    }

    /// Whether every constrained claim is a string matching its pattern.
    pub fn matches(&self, claims: &Map<String, Value>) -> bool {
        self.claims.iter().all(|(name, pattern)| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .is_some_and(|value| pattern_matches(pattern, value))
        })
    }
}

/// The first policy (in order) for `issuer` that matches the claims.
pub fn select_policy<'p>(
    policies: &'p [TrustPolicy],
    issuer: &str,
    claims: &Map<String, Value>,
) -> Option<&'p TrustPolicy> {
    policies
        .iter()
        .find(|p| p.issuer == issuer && p.matches(claims))
}

/// Checks a whole trust configuration: each issuer, SAML identity provider and policy valid;
/// names unique across both kinds of issuer (a policy names either), issuer URLs and entity
/// ids unique; every policy naming an issuer that exists.
pub fn validate_trust(
    issuers: &[TrustedIssuer],
    saml_issuers: &[crate::saml::SamlIssuer],
    policies: &[TrustPolicy],
) -> Result<(), CoreError> {
    let mut names = std::collections::BTreeSet::new();
    let mut iss = std::collections::BTreeSet::new();
    for i in issuers {
        i.validate()?;
        if !names.insert(i.name.as_str()) || !iss.insert(i.issuer.as_str()) {
            return Err(CoreError::invalid(
                "federation issuers",
                "names and issuer URLs must be unique",
            ));
        }
    }
    let mut entity_ids = std::collections::BTreeSet::new();
    for i in saml_issuers {
        i.validate()?;
        if !names.insert(i.name.as_str()) || !entity_ids.insert(i.entity_id.as_str()) {
            return Err(CoreError::invalid(
                "federation SAML issuers",
                "names (across issuers and saml_issuers) and entity ids must be unique",
            ));
        }
    }
    let mut policy_names = std::collections::BTreeSet::new();
    for p in policies {
        p.validate()?;
        if !policy_names.insert(p.name.as_str()) {
            return Err(CoreError::invalid(
                "federation policies",
                "names must be unique",
            ));
        }
        if !names.contains(p.issuer.as_str()) {
            return Err(CoreError::invalid(
                "federation policy issuer",
                "names no configured issuer",
            ));
        }
    }
    Ok(())
}

/// The algorithm names an issuer's `algorithms` may list.
pub const ALGORITHM_NAMES: [&str; 6] = ["EdDSA", "Ed25519", "ES256", "ES384", "PS256", "RS256"];

/// Trusted issuers and the policies over them: one part of the trust in force (the
/// configuration's, or the admin API's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustSet {
    #[serde(default)]
    pub issuers: Vec<TrustedIssuer>,
    #[serde(default)]
    pub policies: Vec<TrustPolicy>,
    /// SAML 2.0 identity providers (RFC 7522 grant); policies name them like JWT issuers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub saml_issuers: Vec<crate::saml::SamlIssuer>,
    /// Token exchange rules (RFC 8693): which clients may exchange whose tokens for what. The
    /// configuration's come from `[[token_exchange.rules]]`; they are evaluated first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exchange_rules: Vec<crate::token_exchange::ExchangeRule>,
}

impl TrustSet {
    /// `self` followed by `other`, checked as a whole (names unique across both, every
    /// policy naming an issuer of either, algorithm names known).
    pub fn combined(&self, other: &TrustSet) -> Result<TrustSet, CoreError> {
        let mut all = self.clone();
        all.issuers.extend(other.issuers.iter().cloned());
        all.policies.extend(other.policies.iter().cloned());
        all.saml_issuers.extend(other.saml_issuers.iter().cloned());
        all.exchange_rules
            .extend(other.exchange_rules.iter().cloned());
        validate_trust(&all.issuers, &all.saml_issuers, &all.policies)?;
        crate::token_exchange::validate_rules(&all.exchange_rules)?;
        let known = |a: &String| ALGORITHM_NAMES.contains(&a.as_str());
        if !all.issuers.iter().all(|i| i.algorithms.iter().all(known)) {
            return Err(CoreError::invalid(
                "federation algorithms",
                "must name EdDSA, Ed25519, ES256, ES384, PS256 or RS256",
            ));
        }
        Ok(all)
    }

    /// The issuer whose `iss` is `iss`.
    pub fn issuer(&self, iss: &str) -> Option<&TrustedIssuer> {
        self.issuers.iter().find(|i| i.issuer == iss)
    }

    /// The SAML identity provider whose entity id is `entity_id`.
    pub fn saml_issuer(&self, entity_id: &str) -> Option<&crate::saml::SamlIssuer> {
        self.saml_issuers.iter().find(|i| i.entity_id == entity_id)
    }
}

/// Anchored glob: `*` matches any run of characters (none included); everything else matches
/// itself exactly. Linear in the lengths (greedy with one backtrack point), so a hostile
/// pattern or value cannot make it explode.
pub fn pattern_matches(pattern: &str, value: &str) -> bool {
    let (p, v) = (pattern.as_bytes(), value.as_bytes());
    let (mut pi, mut vi) = (0, 0);
    // Where the last `*` was, and where in the value its match currently ends.
    let mut star: Option<(usize, usize)> = None;
    while let Some(c) = v.get(vi) {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, vi));
                pi += 1;
            }
            Some(x) if x == c => {
                pi += 1;
                vi += 1;
            }
            _ => match star {
                Some((sp, sv)) => {
                    pi = sp + 1;
                    vi = sv + 1;
                    star = Some((sp, sv + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).unwrap_or_default().iter().all(|c| *c == b'*')
}

pub(crate) fn check_name(what: &'static str, name: &str) -> Result<(), CoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(CoreError::invalid(
            what,
            "must be 1-64 of A-Z a-z 0-9 - _ .",
        ))
    }
}

/// `https://...`, or `http://` on a loopback host.
fn is_issuer_url(url: &str) -> bool {
    let Some((origin, _)) = crate::dpop::normalize_htu(url) else {
        return false;
    };
    origin.starts_with("https://")
        || ["http://127.0.0.1", "http://localhost", "http://[::1]"]
            .iter()
            .any(|l| origin == *l || origin.starts_with(&format!("{l}:")))
}

#[cfg(test)]
mod tests;
