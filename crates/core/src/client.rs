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
    /// RFC 8705 §2.1: a certificate from the device PKI, recognised by one subject DN or
    /// SAN value ([`TlsClientAuthMatch`]).
    TlsClientAuth,
    /// RFC 8705 §2.2: a self-signed certificate registered in the client's `jwks` (`x5c`).
    SelfSignedTlsClientAuth,
}

impl AuthMethod {
    /// Every method, in the order discovery lists them.
    pub const ALL: [AuthMethod; 6] = [
        Self::ClientSecretBasic,
        Self::ClientSecretPost,
        Self::ClientSecretJwt,
        Self::PrivateKeyJwt,
        Self::TlsClientAuth,
        Self::SelfSignedTlsClientAuth,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretJwt => "client_secret_jwt",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::TlsClientAuth => "tls_client_auth",
            Self::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
        }
    }

    pub fn parse(s: &str) -> Result<Self, CoreError> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                CoreError::invalid(
                    "token_endpoint_auth_method",
                    "expected client_secret_basic, client_secret_post, client_secret_jwt, \
                 private_key_jwt, tls_client_auth or self_signed_tls_client_auth",
                )
            })
    }

    /// Whether the client holds a shared secret (as opposed to a private key or certificate).
    pub const fn uses_secret(self) -> bool {
        matches!(
            self,
            Self::ClientSecretBasic | Self::ClientSecretPost | Self::ClientSecretJwt
        )
    }

    /// Whether the client authenticates with its TLS client certificate (RFC 8705 §2).
    pub const fn uses_certificate(self) -> bool {
        matches!(self, Self::TlsClientAuth | Self::SelfSignedTlsClientAuth)
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

/// RFC 8705 §2.1.2: the one certificate attribute a `tls_client_auth` client is recognised by,
/// besides the certificate chaining to the device CA. Serialised (and stored) as a JSON object
/// with one member named after the RFC 8705 client metadata, e.g.
/// `{"tls_client_auth_subject_dn":"CN=meter-7,O=Plant"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsClientAuthMatch {
    /// `tls_client_auth_subject_dn`: an RFC 4514 distinguished name; compared RDN by RDN,
    /// attribute types by name or OID (ignoring case), values exactly but for repeated spaces:
    /// case matters, as it does in device ids (`METER-7` is not `meter-7`).
    #[serde(rename = "tls_client_auth_subject_dn")]
    SubjectDn(String),
    /// `tls_client_auth_san_dns`: a dNSName SAN entry (ignoring ASCII case).
    #[serde(rename = "tls_client_auth_san_dns")]
    SanDns(String),
    /// `tls_client_auth_san_uri`: a uniformResourceIdentifier SAN entry (exact).
    #[serde(rename = "tls_client_auth_san_uri")]
    SanUri(String),
    /// `tls_client_auth_san_ip`: an iPAddress SAN entry (compared as addresses, so
    /// `::1` and `0:0::1` are the same).
    #[serde(rename = "tls_client_auth_san_ip")]
    SanIp(String),
    /// `tls_client_auth_san_email`: an rfc822Name SAN entry (domain ignoring ASCII case).
    #[serde(rename = "tls_client_auth_san_email")]
    SanEmail(String),
}

/// The names a validated client certificate carries, as [`TlsClientAuthMatch::matches`]
/// compares them: the subject as an RFC 4514 string and the SAN entries by kind (IP
/// addresses in their textual form).
#[derive(Debug, Clone, Copy, Default)]
pub struct CertificateNames<'a> {
    pub subject_dn: &'a str,
    pub san_dns: &'a [String],
    pub san_uri: &'a [String],
    pub san_ip: &'a [String],
    pub san_email: &'a [String],
}

impl TlsClientAuthMatch {
    /// The RFC 8705 §2.1.2 metadata names, in the order of the variants.
    pub const METADATA_NAMES: [&'static str; 5] = [
        "tls_client_auth_subject_dn",
        "tls_client_auth_san_dns",
        "tls_client_auth_san_uri",
        "tls_client_auth_san_ip",
        "tls_client_auth_san_email",
    ];

    /// Builds the match from the RFC 8705 metadata name and its value.
    pub fn from_metadata(name: &str, value: impl Into<String>) -> Result<Self, CoreError> {
        let value = value.into();
        Ok(match name {
            "tls_client_auth_subject_dn" => Self::SubjectDn(value),
            "tls_client_auth_san_dns" => Self::SanDns(value),
            "tls_client_auth_san_uri" => Self::SanUri(value),
            "tls_client_auth_san_ip" => Self::SanIp(value),
            "tls_client_auth_san_email" => Self::SanEmail(value),
            _ => {
                return Err(CoreError::invalid(
                    "tls_client_auth",
                    "unknown RFC 8705 certificate match",
                ))
            }
        })
    }

