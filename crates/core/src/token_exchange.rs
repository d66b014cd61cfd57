//! Token exchange (RFC 8693): a client trades a subject token for a token with narrower scope
//! or another audience, optionally acting for the subject (delegation, `act`). Which client
//! may exchange whose tokens for which audiences is an [`ExchangeRule`]'s to say; everything
//! here is a rule on values already verified.

use serde::{Deserialize, Serialize};

use crate::federation::pattern_matches;
use crate::form::Form;
use crate::{ClientId, CoreError, ErrorCode, OAuthError, ScopeSet};

/// `grant_type` of token exchange (RFC 8693 §2.1).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3: an OAuth access token (ours).
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 §3: a JWT (an outside token from a trusted federation issuer).
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// Which clients may exchange whose tokens, for what (`[[token_exchange.rules]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeRule {
    pub name: String,
    /// The clients that may ask (the authenticated requester's id, exact).
    pub clients: Vec<String>,
    /// Whose tokens: patterns (`*` = any run of characters) on the subject token's `sub`.
    pub subjects: Vec<String>,
    /// The audiences the new token may be for; a request names some or gets them all.
    pub audiences: Vec<String>,
    /// The most scopes the new token may carry (the subject token's bound them too); empty:
    /// the subject token's.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Whether the requester must present its own token as `actor_token` (delegation: the
    /// new token then names it in `act`).
    #[serde(default)]
    pub require_actor: bool,
}

impl ExchangeRule {
    pub fn validate(&self) -> Result<(), CoreError> {
        let bad = |why: &'static str| Err(CoreError::invalid("token exchange rule", why));
        if self.name.is_empty() || self.name.len() > 64 {
            return bad("name must be 1-64 characters");
        }
        if self.clients.is_empty() || self.subjects.is_empty() || self.audiences.is_empty() {
            return bad("clients, subjects and audiences must each name at least one");
        }
        for c in &self.clients {
            ClientId::parse(c.as_str())?;
        }
        if self
            .subjects
            .iter()
            .any(|s| s.is_empty() || s.chars().all(|c| c == '*'))
        {
            return bad("a subject pattern must name something (not only '*')");
        }
        if self
            .audiences
            .iter()
            .any(|a| a.is_empty() || a.len() > 1024)
        {
            return bad("audiences must be 1-1024 characters");
        }
        ScopeSet::from_tokens(self.scopes.clone())?;
        Ok(())
    }

    fn applies(&self, requester: &str, subject: &str, with_actor: bool) -> bool {
        self.clients.iter().any(|c| c == requester)
            && self.subjects.iter().any(|p| pattern_matches(p, subject))
            && (with_actor || !self.require_actor)
    }
}

/// Checks a list of rules: each valid, names unique.
pub fn validate_rules(rules: &[ExchangeRule]) -> Result<(), CoreError> {
    let mut names = std::collections::BTreeSet::new();
    for r in rules {
        r.validate()?;
        if !names.insert(r.name.as_str()) {
            return Err(CoreError::invalid(
                "token exchange rules",
                "names must be unique",
            ));
        }
    }
    Ok(())
}

/// The first rule letting `requester` exchange a token of `subject` (with an actor token or
/// not).
pub fn select_rule<'r>(
    rules: &'r [ExchangeRule],
    requester: &str,
    subject: &str,
    with_actor: bool,
) -> Option<&'r ExchangeRule> {
    rules
        .iter()
        .find(|r| r.applies(requester, subject, with_actor))
}

/// The kind of a presented token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// One of ours.
    AccessToken,
    /// An outside JWT of a trusted federation issuer.
    Jwt,
}

/// A token exchange request's parameters (RFC 8693 §2.1), before anything is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeRequest<'a> {
    pub subject_token: &'a str,
    pub subject_kind: TokenKind,
    pub actor_token: Option<&'a str>,
    /// `audience` values (one here) and `resource` values (RFC 8707) together.
    pub audiences: Vec<&'a str>,
}

fn kind(value: &str, what: &'static str) -> Result<TokenKind, OAuthError> {
    match value {
        ACCESS_TOKEN_TYPE => Ok(TokenKind::AccessToken),
        JWT_TOKEN_TYPE => Ok(TokenKind::Jwt),
        _ => Err(OAuthError::invalid_request(match what {
            "subject" => "subject_token_type must be urn:ietf:params:oauth:token-type:access_token or ...:jwt",
            _ => "actor_token_type must be urn:ietf:params:oauth:token-type:access_token",
        })),
    }
}

