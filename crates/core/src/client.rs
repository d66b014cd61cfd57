//! Registered machine clients and the rules that govern them.

use crate::{ClientId, CoreError, ErrorCode, OAuthError, ScopeSet, SecretHash, UnixTime};
use serde::{Deserialize, Serialize};

/// How a client authenticates at the token endpoint (RFC 7591 §2 `token_endpoint_auth_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    ClientSecretJwt,
    PrivateKeyJwt,
}

impl AuthMethod {
    /// Every method, in the order discovery lists them.
    pub const ALL: [AuthMethod; 4] = [
        Self::ClientSecretBasic,
        Self::ClientSecretPost,
        Self::ClientSecretJwt,
        Self::PrivateKeyJwt,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretJwt => "client_secret_jwt",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }

    pub fn parse(s: &str) -> Result<Self, CoreError> {
        Self::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| {
            CoreError::invalid(
                "token_endpoint_auth_method",
                "expected client_secret_basic, client_secret_post, client_secret_jwt or private_key_jwt",
            )
        })
    }

    /// Whether the client holds a shared secret (as opposed to a private key).
    pub const fn uses_secret(self) -> bool {
        !matches!(self, Self::PrivateKeyJwt)
    }

    /// `client_secret_basic` and `client_secret_post` both present the secret itself; a client
    /// registered for one may use the other (as Hydra and oidc-provider allow), but never a
    /// JWT method, and a JWT client never a bare secret.
    pub const fn accepts(self, presented: AuthMethod) -> bool {
        match (self, presented) {
            (
                Self::ClientSecretBasic | Self::ClientSecretPost,
                Self::ClientSecretBasic | Self::ClientSecretPost,
            ) => true,
            (a, b) => a as u8 == b as u8,
        }
    }
}

/// Default access-token lifetime: one hour.
pub const DEFAULT_TOKEN_TTL_SECS: u32 = 3600;
/// Longest access-token lifetime a client may be configured with: one day.
pub const MAX_TOKEN_TTL_SECS: u32 = 86_400;

/// A registered machine client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    pub client_id: ClientId,
    pub name: String,
    pub auth_method: AuthMethod,
    pub scopes: ScopeSet,
    /// Audiences (RFC 8707 resource indicators) this client may request tokens for.
    pub audiences: Vec<String>,
    pub token_ttl_secs: u32,
    pub enabled: bool,
    /// HMACs of the current secret and, during a rotation, the previous one.
    pub secret_hashes: Vec<SecretHash>,
    /// For `client_secret_jwt` only: the secret sealed under the master key (the HMAC of an
    /// assertion cannot be checked without the secret itself).
    pub sealed_secret: Option<Vec<u8>>,
    /// For `private_key_jwt`: the client's public JWK Set (JSON text) ...
    pub jwks: Option<String>,
    /// ... or the URL it is fetched from.
    pub jwks_uri: Option<String>,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

impl Client {
    /// Checks the invariants every stored client must satisfy.
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.name.trim().is_empty()
            || self.name.len() > 200
            || self.name.chars().any(char::is_control)
        {
            return Err(CoreError::invalid(
                "name",
                "must be 1-200 printable characters",
            ));
        }
        if self.token_ttl_secs == 0 || self.token_ttl_secs > MAX_TOKEN_TTL_SECS {
            return Err(CoreError::invalid(
                "token_ttl_secs",
                format!("must be between 1 and {MAX_TOKEN_TTL_SECS}"),
            ));
        }
        for a in &self.audiences {
            validate_audience(a)?;
        }
        if self.auth_method == AuthMethod::PrivateKeyJwt
            && self.jwks.is_none()
            && self.jwks_uri.is_none()
        {
            return Err(CoreError::invalid(
                "jwks",
                "private_key_jwt clients need a jwks or a jwks_uri",
            ));
        }
        if let Some(uri) = &self.jwks_uri {
            if !(uri.starts_with("https://") || uri.starts_with("http://")) || uri.len() > 2048 {
                return Err(CoreError::invalid("jwks_uri", "must be an http(s) URL"));
            }
        }
        Ok(())
    }

    /// RFC 8707: the audience of the token. With no `resource`, every configured audience
    /// (none means a token for this authorization server's own resource, the issuer); with
    /// one, it must be among the configured audiences, otherwise `invalid_target`.
    pub fn select_audience(
        &self,
        resources: &[&str],
        issuer: &str,
    ) -> Result<Vec<String>, OAuthError> {
        if resources.is_empty() {
            if self.audiences.is_empty() {
                return Ok(vec![issuer.to_owned()]);
            }
            return Ok(self.audiences.clone());
        }
        let mut out = Vec::with_capacity(resources.len());
        for r in resources {
            if validate_audience(r).is_err() {
                return Err(OAuthError::new(
                    ErrorCode::InvalidTarget,
                    "resource must be an absolute URI without a fragment",
                ));
            }
            if !self.audiences.iter().any(|a| a == r) {
                return Err(OAuthError::new(
                    ErrorCode::InvalidTarget,
                    format!("resource '{r}' is not an allowed audience for this client"),
                ));
            }
            if !out.iter().any(|o: &String| o == r) {
                out.push((*r).to_owned());
            }
        }
        Ok(out)
    }
}

