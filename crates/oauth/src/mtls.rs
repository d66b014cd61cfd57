//! RFC 8705: OAuth 2.0 mutual-TLS client authentication and certificate-bound access tokens.
//!
//! The TLS listener (in the `server` crate) asks every client for a certificate but accepts
//! any at the TLS layer; it hands the chain the client presented to the handlers as a
//! [`PeerCertificates`] request extension. Whether that chain is trusted is decided here,
//! per request, for the clients that authenticate with it:
//!
//! - `tls_client_auth` (§2.1): a [`CertificateValidator`] (implemented over the device PKI:
//!   chain to the issuing CA, validity dates, revocation state from the store) says the chain
//!   is good and what names the leaf carries; the client is who it claims to be if those names
//!   contain the one it registered (`TlsClientAuthMatch`).
//! - `self_signed_tls_client_auth` (§2.2): the leaf is byte for byte one of the certificates
//!   the client registered in its `jwks` (`x5c`), and within its validity dates.
//!
//! Whatever the method, a token requested over a connection with a client certificate is
//! bound to it (§3): `cnf.x5t#S256` is the SHA-256 of the leaf.

use portcullis_core::CoreError;
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::pin::Pin;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis_core::client::{
    dn_short_name, escape_dn_value, registered_certificates, CertificateNames, Client,
};
use portcullis_core::token::Confirmation;
use portcullis_core::UnixTime;
use x509_parser::asn1_rs::{Any, Tag, ToDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

/// The DER certificate chain the client presented over TLS, leaf first; the TLS listener
/// inserts it as a request extension (defined in `core` so EST reads the same type).
pub use portcullis_http::PeerCertificates;

/// RFC 8705 §3.1 confirmation of a token bound to the leaf certificate; `None` for an empty
/// chain.
pub fn confirmation(peer: &PeerCertificates) -> Option<Confirmation> {
    peer.leaf().map(|leaf| Confirmation {
        x5t_s256: Some(x5t_s256(leaf)),
        jkt: None,
    })
}

/// RFC 8705 §3: whether a token may be used over a connection that presented the client
/// certificate `presented` (leaf, DER). An unbound token may be used over any connection; a
/// bound one only over a connection presenting the certificate its `cnf.x5t#S256` names
/// (compared in constant time, as the thumbprint is what an attacker would try to match).
pub fn binding_holds(
    claims: &portcullis_core::token::AccessTokenClaims,
    presented: Option<&[u8]>,
) -> bool {
    let Some(bound) = claims.cnf.as_ref().and_then(|c| c.x5t_s256.as_deref()) else {
        return true;
    };
    presented.is_some_and(|leaf| {
        aws_lc_rs::constant_time::verify_slices_are_equal(
            x5t_s256(leaf).as_bytes(),
            bound.as_bytes(),
        )
        .is_ok()
    })
}

/// SHA-256 of a DER certificate.
pub fn sha256(der: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// RFC 8705 §3.1 `x5t#S256`: base64url (no padding) of the SHA-256 of the DER certificate.
pub fn x5t_s256(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(sha256(der))
}

/// A boxed future, `Send`, borrowing for `'a` (the shape of `futures::future::BoxFuture`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A client certificate chain the validator accepted, described by the names of its leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedCertificate {
    /// The leaf's subject as an RFC 4514 string: most specific RDN first, `,` between RDNs,
    /// `+` inside one, short names (`CN`, `O`, ...) or dotted OIDs, values escaped (§2.4).
    /// [`ValidatedCertificate::from_der`] produces exactly this form.
    pub subject_dn: String,
    /// dNSName SAN entries.
    pub san_dns: Vec<String>,
    /// uniformResourceIdentifier SAN entries.
    pub san_uri: Vec<String>,
    /// iPAddress SAN entries, in textual form (IPv4 dotted, IPv6 per RFC 5952).
    pub san_ip: Vec<String>,
    /// rfc822Name SAN entries.
    pub san_email: Vec<String>,
    /// SHA-256 of the leaf DER; must be that of the presented leaf.
    pub sha256: [u8; 32],
}

/// Why a client certificate was refused or its names could not be read. The text is for
/// logs only: the client is answered `invalid_client` whatever it says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    #[error("not a DER X.509 certificate: {0}")]
    NotDer(String),
    #[error("bytes after the certificate")]
    TrailingBytes,
    #[error("bad subjectAltName: {0}")]
    BadSubjectAltName(String),
    #[error("bad attribute value: {0}")]
    BadAttribute(String),
    /// The validator does not trust the chain (issuer, signature, dates, revocation).
    #[error("{0}")]
    Untrusted(String),
}