/// Reads RFC 8693 §2.1's parameters: `subject_token` with its type, `actor_token` and its type
/// together or neither (the actor is always one of our access tokens), `requested_token_type`
/// absent or an access token (we issue nothing else, and never a refresh token).
pub fn parse_exchange_request(form: &Form) -> Result<ExchangeRequest<'_>, OAuthError> {
    let subject_token = form.require("subject_token")?;
    let subject_kind = kind(form.require("subject_token_type")?, "subject")?;
    let actor_token = match (form.get("actor_token"), form.get("actor_token_type")) {
        (Some(token), Some(t)) if kind(t, "actor")? == TokenKind::AccessToken => Some(token),
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "actor_token_type must be urn:ietf:params:oauth:token-type:access_token",
            ))
        }
        _ => {
            return Err(OAuthError::invalid_request(
                "actor_token and actor_token_type go together (RFC 8693 §2.1)",
            ))
        }
    };
    if let Some(t) = form.get("requested_token_type") {
        if t != ACCESS_TOKEN_TYPE && t != JWT_TOKEN_TYPE {
            return Err(OAuthError::new(
                ErrorCode::InvalidRequest,
                "requested_token_type: this server issues access tokens only",
            ));
        }
    }
    let mut audiences: Vec<&str> = form.get("audience").into_iter().collect();
    audiences.extend(form.get_all("resource"));
    Ok(ExchangeRequest {
        subject_token,
        subject_kind,
        actor_token,
        audiences,
    })
}

/// The new token's audiences: those asked for, each one the rule allows (`invalid_target`
/// otherwise), or all the rule's when none is asked for.
pub fn exchange_audiences(rule: &ExchangeRule, asked: &[&str]) -> Result<Vec<String>, OAuthError> {
    if asked.is_empty() {
        return Ok(rule.audiences.clone());
    }
    asked
        .iter()
        .map(|a| {
            if rule.audiences.iter().any(|r| r == a) {
                Ok((*a).to_owned())
            } else {
                Err(OAuthError::new(
                    ErrorCode::InvalidTarget,
                    "the requested audience is not one this exchange may be for",
                ))
            }
        })
        .collect()
}

/// The most the new token may carry: the subject token's scopes, narrowed to the rule's when
/// it names any.
pub fn exchange_scope_bound(
    rule: &ExchangeRule,
    subject: &ScopeSet,
) -> Result<ScopeSet, CoreError> {
    if rule.scopes.is_empty() {
        return Ok(subject.clone());
    }
    ScopeSet::from_tokens(rule.scopes.iter().filter(|s| subject.contains(s)).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> ExchangeRule {
        ExchangeRule {
            name: "gateway-for-devices".into(),
            clients: vec!["gateway-1".into()],
            subjects: vec!["meter-*".into()],
            audiences: vec![
                "https://historian.example".into(),
                "https://billing.example".into(),
            ],
            scopes: vec!["telemetry:write".into()],
            require_actor: true,
        }
    }

    fn form(body: &str) -> Form {
        Form::parse(body.as_bytes(), &["resource"]).unwrap()
    }

    #[test]
    fn a_rule_names_who_may_exchange_whose_tokens_and_with_an_actor_or_not() {
        let rules = [rule()];
        assert!(select_rule(&rules, "gateway-1", "meter-7", true).is_some());
        assert!(select_rule(&rules, "gateway-1", "meter-7", false).is_none());
        assert!(select_rule(&rules, "gateway-2", "meter-7", true).is_none());
        assert!(select_rule(&rules, "gateway-1", "valve-7", true).is_none());
        assert!(select_rule(&rules, "gateway-1", "xmeter-7", true).is_none());
        assert_eq!(validate_rules(&[rule(), rule()]).map_err(|_| ()), Err(()));
        let mut star = rule();
        star.subjects = vec!["**".into()];
        assert!(star.validate().is_err());
    }

    #[test]
    fn audiences_and_scopes_are_narrowed_by_the_rule() {
        let r = rule();
        assert_eq!(exchange_audiences(&r, &[]).unwrap().len(), 2);
        assert_eq!(
            exchange_audiences(&r, &["https://billing.example"]).unwrap(),
            ["https://billing.example"]
        );
        assert_eq!(
            exchange_audiences(&r, &["https://evil.example"])
                .unwrap_err()
                .code,
            ErrorCode::InvalidTarget
        );
        let subject = ScopeSet::parse("telemetry:write commands:read").unwrap();
        assert_eq!(
            exchange_scope_bound(&r, &subject).unwrap(),
            ScopeSet::parse("telemetry:write").unwrap()
        );
        let none = ScopeSet::parse("commands:read").unwrap();
        assert!(exchange_scope_bound(&r, &none).unwrap().is_empty());
    }

    #[test]
    fn the_request_parameters_follow_rfc_8693() {
        let ok = form("subject_token=a.b.c&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token&actor_token=d.e.f&actor_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token&audience=x&resource=y");
        let r = parse_exchange_request(&ok).unwrap();
        assert_eq!((r.subject_token, r.actor_token), ("a.b.c", Some("d.e.f")));
        assert_eq!(r.audiences, ["x", "y"]);
        for bad in [
            "subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token",
            "subject_token=a&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Asaml2",
            "subject_token=a&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt&actor_token=b",
            "subject_token=a&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt&actor_token=b&actor_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt",
            "subject_token=a&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt&requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Arefresh_token",
        ] {
            assert_eq!(
                parse_exchange_request(&form(bad)).unwrap_err().code,
                ErrorCode::InvalidRequest,
                "{bad}"
            );
        }
    }
}
