//! Decoding an `OCSPRequest` (RFC 6960 §4.1), from a POST body or from the base64 path of a
//! GET (§A.1). Everything here is untrusted input, so it is bounded before anything is
//! allocated for it and fuzzed (`fuzz/fuzz_targets/ocsp_request.rs`).

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Tag, Tagged};
use x509_ocsp::{CertId, OcspRequest};

/// The largest request accepted, POST body or decoded GET path. A request for
/// [`MAX_CERT_IDS`] certificates with a nonce is well under 1 KiB; the margin is for signed
/// requests, which carry the requestor's certificates.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// The most certificates one request may ask about. Each costs a store lookup on a path any
/// unauthenticated caller can reach; real clients ask about one.
pub const MAX_CERT_IDS: usize = 10;
/// The longest nonce accepted: RFC 8954 §2.1 bounds it to 32 octets (and at least 1).
pub const MAX_NONCE_LEN: usize = 32;

/// id-pkix-ocsp-nonce (RFC 6960 §4.4.1).
const ID_PKIX_OCSP_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");

/// Why a request is refused. Both become the unsigned `malformedRequest` status (RFC 6960
/// §2.3) over HTTP, except that an oversize body is refused at the HTTP layer (413/414).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OcspError {
    /// Not a request we can answer: bad base64, bad DER, too many certificates, bad nonce.
    #[error("malformed OCSP request: {0}")]
    Malformed(String),
    /// Larger than [`MAX_REQUEST_BYTES`].
    #[error("OCSP request larger than {MAX_REQUEST_BYTES} bytes")]
    TooLarge,
}

fn malformed(reason: impl Into<String>) -> OcspError {
    OcspError::Malformed(reason.into())
}

/// The hash algorithms a `CertID` may use. RFC 6960 §4.1.1 leaves the choice to the client;
/// RFC 5019 §2.1.1 clients use SHA-1, newer ones (OpenSSL `-sha256`) SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlgorithm {
    pub const ALL: [HashAlgorithm; 4] = [Self::Sha1, Self::Sha256, Self::Sha384, Self::Sha512];

    /// The algorithm's OID (RFC 3279 §2.2.1 for SHA-1, RFC 5754 §2 for the SHA-2 family).
    pub const fn oid(self) -> ObjectIdentifier {
        match self {
            Self::Sha1 => ObjectIdentifier::new_unwrap("1.3.14.3.2.26"),
            Self::Sha256 => ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1"),
            Self::Sha384 => ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2"),
            Self::Sha512 => ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3"),
        }
    }

    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.oid() == *oid)
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        use aws_lc_rs::digest;
        let alg = match self {
            Self::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => &digest::SHA256,
            Self::Sha384 => &digest::SHA384,
            Self::Sha512 => &digest::SHA512,
        };
        digest::digest(alg, data).as_ref().to_vec()
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }
}

/// One certificate asked about: a `CertID` (RFC 6960 §4.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedCert {
    /// `None` when the client used a hash we do not know: we then cannot tell whether the
    /// issuer is ours, and answer `unauthorized`.
    pub hash_algorithm: Option<HashAlgorithm>,
    pub issuer_name_hash: Vec<u8>,
    pub issuer_key_hash: Vec<u8>,
    /// The serial INTEGER's content octets as received (a leading 0x00 kept).
    pub serial: Vec<u8>,
    /// The `CertID` as decoded, echoed in the `SingleResponse`: §4.2.1 has the response
    /// identify the certificate exactly as the request did, and the der crate only accepts
    /// DER, whose re-encoding is byte-identical.
    pub(crate) cert_id: CertId,
}

impl RequestedCert {
    /// The store's key for the serial: lowercase hex of the content octets with leading
    /// 0x00 bytes stripped (one byte kept for a zero serial).
    pub fn serial_hex(&self) -> String {
        portcullis_core::serial::serial_key(&self.serial)
    }

    /// A negative INTEGER: never one of our serials (RFC 5280 §4.1.2.2 has them positive),
    /// and its content octets must not be mistaken for the positive serial they spell.
    pub fn serial_is_negative(&self) -> bool {
        self.serial.first().is_some_and(|b| b & 0x80 != 0)
    }

    /// The `CertID` exactly as it will be echoed.
    pub fn cert_id(&self) -> &CertId {
        &self.cert_id
    }
}

/// What the responder needs from a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspRequestInfo {
    /// Between 1 and [`MAX_CERT_IDS`] certificates, in request order.
    pub certs: Vec<RequestedCert>,
    /// The nonce's octets (the content of the inner OCTET STRING, RFC 8954 §2.1).
    pub nonce: Option<Vec<u8>>,
    /// Whether the request carried `optionalSignature`. Accepted and ignored: we answer
    /// anyone (RFC 6960 §4.1.2 leaves requiring signatures to local policy), and the status
    /// of a certificate is not a secret.
    pub signed: bool,
}