impl ValidatedCertificate {
    /// Reads the names of a leaf certificate. This decides nothing about trust: a
    /// [`CertificateValidator`] calls it once the chain checks have passed.
    pub fn from_der(der: &[u8]) -> Result<Self, CertificateError> {
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|e| CertificateError::NotDer(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CertificateError::TrailingBytes);
        }
        Self::of(&cert, der)
    }

    /// [`Self::from_der`] for a certificate already parsed from `der`.
    pub fn of(cert: &X509Certificate<'_>, der: &[u8]) -> Result<Self, CertificateError> {
        let mut out = ValidatedCertificate {
            subject_dn: rfc4514(cert.subject())?,
            san_dns: Vec::new(),
            san_uri: Vec::new(),
            san_ip: Vec::new(),
            san_email: Vec::new(),
            sha256: sha256(der),
        };
        let san = cert
            .subject_alternative_name()
            .map_err(|e| CertificateError::BadSubjectAltName(e.to_string()))?;
        for name in san.iter().flat_map(|san| san.value.general_names.iter()) {
            match name {
                GeneralName::DNSName(d) => out.san_dns.push((*d).to_owned()),
                GeneralName::URI(u) => out.san_uri.push((*u).to_owned()),
                GeneralName::RFC822Name(e) => out.san_email.push((*e).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                        out.san_ip.push(Ipv4Addr::from(v4).to_string());
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                        out.san_ip.push(Ipv6Addr::from(v6).to_string());
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The names, as [`TlsClientAuthMatch::matches`] takes them.
    pub fn names(&self) -> CertificateNames<'_> {
        CertificateNames {
            subject_dn: &self.subject_dn,
            san_dns: &self.san_dns,
            san_uri: &self.san_uri,
            san_ip: &self.san_ip,
            san_email: &self.san_email,
        }
    }
}

/// The RFC 4514 string of an X.509 name (§2: RDNs in reverse order of the encoding).
fn rfc4514(name: &X509Name<'_>) -> Result<String, CertificateError> {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter().collect();
    for (i, rdn) in rdns.into_iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = attr.attr_type().to_id_string();
            out.push_str(dn_short_name(&oid).unwrap_or(&oid));
            out.push('=');
            out.push_str(&attribute_value(attr.attr_value())?);
        }
    }
    Ok(out)
}

/// RFC 4514 §2.4: a string value escaped, anything else `#` and the hex of its DER.
fn attribute_value(value: &Any<'_>) -> Result<String, CertificateError> {
    let text = match value.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString
        | Tag::TeletexString => std::str::from_utf8(value.data).ok().map(str::to_owned),
        Tag::BmpString => {
            let units: Vec<u16> = value
                .data
                .chunks_exact(2)
                .filter_map(|c| <[u8; 2]>::try_from(c).ok().map(u16::from_be_bytes))
                .collect();
            value
                .data
                .chunks_exact(2)
                .remainder()
                .is_empty()
                .then(|| String::from_utf16(&units).ok())
                .flatten()
        }
        Tag::UniversalString => value
            .data
            .chunks_exact(4)
            .remainder()
            .is_empty()
            .then(|| {
                value
                    .data
                    .chunks_exact(4)
                    .map(|c| {
                        <[u8; 4]>::try_from(c)
                            .ok()
                            .map(u32::from_be_bytes)
                            .and_then(char::from_u32)
                    })
                    .collect::<Option<String>>()
            })
            .flatten(),
        _ => None,
    };
    match text {
        Some(text) => Ok(escape_dn_value(&text)),
        None => {
            let der = value
                .to_der_vec()
                .map_err(|e| CertificateError::BadAttribute(e.to_string()))?;
            // RFC 4514 §2.4: a value without a string form is `#` and its DER in hex.
            Ok(format!("#{}", portcullis_core::hex::encode(&der)))
        }
    }
}

