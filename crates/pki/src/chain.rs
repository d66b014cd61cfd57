//! Validating a certificate a client presented over TLS. The TLS layer accepts any
//! certificate (it only checks the handshake signature); these checks decide what it is
//! worth: issued by our issuing CA (or a configured manufacturer CA for IDevIDs), inside its
//! validity period, and — for ours — not revoked according to the store right now, never a
//! cached CRL.

use aws_lc_rs::digest;
use portcullis_core::device::DeviceId;
use portcullis_store::Store;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::PkiError;
use portcullis_core::hex::encode as hex;
use portcullis_core::serial::serial_key as serial_hex;

/// What a validated client certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedLeaf {
    pub serial: String,
    /// RFC 4514 form of the subject.
    pub subject_dn: String,
    pub common_names: Vec<String>,
    pub san_dns: Vec<String>,
    pub san_uri: Vec<String>,
    pub san_ip: Vec<String>,
    pub san_email: Vec<String>,
    pub sha256: [u8; 32],
    pub not_after: i64,
}

impl ValidatedLeaf {
    /// The device this certificate names (SAN URI `urn:portcullis:device:<id>`, else CN).
    pub fn device_id(&self) -> Option<DeviceId> {
        self.san_uri
            .iter()
            .find_map(|u| u.strip_prefix("urn:portcullis:device:"))
            .or_else(|| self.common_names.first().map(String::as_str))
            .and_then(|s| DeviceId::parse(s).ok())
    }
}

/// A trust anchor for client certificates: a CA certificate, parsed once.
#[derive(Debug, Clone)]
pub struct TrustAnchor {
    der: Vec<u8>,
}

impl TrustAnchor {
    pub fn new(der: Vec<u8>) -> Result<Self, PkiError> {
        X509Certificate::from_der(&der)
            .map_err(|_| PkiError::Ca("a trust anchor certificate does not parse".into()))?;
        Ok(Self { der })
    }

    /// Checks `leaf_der` was signed by this CA and is valid at `now`; returns what it says.
    pub fn verify(&self, leaf_der: &[u8], now: i64) -> Result<ValidatedLeaf, PkiError> {
        let bad = |why: &str| PkiError::Unauthorized(format!("client certificate refused: {why}"));
        // Parsed once at construction, so this cannot fail here.
        let (_, ca) = X509Certificate::from_der(&self.der)
            .map_err(|_| PkiError::Ca("trust anchor does not parse".into()))?;
        let (rest, leaf) = X509Certificate::from_der(leaf_der).map_err(|_| bad("not DER"))?;
        if !rest.is_empty() {
            return Err(bad("trailing bytes"));
        }
        if leaf.issuer().as_raw() != ca.subject().as_raw() {
            return Err(bad("not issued by a trusted CA"));
        }
        leaf.verify_signature(Some(ca.public_key()))
            .map_err(|_| bad("not issued by a trusted CA"))?;
        let validity = leaf.validity();
        if now < validity.not_before.timestamp() {
            return Err(bad("not yet valid"));
        }
        if now > validity.not_after.timestamp() {
            return Err(bad("expired"));
        }
        if leaf.is_ca() {
            return Err(bad("a CA certificate cannot authenticate a client"));
        }
        Ok(describe(&leaf, leaf_der))
    }
}

fn describe(leaf: &X509Certificate<'_>, der: &[u8]) -> ValidatedLeaf {
    let mut out = ValidatedLeaf {
        serial: serial_hex(leaf.raw_serial()),
        subject_dn: leaf.subject().to_string(),
        common_names: leaf
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
            .collect(),
        san_dns: Vec::new(),
        san_uri: Vec::new(),
        san_ip: Vec::new(),
        san_email: Vec::new(),
        sha256: [0; 32],
        not_after: leaf.validity().not_after.timestamp(),
    };
    out.sha256
        .copy_from_slice(digest::digest(&digest::SHA256, der).as_ref());
    for ext in leaf.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(d) => out.san_dns.push((*d).to_owned()),
                    GeneralName::URI(u) => out.san_uri.push((*u).to_owned()),
                    GeneralName::RFC822Name(e) => out.san_email.push((*e).to_owned()),
                    GeneralName::IPAddress(ip) => {
                        let text = match ip.len() {
                            4 => <[u8; 4]>::try_from(*ip)
                                .map(|b| std::net::IpAddr::from(b).to_string()),
                            16 => <[u8; 16]>::try_from(*ip)
                                .map(|b| std::net::IpAddr::from(b).to_string()),
                            _ => Ok(hex(ip)),
                        };
                        out.san_ip.push(text.unwrap_or_default());
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

/// Validates a certificate our issuing CA issued: signature, dates, and the store's current
/// revocation state (a certificate the store does not know is refused too).
pub async fn validate_issued(
    anchor: &TrustAnchor,
    store: &dyn Store,
    leaf_der: &[u8],
    now: i64,
) -> Result<ValidatedLeaf, PkiError> {
    let leaf = anchor.verify(leaf_der, now)?;
    match store.get_certificate(&leaf.serial).await? {
        Some(stored) if stored.revoked_at.is_some() => Err(PkiError::Unauthorized(
            "client certificate refused: revoked".into(),
        )),
        Some(stored) if stored.sha256 == hex(&leaf.sha256) => Ok(leaf),
        _ => Err(PkiError::Unauthorized(
            "client certificate refused: not issued by this CA".into(),
        )),
    }
}

/// The issuing CA's trust anchor and the store, checking client certificates for RFC 8705
/// `tls_client_auth` (the server adapts this to the OAuth crate's validator port).
pub struct IssuedCertificateValidator {
    pub anchor: TrustAnchor,
    pub store: std::sync::Arc<dyn Store>,
}

impl IssuedCertificateValidator {
    /// Validates the leaf of `chain`; the reason for a refusal is for the log only.
    pub async fn validate(&self, chain: &[Vec<u8>], now: i64) -> Result<ValidatedLeaf, PkiError> {
        let leaf = chain
            .first()
            .ok_or_else(|| PkiError::Unauthorized("no client certificate".into()))?;
        validate_issued(&self.anchor, self.store.as_ref(), leaf, now).await
    }
}
