//! Per-message authentication: a device's message is a tagged `COSE_Sign1` or `COSE_Mac0`
//! (RFC 9052 §4.2, §6.2) whose protected header names the device, the key, the moment and a
//! counter, so the message proves itself wherever it travelled (a bridge, a queue, plain
//! text). `docs/gateway-protocol.md` is the wire format a device implements.
//!
//! [`parse`] reads everything the caller needs before any key is looked up (which device,
//! which key, the counter and the time); [`CoseMessage::verify`] then checks the tag or the
//! signature under that device's credentials, with the algorithm decided by the credential.
//! The time window and the counter against the last one accepted are the caller's (replay
//! guard): this module only reads them.
//!
//! The headers are read from the protected bucket alone and strictly (duplicate labels,
//! conflicting unprotected copies and unknown critical labels are refused), in one pass
//! with no intermediate value tree (`cbor_reader`, `headers`); the `Sig_structure` /
//! `MAC_structure` is built over the protected bytes exactly as received (`structure`).
//! `coset` only builds messages (`seal`), and its encoding is what `structure` is tested
//! against.

use aws_lc_rs::hmac;
use ciborium_ll::Header;
use coset::iana::{self, EnumI64 as _};
use portcullis_core::device::DeviceId;
use portcullis_core::UnixTime;
use portcullis_keys::Algorithm;
use subtle::ConstantTimeEq as _;

use crate::credentials::{CredentialMethod, DeviceCredentials};
use crate::error::GatewayError;

mod cbor_reader;
mod headers;
mod seal;
mod structure;
pub use seal::{seal_mac0, sign1_with};

use cbor_reader::Reader;
use headers::{Headers, Unprotected};

/// CBOR tag of `COSE_Mac0` (RFC 9052 §2).
pub const TAG_MAC0: u64 = 17;
/// CBOR tag of `COSE_Sign1` (RFC 9052 §2).
pub const TAG_SIGN1: u64 = 18;
/// Header label of the CWT Claims map (RFC 9597 §2).
pub const CWT_CLAIMS_LABEL: i64 = 15;
/// Claim key of `iss` in the CWT Claims map (RFC 8392 §3.1.1): the device id.
pub const CLAIM_ISS: i64 = 1;
/// Claim key of `iat` in the CWT Claims map (RFC 8392 §3.1.6): the message time.
pub const CLAIM_IAT: i64 = 6;
/// Private-use header label (RFC 9052 §3: below -65536) of the per-device counter.
pub const COUNTER_LABEL: i64 = -65537;
/// Longest key id read from a message: a device key id or a certificate serial in hex.
pub const MAX_KID_BYTES: usize = 128;
/// Length of an HMAC 256/256 tag (RFC 9053 §3.1).
const MAC_TAG_LEN: usize = 32;

const ALG: i64 = iana::HeaderParameter::Alg as i64;
const CRIT: i64 = iana::HeaderParameter::Crit as i64;
const KID: i64 = iana::HeaderParameter::Kid as i64;
/// The protected labels this module understands: only these may be listed in `crit`.
const UNDERSTOOD: [i64; 5] = [ALG, CRIT, KID, CWT_CLAIMS_LABEL, COUNTER_LABEL];

/// Which COSE structure a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoseKind {
    /// `COSE_Sign1` (tag 18) under a certificate's key.
    Sign1,
    /// `COSE_Mac0` (tag 17) under a symmetric device key.
    Mac0,
}

impl CoseKind {
    /// How a message of this kind authenticates its sender.
    pub const fn method(self) -> CredentialMethod {
        match self {
            Self::Sign1 => CredentialMethod::CoseSign1,
            Self::Mac0 => CredentialMethod::CoseMac0,
        }
    }
}