/// Decides whether a client certificate chain is trusted for `tls_client_auth` (RFC 8705
/// §2.1), and reads the names of its leaf. Implemented over the device PKI: the chain leads
/// to the issuing CA, every certificate is within its validity dates at `now`, and the leaf
/// is not revoked according to the store (not a possibly stale CRL).
///
/// `chain` is what the client presented, leaf first, never empty. An `Err` is a refusal; its
/// text goes to logs only (the client sees the generic `invalid_client`).
pub trait CertificateValidator: Send + Sync {
    fn validate<'a>(
        &'a self,
        chain: &'a [Vec<u8>],
        now: UnixTime,
    ) -> BoxFuture<'a, Result<ValidatedCertificate, CertificateError>>;
}

/// Why certificate authentication failed (mapped to a `FailureReason` by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CertificateRefusal {
    /// The chain is not trusted, malformed, expired or revoked.
    Invalid(String),
    /// A good certificate, but not the one this client registered.
    Mismatch,
    /// `tls_client_auth` without a validator configured.
    NoValidator,
}

/// RFC 8705 §2.1: the chain is trusted and its leaf carries the name the client registered.
pub(crate) async fn check_pki_certificate(
    validator: Option<&dyn CertificateValidator>,
    client: &Client,
    chain: &[Vec<u8>],
    now: UnixTime,
) -> Result<(), CertificateRefusal> {
    let validator = validator.ok_or(CertificateRefusal::NoValidator)?;
    let leaf = chain
        .first()
        .ok_or_else(|| CertificateRefusal::Invalid("empty certificate chain".into()))?;
    // Whatever the validator does with them, bytes after the certificate would end up in the
    // thumbprint the token is bound to: refuse them here.
    if !is_one_der_sequence(leaf) {
        return Err(CertificateRefusal::Invalid(
            "the leaf is not exactly one DER SEQUENCE".into(),
        ));
    }
    let validated = validator
        .validate(chain, now)
        .await
        .map_err(|e| CertificateRefusal::Invalid(e.to_string()))?;
    // The validator must have described the certificate that was presented.
    if validated.sha256 != sha256(leaf) {
        return Err(CertificateRefusal::Invalid(
            "the validator described another certificate".into(),
        ));
    }
    match &client.tls_client_auth {
        Some(expected) if expected.matches(&validated.names()) => Ok(()),
        _ => Err(CertificateRefusal::Mismatch),
    }
}

/// Whether `der` is exactly one DER SEQUENCE (tag, definite length, contents), nothing after.
/// A cheap shape check, not a parse.
fn is_one_der_sequence(der: &[u8]) -> bool {
    let [0x30, first, rest @ ..] = der else {
        return false;
    };
    let (length, contents) = match *first {
        n @ 0..=0x7f => (usize::from(n), rest),
        0x81..=0x84 => {
            let count = usize::from(first & 0x7f);
            let Some((length_octets, contents)) = rest.split_at_checked(count) else {
                return false;
            };
            if length_octets.first() == Some(&0) && count > 1 {
                return false;
            }
            let length = length_octets
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (length, contents)
        }
        _ => return false,
    };
    contents.len() == length
}

/// RFC 8705 §2.2: the leaf is one of the certificates registered in the client's `jwks`
/// (compared by SHA-256 of the DER) and is within its validity dates.
pub(crate) fn check_self_signed(
    client: &Client,
    chain: &[Vec<u8>],
    now: UnixTime,
) -> Result<(), CertificateRefusal> {
    let leaf = chain
        .first()
        .ok_or_else(|| CertificateRefusal::Invalid("empty certificate chain".into()))?;
    let registered = client
        .jwks
        .as_deref()
        .map(registered_certificates)
        .transpose()
        .map_err(|e| CertificateRefusal::Invalid(format!("registered jwks: {e}")))?
        .unwrap_or_default();
    let presented = sha256(leaf);
    if !registered.iter().any(|der| sha256(der) == presented) {
        return Err(CertificateRefusal::Mismatch);
    }
    let (_, cert) = X509Certificate::from_der(leaf)
        .map_err(|e| CertificateRefusal::Invalid(format!("not a certificate: {e}")))?;
    let validity = cert.validity();
    if now < validity.not_before.timestamp() || now > validity.not_after.timestamp() {
        return Err(CertificateRefusal::Invalid(
            "outside its validity dates".into(),
        ));
    }
    Ok(())
}