    /// The RFC 8705 metadata name of this match.
    pub const fn metadata_name(&self) -> &'static str {
        match self {
            Self::SubjectDn(_) => Self::METADATA_NAMES[0],
            Self::SanDns(_) => Self::METADATA_NAMES[1],
            Self::SanUri(_) => Self::METADATA_NAMES[2],
            Self::SanIp(_) => Self::METADATA_NAMES[3],
            Self::SanEmail(_) => Self::METADATA_NAMES[4],
        }
    }

    /// The expected value.
    pub fn value(&self) -> &str {
        match self {
            Self::SubjectDn(v)
            | Self::SanDns(v)
            | Self::SanUri(v)
            | Self::SanIp(v)
            | Self::SanEmail(v) => v,
        }
    }

    /// Checks the expected value is well formed for its kind.
    pub fn validate(&self) -> Result<(), CoreError> {
        let v = self.value();
        let what = self.metadata_name();
        if v.is_empty() || v.len() > 1024 || v.chars().any(char::is_control) {
            return Err(CoreError::invalid(
                what,
                "must be 1-1024 printable characters",
            ));
        }
        let ok = match self {
            Self::SubjectDn(dn) => parse_dn(dn).is_some_and(|rdns| !rdns.is_empty()),
            Self::SanDns(name) => name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            }),
            Self::SanUri(uri) => validate_absolute_uri(uri),
            Self::SanIp(ip) => ip.parse::<std::net::IpAddr>().is_ok(),
            Self::SanEmail(email) => {
                email
                    .split_once('@')
                    .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
                    && !email.chars().any(char::is_whitespace)
            }
        };
        if !ok {
            let why = match self {
                Self::SubjectDn(_) => {
                    "must be an RFC 4514 distinguished name, e.g. CN=meter-7,O=Plant"
                }
                Self::SanDns(_) => "must be a DNS name",
                Self::SanUri(_) => "must be an absolute URI",
                Self::SanIp(_) => "must be an IPv4 or IPv6 address",
                Self::SanEmail(_) => "must be an email address",
            };
            return Err(CoreError::invalid(what, why));
        }
        Ok(())
    }

    /// Whether a certificate with these names is the one this client registered.
    pub fn matches(&self, cert: &CertificateNames<'_>) -> bool {
        match self {
            Self::SubjectDn(expected) => match (parse_dn(expected), parse_dn(cert.subject_dn)) {
                (Some(expected), Some(presented)) => !expected.is_empty() && expected == presented,
                _ => false,
            },
            Self::SanDns(expected) => {
                let expected = expected.trim_end_matches('.');
                cert.san_dns
                    .iter()
                    .any(|d| d.trim_end_matches('.').eq_ignore_ascii_case(expected))
            }
            Self::SanUri(expected) => cert.san_uri.iter().any(|u| u == expected),
            Self::SanIp(expected) => match expected.parse::<std::net::IpAddr>() {
                Ok(expected) => cert.san_ip.iter().any(|ip| {
                    ip.parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip == expected)
                }),
                Err(_) => false,
            },
            Self::SanEmail(expected) => cert.san_email.iter().any(|e| email_eq(e, expected)),
        }
    }
}

/// Mailbox local parts are case-sensitive (RFC 5321 §2.4), domains are not.
fn email_eq(a: &str, b: &str) -> bool {
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((la, da)), Some((lb, db))) => la == lb && da.eq_ignore_ascii_case(db),
        _ => false,
    }
}

/// One attribute of a normalised distinguished name: the type (an upper-case short name or
/// a dotted OID), whether the value was given as `#hex`, and the value (lower case, spaces
/// collapsed; hex lower case).
type DnAttribute = (String, bool, String);

