//! The token request (RFC 6749 §4.4) and the access-token claims (RFC 9068 §2.2).

use crate::client::Client;
use crate::form::Form;
use crate::{ErrorCode, OAuthError, ScopeSet, UnixTime};
use serde::{Deserialize, Serialize};

/// `client_assertion_type` for JWT client authentication (RFC 7523 §2.2).
pub const JWT_BEARER_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// `grant_type` of the JWT bearer grant (RFC 7523 §2.1): an outside token for ours.
pub const JWT_BEARER_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The grant types this server supports.
pub const SUPPORTED_GRANT_TYPES: &[&str] = &[
    "client_credentials",
    JWT_BEARER_GRANT_TYPE,
    crate::token_exchange::GRANT_TYPE,
];

/// Which grant a token request uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant<'a> {
    /// RFC 6749 §4.4: the client acts for itself.
    ClientCredentials,
    /// RFC 7523 §2.1: a token from a trusted outside issuer, mapped to a client by policy.
    JwtBearer { assertion: &'a str },
    /// RFC 8693: a subject token (and maybe an actor token) for a narrower or other token.
    TokenExchange(crate::token_exchange::ExchangeRequest<'a>),
    /// RFC 7522: a signed SAML 2.0 assertion (base64url) from a trusted identity provider,
    /// mapped to a client by policy like a JWT bearer assertion.
    Saml2Bearer { assertion: &'a str },
}

/// A validated token request, before client authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest<'a> {
    pub grant: Grant<'a>,
    pub scope: Option<&'a str>,
    pub resources: Vec<&'a str>,
}

/// Checks `grant_type` and extracts what the grant needs. OAuth 2.1 removed the implicit and
/// password grants; the errors say so and name the replacement, because the caller is usually
/// a developer porting an old integration.
pub fn parse_token_request(form: &Form) -> Result<TokenRequest<'_>, OAuthError> {
    if form.get("response_type").is_some() {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedResponseType,
            "the implicit grant (response_type=token) was removed in OAuth 2.1; machines use grant_type=client_credentials",
        ));
    }
    let grant_type = form.require("grant_type")?;
    let grant = match grant_type {
        "client_credentials" => Grant::ClientCredentials,
        JWT_BEARER_GRANT_TYPE => Grant::JwtBearer {
            assertion: form.require("assertion")?,
        },
        crate::saml::SAML2_BEARER_GRANT_TYPE => Grant::Saml2Bearer {
            assertion: form.require("assertion")?,
        },
        crate::token_exchange::GRANT_TYPE => {
            Grant::TokenExchange(crate::token_exchange::parse_exchange_request(form)?)
        }
        "password" => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "the resource owner password grant was removed in OAuth 2.1; register a machine client and use grant_type=client_credentials",
            ))
        }
        _ => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "this server supports grant_type=client_credentials, urn:ietf:params:oauth:grant-type:jwt-bearer, urn:ietf:params:oauth:grant-type:token-exchange and (in builds with SAML) urn:ietf:params:oauth:grant-type:saml2-bearer",
            ))
        }
    };
    Ok(TokenRequest {
        grant,
        scope: form.get("scope"),
        resources: form.get_all("resource").collect(),
    })
}

/// RFC 9068 §2.2 claims of a JWT access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    /// One audience is serialised as a string, several as an array (RFC 7519 §4.1.3).
    pub aud: Audience,
    pub exp: UnixTime,
    pub iat: UnixTime,
    pub jti: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// RFC 7800 confirmation: set when the token is bound to the client certificate of the
    /// TLS connection it was requested over (RFC 8705 §3), to a DPoP key (RFC 9449 §6), or
    /// to both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// The epoch of the client when the token was issued ([`Client::token_epoch`]): the token
    /// is active only while the client is still in it. Absent for clients in epoch 0 (created
    /// before epochs existed), so their earlier tokens keep their meaning.
    ///
    /// [`Client::token_epoch`]: crate::client::Client::token_epoch
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_epoch: Option<u32>,
    /// For a token obtained with an outside token (JWT bearer grant, RFC 7523 §2.1): who that
    /// token named, so a resource server sees the workload and not only the mapped client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated: Option<FederatedSubject>,
    /// RFC 8693 §4.1: for a token obtained by delegation, who acts for `sub` (and, nested,
    /// who acted for the subject token before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// For a token obtained by token exchange from one of ours: the `jti` of that subject
    /// token, then of the tokens it was itself exchanged from (at most
    /// [`MAX_EXCHANGE_DEPTH`]). Revoking any of them ends this token too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exchanged_from: Vec<String>,
}

/// How many exchanges deep a token may be: bounds the `exchanged_from` list checked on every
/// presentation.
pub const MAX_EXCHANGE_DEPTH: usize = 8;

/// The `act` claim (RFC 8693 §4.1): the acting party, and the chain of earlier actors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

/// The issuer and subject of the outside token a federated token was issued for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederatedSubject {
    pub iss: String,
    pub sub: String,
}

/// The `cnf` claim (RFC 7800 §3.1) of a bound access token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// RFC 8705 §3.1: base64url (no padding) of the SHA-256 of the DER client certificate.
    #[serde(rename = "x5t#S256", default, skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
    /// RFC 9449 §6.1: the JWK SHA-256 thumbprint (RFC 7638) of the DPoP key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
}

impl AccessTokenClaims {
    /// The DPoP key thumbprint the token is bound to, if any.
    pub fn dpop_jkt(&self) -> Option<&str> {
        self.cnf.as_ref().and_then(|c| c.jkt.as_deref())
    }

