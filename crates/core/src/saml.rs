//! The SAML 2.0 bearer assertion grant (RFC 7522): which SAML identity providers are trusted,
//! and the rules an assertion's verified content must satisfy before a trust policy maps its
//! subject to a client.
//!
//! Everything here works on values already read from the *signed* bytes of an assertion (the
//! `portcullis-saml` crate checks the XML and its signature); nothing here parses XML. The
//! rules are RFC 7522 §3 and SAML core §2.4–2.5 (subject confirmation, conditions).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{CoreError, UnixTime};

/// `grant_type` of the SAML 2.0 bearer assertion grant (RFC 7522 §2.1).
pub const SAML2_BEARER_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:saml2-bearer";
/// The subject confirmation method the grant needs (RFC 7522 §3 item 5).
pub const BEARER_METHOD: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
/// Default longest lifetime of an assertion (issue instant to expiry): SAML assertions for
/// this grant are minted for the request, so an hour is generous.
pub const DEFAULT_MAX_LIFETIME_SECS: u32 = 3600;
/// Clock skew tolerated on `NotBefore` and `IssueInstant`: an assertion minted by a clock a
/// little ahead of ours is not refused. Not on `NotOnOrAfter`: the issued token must end no
/// later than the assertion, and one accepted after its expiry could not.
pub const SKEW_SECS: i64 = 60;
/// Claim names that the assertion itself fills; attributes with these names are not copied.
const RESERVED_CLAIMS: [&str; 3] = ["iss", "sub", "name_id_format"];

/// A SAML identity provider whose assertions may be exchanged
/// (`[[federation.saml_issuers]]`). Policies name it like a JWT issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlIssuer {
    /// How policies refer to it, e.g. `corp-adfs`.
    pub name: String,
    /// The exact `<saml:Issuer>` its assertions carry (its entity id).
    pub entity_id: String,
    /// Its signing certificates, PEM; more than one during a rollover. Only these verify:
    /// a certificate inside the assertion's `KeyInfo` is never trusted.
    pub certificates: Vec<String>,
    /// The `<Audience>` its assertions must name for us. Without it, our issuer URL or our
    /// token endpoint URL (RFC 7522 §3 item 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Longest accepted lifetime, from `IssueInstant` to the assertion's expiry.
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime_secs: u32,
}

fn default_max_lifetime() -> u32 {
    DEFAULT_MAX_LIFETIME_SECS
}

impl SamlIssuer {
    /// Checks its settings: name, entity id, at least one PEM certificate, lifetime bounds.
    pub fn validate(&self) -> Result<(), CoreError> {
        crate::federation::check_name("federation SAML issuer name", &self.name)?;
        if self.entity_id.is_empty() || self.entity_id.len() > 1024 {
            return Err(CoreError::invalid(
                "federation SAML entity_id",
                "must be 1-1024 characters",
            ));
        }
        if self.certificates.is_empty() || self.certificates.len() > 8 {
            return Err(CoreError::invalid(
                "federation SAML certificates",
                "give 1-8 PEM certificates",
            ));
        }
        if !self
            .certificates
            .iter()
            .all(|c| c.contains("-----BEGIN CERTIFICATE-----"))
        {
            return Err(CoreError::invalid(
                "federation SAML certificates",
                "each must be a PEM certificate (-----BEGIN CERTIFICATE-----)",
            ));
        }
        if self
            .audience
            .as_ref()
            .is_some_and(|a| a.is_empty() || a.len() > 1024)
        {
            return Err(CoreError::invalid(
                "federation SAML audience",
                "must be 1-1024 characters",
            ));
        }
        if !(60..=86_400).contains(&self.max_lifetime_secs) {
            return Err(CoreError::invalid(
                "federation SAML max_lifetime_secs",
                "must be from 60 to 86400",
            ));
        }
        Ok(())
    }
}

