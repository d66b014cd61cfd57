//! Splitting and decoding a compact JWS (RFC 7515 §7.1) before any signature is checked.
//!
//! Everything here is untrusted input, so the parse is strict: a size cap, exactly three
//! segments, base64url without padding (RFC 7515 §2), JSON objects for header and claims,
//! and no `crit` header, since we implement no extension that could be critical (§4.1.11).

use super::VerifyingKey;
use crate::jwk::IncomingJwk;
use crate::{Jwk, KeyError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;

/// Longest token accepted: far above any JWT Portcullis issues or accepts as an assertion.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The protected header members a verifier needs (RFC 7515 §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwsHeader {
    /// `alg` exactly as written; compared with the key's algorithm, never trusted alone.
    pub alg: String,
    /// `kid`, if present.
    pub kid: Option<String>,
    /// `typ`, if present (RFC 8725 §3.11 explicit typing).
    pub typ: Option<String>,
    /// `jwk` (RFC 7515 §4.1.3), public members only: a key carrying private or symmetric
    /// members is refused while decoding. Only DPoP proofs (RFC 9449 §4.2) verify with it;
    /// every other verifier ignores it, since a token naming its own key proves nothing.
    pub jwk: Option<Box<Jwk>>,
}

/// A decoded but not yet verified token.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The protected header.
    pub header: JwsHeader,
    /// The payload: a JSON object, as bytes.
    pub claims: Vec<u8>,
    /// `header '.' payload` as received: the JWS signing input (RFC 7515 §5.2 step 8).
    signing_input: String,
    signature: Vec<u8>,
}

/// The header as parsed; `crit` is captured only to refuse it.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
    #[serde(default)]
    jwk: Option<Box<IncomingJwk>>,
}

/// Splits and decodes a compact JWS; the signature is *not* checked here.
pub fn decode(token: &str) -> Result<Decoded, KeyError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(KeyError::Malformed("token is longer than 16 KiB".into()));
    }
    let mut segments = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(KeyError::Malformed(
            "token must have exactly three '.'-separated segments".into(),
        ));
    };

    let header_json = decode_segment("header", header_b64)?;
    require_json_object("header", &header_json)?;
    let raw: RawHeader = serde_json::from_slice(&header_json).map_err(|_| {
        KeyError::Malformed("header must be a JSON object with a string alg".into())
    })?;
    if raw.crit.is_some() {
        return Err(KeyError::Malformed(
            "header has crit; no extensions are understood (RFC 7515 §4.1.11)".into(),
        ));
    }
    let jwk = match raw.jwk {
        Some(jwk) if jwk.has_private_member() => {
            return Err(KeyError::PrivateKeyMaterial("the header's jwk"))
        }
        Some(jwk) => Some(Box::new(jwk.public)),
        None => None,
    };
    if raw.alg == "none" {
        // RFC 7518 §3.6: never accepted; refused here already as defense in depth.
        return Err(KeyError::UnsupportedAlgorithm("none".into()));
    }

    let claims = decode_segment("payload", claims_b64)?;
    require_json_object("payload", &claims)?;
    serde_json::from_slice::<IgnoredAny>(&claims)
        .map_err(|_| KeyError::Malformed("payload is not valid JSON".into()))?;

    let signature = decode_segment("signature", signature_b64)?;
    if signature.is_empty() {
        return Err(KeyError::Malformed("signature is empty".into()));
    }

    let signing_input_len = header_b64.len() + 1 + claims_b64.len();
    Ok(Decoded {
        header: JwsHeader {
            alg: raw.alg,
            kid: raw.kid,
            typ: raw.typ,
            jwk,
        },
        claims,
        signing_input: token[..signing_input_len].to_owned(),
        signature,
    })
}

/// Strict base64url: URL-safe alphabet, no padding, canonical trailing bits.
fn decode_segment(what: &str, segment: &str) -> Result<Vec<u8>, KeyError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| KeyError::Malformed(format!("{what} is not unpadded base64url")))
}

/// Serde would also build a struct from a JSON array, so the object shape is checked first.
fn require_json_object(what: &str, json: &[u8]) -> Result<(), KeyError> {
    match json.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        _ => Err(KeyError::Malformed(format!("{what} is not a JSON object"))),
    }
}

impl Decoded {
    /// Deserializes the claims into the caller's type.
    pub fn claims_as<T: DeserializeOwned>(&self) -> Result<T, KeyError> {
        serde_json::from_slice(&self.claims)
            .map_err(|e| KeyError::Malformed(format!("claims do not fit: {}", claim_error(&e))))
    }

    /// Verifies the signature with `key`: the header's `alg` must be exactly the key's
    /// algorithm (RFC 8725 §3.1), then the signature must check out (ECDSA as the fixed
    /// `r||s` of RFC 7518 §3.4).
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), KeyError> {
        if !key.algorithm().matches_header(&self.header.alg) {
            return Err(KeyError::AlgorithmMismatch);
        }
        key.verify(self.signing_input.as_bytes(), &self.signature)
    }

    /// The JWS signing input, `header '.' payload` (RFC 7515 §5.2 step 8).
    pub(crate) fn signing_input(&self) -> &[u8] {
        self.signing_input.as_bytes()
    }

    /// The decoded signature bytes.
    pub(crate) fn signature(&self) -> &[u8] {
        &self.signature
    }
}

/// serde_json's data errors name the field and expected type, never the value; syntax
/// errors only carry a position. Either is safe to show.
fn claim_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    crate::error::shorten_to(&text, 120)
}
