//! Identifiers that carry meaning, so a key id can never be passed where a client id belongs.

use crate::CoreError;
use serde::{Deserialize, Serialize};

/// Characters allowed in identifiers: URL-safe and safe in logs, headers and file names.
fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@')
}

fn validate_id(what: &'static str, s: &str) -> Result<(), CoreError> {
    if s.is_empty() || s.len() > 128 {
        return Err(CoreError::invalid(what, "must be 1 to 128 characters"));
    }
    if !s.chars().all(is_id_char) {
        return Err(CoreError::invalid(
            what,
            "may contain only A-Z a-z 0-9 - _ . : @",
        ));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps an identifier.
            pub fn parse(s: impl Into<String>) -> Result<Self, CoreError> {
                let s = s.into();
                validate_id($what, &s)?;
                Ok(Self(s))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = CoreError;
            fn try_from(s: String) -> Result<Self, CoreError> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// The `client_id` of a registered machine client (RFC 6749 §2.2).
    ClientId,
    "client_id"
);
id_type!(
    /// A JWK key id (`kid`, RFC 7517 §4.5).
    Kid,
    "kid"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_rejects_empty_long_and_odd_characters() {
        assert!(ClientId::parse("sensor-42.plant:a").is_ok());
        assert!(ClientId::parse("").is_err());
        assert!(ClientId::parse("x".repeat(129)).is_err());
        assert!(ClientId::parse("a b").is_err());
        assert!(ClientId::parse("a\nb").is_err());
        assert!(ClientId::parse("é").is_err());
    }

    #[test]
    fn ids_deserialize_through_validation() {
        assert!(serde_json::from_str::<Kid>("\"k1\"").is_ok());
        assert!(serde_json::from_str::<Kid>("\"k 1\"").is_err());
    }
}