/// Short names of RFC 4514 §3 (and a few in common use) with their OIDs; `E` and `S` are
/// what some platforms print for emailAddress and stateOrProvinceName.
const DN_TYPES: &[(&str, &str)] = &[
    ("CN", "2.5.4.3"),
    ("SN", "2.5.4.4"),
    ("SERIALNUMBER", "2.5.4.5"),
    ("C", "2.5.4.6"),
    ("L", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("S", "2.5.4.8"),
    ("STREET", "2.5.4.9"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("TITLE", "2.5.4.12"),
    ("GIVENNAME", "2.5.4.42"),
    ("ORGANIZATIONIDENTIFIER", "2.5.4.97"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("EMAILADDRESS", "1.2.840.113549.1.9.1"),
    ("E", "1.2.840.113549.1.9.1"),
];

/// The RFC 4514 short name of an attribute type OID (dotted), if it has one; certificate
/// subjects are printed with these, and other types as dotted OIDs.
pub fn dn_short_name(oid: &str) -> Option<&'static str> {
    DN_TYPES
        .iter()
        .find(|(name, o)| *o == oid && !matches!(*name, "S" | "E"))
        .map(|(name, _)| match *name {
            "SERIALNUMBER" => "serialNumber",
            "GIVENNAME" => "givenName",
            "TITLE" => "title",
            "ORGANIZATIONIDENTIFIER" => "organizationIdentifier",
            "EMAILADDRESS" => "emailAddress",
            other => other,
        })
}

/// Escapes an attribute value for an RFC 4514 string (§2.4).
pub fn escape_dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '#' if i == 0 => out.push_str("\\#"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// Canonical attribute type: the upper-case short name, or the dotted OID for unnamed types.
fn canonical_dn_type(t: &str) -> Option<String> {
    let t = t.trim();
    let t = t
        .strip_prefix("OID.")
        .or_else(|| t.strip_prefix("oid."))
        .unwrap_or(t);
    if t.is_empty() {
        return None;
    }
    if t.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
        if !t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return None;
        }
        let name = DN_TYPES
            .iter()
            .find(|(name, oid)| *oid == t && !matches!(*name, "S" | "E"))
            .map(|(name, _)| (*name).to_owned());
        return Some(name.unwrap_or_else(|| t.to_owned()));
    }
    if !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return None;
    }
    let upper = t.to_ascii_uppercase();
    Some(match upper.as_str() {
        "S" => "ST".to_owned(),
        "E" => "EMAILADDRESS".to_owned(),
        _ => upper,
    })
}

