//! The HTTP layer every Portcullis surface shares.
//!
//! The OAuth endpoints, EST and OCSP, the admin API and the gateway all read credentials
//! from headers, check media types, read bounded bodies, resolve the caller's address behind
//! proxies, limit abusive sources, pick up the TLS peer's certificates and answer errors that
//! must not be cached.
//! Each of those is written once here (as kanidm keeps its extractors in one place), so a
//! fix to one reaches every surface and two surfaces cannot disagree. Protocol rules stay in
//! the protocol crates; what is here is HTTP only.

pub mod abuse;
pub mod body;
pub mod credentials;
pub mod media_type;
pub mod no_store;
pub mod peer;
pub mod presentation;
pub mod problem;
pub mod source;

pub use abuse::{AbuseLimits, Limited};
pub use body::{read_bounded, BodyError};
pub use credentials::{
    access_token, basic_credentials, bearer_token, dpop_proof, BasicCredentials,
    MalformedCredentials, TokenScheme,
};
pub use media_type::{has_media_type, is_json};
pub use no_store::{insert_no_store, NO_STORE};
pub use peer::PeerCertificates;
pub use presentation::{
    insert_dpop_challenge, presented_access_token, DpopPresentation, Presentation,
};
pub use problem::{Problem, PROBLEM_JSON};
pub use source::{client_address, SourceAddr};
