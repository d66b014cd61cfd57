//! Certificate profiles: what a device certificate looks like and which keys a device may
//! certify. Configured in `[pki]`; the defaults are the short-lived client certificate the
//! issue asks for (30 days, P-256 / P-384 / Ed25519 / RSA ≥ 2048).

use serde::{Deserialize, Serialize};

use crate::PkiError;

/// A subject key type a profile can allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyType {
    #[serde(rename = "P-256")]
    P256,
    #[serde(rename = "P-384")]
    P384,
    #[serde(rename = "Ed25519")]
    Ed25519,
    #[serde(rename = "RSA")]
    Rsa,
}

impl KeyType {
    pub const ALL: [KeyType; 4] = [Self::P256, Self::P384, Self::Ed25519, Self::Rsa];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::Ed25519 => "Ed25519",
            Self::Rsa => "RSA",
        }
    }

    pub fn parse(s: &str) -> Result<Self, PkiError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                PkiError::Invalid(format!(
                    "unknown key type {s:?}; expected P-256, P-384, Ed25519 or RSA"
                ))
            })
    }
}

/// The profile of device certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateProfile {
    /// Lifetime of an issued certificate in seconds.
    pub lifetime_secs: i64,
    /// Key types a CSR may carry.
    pub allowed_keys: Vec<KeyType>,
    /// Smallest RSA modulus accepted, in bits (never below 2048).
    pub min_rsa_bits: usize,
    /// Backdating of `notBefore` to tolerate device clocks that run a little slow.
    pub backdate_secs: i64,
}

/// 30 days.
pub const DEFAULT_LIFETIME_SECS: i64 = 30 * 24 * 3600;

impl Default for CertificateProfile {
    fn default() -> Self {
        Self {
            lifetime_secs: DEFAULT_LIFETIME_SECS,
            allowed_keys: KeyType::ALL.to_vec(),
            min_rsa_bits: 2048,
            backdate_secs: 60,
        }
    }
}

impl CertificateProfile {
    /// Checks the profile itself (configuration errors surface at start, not at enrollment).
    pub fn validate(&self) -> Result<(), PkiError> {
        if self.lifetime_secs < 60 || self.lifetime_secs > 825 * 24 * 3600 {
            return Err(PkiError::Ca(
                "certificate lifetime must be between 1 minute and 825 days".into(),
            ));
        }
        if self.allowed_keys.is_empty() {
            return Err(PkiError::Ca(
                "a profile must allow at least one key type".into(),
            ));
        }
        if self.min_rsa_bits < 2048 {
            return Err(PkiError::Ca(
                "RSA keys below 2048 bits are never allowed".into(),
            ));
        }
        Ok(())
    }
}
