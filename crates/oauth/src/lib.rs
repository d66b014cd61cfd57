//! OAuth 2.0 endpoints for machines: the token endpoint (client_credentials, RFC 6749 §4.4),
//! introspection (RFC 7662), revocation (RFC 7009), JWKS and discovery (RFC 8414).
//!
//! One file per endpoint, each handler thin over rules in `portcullis-core`; client
//! authentication in `client_auth.rs`; the RFC 6749 §5.2 error edge in `error.rs`.

pub mod state;

pub use state::{AuthServer, OAuthSettings};
