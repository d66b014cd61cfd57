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
//! conflicting unprotected copies and unknown critical labels are refused); coset builds the
//! `Sig_structure` / `MAC_structure` over the protected bytes exactly as received.

use aws_lc_rs::hmac;
use coset::cbor::value::Value;
use coset::iana::{self, EnumI64 as _};
use coset::{
    AsCborValue as _, CoseMac0, CoseMac0Builder, CoseSign1, CoseSign1Builder, HeaderBuilder, Label,
    ProtectedHeader, TaggedCborSerializable as _,
};
use portcullis_core::device::DeviceId;
use portcullis_core::UnixTime;
use portcullis_keys::Algorithm;
use std::collections::BTreeSet;

use crate::credentials::{CredentialMethod, DeviceCredentials};
use crate::error::GatewayError;

mod seal;
pub use seal::{seal_mac0, sign1_with};

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
    body: Body,
    device_id: DeviceId,
    key_id: Option<String>,
    counter: u64,
    timestamp: i64,
}

#[derive(Debug, Clone)]
enum Body {
    /// The signature algorithm named by the protected header.
    Sign1(CoseSign1, Algorithm),
    Mac0(CoseMac0),
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
    let (tag, content) = match read_one_item(bytes)? {
        Value::Tag(tag, content) => (tag, content),
        // Untagged, a Sign1 and a Mac0 are the same shape: which one it is must not be a guess.
        _ => return Err(GatewayError::Malformed("untagged")),
    };
    let kind = match tag {
        TAG_SIGN1 => CoseKind::Sign1,
        TAG_MAC0 => CoseKind::Mac0,
        _ => return Err(GatewayError::Malformed("wrong_tag")),
    };
    let Value::Array(items) = *content else {
        return Err(GatewayError::Malformed("not_cose"));
    };
    let Ok([protected, unprotected, payload, proof]) = <[Value; 4]>::try_from(items) else {
        return Err(GatewayError::Malformed("not_cose"));
    };
    let Value::Bytes(protected_bytes) = protected else {
        return Err(GatewayError::Malformed("protected_not_bstr"));
    };
    let Value::Map(unprotected) = unprotected else {
        return Err(GatewayError::Malformed("unprotected_not_map"));
    };
    let payload = match payload {
        Value::Bytes(payload) => payload,
        Value::Null => return Err(GatewayError::Malformed("detached_payload")),
        _ => return Err(GatewayError::Malformed("payload_not_bstr")),
    };
    let Value::Bytes(proof) = proof else {
        return Err(GatewayError::Malformed("tag_not_bstr"));
    };

