//! What the gateway knows about one device when it checks a credential or a message: its
//! state, its policy, its symmetric keys (unsealed) and the public keys of its current
//! certificates. Built from the device registry and cached per device; dropped from the cache
//! when the registry announces a change to the device (its state, its keys, a revocation).

use portcullis_core::device::DeviceId;
use portcullis_core::UnixTime;
use portcullis_keys::verify::VerifyingKey;
use zeroize::Zeroizing;

/// Whether a device's messages must be COSE objects (RFC 9052) or may ride on an
/// authenticated connection alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageAuth {
    /// Every message must carry its own `COSE_Sign1` / `COSE_Mac0`.
    Required,
    /// A message may also be plain data on a connection authenticated by certificate,
    /// device token or access token.
    Optional,
}

impl MessageAuth {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "required" => Some(Self::Required),
            "optional" => Some(Self::Optional),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::Optional => "optional",
        }
    }
}

/// A symmetric device key (256 bits), used for HS256 device tokens and `COSE_Mac0`.
pub struct SymmetricKey {
    pub key_id: String,
    pub key: Zeroizing<[u8; 32]>,
    /// After this instant the key no longer verifies (a rotated key's overlap end).
    pub not_after: Option<UnixTime>,
}

impl std::fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SymmetricKey")
            .field("key_id", &self.key_id)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// The public key of one current (issued by our CA, unrevoked, unexpired) certificate of the
/// device: the key a device token or a `COSE_Sign1` from it must verify under.
#[derive(Debug, Clone)]
pub struct CertificateKey {
    /// The certificate's serial as the store keys it (lowercase hex): the `kid` a device
    /// names it by.
    pub serial: String,
    /// One verifier per algorithm the key type allows (EC P-256 → ES256; RSA → RS256 and
    /// PS256). A token or message picks among these by its `alg`; a name not among them is
    /// refused, so the algorithm always comes from the credential.
    pub verifiers: Vec<VerifyingKey>,
    pub not_after: UnixTime,
}

/// Everything needed to verify one device.
#[derive(Debug)]
pub struct DeviceCredentials {
    pub device_id: DeviceId,
    pub model: Option<String>,
    /// Registered or enrolled: only these are admitted. The keys and certificates below are
    /// there for inactive devices too (to name a device refused for its state), so every
    /// use of them checks this first.
    pub active: bool,
    pub message_auth: MessageAuth,
    pub keys: Vec<SymmetricKey>,
    pub certificates: Vec<CertificateKey>,
}

impl DeviceCredentials {
    /// The symmetric key named `key_id`, if it still verifies at `now`.
    pub fn symmetric_key(&self, key_id: &str, now: UnixTime) -> Option<&SymmetricKey> {
        self.keys
            .iter()
            .find(|k| k.key_id == key_id && k.not_after.is_none_or(|end| now < end))
    }

    /// The certificates a signature may come from: the one named by `serial` when the
    /// message names one, else every current certificate.
    pub fn certificates<'a>(
        &'a self,
        serial: Option<&'a str>,
        now: UnixTime,
    ) -> impl Iterator<Item = &'a CertificateKey> + 'a {
        self.certificates.iter().filter(move |c| {
            now < c.not_after && serial.is_none_or(|s| s.eq_ignore_ascii_case(&c.serial))
        })
    }

    /// The serial of the first of [`Self::certificates`] with a key of algorithm `alg` for
    /// which `verifies` holds: the credential decides the algorithm (RFC 8725 §3.1), never
    /// the message. The refusal says which step failed: no such certificate, no key of that
    /// algorithm, or no signature that verifies.
    pub fn verify_by_certificate(
        &self,
        serial: Option<&str>,
        alg: portcullis_keys::Algorithm,
        now: UnixTime,
        mut verifies: impl FnMut(&VerifyingKey) -> bool,
    ) -> Result<String, crate::GatewayError> {
        let mut any_certificate = false;
        let mut any_verifier = false;
        for certificate in self.certificates(serial, now) {
            any_certificate = true;
            for verifier in certificate
                .verifiers
                .iter()
                .filter(|v| v.algorithm() == alg)
            {
                any_verifier = true;
                if verifies(verifier) {
                    return Ok(certificate.serial.clone());
                }
            }
        }
        Err(crate::GatewayError::Unauthenticated(if !any_certificate {
            "unknown_key"
        } else if !any_verifier {
            "alg_not_allowed"
        } else {
            "bad_signature"
        }))
    }
}

/// How a message's sender was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialMethod {
    /// The connection's TLS client certificate.
    Certificate,
    /// A JWT the device signed itself.
    DeviceToken,
    /// An access token `/oauth2/token` issued to the device.
    AccessToken,
    /// The message is a `COSE_Sign1` under the device's certificate key.
    CoseSign1,
    /// The message is a `COSE_Mac0` under a device key.
    CoseMac0,
}

impl CredentialMethod {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Certificate => "certificate",
            Self::DeviceToken => "device_token",
            Self::AccessToken => "access_token",
            Self::CoseSign1 => "cose_sign1",
            Self::CoseMac0 => "cose_mac0",
        }
    }
}