/// A parsed, not yet verified COSE message. Nothing in it may be believed until
/// [`CoseMessage::verify`] succeeds.
#[derive(Debug, Clone)]
pub struct CoseMessage {
    kind: CoseKind,
    /// The signature algorithm named by the protected header (`COSE_Sign1`).
    signature_alg: Option<Algorithm>,
    /// The protected bstr's contents exactly as received: the tag or signature covers them.
    protected: Vec<u8>,
    payload: Vec<u8>,
    /// The tag (`COSE_Mac0`) or signature (`COSE_Sign1`).
    proof: Vec<u8>,
    device_id: DeviceId,
    key_id: Option<String>,
    counter: u64,
    timestamp: i64,
}

/// A message whose tag or signature verified under the device's credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCose {
    pub device_id: DeviceId,
    /// The device key id (`COSE_Mac0`) or the certificate serial (`COSE_Sign1`) that
    /// verified it.
    pub key_id: String,
    pub method: CredentialMethod,
    pub counter: u64,
    /// The message time (`iat`), Unix seconds.
    pub timestamp: i64,
    /// The device's data, opaque.
    pub payload: Vec<u8>,
}

/// Parses a tagged `COSE_Sign1` or `COSE_Mac0` without verifying it. The caller bounds the
/// input's size before calling.
pub fn parse(bytes: &[u8]) -> Result<CoseMessage, GatewayError> {
    let malformed = |reason| Err(GatewayError::Malformed(reason));
    let mut r = Reader::new(bytes);
    let kind = match r.header()? {
        Header::Tag(TAG_SIGN1) => CoseKind::Sign1,
        Header::Tag(TAG_MAC0) => CoseKind::Mac0,
        Header::Tag(_) => return malformed("wrong_tag"),
        Header::Break => return malformed("bad_cbor"),
        // Untagged, a Sign1 and a Mac0 are the same shape: which one it is must not be a guess.
        _ => return malformed("untagged"),
    };
    let definite = match r.header()? {
        Header::Array(Some(4)) => true,
        Header::Array(None) => false,
        _ => return malformed("not_cose"),
    };
    // The next element's header; an indefinite array that ends early is not COSE, a break
    // inside a definite one is not CBOR.
    let element = |r: &mut Reader<'_>| match r.header()? {
        Header::Break if definite => Err(GatewayError::Malformed("bad_cbor")),
        Header::Break => Err(GatewayError::Malformed("not_cose")),
        header => Ok(header),
    };
    let protected = match element(&mut r)? {
        Header::Bytes(len) => r.bytes(len)?,
        _ => return malformed("protected_not_bstr"),
    };
    let unprotected = match element(&mut r)? {
        Header::Map(len) => Unprotected::read(&mut r, len)?,
        _ => return malformed("unprotected_not_map"),
    };
    let payload = match element(&mut r)? {
        Header::Bytes(len) => r.bytes(len)?,
        Header::Simple(cbor_reader::NULL) => return malformed("detached_payload"),
        _ => return malformed("payload_not_bstr"),
    };
    let proof = match element(&mut r)? {
        Header::Bytes(len) => r.bytes(len)?,
        _ => return malformed("tag_not_bstr"),
    };
    if !definite && r.header()? != Header::Break {
        return malformed("not_cose");
    }
    if !r.at_end() {
        return malformed("trailing_bytes");
    }

    let headers = Headers::read(&protected, &unprotected, bytes)?;
    let signature_alg = match (kind, headers.alg) {
        (CoseKind::Mac0, MessageAlg::Hmac256) => {
            if headers.kid.is_none() {
                return malformed("missing_kid");
            }
            None
        }
        (CoseKind::Sign1, MessageAlg::Signature(alg)) => Some(alg),
        // A MAC algorithm on a signature structure or the reverse: the structure decides.
        _ => return Err(GatewayError::Unauthenticated("alg_not_allowed")),
    };
    Ok(CoseMessage {
        kind,
        signature_alg,
        protected,
        payload,
        proof,
        device_id: headers.device_id,
        key_id: headers.kid,
        counter: headers.counter,
        timestamp: headers.iat,
    })
}

impl CoseMessage {
    /// The device the message claims to come from (`iss`), not yet verified.
    pub fn device_id(&self) -> &DeviceId {
        &self.device_id
    }

