//! The OCSP responder (RFC 6960) for the certificates the issuing intermediate signed.
//!
//! Relying parties (and devices stapling their own status) ask "is serial S of issuer I
//! revoked?"; the answer comes from the store, the one source of revocation truth, so every
//! node answers alike. The issuing CA signs its own responses (RFC 6960 §2.2, first case:
//! "the CA who issued the certificate in question"), so no delegated responder certificate
//! exists and responses carry no `certs`.
//!
//! - [`request`]: decoding the DER request (POST body, or the base64 GET path of §A.1).
//! - [`response`]: the DER we answer with: a signed `BasicOCSPResponse`, or an unsigned
//!   error status (§2.3).
//! - [`status`]: where a serial's status comes from ([`CertificateStatusSource`]; the
//!   production source reads the [`portcullis_store::Store`]).
//! - [`responder`]: [`OcspResponder`], which checks the issuer, looks statuses up, signs, and
//!   keeps pre-signed responses for the common nonce-free single-certificate request
//!   (RFC 5019's profile), through [`cache`].
//! - [`http`]: the axum routes, `GET /ocsp/{base64}` and `POST /ocsp` (§A.1).

mod cache;
pub mod http;
pub mod request;
pub mod responder;
pub mod response;
pub mod status;
#[cfg(test)]
mod test_support;

pub use http::router;
pub use request::{
    decode_get, parse_request, HashAlgorithm, OcspError, OcspRequestInfo, RequestedCert,
    MAX_CERT_IDS, MAX_NONCE_LEN, MAX_REQUEST_BYTES,
};
pub use responder::{OcspConfig, OcspReply, OcspResponder, DEFAULT_FRESH_SIGNATURES_PER_SEC};
pub use status::{CertificateStatus, CertificateStatusSource, StoreStatusSource};