    /// `DPoP` for a token bound to a DPoP key (RFC 9449 §5, §6.2), else `Bearer`.
    pub fn token_type(&self) -> &'static str {
        if self.dpop_jkt().is_some() {
            "DPoP"
        } else {
            "Bearer"
        }
    }
}

/// The `aud` claim, which JWT allows as one string or an array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn from_vec(mut v: Vec<String>) -> Self {
        if v.len() == 1 {
            Self::One(v.remove(0))
        } else {
            Self::Many(v)
        }
    }
    pub fn contains(&self, s: &str) -> bool {
        match self {
            Self::One(a) => a == s,
            Self::Many(v) => v.iter().any(|a| a == s),
        }
    }
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Self::One(a) => vec![a.clone()],
            Self::Many(v) => v.clone(),
        }
    }
}

impl AccessTokenClaims {
    /// Builds the claims for a client_credentials token: the subject is the client itself
    /// (RFC 9068 §2.2: "sub ... the client identifier" when no resource owner is involved).
    pub fn for_client(
        issuer: &str,
        client: &Client,
        audience: Vec<String>,
        scopes: &ScopeSet,
        now: UnixTime,
        ttl_secs: u32,
        jti: String,
    ) -> Self {
        Self {
            iss: issuer.to_owned(),
            sub: client.client_id.as_str().to_owned(),
            aud: Audience::from_vec(audience),
            exp: now + i64::from(ttl_secs),
            iat: now,
            jti,
            client_id: client.client_id.as_str().to_owned(),
            scope: (!scopes.is_empty()).then(|| scopes.to_space_delimited()),
            cnf: None,
            client_epoch: (client.token_epoch != 0).then_some(client.token_epoch),
            federated: None,
            act: None,
            exchanged_from: Vec::new(),
        }
    }

    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|t| t == scope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Form {
        Form::parse(body.as_bytes(), &["resource"]).unwrap()
    }

    #[test]
    fn client_credentials_request_is_accepted() {
        let f = form("grant_type=client_credentials&scope=a&resource=urn:x");
        let r = parse_token_request(&f).unwrap();
        assert_eq!(r.scope, Some("a"));
        assert_eq!(r.resources, ["urn:x"]);
    }

    #[test]
    fn removed_grants_say_what_to_use_instead() {
        let e =
            parse_token_request(&form("grant_type=password&username=u&password=p")).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedGrantType);
        assert!(e.description.contains("OAuth 2.1"));
        let e = parse_token_request(&form("response_type=token&client_id=x")).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedResponseType);
        assert!(e.description.contains("client_credentials"));
    }

    #[test]
    fn missing_or_unknown_grant_type_is_rejected() {
        assert_eq!(
            parse_token_request(&form("scope=a")).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            parse_token_request(&form("grant_type=authorization_code"))
                .unwrap_err()
                .code,
            ErrorCode::UnsupportedGrantType
        );
    }

    fn client(id: &str, token_epoch: u32) -> Client {
        Client {
            client_id: crate::ClientId::parse(id).unwrap(),
            name: String::new(),
            auth_method: crate::client::AuthMethod::ClientSecretBasic,
            scopes: ScopeSet::default(),
            audiences: vec![],
            token_ttl_secs: 60,
            enabled: true,
            secret_hashes: vec![],
            sealed_secret: None,
            jwks: None,
            jwks_uri: None,
            tls_client_auth: None,
            created_at: 0,
            updated_at: 0,
            dpop_bound_access_tokens: false,
            token_epoch,
        }
    }

    #[test]
    fn tokens_carry_their_clients_epoch_unless_it_is_zero() {
        let claims = |epoch| {
            let c = AccessTokenClaims::for_client(
                "i",
                &client("c1", epoch),
                vec!["a".into()],
                &ScopeSet::default(),
                0,
                1,
                "j".into(),
            );
            serde_json::to_value(&c).unwrap()
        };
        assert_eq!(claims(7)["client_epoch"], 7);
        assert!(claims(0).get("client_epoch").is_none());
        let parsed: AccessTokenClaims = serde_json::from_value(claims(9)).unwrap();
        assert_eq!(parsed.client_epoch, Some(9));
    }

    #[test]
    fn claims_follow_rfc_9068() {
        let id = client("c1", 0);
        let c = AccessTokenClaims::for_client(
            "https://as",
            &id,
            vec!["urn:a".into()],
            &ScopeSet::parse("r w").unwrap(),
            100,
            60,
            "j".into(),
        );
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["sub"], "c1");
        assert_eq!(json["client_id"], "c1");
        assert_eq!(json["aud"], "urn:a");
        assert_eq!(json["exp"], 160);
        assert_eq!(json["scope"], "r w");
        assert!(c.has_scope("w") && !c.has_scope("x"));
        let none = AccessTokenClaims::for_client(
            "i",
            &id,
            vec!["a".into(), "b".into()],
            &ScopeSet::default(),
            0,
            1,
            "j".into(),
        );
        let json = serde_json::to_value(&none).unwrap();
        assert!(json.get("scope").is_none());
        assert!(json.get("cnf").is_none(), "unbound tokens carry no cnf");
        assert_eq!(json["aud"], serde_json::json!(["a", "b"]));
    }

    #[test]
    fn certificate_bound_claims_carry_x5t_s256() {
        let mut c = AccessTokenClaims::for_client(
            "i",
            &client("c1", 0),
            vec!["a".into()],
            &ScopeSet::default(),
            0,
            1,
            "j".into(),
        );
        c.cnf = Some(Confirmation {
            x5t_s256: Some("abc".into()),
            jkt: None,
        });
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["cnf"], serde_json::json!({"x5t#S256": "abc"}));
        let back: AccessTokenClaims = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
    }
}