/// What the grant reads from a signed assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamlAssertion {
    /// `ID`: spent once per issuer.
    pub id: String,
    /// `<saml:Issuer>`.
    pub issuer: String,
    /// `IssueInstant`.
    pub issue_instant: UnixTime,
    /// `<saml:Subject>/<saml:NameID>`.
    pub name_id: String,
    /// Its `Format`, when given.
    pub name_id_format: Option<String>,
    /// `<saml:Conditions>`, when present.
    pub conditions: Option<Conditions>,
    /// Every `<saml:SubjectConfirmation>`.
    pub confirmations: Vec<SubjectConfirmation>,
    /// `<saml:Attribute Name>` → its values, in document order.
    pub attributes: Vec<(String, Vec<String>)>,
}

/// `<saml:Conditions>`; a condition of a kind not listed here makes the reader refuse the
/// assertion (RFC 7522 §3 item 11: unknown condition types are invalid).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    pub not_before: Option<UnixTime>,
    pub not_on_or_after: Option<UnixTime>,
    /// One list per `<AudienceRestriction>`; each must name us (SAML core §2.5.1.4).
    pub audience_restrictions: Vec<Vec<String>>,
}

/// A `<saml:SubjectConfirmation>` and its `<SubjectConfirmationData>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectConfirmation {
    pub method: String,
    pub recipient: Option<String>,
    pub not_before: Option<UnixTime>,
    pub not_on_or_after: Option<UnixTime>,
    /// Whether `<SubjectConfirmationData>` is there at all.
    pub has_data: bool,
}

/// Why a signed assertion is refused; each names the rule, never a value of the assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SamlRuleError {
    WrongIssuer,
    NoConditions,
    WrongAudience,
    Expired,
    NotYetValid,
    NoBearerConfirmation,
    WrongRecipient,
    NoExpiry,
    TooLong,
    EmptySubject,
}

impl SamlRuleError {
    /// The `error_description` of the `invalid_grant` answer.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::WrongIssuer => "the assertion's Issuer is not the trusted identity provider",
            Self::NoConditions => {
                "the assertion has no Conditions with an AudienceRestriction naming this server"
            }
            Self::WrongAudience => "the assertion is not for this server (Audience)",
            Self::Expired => "the assertion has expired (NotOnOrAfter)",
            Self::NotYetValid => {
                "the assertion is not valid yet (NotBefore or IssueInstant in the future)"
            }
            Self::NoBearerConfirmation => {
                "the assertion has no usable bearer SubjectConfirmation (method bearer, SubjectConfirmationData with NotOnOrAfter)"
            }
            Self::WrongRecipient => {
                "the assertion's SubjectConfirmationData Recipient is not this token endpoint"
            }
            Self::NoExpiry => "the assertion has no NotOnOrAfter",
            Self::TooLong => "the assertion lives longer than its issuer's max_lifetime_secs",
            Self::EmptySubject => "the assertion's NameID is empty",
        }
    }
}

impl std::fmt::Display for SamlRuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

impl std::error::Error for SamlRuleError {}

/// Where the assertion must be aimed: the audiences that name us and the token endpoint
/// URL its bearer confirmation must name as `Recipient`.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    pub audiences: &'a [&'a str],
    pub token_endpoint: &'a str,
}

