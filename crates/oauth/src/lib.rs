//! OAuth 2.0 endpoints for machines: the token endpoint (client_credentials, RFC 6749 §4.4),
//! introspection (RFC 7662), revocation (RFC 7009), JWKS and discovery (RFC 8414).
//!
//! One file per endpoint, each handler thin over rules in `portcullis-core`; client
//! authentication in `client_auth.rs` (with the keys of `private_key_jwt` clients in
//! `client_keys.rs`); abuse limits from `portcullis_http::abuse`; the RFC 6749 §5.2 error edge in
//! `error.rs`; the routes and shared request extractors in `router.rs`; RFC 8705 mutual-TLS
//! client authentication and certificate-bound tokens in `mtls.rs`.

mod bound_use;
pub mod client_auth;
pub mod client_keys;
mod client_registry;
pub mod discovery;
pub mod dpop;
pub mod error;
pub mod federation;
pub mod fetch_guard;
pub mod introspect;
mod issued_metrics;
pub mod jwks;
pub mod mtls;
pub mod revoke;
pub mod router;
pub mod state;
pub mod token;
mod token_exchange;

pub use client_auth::{AuthenticatedClient, Credentials};
pub use dpop::DpopSettings;
pub use error::Error;
pub use mtls::{CertificateValidator, PeerCertificates, ValidatedCertificate};
pub use portcullis_ports::TokenRejection;
pub use router::router;
pub use state::{AuthServer, OAuthSettings};
