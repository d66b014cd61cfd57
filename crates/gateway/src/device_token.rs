//! Time-stamped device tokens: a compact JWS (RFC 7515) a device signs itself to open a
//! connection, the way Google Cloud IoT Core's devices did, with `iss` = `sub` = its device
//! id. `docs/gateway-protocol.md` lists the claims and algorithms a device uses.
//!
//! [`peek`] decodes without verifying, so the caller can tell a device token from an access
//! token (whose `iss` is our issuer URL) and fetch the device's credentials;
//! [`UnverifiedToken::verify`] then checks it. The algorithm comes from the credential, never
//! from the header (RFC 8725 §3.1): HS256 only with a device key of the header's `kid`, a
//! signature algorithm only with a current certificate whose key allows it. `alg: none`, an
//! HMAC keyed with a public key, an unknown `kid` and another device's key all fail.

use portcullis_core::device::DeviceId;
use portcullis_core::UnixTime;
use portcullis_keys::verify::{decode, verify_hmac, Decoded};
use portcullis_keys::{Algorithm, KeyError};
use serde::Deserialize;

use crate::credentials::{CredentialMethod, DeviceCredentials};
use crate::error::GatewayError;

/// Longest device token taken: a certificate-signed token with RSA-4096 is under 1 KiB.
pub const MAX_DEVICE_TOKEN_BYTES: usize = 8 * 1024;

/// The only HMAC algorithm a device token may use (RFC 7518 §3.2), with a 256-bit device key.
const HS256: &str = "HS256";

/// What a device token must satisfy beyond its signature (`[gateway]` configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceTokenRules {
    /// The `aud` the token must name (`[gateway] audience`, by default the issuer URL).
    pub audience: String,
    /// Largest `exp - iat` (`[gateway] max_device_token_secs`, default 3600).
    pub max_lifetime_secs: i64,
    /// Clock skew tolerated on `iat` and `exp` (default 60).
    pub skew_secs: i64,
}

/// A decoded, not yet verified token: nothing in it may be believed before
/// [`UnverifiedToken::verify`].
#[derive(Debug, Clone)]
pub struct UnverifiedToken {
    decoded: Decoded,
    claims: Claims,
}

/// A device token whose signature and claims verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDeviceToken {
    pub device_id: DeviceId,
    /// The device key id (HS256) or the certificate serial that verified the token.
    pub key_id: String,
    pub method: CredentialMethod,
    /// `exp`: a connection admitted with the token is closed then.
    pub expires_at: i64,
}

/// The registered claims a device token uses (RFC 7519 §4.1); others are ignored. A claim
/// of the wrong type or given twice fails the parse.
#[derive(Debug, Clone, Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    iat: Option<i64>,
    exp: Option<i64>,
}

/// RFC 7519 §4.1.3: one audience as a string, or an array of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(a) => a == audience,
            Self::Many(all) => all.iter().any(|a| a == audience),
        }
    }
}

/// Decodes a compact JWS without verifying it.
pub fn peek(token: &str) -> Result<UnverifiedToken, GatewayError> {
    if token.len() > MAX_DEVICE_TOKEN_BYTES {
        return Err(GatewayError::Malformed("token_too_long"));
    }
    let decoded = decode(token).map_err(|e| match e {
        // `decode` refuses `alg: none` outright (RFC 7518 §3.6).
        KeyError::UnsupportedAlgorithm(_) => GatewayError::Unauthenticated("alg_not_allowed"),
        _ => GatewayError::Malformed("bad_token"),
    })?;
    let claims = decoded
        .claims_as::<Claims>()
        .map_err(|_| GatewayError::Malformed("bad_claims"))?;
    Ok(UnverifiedToken { decoded, claims })
}

impl UnverifiedToken {
    /// `iss`, if present: our issuer URL for an access token, the device id for a device
    /// token.
    pub fn issuer(&self) -> Option<&str> {
        self.claims.iss.as_deref()
    }

