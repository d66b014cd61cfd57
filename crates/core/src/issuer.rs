//! Which issuer a node uses when several nodes share one store.
//!
//! Every node must sign and check the same `iss`: a node whose issuer differs from its peers'
//! calls their tokens inactive, silently. So a shared store keeps the issuer of the first
//! node that started on it, later nodes use it unless they configure one, and a node that
//! configures a different one refuses to start instead of splitting the cluster (unless the
//! operator says it is moving the cluster to a new issuer).

/// What to do with the store's issuer setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerDecision {
    /// Use this issuer; the store already holds it.
    Use(String),
    /// Record this issuer if the store still holds none, then use whichever the store holds
    /// (a node that raced this one may have recorded its own first).
    Record(String),
    /// Replace the stored issuer with this one (the operator adopts a new issuer).
    Replace(String),
}

/// A configured issuer that differs from the one the shared store holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the configured issuer {configured:?} differs from {stored:?}, which the store's other nodes \
     use; set [server] issuer to {stored:?} on this node (or leave it unset), or move every node \
     to the new issuer by starting one with `serve --adopt-issuer` (tokens issued under the old \
     issuer then stop being accepted)"
)]
pub struct IssuerConflict {
    pub configured: String,
    pub stored: String,
}

/// Decides the issuer from the configured one, the stored one and this node's default
/// (`http://<listen address>`); `adopt` is `serve --adopt-issuer`.
pub fn decide_issuer(
    configured: Option<&str>,
    stored: Option<&str>,
    default: &str,
    adopt: bool,
) -> Result<IssuerDecision, IssuerConflict> {
    match (configured, stored) {
        (Some(c), Some(s)) if c == s => Ok(IssuerDecision::Use(c.to_owned())),
        (Some(c), Some(_)) if adopt => Ok(IssuerDecision::Replace(c.to_owned())),
        (Some(c), Some(s)) => Err(IssuerConflict {
            configured: c.to_owned(),
            stored: s.to_owned(),
        }),
        (Some(c), None) => Ok(IssuerDecision::Record(c.to_owned())),
        (None, Some(s)) => Ok(IssuerDecision::Use(s.to_owned())),
        (None, None) => Ok(IssuerDecision::Record(default.to_owned())),
    }
}

/// After a [`IssuerDecision::Record`]: the issuer the store holds now must be the configured
/// one, if one is configured (a node configured differently may have won the race).
pub fn check_recorded(configured: Option<&str>, recorded: &str) -> Result<(), IssuerConflict> {
    match configured {
        Some(c) if c != recorded => Err(IssuerConflict {
            configured: c.to_owned(),
            stored: recorded.to_owned(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = "http://127.0.0.1:8080";

    #[test]
    fn the_first_node_records_its_issuer_and_later_ones_use_it() {
        assert_eq!(
            decide_issuer(None, None, DEFAULT, false),
            Ok(IssuerDecision::Record(DEFAULT.into()))
        );
        assert_eq!(
            decide_issuer(Some("https://a"), None, DEFAULT, false),
            Ok(IssuerDecision::Record("https://a".into()))
        );
        assert_eq!(
            decide_issuer(None, Some("https://a"), DEFAULT, false),
            Ok(IssuerDecision::Use("https://a".into()))
        );
        assert_eq!(
            decide_issuer(Some("https://a"), Some("https://a"), DEFAULT, true),
            Ok(IssuerDecision::Use("https://a".into()))
        );
    }

    #[test]
    fn a_different_configured_issuer_is_refused_unless_adopted() {
        let refused = decide_issuer(Some("https://b"), Some("https://a"), DEFAULT, false);
        let message = refused.unwrap_err().to_string();
        assert!(
            message.contains("https://b") && message.contains("https://a"),
            "{message}"
        );
        assert_eq!(
            decide_issuer(Some("https://b"), Some("https://a"), DEFAULT, true),
            Ok(IssuerDecision::Replace("https://b".into()))
        );
    }

    #[test]
    fn losing_the_race_to_a_differently_configured_node_is_a_conflict() {
        assert!(check_recorded(Some("https://b"), "https://a").is_err());
        assert!(check_recorded(Some("https://a"), "https://a").is_ok());
        assert!(check_recorded(None, "https://a").is_ok());
    }
}
