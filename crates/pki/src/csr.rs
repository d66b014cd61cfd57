//! Checking a device's PKCS#10 request (RFC 2986) before anything is issued from it: the
//! signature proves possession of the key, the names must be the registered device's and
//! nobody else's, and the key must meet the profile. Only the public key is taken from the
//! request; every other field of the certificate comes from the profile, so a device cannot
//! ask for CA rights, extra names or a longer life.

use portcullis_core::device::DeviceId;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::profile::{CertificateProfile, KeyType};
use crate::PkiError;

/// Largest CSR accepted (an RSA-4096 request is about 1.7 KiB).
pub const MAX_CSR_BYTES: usize = 8 * 1024;

/// The public key of a checked request, as rcgen writes it into the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectKey {
    pub key_type: KeyType,
    /// RSA modulus size in bits (0 for other keys).
    pub bits: usize,
    algorithm: &'static rcgen::SignatureAlgorithm,
    raw: Vec<u8>,
}

impl rcgen::PublicKeyData for SubjectKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.algorithm
    }
}

/// A request that passed every check.
#[derive(Debug, Clone)]
pub struct CheckedCsr {
    pub device_id: DeviceId,
    pub key: SubjectKey,
}

/// What the request names: its CN (if any) and its SAN URIs.
#[derive(Debug, Default)]
struct Names {
    common_names: Vec<String>,
    uris: Vec<String>,
    other_sans: usize,
}

/// Parses and checks `der` as a request from `device`.
///
/// When `device` is `None` the device is taken from the request itself (the caller then
/// authenticates it); the request must still name exactly one device.
pub fn check_csr(
    der: &[u8],
    device: Option<&DeviceId>,
    profile: &CertificateProfile,
) -> Result<CheckedCsr, PkiError> {
    if der.len() > MAX_CSR_BYTES {
        return Err(PkiError::Invalid(format!(
            "certificate request larger than {MAX_CSR_BYTES} bytes"
        )));
    }
    let (rest, csr) = X509CertificationRequest::from_der(der)
        .map_err(|_| PkiError::Invalid("not a DER PKCS#10 certificate request".into()))?;
    if !rest.is_empty() {
        return Err(PkiError::Invalid(
            "trailing bytes after the certificate request".into(),
        ));
    }
    let key = subject_key(&csr, profile)?;
    // Proof of possession (RFC 7030 §3.4 relies on the PKCS#10 self-signature).
    csr.verify_signature().map_err(|_| {
        PkiError::Invalid("the request's signature does not verify (no proof of possession)".into())
    })?;
    let names = names(&csr)?;
    let device_id = named_device(&names, device)?;
    Ok(CheckedCsr { device_id, key })
}

fn subject_key(
    csr: &X509CertificationRequest<'_>,
    profile: &CertificateProfile,
) -> Result<SubjectKey, PkiError> {
    let spki = &csr.certification_request_info.subject_pki;
    let raw = spki.subject_public_key.data.to_vec();
    let parsed = spki
        .parsed()
        .map_err(|_| PkiError::Invalid("the request's public key cannot be parsed".into()))?;
    let (key_type, bits, algorithm) = match parsed {
        PublicKey::RSA(rsa) => {
            let bits = rsa.key_size();
            if bits < profile.min_rsa_bits {
                return Err(PkiError::Invalid(format!(
                    "RSA key of {bits} bits is too weak; at least {} required",
                    profile.min_rsa_bits
                )));
            }
            (KeyType::Rsa, bits, &rcgen::PKCS_RSA_SHA256)
        }
        PublicKey::EC(_) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string())
                .unwrap_or_default();
            match curve.as_str() {
                "1.2.840.10045.3.1.7" => (KeyType::P256, 0, &rcgen::PKCS_ECDSA_P256_SHA256),
                "1.3.132.0.34" => (KeyType::P384, 0, &rcgen::PKCS_ECDSA_P384_SHA384),
                _ => {
                    return Err(PkiError::Invalid(
                        "elliptic-curve keys must be on P-256 or P-384".into(),
                    ))
                }
            }
        }
        _ if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" => {
            if raw.len() != 32 {
                return Err(PkiError::Invalid("malformed Ed25519 public key".into()));
            }
            (KeyType::Ed25519, 0, &rcgen::PKCS_ED25519)
        }
        _ => {
            return Err(PkiError::Invalid(
                "unsupported key type; use P-256, P-384, Ed25519 or RSA".into(),
            ))
        }
    };
    if !profile.allowed_keys.contains(&key_type) {
        return Err(PkiError::Invalid(format!(
            "{} keys are not allowed by the certificate profile",
            key_type.as_str()
        )));
    }
    Ok(SubjectKey {
        key_type,
        bits,
        algorithm,
        raw,
    })
}

fn names(csr: &X509CertificationRequest<'_>) -> Result<Names, PkiError> {
    let mut names = Names::default();
    for cn in csr.certification_request_info.subject.iter_common_name() {
        let cn = cn
            .as_str()
            .map_err(|_| PkiError::Invalid("the subject CN is not a string".into()))?;
        names.common_names.push(cn.to_owned());
    }
    if let Some(extensions) = csr.requested_extensions() {
        for ext in extensions {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                for name in &san.general_names {
                    match name {
                        GeneralName::URI(uri) => names.uris.push((*uri).to_owned()),
                        _ => names.other_sans += 1,
                    }
                }
            }
        }
    }
    Ok(names)
}

/// The one device the request names, which must be `expected` when given.
fn named_device(names: &Names, expected: Option<&DeviceId>) -> Result<DeviceId, PkiError> {
    const PREFIX: &str = "urn:portcullis:device:";
    if names.other_sans > 0 {
        return Err(PkiError::Invalid(
            "the request asks for subject alternative names other than the device URI".into(),
        ));
    }
    let mut claimed: Vec<&str> = names.common_names.iter().map(String::as_str).collect();
    for uri in &names.uris {
        match uri.strip_prefix(PREFIX) {
            Some(id) => claimed.push(id),
            None => {
                return Err(PkiError::Invalid(format!(
                    "the request names {uri:?}, which is not a device URI ({PREFIX}<id>)"
                )))
            }
        }
    }
    let Some(first) = claimed.first() else {
        return Err(PkiError::Invalid(
            "the request names no device: set the subject CN (or a SAN URI) to the device id"
                .into(),
        ));
    };
    if claimed.iter().any(|c| c != first) {
        return Err(PkiError::Invalid(
            "the request names more than one device".into(),
        ));
    }
    let named = DeviceId::parse(*first)
        .map_err(|_| PkiError::Invalid("the request's subject is not a valid device id".into()))?;
    match expected {
        Some(expected) if *expected != named => Err(PkiError::NotPermitted(format!(
            "the request names device {named}, but the caller authenticated as {expected}"
        ))),
        _ => Ok(named),
    }
}

#[cfg(test)]
mod tests;