    /// The key id (`kid`) the message names: a device key id, or a certificate serial.
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    /// `COSE_Sign1` or `COSE_Mac0`.
    pub fn kind(&self) -> CoseKind {
        self.kind
    }

    /// The per-device counter, not yet verified.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// The message time (`iat`, Unix seconds), not yet verified.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// Verifies the tag (`COSE_Mac0`, with the device key named by `kid`) or the signature
    /// (`COSE_Sign1`, with the certificate named by `kid`, else each current certificate)
    /// under `creds`, with empty external AAD.
    pub fn verify(
        self,
        creds: &DeviceCredentials,
        now: UnixTime,
    ) -> Result<VerifiedCose, GatewayError> {
        if creds.device_id != self.device_id {
            return Err(GatewayError::Unauthenticated("wrong_device"));
        }
        let key_id = match self.signature_alg {
            None => self.verify_mac0(creds, now)?,
            Some(alg) => self.verify_sign1(alg, creds, now)?,
        };
        Ok(VerifiedCose {
            device_id: self.device_id,
            key_id,
            method: self.kind.method(),
            counter: self.counter,
            timestamp: self.timestamp,
            payload: self.payload,
        })
    }

    /// The key id whose device key gives the message's tag over its `MAC_structure`
    /// (RFC 9052 §6.3).
    fn verify_mac0(
        &self,
        creds: &DeviceCredentials,
        now: UnixTime,
    ) -> Result<String, GatewayError> {
        let kid = self
            .key_id
            .as_deref()
            .ok_or(GatewayError::Malformed("missing_kid"))?;
        let key = creds
            .symmetric_key(kid, now)
            .ok_or(GatewayError::Unauthenticated("unknown_key"))?;
        if self.proof.len() != MAC_TAG_LEN {
            return Err(GatewayError::Unauthenticated("bad_signature"));
        }
        let key = hmac::Key::new(hmac::HMAC_SHA256, key.key.as_slice());
        let mut context = hmac::Context::with_key(&key);
        structure::emit(structure::MAC0, &self.protected, &self.payload, |part| {
            context.update(part)
        });
        // Compared in constant time: a tag must not be guessable byte by byte.
        if !bool::from(context.sign().as_ref().ct_eq(&self.proof)) {
            return Err(GatewayError::Unauthenticated("bad_signature"));
        }
        Ok(kid.to_owned())
    }

    /// The serial of the certificate whose key verifies the signature over the message's
    /// `Sig_structure` (RFC 9052 §4.4); the algorithm must be one that certificate's key
    /// allows (the credential decides, RFC 8725 §3.1 in COSE form).
    fn verify_sign1(
        &self,
        alg: Algorithm,
        creds: &DeviceCredentials,
        now: UnixTime,
    ) -> Result<String, GatewayError> {
        let mut signed: Option<Vec<u8>> = None;
        creds.verify_by_certificate(self.key_id.as_deref(), alg, now, |verifier| {
            let data = signed.get_or_insert_with(|| {
                structure::to_vec(structure::SIGNATURE1, &self.protected, &self.payload)
            });
            verifier.verify(data, &self.proof).is_ok()
        })
    }
}

/// The algorithm a protected header names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MessageAlg {
    /// HMAC 256/256 (RFC 9053 §3.1), `COSE_Mac0` only.
    Hmac256,
    Signature(Algorithm),
}

impl MessageAlg {
    /// RFC 9053 §2 / RFC 8230 §2 / RFC 9864 identifiers; nothing else is taken.
    fn from_cose(id: i64) -> Option<Self> {
        use iana::Algorithm as A;
        let found = match A::from_i64(id)? {
            A::HMAC_256_256 => Self::Hmac256,
            A::ES256 => Self::Signature(Algorithm::ES256),
            A::ES384 => Self::Signature(Algorithm::ES384),
            A::EdDSA => Self::Signature(Algorithm::EdDSA),
            A::PS256 => Self::Signature(Algorithm::PS256),
            A::RS256 => Self::Signature(Algorithm::RS256),
            _ => return None,
        };
        Some(found)
    }
}
