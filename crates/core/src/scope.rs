//! Scopes (RFC 6749 §3.3) and the rule that narrows a request to what a client may have.

use crate::{CoreError, ErrorCode, OAuthError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
fn is_scope_char(c: char) -> bool {
    matches!(c, '\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')
}

/// A set of scope tokens, kept sorted so the `scope` claim is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct ScopeSet(BTreeSet<String>);

impl ScopeSet {
    /// Parses a space-delimited `scope` parameter.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        Self::from_tokens(s.split(' ').filter(|t| !t.is_empty()).map(str::to_owned))
    }

    /// Builds a set from individual tokens, validating each.
    pub fn from_tokens(tokens: impl IntoIterator<Item = String>) -> Result<Self, CoreError> {
        let mut set = BTreeSet::new();
        for t in tokens {
            if t.is_empty() || t.len() > 256 || !t.chars().all(is_scope_char) {
                return Err(CoreError::invalid("scope", "each scope token must be 1-256 printable ASCII characters without space, '\"' or '\\'"));
            }
            set.insert(t);
        }
        Ok(Self(set))
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The space-delimited form used in the `scope` claim and responses.
    pub fn to_space_delimited(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(s);
        }
        out
    }
}

impl TryFrom<Vec<String>> for ScopeSet {
    type Error = CoreError;
    fn try_from(v: Vec<String>) -> Result<Self, CoreError> {
        Self::from_tokens(v)
    }
}

impl From<ScopeSet> for Vec<String> {
    fn from(s: ScopeSet) -> Vec<String> {
        s.0.into_iter().collect()
    }
}

/// The scopes to grant: with no request, everything the client is allowed (RFC 6749 §3.3
/// lets the server apply a default); with a request, exactly the requested scopes, which
/// must all be allowed, otherwise `invalid_scope`.
pub fn grant_scopes(requested: Option<&str>, allowed: &ScopeSet) -> Result<ScopeSet, OAuthError> {
    let Some(requested) = requested else {
        return Ok(allowed.clone());
    };
    let requested = ScopeSet::parse(requested)
        .map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e.to_string()))?;
    if requested.is_empty() {
        return Ok(allowed.clone());
    }
    if let Some(denied) = requested.iter().find(|s| !allowed.contains(s)) {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            format!("scope '{denied}' is not allowed for this client"),
        ));
    }
    Ok(requested)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> ScopeSet {
        ScopeSet::parse(s).unwrap()
    }

    #[test]
    fn no_request_grants_all_allowed() {
        assert_eq!(grant_scopes(None, &set("a b")).unwrap(), set("a b"));
        assert_eq!(grant_scopes(Some(""), &set("a b")).unwrap(), set("a b"));
    }

    #[test]
    fn request_is_narrowed_to_exactly_what_was_asked() {
        assert_eq!(grant_scopes(Some("b"), &set("a b")).unwrap(), set("b"));
    }

    #[test]
    fn request_for_unallowed_scope_is_invalid_scope() {
        let e = grant_scopes(Some("a c"), &set("a b")).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidScope);
        assert!(e.description.contains("'c'"));
    }

    #[test]
    fn illegal_scope_characters_are_rejected() {
        assert!(ScopeSet::parse("a\"b").is_err());
        assert!(ScopeSet::parse("a\\b").is_err());
        assert!(ScopeSet::parse("caf\u{e9}").is_err());
        assert_eq!(
            grant_scopes(Some("a\tb"), &set("a")).unwrap_err().code,
            ErrorCode::InvalidScope
        );
    }

    #[test]
    fn space_delimited_form_is_sorted_and_deduplicated() {
        assert_eq!(set("b a b").to_space_delimited(), "a b");
    }
}
