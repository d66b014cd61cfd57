//! Workload federation: the JWT bearer grant (RFC 7523 §2.1) and the SAML 2.0 bearer
//! assertion grant (RFC 7522). A workload presents a token its platform issued (Kubernetes
//! service account, CI job, SPIFFE JWT-SVID) or an assertion its enterprise identity provider
//! signed; if a trusted issuer signed it and a trust policy maps its claims to a client, it
//! gets a Portcullis token for that client that names the outside subject and lives no longer
//! than the outside token.
//!
//! The trust in force is the configuration's (`[[federation.issuers]]`,
//! `[[federation.policies]]`, fixed for the node's life) followed by the admin API's, kept in
//! one store setting so every node applies the same; a node reloads it when the change feed
//! announces the setting (on SQLite there is one node, which reloads itself).

mod grant;
mod saml;
mod trust;

pub use grant::FederatedGrant;
pub use trust::{check_configured, FederationTrust, TrustError, TrustSet, TRUST_SETTING};