/// Checks the JWK Set of a `self_signed_tls_client_auth` client before it is stored: every
/// key carries an `x5c` whose first entry is a DER X.509 certificate (RFC 8705 §2.2,
/// RFC 7517 §4.7). Returns how many certificates it registers.
pub fn validate_self_signed_jwks(jwks: &str) -> Result<usize, CoreError> {
    let invalid = |why: String| CoreError::invalid("jwks", why);
    let set: serde_json::Value =
        serde_json::from_str(jwks).map_err(|_| invalid("must be a JSON object".into()))?;
    let keys = set
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or_else(|| invalid("must have a keys array".into()))?;
    if keys.is_empty() || keys.iter().any(|k| k.get("x5c").is_none()) {
        return Err(invalid(
            "every key of a self_signed_tls_client_auth client needs an x5c certificate".into(),
        ));
    }
    let certificates = registered_certificates(jwks).map_err(|e| invalid(e.to_string()))?;
    for (i, der) in certificates.iter().enumerate() {
        match X509Certificate::from_der(der) {
            Ok(([], _)) => {}
            _ => {
                return Err(invalid(format!(
                    "key {i}: x5c[0] is not a DER X.509 certificate"
                )))
            }
        }
    }
    Ok(certificates.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn garbage_is_refused_without_panicking() {
        for der in [
            &b""[..],
            b"\x30",
            b"\x30\x80",
            b"\x30\x03\x02\x01\x00",
            &[0xff; 64],
        ] {
            assert!(ValidatedCertificate::from_der(der).is_err());
        }
        assert!(validate_self_signed_jwks(r#"{"keys":[{"x5c":["AAEC"]}]}"#).is_err());
        assert!(validate_self_signed_jwks(r#"{"keys":[]}"#).is_err());
        assert!(validate_self_signed_jwks(r#"{"keys":[{"kty":"EC"}]}"#).is_err());
    }

    #[test]
    fn der_shape_check() {
        assert!(is_one_der_sequence(&[0x30, 0x00]));
        assert!(is_one_der_sequence(&[0x30, 0x02, 0x05, 0x00]));
        assert!(!is_one_der_sequence(&[0x30, 0x02, 0x05, 0x00, 0x00]));
        assert!(!is_one_der_sequence(&[0x30, 0x03, 0x05, 0x00]));
        assert!(!is_one_der_sequence(&[0x30, 0x80, 0x00, 0x00]));
        assert!(!is_one_der_sequence(&[0x31, 0x00]));
        assert!(!is_one_der_sequence(&[0x30]));
        assert!(!is_one_der_sequence(&[]));
        assert!(!is_one_der_sequence(&[0x30, 0x82, 0xff]));
        let mut long = vec![0x30, 0x82, 0x01, 0x00];
        long.extend(vec![0u8; 256]);
        assert!(is_one_der_sequence(&long));
        long.push(0);
        assert!(!is_one_der_sequence(&long));
    }

    #[test]
    fn thumbprint_is_base64url_sha256() {
        // SHA-256("abc") = ba7816bf 8f01cfea ...
        assert_eq!(
            x5t_s256(b"abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
        let peer = PeerCertificates(Arc::new(vec![b"abc".to_vec(), b"ca".to_vec()]));
        assert_eq!(
            confirmation(&peer).unwrap().x5t_s256.as_deref(),
            Some("ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0")
        );
        assert!(confirmation(&PeerCertificates(Arc::new(vec![]))).is_none());
    }
}
