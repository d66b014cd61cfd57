//! Operator-signed objects: what travels from Portcullis to a device — commands, settings,
//! update manifests — and the trust list that says which keys may sign them (issue #13).
//!
//! None of the IoT platforms signs a command end to end: the device believes whatever its
//! connection delivers. Here every object is a `COSE_Sign1` (RFC 9052 §4.2) signed by a key
//! of its own role in key custody, and the device checks it with keys it learned from a
//! trust list that a root key signed (the TUF/Uptane idea: the device pins only the root, so
//! the operational keys can rotate and a revoked one is dropped from the next list).
//!
//! Layout (`docs/signed-objects.md`): protected header `{1: alg, 3: content type, 4: kid}`,
//! the payload a CBOR map with text keys. The content type names the kind of object, and a
//! verifier demands the one it expects, so a manifest can never be taken for a command nor
//! a command signed by the update key be believed: each kind names the one role whose keys
//! may sign it.

mod cose_key;
mod objects;
mod registry;

pub use cose_key::{cose_key_from_jwk, jwk_from_cose_key};
pub use objects::{
    CommandObject, SettingsObject, TrustList, TrustedKey, UpdateManifest, CLOCK_SKEW_SECS,
};
pub use registry::{
    OperatorKeyState, OperatorKeys, PublishedTrustList, StoredOperatorKey, StoredOperatorKeys,
    OPERATOR_KEYS_SETTING, TRUST_LIST_SETTING,
};

use coset::cbor::value::Value;
use coset::iana::{self, EnumI64 as _};
use coset::{
    CborSerializable as _, ContentType, CoseSign1, CoseSign1Builder, HeaderBuilder,
    TaggedCborSerializable as _,
};
use portcullis_keys::verify::VerifyingKey;
use portcullis_keys::{Algorithm, Signer};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::GatewayError;

/// Largest signed object accepted (a command's arguments, a manifest, a trust list).
pub const MAX_OBJECT_BYTES: usize = 64 * 1024;

/// Which key signs which kind of object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Signs the trust list; may live offline (an air-gapped file or the HSM).
    Root,
    Commands,
    Settings,
    Updates,
}

impl Role {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::Commands => "commands",
            Self::Settings => "settings",
            Self::Updates => "updates",
        }
    }
}

/// The kinds of signed object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Trust,
    Command,
    Settings,
    Manifest,
}

impl Kind {
    /// The protected content type (RFC 9052 §3.1, label 3) that names this kind.
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::Trust => "application/vnd.portcullis.trust+cbor",
            Self::Command => "application/vnd.portcullis.command+cbor",
            Self::Settings => "application/vnd.portcullis.settings+cbor",
            Self::Manifest => "application/vnd.portcullis.manifest+cbor",
        }
    }

    /// The one role whose keys may sign this kind.
    pub const fn role(self) -> Role {
        match self {
            Self::Trust => Role::Root,
            Self::Command => Role::Commands,
            Self::Settings => Role::Settings,
            Self::Manifest => Role::Updates,
        }
    }
}

/// The COSE identifier of a signature algorithm (RFC 9053 §2, RFC 8230 §2).
pub(crate) fn cose_algorithm(alg: Algorithm) -> iana::Algorithm {
    match alg {
        Algorithm::EdDSA => iana::Algorithm::EdDSA,
        Algorithm::ES256 => iana::Algorithm::ES256,
        Algorithm::ES384 => iana::Algorithm::ES384,
        Algorithm::PS256 => iana::Algorithm::PS256,
        Algorithm::RS256 => iana::Algorithm::RS256,
    }
}

/// Signs `payload` (serialised as CBOR) as an object of `kind` with `signer`, whose role the
/// caller vouches for (the trust list is what tells devices).
pub fn sign<P: Serialize>(
    kind: Kind,
    payload: &P,
    signer: &dyn Signer,
) -> Result<Vec<u8>, GatewayError> {
    let mut body = Vec::new();
    ciborium::into_writer(payload, &mut body)
        .map_err(|e| GatewayError::Internal(format!("encoding a signed object: {e}")))?;
    let header = HeaderBuilder::new()
        .algorithm(cose_algorithm(signer.algorithm()))
        .content_type(kind.content_type().to_owned())
        .key_id(signer.kid().as_str().as_bytes().to_vec())
        .build();
    let sign1 = CoseSign1Builder::new()
        .protected(header)
        .payload(body)
        .try_create_signature(b"", |data| signer.sign(data))
        .map_err(|e| GatewayError::Internal(format!("signing a {}: {e}", kind.role().as_str())))?
        .build();
    sign1
        .to_tagged_vec()
        .map_err(|e| GatewayError::Internal(format!("encoding a signed object: {e}")))
}

/// Verifies an object of `kind` and decodes its payload. `key_for(kid)` answers the
/// verifying key that `kid` names *for the kind's role* (from a trust list, or the pinned
/// root), or `None`. Checks the envelope only: what the payload must say (the device, the
/// time, the sequence) is for the caller, see [`objects`].
pub fn open<P: DeserializeOwned>(
    bytes: &[u8],
    kind: Kind,
    key_for: impl Fn(&str) -> Option<VerifyingKey>,
) -> Result<P, GatewayError> {
    if bytes.len() > MAX_OBJECT_BYTES {
        return Err(GatewayError::TooLarge);
    }
    let sign1 = decode_sign1(bytes)?;
    let protected = &sign1.protected.header;
    if !sign1.unprotected.is_empty() {
        // Everything that matters is protected; an unprotected kid or alg could only mislead.
        return Err(GatewayError::Malformed("unprotected_header"));
    }
    match &protected.content_type {
        Some(ContentType::Text(t)) if t == kind.content_type() => {}
        _ => return Err(GatewayError::Malformed("wrong_content_type")),
    }
    let kid = std::str::from_utf8(&protected.key_id)
        .map_err(|_| GatewayError::Malformed("kid_not_utf8"))?;
    let key = key_for(kid).ok_or(GatewayError::Unauthenticated("unknown_kid"))?;
    // The algorithm comes from the key; the header must agree with it, never choose it.
    let alg = cose_algorithm(key.algorithm());
    match &protected.alg {
        Some(coset::Algorithm::Assigned(a)) if a.to_i64() == alg.to_i64() => {}
        _ => return Err(GatewayError::Unauthenticated("alg_not_allowed")),
    }
    if !protected.crit.is_empty() {
        return Err(GatewayError::Malformed("unknown_critical_header"));
    }
    sign1
        .verify_signature(b"", |signature, data| key.verify(data, signature))
        .map_err(|_| GatewayError::Unauthenticated("bad_signature"))?;
    let payload = sign1
        .payload
        .as_deref()
        .ok_or(GatewayError::Malformed("detached_payload"))?;
    ciborium::from_reader(payload).map_err(|_| GatewayError::Malformed("payload"))
}

/// A `COSE_Sign1`, tagged (as we send it) or not.
fn decode_sign1(bytes: &[u8]) -> Result<CoseSign1, GatewayError> {
    CoseSign1::from_tagged_slice(bytes)
        .or_else(|_| CoseSign1::from_slice(bytes))
        .map_err(|_| GatewayError::Malformed("not_cose_sign1"))
}

/// A CBOR value from JSON (command arguments, settings values), refusing what CBOR cannot
/// carry faithfully.
pub fn cbor_from_json(json: &serde_json::Value) -> Result<Value, GatewayError> {
    Value::serialized(json).map_err(|_| GatewayError::Malformed("json_to_cbor"))
}

#[cfg(test)]
mod tests;