/// RFC 8707 §2: a resource indicator is an absolute URI without a fragment.
pub fn validate_audience(a: &str) -> Result<(), CoreError> {
    let scheme_end = a.find(':').unwrap_or(0);
    let scheme_ok = scheme_end > 0
        && a[..scheme_end]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && a[..scheme_end]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok
        || a.contains('#')
        || a.len() > 2048
        || a.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(CoreError::invalid(
            "audience",
            "must be an absolute URI without a fragment",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client {
            client_id: ClientId::parse("c1").unwrap(),
            name: "sensor".into(),
            auth_method: AuthMethod::ClientSecretBasic,
            scopes: ScopeSet::parse("read").unwrap(),
            audiences: vec!["https://api.example".into(), "urn:plant:line1".into()],
            token_ttl_secs: DEFAULT_TOKEN_TTL_SECS,
            enabled: true,
            secret_hashes: vec![],
            sealed_secret: None,
            jwks: None,
            jwks_uri: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn auth_methods_round_trip_and_unknown_is_rejected() {
        for m in AuthMethod::ALL {
            assert_eq!(AuthMethod::parse(m.as_str()).unwrap(), m);
        }
        assert!(AuthMethod::parse("none").is_err());
    }

    #[test]
    fn secret_methods_interchange_but_jwt_methods_do_not() {
        assert!(AuthMethod::ClientSecretBasic.accepts(AuthMethod::ClientSecretPost));
        assert!(!AuthMethod::ClientSecretBasic.accepts(AuthMethod::ClientSecretJwt));
        assert!(!AuthMethod::PrivateKeyJwt.accepts(AuthMethod::ClientSecretBasic));
        assert!(AuthMethod::PrivateKeyJwt.accepts(AuthMethod::PrivateKeyJwt));
    }

    #[test]
    fn audience_defaults_to_all_configured_or_issuer() {
        let c = client();
        assert_eq!(c.select_audience(&[], "https://as").unwrap(), c.audiences);
        let mut bare = client();
        bare.audiences.clear();
        assert_eq!(
            bare.select_audience(&[], "https://as").unwrap(),
            vec!["https://as".to_string()]
        );
    }

    #[test]
    fn resource_must_be_allowed_and_absolute() {
        let c = client();
        assert_eq!(
            c.select_audience(&["urn:plant:line1"], "x").unwrap(),
            vec!["urn:plant:line1"]
        );
        assert_eq!(
            c.select_audience(&["https://evil"], "x").unwrap_err().code,
            ErrorCode::InvalidTarget
        );
        assert_eq!(
            c.select_audience(&["relative/path"], "x").unwrap_err().code,
            ErrorCode::InvalidTarget
        );
        assert_eq!(
            c.select_audience(&["https://api.example#frag"], "x")
                .unwrap_err()
                .code,
            ErrorCode::InvalidTarget
        );
    }

    #[test]
    fn validate_rejects_bad_settings() {
        let mut c = client();
        assert!(c.validate().is_ok());
        c.token_ttl_secs = 0;
        assert!(c.validate().is_err());
        let mut c = client();
        c.auth_method = AuthMethod::PrivateKeyJwt;
        assert!(c.validate().is_err());
        let mut c = client();
        c.name = "\u{7}".into();
        assert!(c.validate().is_err());
    }
}