    /// The device the token claims to be from: `iss`, which must equal `sub` and be a
    /// valid device id.
    pub fn device_id(&self) -> Result<DeviceId, GatewayError> {
        let iss = self
            .claims
            .iss
            .as_deref()
            .ok_or(GatewayError::Malformed("missing_iss"))?;
        if self.claims.sub.as_deref() != Some(iss) {
            return Err(GatewayError::Malformed("sub_not_iss"));
        }
        DeviceId::parse(iss).map_err(|_| GatewayError::Malformed("bad_iss"))
    }

    /// The header's `kid`: a device key id (HS256) or a certificate serial in hex.
    pub fn kid(&self) -> Option<&str> {
        self.decoded.header.kid.as_deref()
    }

    /// The header's `alg` as written (compared with the credential, never trusted alone).
    pub fn alg(&self) -> &str {
        &self.decoded.header.alg
    }

    /// Verifies the signature under the device's credentials, then the claims against
    /// `rules` at `now`.
    pub fn verify(
        self,
        creds: &DeviceCredentials,
        rules: &DeviceTokenRules,
        now: UnixTime,
    ) -> Result<VerifiedDeviceToken, GatewayError> {
        let device_id = self.device_id()?;
        if creds.device_id != device_id {
            return Err(GatewayError::Unauthenticated("wrong_device"));
        }
        let key_id = self.verify_signature(creds, now)?;
        let expires_at = self.check_claims(rules, now)?;
        Ok(VerifiedDeviceToken {
            device_id,
            key_id,
            method: CredentialMethod::DeviceToken,
            expires_at,
        })
    }

    /// The key id (device key or certificate serial) whose key verifies the signature.
    fn verify_signature(
        &self,
        creds: &DeviceCredentials,
        now: UnixTime,
    ) -> Result<String, GatewayError> {
        let alg = self.alg();
        if alg == HS256 {
            // Only a device key of this kid: a certificate serial (a public key) never
            // keys an HMAC here.
            let key = self
                .kid()
                .and_then(|kid| creds.symmetric_key(kid, now))
                .ok_or(GatewayError::Unauthenticated("unknown_key"))?;
            // `verify_hmac` compares the tag in constant time.
            return verify_hmac(&self.decoded, key.key.as_slice())
                .map(|()| key.key_id.clone())
                .map_err(|_| GatewayError::Unauthenticated("bad_signature"));
        }
        let alg =
            Algorithm::parse(alg).map_err(|_| GatewayError::Unauthenticated("alg_not_allowed"))?;
        creds.verify_by_certificate(self.kid(), alg, now, |verifier| {
            self.decoded.verify(verifier).is_ok()
        })
    }

    /// RFC 7519 §4.1.3–4.1.6 with the gateway's rules; returns `exp`.
    fn check_claims(&self, rules: &DeviceTokenRules, now: UnixTime) -> Result<i64, GatewayError> {
        let claims = &self.claims;
        let iat = claims.iat.ok_or(GatewayError::Malformed("missing_iat"))?;
        let exp = claims.exp.ok_or(GatewayError::Malformed("missing_exp"))?;
        if !claims
            .aud
            .as_ref()
            .is_some_and(|aud| aud.contains(&rules.audience))
        {
            return Err(GatewayError::Unauthenticated("wrong_audience"));
        }
        if exp <= iat {
            return Err(GatewayError::Malformed("exp_not_after_iat"));
        }
        if exp.saturating_sub(iat) > rules.max_lifetime_secs {
            return Err(GatewayError::Unauthenticated("lifetime_too_long"));
        }
        if iat > now.saturating_add(rules.skew_secs) {
            return Err(GatewayError::Unauthenticated("not_yet_valid"));
        }
        if exp <= now.saturating_sub(rules.skew_secs) {
            return Err(GatewayError::Unauthenticated("expired"));
        }
        Ok(exp)
    }
}
