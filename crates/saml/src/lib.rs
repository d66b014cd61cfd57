//! SAML 2.0 bearer assertions for the RFC 7522 grant, read so that what is believed is exactly
//! what the identity provider signed.
//!
//! XML signatures fail in practice not in the cryptography but in the gap between the element
//! whose digest was checked and the element the application reads (signature wrapping), and in
//! the XML parser itself (entities, DTDs). So an assertion goes through three steps:
//!
//! 1. [`inspect`]: the received document, parsed by `roxmltree` (which refuses any DTD, hence
//!    any entity), must have the one shape a bearer assertion has — an `<Assertion>` root with
//!    one `<Signature>` directly under it, one `<Reference>` to the root's `ID`, only the
//!    enveloped-signature and exclusive-c14n transforms, SHA-2 algorithms, no comments, no
//!    processing instructions, no nested or encrypted assertions, no duplicate IDs.
//! 2. [`verify`]: libxmlsec1 (through `samael`, feature `xmlsec`) checks the signature with the
//!    identity provider's pinned certificates only (a `KeyInfo` certificate is never trusted)
//!    and hands back its *pre-digest* bytes: the canonical form of the element that was hashed.
//! 3. Those bytes, and only those, are parsed again and read into a
//!    [`SamlAssertion`](portcullis_core::saml::SamlAssertion), whose rules live in the core.
//!
//! Why libxmlsec1: it is the XML-DSig implementation behind most SAML deployments that are not
//! Java or .NET (xmlsec1, python-xmlsec, PHP and Ruby SAML toolkits), maintained since 2002,
//! with its own test suite of the W3C interop vectors; `samael` is the maintained Rust binding
//! that exposes its verified references. Writing our own canonicalisation would be the riskiest
//! code in the product.

mod signed;
mod structure;
mod verify;
mod xml;

use base64::Engine as _;

pub use signed::read_signed;
pub use structure::{inspect, Inspected};
pub use verify::{verify, SUPPORTED};

/// Largest accepted assertion, decoded: real ones are a few kilobytes.
pub const MAX_ASSERTION_BYTES: usize = 64 * 1024;

/// Why an assertion is refused. Each names the rule that failed, never a value from the
/// assertion (which may be an attacker's and ends up in logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SamlError {
    #[error("the assertion must be base64url-encoded UTF-8 XML (RFC 7522 §2.1)")]
    Encoding,
    #[error("the assertion is larger than 64 KiB")]
    TooLarge,
    #[error("the assertion is not well-formed XML")]
    Malformed,
    #[error("the assertion has a DTD; DTDs and entities are refused")]
    Dtd,
    #[error("the assertion contains XML comments or processing instructions; they are refused (a comment can split a signed value such as NameID)")]
    CommentOrInstruction,
    #[error(
        "a samlp:Response is not accepted: send the signed saml:Assertion itself (RFC 7522 §2.1)"
    )]
    Response,
    #[error("the document is not a saml:Assertion")]
    NotAnAssertion,
    #[error("encrypted assertions, identifiers and attributes are not supported")]
    Encrypted,
    #[error("an assertion may not contain other assertions")]
    NestedAssertion,
    #[error("the assertion's ID attributes are missing, duplicated or shadowed by xml:id")]
    Ids,
    #[error("the assertion is not signed")]
    Unsigned,
    #[error("{0}")]
    SignatureShape(&'static str),
    #[error("{0}")]
    Structure(&'static str),
    #[error("the assertion's signature does not verify with its identity provider's certificates")]
    BadSignature,
    #[error(
        "this build of Portcullis has no SAML signature verification (build with --features saml)"
    )]
    Unsupported,
}

/// Decodes the grant's `assertion` parameter: base64url, padding optional, no line breaks.
pub fn decode_param(assertion: &str) -> Result<String, SamlError> {
    if assertion.len() > MAX_ASSERTION_BYTES / 3 * 4 + 4 {
        return Err(SamlError::TooLarge);
    }
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = engine.decode(assertion).map_err(|_| SamlError::Encoding)?;
    if bytes.len() > MAX_ASSERTION_BYTES {
        return Err(SamlError::TooLarge);
    }
    String::from_utf8(bytes).map_err(|_| SamlError::Encoding)
}

/// The DER bytes of each `CERTIFICATE` block of a PEM text.
pub fn pem_certificates(pem: &str) -> Result<Vec<Vec<u8>>, SamlError> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(BEGIN) {
        let body = rest.get(start + BEGIN.len()..).unwrap_or_default();
        let end = body.find(END).ok_or(SamlError::Encoding)?;
        let b64: String = body
            .get(..end)
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        out.push(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| SamlError::Encoding)?,
        );
        rest = body.get(end + END.len()..).unwrap_or_default();
    }
    if out.is_empty() {
        return Err(SamlError::Encoding);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