/// Surrounding spaces dropped, inner runs of spaces collapsed; case kept. X.520 would match
/// most DN attributes ignoring case, but the name in a client certificate is an identity
/// (device ids are case-sensitive): `CN=METER-7` must not authenticate the client registered
/// for `CN=meter-7`.
fn normalise_dn_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses an RFC 4514 distinguished name (also accepting spaces around separators, as
/// RFC 1779 and most tools print them) into normalised RDNs, most specific first, with the
/// attributes of a multi-valued RDN sorted. `None` if malformed.
pub(crate) fn parse_dn(dn: &str) -> Option<Vec<Vec<DnAttribute>>> {
    let mut rdns = Vec::new();
    let mut rdn: Vec<DnAttribute> = Vec::new();
    let mut chars = dn.chars().peekable();
    if dn.trim().is_empty() {
        return Some(rdns);
    }
    loop {
        // attributeType '='
        let mut t = String::new();
        loop {
            match chars.next() {
                Some('=') => break,
                Some(c) => t.push(c),
                None => return None,
            }
        }
        let t = canonical_dn_type(&t)?;
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        // attributeValue: a #hexstring or an escaped string, up to an unescaped ',' or '+'.
        let mut bytes: Vec<u8> = Vec::new();
        let mut hex = false;
        let mut separator = None;
        if chars.peek() == Some(&'#') {
            chars.next();
            hex = true;
        }
        while let Some(c) = chars.next() {
            match c {
                ',' | '+' => {
                    separator = Some(c);
                    break;
                }
                '\\' => {
                    if hex {
                        return None;
                    }
                    let first = chars.next()?;
                    if first.is_ascii_hexdigit() {
                        let second = chars.next()?;
                        let byte = u8::from_str_radix(&format!("{first}{second}"), 16).ok()?;
                        bytes.push(byte);
                    } else if matches!(
                        first,
                        ' ' | '"' | '#' | '+' | ',' | ';' | '<' | '=' | '>' | '\\'
                    ) {
                        let mut buf = [0u8; 4];
                        bytes.extend_from_slice(first.encode_utf8(&mut buf).as_bytes());
                    } else {
                        return None;
                    }
                }
                '"' | ';' | '<' | '>' if !hex => return None,
                c => {
                    let mut buf = [0u8; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        let value = String::from_utf8(bytes).ok()?;
        let value = if hex {
            let v = value.trim();
            if v.is_empty()
                || !v.as_bytes().chunks_exact(2).remainder().is_empty()
                || !v.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return None;
            }
            v.to_ascii_lowercase()
        } else {
            normalise_dn_value(&value)
        };
        rdn.push((t, hex, value));
        match separator {
            Some('+') => {}
            Some(_) => {
                rdn.sort();
                rdns.push(std::mem::take(&mut rdn));
            }
            None => {
                rdn.sort();
                rdns.push(rdn);
                return Some(rdns);
            }
        }
        while chars.peek() == Some(&' ') {
            chars.next();
        }
    }
}

/// An absolute URI: a scheme (RFC 3986 §3.1), a colon and something after it.
fn validate_absolute_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !uri.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// RFC 8705 §2.2: the certificates a `self_signed_tls_client_auth` client registered, the
/// first `x5c` entry (the certificate holding the key) of each key of its JWK Set, as DER.
/// Keys without `x5c` are skipped; an `x5c` that is not standard Base64 (RFC 7517 §4.7) is
/// an error.
pub fn registered_certificates(jwks: &str) -> Result<Vec<Vec<u8>>, CoreError> {
    use base64::Engine;
    let bad = |why: &'static str| CoreError::invalid("jwks", why);
    let set: serde_json::Value =
        serde_json::from_str(jwks).map_err(|_| bad("must be a JSON object"))?;
    let keys = set
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or_else(|| bad("must have a keys array"))?;
    let mut out = Vec::new();
    for key in keys {
        let Some(x5c) = key.get("x5c") else {
            continue;
        };
        let leaf = x5c
            .as_array()
            .and_then(|a| a.first())
            .and_then(|c| c.as_str())
            .ok_or_else(|| bad("x5c must be a non-empty array of Base64 certificates"))?;
        let der = base64::engine::general_purpose::STANDARD
            .decode(leaf)
            .map_err(|_| bad("x5c entries must be standard Base64 DER certificates"))?;
        if der.is_empty() {
            return Err(bad("x5c entries must be standard Base64 DER certificates"));
        }
        out.push(der);
    }
    Ok(out)
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
    /// For `tls_client_auth` only: the certificate attribute that identifies the client
    /// (RFC 8705 §2.1.2). A `self_signed_tls_client_auth` client registers its certificates
    /// in `jwks` (`x5c`) instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth: Option<TlsClientAuthMatch>,
    /// RFC 9449 §5.2 `dpop_bound_access_tokens`: every token request must carry a DPoP proof,
    /// so every token of this client is bound to a key it keeps.
    #[serde(default)]
    pub dpop_bound_access_tokens: bool,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
    /// The epoch of this client's tokens: every token carries the epoch it was issued in
    /// (claim `client_epoch`) and is active only while the client is still in it. A new
    /// random epoch is drawn at creation — so a client deleted and re-created under the same
    /// id does not bring its predecessor's tokens back — and at every change that must end
    /// the tokens issued before it ([`Client::change_ends_tokens`], a secret rotated without
    /// overlap). 0 for clients stored before epochs existed.
    pub token_epoch: u32,
}

impl Client {
    /// Whether changing this client into `new` must end every token issued before the change:
    /// it was disabled, lost scopes or audiences, began to require DPoP, or its way of authenticating changed
    /// (method, certificate match, key source). What a token holder could do before must not
    /// outlive what the client may do now. Additions (a scope, an audience, a longer TTL, a
    /// new name) end nothing.
    pub fn change_ends_tokens(&self, new: &Client) -> bool {
        let disabled = self.enabled && !new.enabled;
        let scopes_narrowed = !self.scopes.is_subset(&new.scopes);
        // No configured audience means tokens for the issuer itself: going from none to some,
        // or dropping one, narrows what tokens may be presented to.
        let audiences_narrowed = self.audiences.is_empty() != new.audiences.is_empty()
            || self.audiences.iter().any(|a| !new.audiences.contains(a));
        let credentials_replaced = self.auth_method != new.auth_method
            || self.tls_client_auth != new.tls_client_auth
            || self.jwks_uri != new.jwks_uri;
        // Requiring DPoP from now on must not leave bearer tokens of before in circulation.
        let binding_required = !self.dpop_bound_access_tokens && new.dpop_bound_access_tokens;
        disabled
            || scopes_narrowed
            || audiences_narrowed
            || credentials_replaced
            || binding_required
    }

    /// Whether this client still backs a token issued to it in `epoch` (its `client_epoch`
    /// claim; `None` for a token without one): it is enabled and has not changed since.
    pub fn backs_token_of_epoch(&self, epoch: Option<u32>) -> bool {
        self.enabled && epoch.unwrap_or(0) == self.token_epoch
    }

    /// Checks the invariants every stored client must satisfy.
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.name.trim().is_empty()
            || self.name.chars().count() > 200
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
            // No control characters: besides never being valid in a URL, a NUL cannot be
            // stored in a PostgreSQL TEXT column at all.
            if !(uri.starts_with("https://") || uri.starts_with("http://"))
                || uri.len() > 2048
                || uri.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(CoreError::invalid(
                    "jwks_uri",
                    "must be an http(s) URL of at most 2048 characters, without spaces or control characters",
                ));
            }
        }
        self.validate_certificate_auth()
    }

    /// The RFC 8705 rules: a `tls_client_auth` client has exactly one certificate match and
    /// nobody else has one; a `self_signed_tls_client_auth` client registers its certificates
    /// inline in `jwks`; certificate clients hold no secret.
    fn validate_certificate_auth(&self) -> Result<(), CoreError> {
        match (&self.tls_client_auth, self.auth_method) {
            (None, AuthMethod::TlsClientAuth) => {
                return Err(CoreError::invalid(
                    "tls_client_auth",
                    "tls_client_auth clients need exactly one of tls_client_auth_subject_dn, \
                     tls_client_auth_san_dns, tls_client_auth_san_uri, tls_client_auth_san_ip \
                     or tls_client_auth_san_email",
                ))
            }
            (Some(m), AuthMethod::TlsClientAuth) => m.validate()?,
            (Some(_), _) => {
                return Err(CoreError::invalid(
                    "tls_client_auth",
                    "a certificate match is only for tls_client_auth clients",
                ))
            }
            (None, _) => {}
        }
        if !self.auth_method.uses_certificate() {
            return Ok(());
        }
        if !self.secret_hashes.is_empty() || self.sealed_secret.is_some() {
            return Err(CoreError::invalid(
                "client_secret",
                "certificate clients hold no secret",
            ));
        }
        if self.auth_method == AuthMethod::SelfSignedTlsClientAuth {
            if self.jwks_uri.is_some() {
                return Err(CoreError::invalid(
                    "jwks_uri",
                    "self_signed_tls_client_auth clients register their certificates inline in jwks",
                ));
            }
            let registered = match &self.jwks {
                Some(jwks) => registered_certificates(jwks)?,
                None => Vec::new(),
            };
            if registered.is_empty() {
                return Err(CoreError::invalid(
                    "jwks",
                    "self_signed_tls_client_auth clients need a jwks with at least one x5c certificate",
                ));
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
            tls_client_auth: None,
            created_at: 0,
            updated_at: 0,
            dpop_bound_access_tokens: false,
            token_epoch: 0,
        }
    }

    #[test]
    fn narrowing_disabling_or_replacing_credentials_ends_tokens_and_widening_does_not() {
        let base = client();
        let changed = |edit: &dyn Fn(&mut Client)| {
            let mut new = base.clone();
            edit(&mut new);
            base.change_ends_tokens(&new)
        };
        type Edit<'a> = (&'a str, &'a dyn Fn(&mut Client));
        let ends: [Edit; 7] = [
            ("disabled", &|c| c.enabled = false),
            ("scope dropped", &|c| c.scopes = ScopeSet::default()),
            ("audience dropped", &|c| c.audiences.truncate(1)),
            ("audiences cleared", &|c| c.audiences.clear()),
            ("method replaced", &|c| {
                c.auth_method = AuthMethod::ClientSecretPost
            }),
            ("jwks_uri replaced", &|c| {
                c.jwks_uri = Some("https://keys.example/jwks".into())
            }),
            ("certificate match replaced", &|c| {
                c.tls_client_auth = Some(TlsClientAuthMatch::SubjectDn("CN=other".into()))
            }),
        ];
        for (name, edit) in ends {
            assert!(changed(edit), "{name} must end the tokens issued before");
        }
        let keeps: [Edit; 5] = [
            ("renamed", &|c| c.name = "renamed".into()),
            ("scope added", &|c| {
                c.scopes = ScopeSet::parse("read write").unwrap()
            }),
            ("audience added", &|c| {
                c.audiences.push("urn:plant:line2".into())
            }),
            ("ttl changed", &|c| c.token_ttl_secs = 60),
            ("enabled again", &|c| c.enabled = true),
        ];
        for (name, edit) in keeps {
            assert!(!changed(edit), "{name} ends nothing");
        }
        let mut disabled = base.clone();
        disabled.enabled = false;
        assert!(!disabled.backs_token_of_epoch(Some(base.token_epoch)));
        let mut epoch = base.clone();
        epoch.token_epoch = 42;
        assert!(epoch.backs_token_of_epoch(Some(42)));
        assert!(!epoch.backs_token_of_epoch(None));
        assert!(!epoch.backs_token_of_epoch(Some(41)));
        assert!(
            base.backs_token_of_epoch(None),
            "epoch 0 backs tokens without the claim"
        );
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

    /// PostgreSQL cannot store a NUL in TEXT: every free-text field a caller sets refuses it
    /// (and every other control character) here, so the admin API answers 400 on both
    /// backends instead of a store error.
    #[test]
    fn no_client_text_may_carry_a_nul() {
        let jwt_client = |uri: &str| Client {
            auth_method: AuthMethod::PrivateKeyJwt,
            jwks_uri: Some(uri.into()),
            ..client()
        };
        assert!(jwt_client("https://keys.example/jwks").validate().is_ok());
        let cases: Vec<(&str, Client)> = vec![
            (
                "name",
                Client {
                    name: "a\0b".into(),
                    ..client()
                },
            ),
            (
                "audience",
                Client {
                    audiences: vec!["https://a\0b".into()],
                    ..client()
                },
            ),
            ("jwks_uri", jwt_client("https://keys.example/\0")),
            ("jwks_uri", jwt_client("https://keys.example/a b")),
            ("jwks_uri", jwt_client("https://keys.example/\u{85}")),
            (
                "tls_client_auth_subject_dn",
                tls_client(Some(TlsClientAuthMatch::SubjectDn("CN=a\0b".into()))),
            ),
            (
                "tls_client_auth_san_dns",
                tls_client(Some(TlsClientAuthMatch::SanDns("a\0.test".into()))),
            ),
        ];
        for (field, c) in cases {
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
    }

    fn tls_client(m: Option<TlsClientAuthMatch>) -> Client {
        Client {
            auth_method: AuthMethod::TlsClientAuth,
            secret_hashes: vec![],
            tls_client_auth: m,
            ..client()
        }
    }

    /// A JWK Set with one key carrying `x5c` (the bytes need not be a certificate here).
    fn x5c_jwks(der: &[u8]) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!(r#"{{"keys":[{{"kty":"EC","x5c":["{b64}"]}}]}}"#)
    }

    #[test]
    fn certificate_methods_round_trip_and_hold_no_secret() {
        assert_eq!(AuthMethod::ALL.len(), 6);
        assert_eq!(
            AuthMethod::parse("tls_client_auth").unwrap(),
            AuthMethod::TlsClientAuth
        );
        assert_eq!(
            AuthMethod::parse("self_signed_tls_client_auth").unwrap(),
            AuthMethod::SelfSignedTlsClientAuth
        );
        for m in [
            AuthMethod::TlsClientAuth,
            AuthMethod::SelfSignedTlsClientAuth,
        ] {
            assert!(!m.uses_secret());
            assert!(m.uses_certificate());
            assert!(m.accepts(m));
            assert!(!m.accepts(AuthMethod::ClientSecretBasic));
            assert!(!AuthMethod::ClientSecretBasic.accepts(m));
        }
        assert!(!AuthMethod::TlsClientAuth.accepts(AuthMethod::SelfSignedTlsClientAuth));
        assert!(AuthMethod::ClientSecretJwt.uses_secret());
        assert!(!AuthMethod::PrivateKeyJwt.uses_secret());
    }

    #[test]
    fn certificate_client_validation_table() {
        use TlsClientAuthMatch as M;
        let dn = || Some(M::SubjectDn("CN=meter-7,O=Plant".into()));
        let hash = SecretHash {
            mac: "m".into(),
            expires_at: None,
        };
        let cases: Vec<(&str, Client, bool)> = vec![
            ("tls with subject dn", tls_client(dn()), true),
            (
                "tls with san dns",
                tls_client(Some(M::SanDns("meter-7.plant.example".into()))),
                true,
            ),
            (
                "tls with san uri",
                tls_client(Some(M::SanUri("spiffe://plant/meter-7".into()))),
                true,
            ),
            (
                "tls with san ipv4",
                tls_client(Some(M::SanIp("10.0.0.7".into()))),
                true,
            ),
            (
                "tls with san ipv6",
                tls_client(Some(M::SanIp("fd00::7".into()))),
                true,
            ),
            (
                "tls with san email",
                tls_client(Some(M::SanEmail("meter@plant.example".into()))),
                true,
            ),
            ("tls without match", tls_client(None), false),
            (
                "tls with empty dn",
                tls_client(Some(M::SubjectDn(String::new()))),
                false,
            ),
            (
                "tls with malformed dn",
                tls_client(Some(M::SubjectDn("meter-7".into()))),
                false,
            ),
            (
                "tls with unescaped quote in dn",
                tls_client(Some(M::SubjectDn("CN=a\"b".into()))),
                false,
            ),
            (
                "tls with bad ip",
                tls_client(Some(M::SanIp("10.0.0.256".into()))),
                false,
            ),
            (
                "tls with relative uri",
                tls_client(Some(M::SanUri("meter-7".into()))),
                false,
            ),
            (
                "tls with dns containing space",
                tls_client(Some(M::SanDns("a b".into()))),
                false,
            ),
            (
                "tls with email without @",
                tls_client(Some(M::SanEmail("meter".into()))),
                false,
            ),
            (
                "tls with control char",
                tls_client(Some(M::SanDns("a\u{1}".into()))),
                false,
            ),
            (
                "tls with a secret",
                Client {
                    secret_hashes: vec![hash.clone()],
                    ..tls_client(dn())
                },
                false,
            ),
            (
                "tls with a sealed secret",
                Client {
                    sealed_secret: Some(vec![1]),
                    ..tls_client(dn())
                },
                false,
            ),
            (
                "secret client with a match",
                Client {
                    tls_client_auth: dn(),
                    ..client()
                },
                false,
            ),
            (
                "private_key_jwt with a match",
                Client {
                    auth_method: AuthMethod::PrivateKeyJwt,
                    jwks: Some("{}".into()),
                    tls_client_auth: dn(),
                    ..client()
                },
                false,
            ),
            (
                "self-signed with x5c",
                Client {
                    auth_method: AuthMethod::SelfSignedTlsClientAuth,
                    jwks: Some(x5c_jwks(b"cert")),
                    ..client()
                },
                true,
            ),
            (
                "self-signed without jwks",
                Client {
                    auth_method: AuthMethod::SelfSignedTlsClientAuth,
                    ..client()
                },
                false,
            ),
            (
                "self-signed with a jwks lacking x5c",
                Client {
                    auth_method: AuthMethod::SelfSignedTlsClientAuth,
                    jwks: Some(r#"{"keys":[{"kty":"EC"}]}"#.into()),
                    ..client()
                },
                false,
            ),
            (
                "self-signed with url-safe base64 x5c",
                Client {
                    auth_method: AuthMethod::SelfSignedTlsClientAuth,
                    jwks: Some(r#"{"keys":[{"x5c":["_-_-"]}]}"#.into()),
                    ..client()
                },
                false,
            ),
            (
                "self-signed with jwks_uri",
                Client {
                    auth_method: AuthMethod::SelfSignedTlsClientAuth,
                    jwks: Some(x5c_jwks(b"cert")),
                    jwks_uri: Some("https://keys.example/jwks".into()),
                    ..client()
                },
                false,
            ),
            (
                "self-signed with a match",
                Client {
                    auth_method: AuthMethod::SelfSignedTlsClientAuth,
                    jwks: Some(x5c_jwks(b"cert")),
                    tls_client_auth: dn(),
                    ..client()
                },
                false,
            ),
            (
                "self-signed with a secret",
                Client {
                    auth_method: AuthMethod::SelfSignedTlsClientAuth,
                    jwks: Some(x5c_jwks(b"cert")),
                    secret_hashes: vec![hash.clone()],
                    ..client()
                },
                false,
            ),
        ];
        for (name, c, ok) in cases {
            assert_eq!(c.validate().is_ok(), ok, "{name}: {:?}", c.validate());
        }
    }

    #[test]
    fn registered_certificates_are_the_first_x5c_of_each_key() {
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let jwks = format!(
            r#"{{"keys":[{{"x5c":["{}","{}"]}},{{"kty":"OKP"}},{{"x5c":["{}"]}}]}}"#,
            b64(b"leaf-1"),
            b64(b"ca"),
            b64(b"leaf-2")
        );
        assert_eq!(
            registered_certificates(&jwks).unwrap(),
            vec![b"leaf-1".to_vec(), b"leaf-2".to_vec()]
        );
        assert!(registered_certificates("not json").is_err());
        assert!(registered_certificates(r#"{"keys":[{"x5c":[]}]}"#).is_err());
        assert!(registered_certificates(r#"{"keys":[{"x5c":"abc"}]}"#).is_err());
        assert!(registered_certificates(r#"{"keys":{}}"#).is_err());
    }

    fn names<'a>(subject_dn: &'a str, v: &'a [String]) -> CertificateNames<'a> {
        CertificateNames {
            subject_dn,
            san_dns: v,
            san_uri: v,
            san_ip: v,
            san_email: v,
        }
    }

    #[test]
    fn subject_dn_matches_rdn_by_rdn() {
        let m = TlsClientAuthMatch::SubjectDn("CN=meter-7,O=Acme Plant,C=DE".into());
        for presented in [
            "CN=meter-7,O=Acme Plant,C=DE",
            "cn=meter-7, o=Acme  Plant, c=DE",
            "2.5.4.3=meter-7,OID.2.5.4.10=Acme Plant,C=DE",
        ] {
            assert!(m.matches(&names(presented, &[])), "{presented}");
        }
        for presented in [
            "CN=METER-7,O=Acme Plant,C=DE",
            "CN=meter-7,O=acme plant,C=DE",
            "C=DE,O=Acme Plant,CN=meter-7",
            "CN=meter-7,O=Acme Plant",
            "CN=meter-7,O=Acme Plant,C=DE,DC=x",
            "CN=meter-70,O=Acme Plant,C=DE",
            "CN=meter-7+O=Acme Plant,C=DE",
            "",
            "garbage",
        ] {
            assert!(!m.matches(&names(presented, &[])), "{presented}");
        }
        // Escapes: a comma inside a value is not a separator.
        let m = TlsClientAuthMatch::SubjectDn(r"CN=Smith\, J.,O=Acme".into());
        assert!(m.matches(&names(r"cn=Smith\2C J.,o=Acme", &[])));
        assert!(!m.matches(&names(r"CN=smith\2C j.,O=ACME", &[])));
        assert!(!m.matches(&names("CN=Smith,J.,O=Acme", &[])));
        // Multi-valued RDNs compare as sets.
        let m = TlsClientAuthMatch::SubjectDn("CN=a+UID=7,O=b".into());
        assert!(m.matches(&names("UID=7+CN=a,O=b", &[])));
        assert!(!m.matches(&names("CN=a,UID=7,O=b", &[])));
    }

    #[test]
    fn escaped_values_survive_a_round_trip() {
        for v in [
            "plain",
            " lead",
            "trail ",
            "#hash",
            "a,b+c;d<e>f\"g\\h",
            "ünï ✓",
        ] {
            let dn = format!("CN={},O=x", escape_dn_value(v));
            let m = TlsClientAuthMatch::SubjectDn(dn.clone());
            assert!(m.validate().is_ok(), "{dn}");
            assert!(m.matches(&names(&dn, &[])), "{dn}");
        }
        assert_eq!(dn_short_name("2.5.4.3"), Some("CN"));
        assert_eq!(dn_short_name("1.2.840.113549.1.9.1"), Some("emailAddress"));
        assert_eq!(dn_short_name("1.2.3.4"), None);
    }

    #[test]
    fn san_matches_by_kind() {
        let sans = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let dns = sans(&["other.example", "Meter-7.Plant.Example"]);
        let c = CertificateNames {
            san_dns: &dns,
            ..Default::default()
        };
        assert!(TlsClientAuthMatch::SanDns("meter-7.plant.example".into()).matches(&c));
        assert!(!TlsClientAuthMatch::SanDns("plant.example".into()).matches(&c));
        assert!(!TlsClientAuthMatch::SanUri("meter-7.plant.example".into()).matches(&c));

        let ips = sans(&["10.0.0.7", "fd00::7"]);
        let c = CertificateNames {
            san_ip: &ips,
            ..Default::default()
        };
        assert!(TlsClientAuthMatch::SanIp("fd00:0:0::7".into()).matches(&c));
        assert!(TlsClientAuthMatch::SanIp("10.0.0.7".into()).matches(&c));
        assert!(!TlsClientAuthMatch::SanIp("10.0.0.70".into()).matches(&c));

        let uris = sans(&["spiffe://plant/meter-7"]);
        let c = CertificateNames {
            san_uri: &uris,
            ..Default::default()
        };
        assert!(TlsClientAuthMatch::SanUri("spiffe://plant/meter-7".into()).matches(&c));
        assert!(!TlsClientAuthMatch::SanUri("spiffe://plant/meter-".into()).matches(&c));

        let emails = sans(&["meter@PLANT.example"]);
        let c = CertificateNames {
            san_email: &emails,
            ..Default::default()
        };
        assert!(TlsClientAuthMatch::SanEmail("meter@plant.example".into()).matches(&c));
        assert!(!TlsClientAuthMatch::SanEmail("Meter@plant.example".into()).matches(&c));
    }

    #[test]
    fn match_serialises_as_the_rfc_8705_member() {
        let m = TlsClientAuthMatch::SanUri("spiffe://x/y".into());
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"tls_client_auth_san_uri":"spiffe://x/y"}"#);
        assert_eq!(
            serde_json::from_str::<TlsClientAuthMatch>(&json).unwrap(),
            m
        );
        for name in TlsClientAuthMatch::METADATA_NAMES {
            assert_eq!(
                TlsClientAuthMatch::from_metadata(name, "v")
                    .unwrap()
                    .metadata_name(),
                name
            );
        }
        assert!(TlsClientAuthMatch::from_metadata("tls_client_auth_san_rid", "v").is_err());
    }
}