    let headers = Headers::read(&protected_bytes, &unprotected)?;
    let protected = ProtectedHeader {
        // The MAC_structure / Sig_structure is built over these bytes exactly as received.
        original_data: Some(protected_bytes),
        header: Default::default(),
    };
    let body = match (kind, headers.alg) {
        (CoseKind::Mac0, MessageAlg::Hmac256) => {
            if headers.kid.is_none() {
                return Err(GatewayError::Malformed("missing_kid"));
            }
            Body::Mac0(CoseMac0 {
                protected,
                unprotected: Default::default(),
                payload: Some(payload),
                tag: proof,
            })
        }
        (CoseKind::Sign1, MessageAlg::Signature(alg)) => Body::Sign1(
            CoseSign1 {
                protected,
                unprotected: Default::default(),
                payload: Some(payload),
                signature: proof,
            },
            alg,
        ),
        // A MAC algorithm on a signature structure or the reverse: the structure decides.
        _ => return Err(GatewayError::Unauthenticated("alg_not_allowed")),
    };
    Ok(CoseMessage {
        body,
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
        match self.body {
            Body::Sign1(..) => CoseKind::Sign1,
            Body::Mac0(_) => CoseKind::Mac0,
        }
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
        let method = self.kind().method();
        let (key_id, payload) = match self.body {
            Body::Mac0(mac0) => {
                let kid = self.key_id.ok_or(GatewayError::Malformed("missing_kid"))?;
                let key = creds
                    .symmetric_key(&kid, now)
                    .ok_or(GatewayError::Unauthenticated("unknown_key"))?;
                if mac0.tag.len() != MAC_TAG_LEN {
                    return Err(GatewayError::Unauthenticated("bad_signature"));
                }
                let key = hmac::Key::new(hmac::HMAC_SHA256, key.key.as_slice());
                // RFC 9052 §6.3: the tag covers MAC_structure; `hmac::verify` compares in
                // constant time.
                mac0.verify_tag(b"", |tag, data| hmac::verify(&key, data, tag))
                    .map_err(|_| GatewayError::Unauthenticated("bad_signature"))?;
                (kid, mac0.payload)
            }
            Body::Sign1(sign1, alg) => {
                let serial = verify_sign1(&sign1, alg, self.key_id.as_deref(), creds, now)?;
                (serial, sign1.payload)
            }
        };
        Ok(VerifiedCose {
            device_id: self.device_id,
            key_id,
            method,
            counter: self.counter,
            timestamp: self.timestamp,
            payload: payload.unwrap_or_default(),
        })
    }
}

/// The serial of the certificate whose key verifies `sign1`; the algorithm must be one that
/// certificate's key allows (the credential decides, RFC 8725 §3.1 in COSE form).
fn verify_sign1(
    sign1: &CoseSign1,
    alg: Algorithm,
    serial: Option<&str>,
    creds: &DeviceCredentials,
    now: UnixTime,
) -> Result<String, GatewayError> {
    let mut any_certificate = false;
    let mut any_verifier = false;
    for certificate in creds.certificates(serial, now) {
        any_certificate = true;
        for verifier in certificate
            .verifiers
            .iter()
            .filter(|v| v.algorithm() == alg)
        {
            any_verifier = true;
            if sign1
                .verify_signature(b"", |sig, data| verifier.verify(data, sig))
                .is_ok()
            {
                return Ok(certificate.serial.clone());
            }
        }
    }
    Err(GatewayError::Unauthenticated(if !any_certificate {
        "unknown_key"
    } else if !any_verifier {
        "alg_not_allowed"
    } else {
        "bad_signature"
    }))
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

/// The protected header, read.
struct Headers {
    alg: MessageAlg,
    kid: Option<String>,
    device_id: DeviceId,
    iat: i64,
    counter: u64,
}

impl Headers {
    fn read(protected_bytes: &[u8], unprotected: &[(Value, Value)]) -> Result<Self, GatewayError> {
        // RFC 9052 §3: a zero-length bstr stands for an empty map.
        let protected = if protected_bytes.is_empty() {
            Value::Map(Vec::new())
        } else {
            read_one_item(protected_bytes)?
        };
        let Value::Map(protected) = protected else {
            return Err(GatewayError::Malformed("protected_not_map"));
        };
        let protected = labelled(protected)?;
        // RFC 9052 §3: a label appears once. An unprotected copy of one of ours is ignored
        // when it agrees and refused when it does not (it could fool a lax reader).
        for (label, value) in labelled(unprotected.to_vec())? {
            if let Label::Int(l) = label {
                let ours = UNDERSTOOD.contains(&l);
                if ours && protected.iter().any(|(p, v)| *p == label && *v != value) {
                    return Err(GatewayError::Malformed("conflicting_header"));
                }
            }
        }
        let find = |label: i64| {
            protected
                .iter()
                .find(|(l, _)| *l == Label::Int(label))
                .map(|(_, v)| v)
        };
        if let Some(crit) = find(CRIT) {
            check_critical(crit)?;
        }
        let alg = match find(ALG) {
            Some(Value::Integer(id)) => i64::try_from(*id)
                .ok()
                .and_then(MessageAlg::from_cose)
                .ok_or(GatewayError::Unauthenticated("alg_not_allowed"))?,
            Some(Value::Text(_)) => return Err(GatewayError::Unauthenticated("alg_not_allowed")),
            Some(_) => return Err(GatewayError::Malformed("bad_alg")),
            None => return Err(GatewayError::Malformed("missing_alg")),
        };
        let kid = match find(KID) {
            Some(Value::Bytes(kid)) if !kid.is_empty() && kid.len() <= MAX_KID_BYTES => Some(
                String::from_utf8(kid.clone()).map_err(|_| GatewayError::Malformed("bad_kid"))?,
            ),
            Some(_) => return Err(GatewayError::Malformed("bad_kid")),
            None => None,
        };
        let counter = match find(COUNTER_LABEL) {
            Some(Value::Integer(n)) => u64::try_from(*n)
                .ok()
                .filter(|n| *n > 0)
                .ok_or(GatewayError::Malformed("bad_counter"))?,
            Some(_) => return Err(GatewayError::Malformed("bad_counter")),
            None => return Err(GatewayError::Malformed("missing_counter")),
        };
        let (device_id, iat) = match find(CWT_CLAIMS_LABEL) {
            Some(Value::Map(claims)) => read_claims(claims)?,
            Some(_) => return Err(GatewayError::Malformed("bad_claims")),
            None => return Err(GatewayError::Malformed("missing_claims")),
        };
        Ok(Self {
            alg,
            kid,
            device_id,
            iat,
            counter,
        })
    }
}

/// `iss` and `iat` of the CWT Claims map (RFC 9597); other claims are ignored.
fn read_claims(claims: &[(Value, Value)]) -> Result<(DeviceId, i64), GatewayError> {
    let claims = labelled(claims.to_vec())?;
    let find = |key: i64| {
        claims
            .iter()
            .find(|(l, _)| *l == Label::Int(key))
            .map(|(_, v)| v)
    };
    let device_id = match find(CLAIM_ISS) {
        Some(Value::Text(iss)) => {
            DeviceId::parse(iss.as_str()).map_err(|_| GatewayError::Malformed("bad_iss"))?
        }
        Some(_) => return Err(GatewayError::Malformed("bad_iss")),
        None => return Err(GatewayError::Malformed("missing_iss")),
    };
    // RFC 8392 §2: NumericDate; only its integer form is taken.
    let iat = match find(CLAIM_IAT) {
        Some(Value::Integer(t)) => {
            i64::try_from(*t).map_err(|_| GatewayError::Malformed("bad_iat"))?
        }
        Some(_) => return Err(GatewayError::Malformed("bad_iat")),
        None => return Err(GatewayError::Malformed("missing_iat")),
    };
    Ok((device_id, iat))
}

/// RFC 9052 §3.1: every label in `crit` must be understood, or the message is refused.
fn check_critical(crit: &Value) -> Result<(), GatewayError> {
    let Value::Array(labels) = crit else {
        return Err(GatewayError::Malformed("bad_crit"));
    };
    if labels.is_empty() {
        return Err(GatewayError::Malformed("bad_crit"));
    }
    for label in labels {
        match Label::from_cbor_value(label.clone()) {
            Ok(Label::Int(l)) if UNDERSTOOD.contains(&l) => {}
            Ok(_) => return Err(GatewayError::Malformed("unknown_critical_header")),
            Err(_) => return Err(GatewayError::Malformed("bad_crit")),
        }
    }
    Ok(())
}

/// A CBOR map's entries with their keys as COSE labels (int or tstr), each label once.
fn labelled(map: Vec<(Value, Value)>) -> Result<Vec<(Label, Value)>, GatewayError> {
    let mut seen = BTreeSet::new();
    let mut entries = Vec::with_capacity(map.len());
    for (key, value) in map {
        let label =
            Label::from_cbor_value(key).map_err(|_| GatewayError::Malformed("bad_label"))?;
        if !seen.insert(label.clone()) {
            return Err(GatewayError::Malformed("duplicate_label"));
        }
        entries.push((label, value));
    }
    Ok(entries)
}

/// Exactly one CBOR data item (RFC 8949 §5.1): trailing bytes are refused.
fn read_one_item(bytes: &[u8]) -> Result<Value, GatewayError> {
    let mut rest = bytes;
    let value: Value =
        coset::cbor::de::from_reader(&mut rest).map_err(|_| GatewayError::Malformed("bad_cbor"))?;
    if !rest.is_empty() {
        return Err(GatewayError::Malformed("trailing_bytes"));
    }
    Ok(value)
}