impl SamlAssertion {
    /// RFC 7522 §3 on a signed assertion of `issuer`: the issuer, every audience
    /// restriction, the validity window, a bearer confirmation for our token endpoint, the
    /// issuer's lifetime limit. Returns the assertion's expiry (the earlier of the
    /// conditions' and the confirmation's `NotOnOrAfter`).
    pub fn check(
        &self,
        issuer: &SamlIssuer,
        to: Destination<'_>,
        now: UnixTime,
    ) -> Result<UnixTime, SamlRuleError> {
        use SamlRuleError::*;
        if self.issuer != issuer.entity_id {
            return Err(WrongIssuer);
        }
        if self.name_id.trim().is_empty() {
            return Err(EmptySubject);
        }
        let conditions = self.conditions.as_ref().ok_or(NoConditions)?;
        if conditions.audience_restrictions.is_empty() {
            return Err(NoConditions);
        }
        let names_us =
            |audiences: &Vec<String>| audiences.iter().any(|a| to.audiences.contains(&a.as_str()));
        if !conditions.audience_restrictions.iter().all(names_us) {
            return Err(WrongAudience);
        }
        // SAML core §2.5.1.2: invalid on or after NotOnOrAfter; no skew (see SKEW_SECS).
        if conditions.not_on_or_after.is_some_and(|t| t <= now) {
            return Err(Expired);
        }
        let future = |t: Option<UnixTime>| t.is_some_and(|t| t > now + SKEW_SECS);
        if future(conditions.not_before) || future(Some(self.issue_instant)) {
            return Err(NotYetValid);
        }
        // §3 item 5: a bearer confirmation with data, for our token endpoint, unexpired.
        // A wrong recipient is named as such (the likeliest mistake when setting up an IdP).
        let mut refusal = NoBearerConfirmation;
        let mut confirmed_until = None;
        for c in self
            .confirmations
            .iter()
            .filter(|c| c.method == BEARER_METHOD)
        {
            let Some(until) = c.not_on_or_after.filter(|_| c.has_data) else {
                continue;
            };
            if c.recipient.as_deref() != Some(to.token_endpoint) {
                refusal = WrongRecipient;
                continue;
            }
            if until <= now {
                refusal = Expired;
                continue;
            }
            if future(c.not_before) {
                refusal = NotYetValid;
                continue;
            }
            confirmed_until = Some(confirmed_until.map_or(until, |u: UnixTime| u.max(until)));
        }
        let confirmed_until = confirmed_until.ok_or(refusal)?;
        let expires_at = conditions
            .not_on_or_after
            .map_or(confirmed_until, |c| c.min(confirmed_until));
        if expires_at.saturating_sub(self.issue_instant) > i64::from(issuer.max_lifetime_secs) {
            return Err(TooLong);
        }
        Ok(expires_at)
    }

    /// The claims trust policies match: `iss` (the entity id), `sub` (the NameID),
    /// `name_id_format` when given, and each attribute under its `Name` — a string when it
    /// has one value, an array otherwise (which no pattern matches: name one value).
    pub fn claims(&self) -> Map<String, Value> {
        let mut claims = Map::new();
        for (name, values) in &self.attributes {
            if RESERVED_CLAIMS.contains(&name.as_str()) {
                continue;
            }
            let value = match values.as_slice() {
                [one] => Value::String(one.clone()),
                many => Value::Array(many.iter().cloned().map(Value::String).collect()),
            };
            claims.insert(name.clone(), value);
        }
        claims.insert("iss".into(), self.issuer.clone().into());
        claims.insert("sub".into(), self.name_id.clone().into());
        if let Some(format) = &self.name_id_format {
            claims.insert("name_id_format".into(), format.clone().into());
        }
        claims
    }
}

/// Parses a SAML instant (`xs:dateTime` in UTC, SAML core §1.3.3):
/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`. Fractions are dropped (the grant works in seconds);
/// other zones are refused, as SAML requires UTC.
pub fn parse_instant(text: &str) -> Option<UnixTime> {
    let [y1, y2, y3, y4, b'-', m1, m2, b'-', d1, d2, b'T', h1, h2, b':', i1, i2, b':', s1, s2, rest @ ..] =
        text.as_bytes()
    else {
        return None;
    };
    let number = |digits: &[u8]| -> Option<i64> {
        digits.iter().try_fold(0i64, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    let year = number(&[*y1, *y2, *y3, *y4])?;
    let (month, day) = (number(&[*m1, *m2])?, number(&[*d1, *d2])?);
    let (hour, minute, second) = (
        number(&[*h1, *h2])?,
        number(&[*i1, *i2])?,
        number(&[*s1, *s2])?,
    );
    match rest {
        [b'Z'] => {}
        [b'.', fraction @ .., b'Z']
            if (1..=9).contains(&fraction.len()) && fraction.iter().all(u8::is_ascii_digit) => {}
        _ => return None,
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days: i64 = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=month_days).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(
        crate::time::days_from_civil(year, month, day) * 86_400
            + hour * 3600
            + minute * 60
            + second,
    )
}

#[cfg(test)]
mod tests;