/// Decodes a DER `OCSPRequest`.
///
/// Refused as malformed: anything that is not exactly one DER `OCSPRequest`, an empty
/// `requestList` or one of more than [`MAX_CERT_IDS`] entries, a `CertID` hash algorithm
/// with parameters other than absent or NULL, and a nonce that is not an OCTET STRING of
/// 1 to [`MAX_NONCE_LEN`] octets or appears twice (RFC 8954 §2.1). Other extensions,
/// critical or not, are ignored: RFC 6960 §4.4 defines none a responder must act on.
pub fn parse_request(der: &[u8]) -> Result<OcspRequestInfo, OcspError> {
    if der.len() > MAX_REQUEST_BYTES {
        return Err(OcspError::TooLarge);
    }
    let request =
        OcspRequest::from_der(der).map_err(|e| malformed(format!("not a DER OCSPRequest: {e}")))?;
    let tbs = &request.tbs_request;
    match tbs.request_list.len() {
        0 => return Err(malformed("the request names no certificate")),
        n if n > MAX_CERT_IDS => {
            return Err(malformed(format!(
                "the request names {n} certificates; at most {MAX_CERT_IDS} are answered"
            )))
        }
        _ => {}
    }
    let certs = tbs
        .request_list
        .iter()
        .map(|r| requested_cert(&r.req_cert))
        .collect::<Result<Vec<_>, _>>()?;
    let mut nonce = None;
    for ext in tbs.request_extensions.iter().flatten() {
        if ext.extn_id != ID_PKIX_OCSP_NONCE {
            continue;
        }
        if nonce.is_some() {
            return Err(malformed("the nonce extension appears twice"));
        }
        let inner = OctetString::from_der(ext.extn_value.as_bytes())
            .map_err(|_| malformed("the nonce is not an OCTET STRING"))?;
        let len = inner.as_bytes().len();
        if !(1..=MAX_NONCE_LEN).contains(&len) {
            return Err(malformed(format!(
                "a nonce of {len} octets; RFC 8954 allows 1 to {MAX_NONCE_LEN}"
            )));
        }
        nonce = Some(inner.as_bytes().to_vec());
    }
    Ok(OcspRequestInfo {
        certs,
        nonce,
        signed: request.optional_signature.is_some(),
    })
}

pub(crate) fn requested_cert(cert_id: &CertId) -> Result<RequestedCert, OcspError> {
    let alg = &cert_id.hash_algorithm;
    if let Some(params) = &alg.parameters {
        if params.tag() != Tag::Null || !params.value().is_empty() {
            return Err(malformed("the CertID hash algorithm has parameters"));
        }
    }
    Ok(RequestedCert {
        hash_algorithm: HashAlgorithm::from_oid(&alg.oid),
        issuer_name_hash: cert_id.issuer_name_hash.as_bytes().to_vec(),
        issuer_key_hash: cert_id.issuer_key_hash.as_bytes().to_vec(),
        serial: cert_id.serial_number.as_bytes().to_vec(),
        cert_id: cert_id.clone(),
    })
}

/// The longest GET path segment worth decoding: base64 of [`MAX_REQUEST_BYTES`], every
/// character percent-encoded.
const MAX_GET_CHARS: usize = 3 * MAX_REQUEST_BYTES.div_ceil(3) * 4;

/// Decodes the GET form of a request, `GET {url}/{url-encoding of base-64 encoding of the DER
/// encoding of the OCSPRequest}` (RFC 6960 §A.1), to the request's DER.
///
/// Clients disagree on the details, so this accepts: the segment percent-encoded or not
/// (`%2B`, `%2F`, `%3D` or any `%XX`; a router may already have decoded it, and decoding
/// base64 text twice is harmless since it has no `%`), a space where a form encoder turned
/// `+` into one, padding present or missing, and the URL-safe alphabet (`-`, `_`).
pub fn decode_get(segment: &str) -> Result<Vec<u8>, OcspError> {
    if segment.len() > MAX_GET_CHARS {
        return Err(OcspError::TooLarge);
    }
    let text = percent_decode(segment)?;
    if text.len() > MAX_REQUEST_BYTES.div_ceil(3) * 4 {
        return Err(OcspError::TooLarge);
    }
    let url_safe = text.iter().any(|b| *b == b'-' || *b == b'_');
    let config = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(false);
    let engine = if url_safe {
        GeneralPurpose::new(&alphabet::URL_SAFE, config)
    } else {
        GeneralPurpose::new(&alphabet::STANDARD, config)
    };
    let der = engine
        .decode(&text)
        .map_err(|_| malformed("the GET path is not base64"))?;
    if der.is_empty() {
        return Err(malformed("the GET path is empty"));
    }
    if der.len() > MAX_REQUEST_BYTES {
        return Err(OcspError::TooLarge);
    }
    Ok(der)
}

/// `%XX` → the byte; a space → `+` (see [`decode_get`]).
fn percent_decode(s: &str) -> Result<Vec<u8>, OcspError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| malformed("a bad percent escape in the GET path"))?;
                out.push(hex);
                i += 3;
            }
            b' ' => {
                out.push(b'+');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
