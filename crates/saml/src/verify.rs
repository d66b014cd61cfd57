//! The XML signature check, by libxmlsec1 through `samael` (feature `xmlsec`).

use portcullis_core::saml::SamlAssertion;

use crate::{read_signed, Inspected, SamlError};

/// Whether this build verifies SAML signatures (feature `xmlsec`).
pub const SUPPORTED: bool = cfg!(feature = "xmlsec");

/// Verifies the signature of an assertion that passed [`inspect`](crate::inspect) with the
/// identity provider's certificates (DER; the first that verifies wins), then reads the
/// assertion from the signed bytes alone. Blocking (libxmlsec1): call it off the async
/// executor.
pub fn verify(
    xml: &str,
    inspected: &Inspected,
    certificates: &[Vec<u8>],
) -> Result<SamlAssertion, SamlError> {
    let signed = signed_bytes(xml, certificates)?;
    read_signed(&signed, &inspected.id)
}

#[cfg(feature = "xmlsec")]
fn signed_bytes(xml: &str, certificates: &[Vec<u8>]) -> Result<String, SamlError> {
    use samael::crypto::{
        AllowedSignatureAlgorithm as Alg, CertificateDer, CryptoProvider, ReduceMode, XmlSec,
    };
    // The same list the structure check holds, as samael names them: it enforces it again
    // inside libxmlsec1's verification.
    const ALLOWED: [Alg; 6] = [
        Alg::RsaSha256,
        Alg::RsaSha384,
        Alg::RsaSha512,
        Alg::EcdsaSha256,
        Alg::EcdsaSha384,
        Alg::EcdsaSha512,
    ];
    let certificates: Vec<CertificateDer> = certificates
        .iter()
        .cloned()
        .map(CertificateDer::from)
        .collect();
    XmlSec::reduce_xml_to_signed_with_allowed_algorithms(
        xml,
        &certificates,
        ReduceMode::PreDigest,
        Some(&ALLOWED),
    )
    .map_err(|_| SamlError::BadSignature)
}

#[cfg(not(feature = "xmlsec"))]
fn signed_bytes(_xml: &str, _certificates: &[Vec<u8>]) -> Result<String, SamlError> {
    Err(SamlError::Unsupported)
}
