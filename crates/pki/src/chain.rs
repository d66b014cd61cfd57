//! Validating a certificate a client presented over TLS. The TLS layer accepts any
//! certificate (it only checks the handshake signature); these checks decide what it is
//! worth: issued by our issuing CA (or a configured manufacturer CA for IDevIDs), inside its
//! validity period, and — for ours — not revoked according to the store right now, never a
//! cached CRL.

use aws_lc_rs::digest;
use portcullis_core::device::DeviceId;
use portcullis_core::hex;
use portcullis_core::serial::serial_key;
use portcullis_store::Store;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::PkiError;

/// What a validated client certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedLeaf {
    pub serial: String,
    /// Subject common names, for the device id when no SAN URI names it.
    pub common_names: Vec<String>,
    /// uniformResourceIdentifier SAN entries (`urn:portcullis:device:<id>`).
    pub san_uri: Vec<String>,
    /// Lowercase hex SHA-256 of the DER, as the store records it.
    pub sha256: String,
    pub not_after: i64,
    /// Whether its extended key usage allows TLS client authentication (`clientAuth`, or
    /// `anyExtendedKeyUsage`); false without the extension, since every certificate our CA
    /// issues to a client carries it.
    pub client_auth: bool,
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
        let bad =
            |why: &str| PkiError::NotAuthenticated(format!("client certificate refused: {why}"));
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

/// What the PKI itself reads of a leaf: its serial, and the names that say which device it
/// is. The full set of names (subject DN, every SAN type) is read for RFC 8705 matching by
/// `oauth::mtls::ValidatedCertificate`, the one place that formats them.
fn describe(leaf: &X509Certificate<'_>, der: &[u8]) -> ValidatedLeaf {
    let san_uri = leaf
        .extensions()
        .iter()
        .filter_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => Some(san),
            _ => None,
        })
        .flat_map(|san| san.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(u) => Some((*u).to_owned()),
            _ => None,
        })
        .collect();
    ValidatedLeaf {
        serial: serial_key(leaf.raw_serial()),
        common_names: leaf
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
            .collect(),
        san_uri,
        sha256: hex::encode(digest::digest(&digest::SHA256, der).as_ref()),
        not_after: leaf.validity().not_after.timestamp(),
        client_auth: matches!(
            leaf.extended_key_usage(),
            Ok(Some(eku)) if eku.value.client_auth || eku.value.any
        ),
    }
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
        Some(stored) if stored.revoked_at.is_some() => Err(PkiError::NotAuthenticated(
            "client certificate refused: revoked".into(),
        )),
        Some(stored) if stored.sha256 == leaf.sha256 => Ok(leaf),
        _ => Err(PkiError::NotAuthenticated(
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
    /// Validates the leaf of `chain` for client authentication: issued by our CA, unrevoked,
    /// and meant for TLS clients (EKU `clientAuth`) — so the node's own HTTPS server
    /// certificate, from the same CA, never authenticates a client. The reason for a refusal
    /// is for the log only.
    pub async fn validate(&self, chain: &[Vec<u8>], now: i64) -> Result<ValidatedLeaf, PkiError> {
        let leaf = chain
            .first()
            .ok_or_else(|| PkiError::NotAuthenticated("no client certificate".into()))?;
        let leaf = validate_issued(&self.anchor, self.store.as_ref(), leaf, now).await?;
        if !leaf.client_auth {
            return Err(PkiError::NotAuthenticated(
                "client certificate refused: its extended key usage does not include clientAuth"
                    .into(),
            ));
        }
        Ok(leaf)
    }

    /// The leaf of `chain` if it is a certificate our CA issued (signature and dates good, the
    /// very certificate the store holds) that is revoked: for naming the device that still
    /// presents it after a refusal (attack detection), never for admitting anything.
    pub async fn revoked_leaf(&self, chain: &[Vec<u8>], now: i64) -> Option<ValidatedLeaf> {
        let leaf = self.anchor.verify(chain.first()?, now).ok()?;
        let stored = self.store.get_certificate(&leaf.serial).await.ok()??;
        (stored.revoked_at.is_some() && stored.sha256 == leaf.sha256).then_some(leaf)
    }
}
