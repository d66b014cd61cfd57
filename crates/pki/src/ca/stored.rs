//! The CA as persisted: one settings row (`pki.ca`) holding both certificates and both key
//! handles. Written with `put_setting_if_absent`, so when several nodes start on an empty
//! PostgreSQL database at once exactly one hierarchy wins and every node loads that one.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::custody::StoredCaKey;
use crate::PkiError;

/// The settings row that holds the CA.
pub const CA_SETTING: &str = "pki.ca";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredCa {
    pub version: u32,
    /// base64 DER of the root certificate.
    pub root_cert: String,
    /// base64 DER of the issuing (intermediate) certificate.
    pub issuing_cert: String,
    /// The root key; `None` for an imported CA whose root key stayed offline.
    pub root_key: Option<StoredCaKey>,
    pub issuing_key: StoredCaKey,
    /// `generated` or `imported`.
    pub origin: String,
    pub created_at: i64,
}

impl StoredCa {
    pub fn to_bytes(&self) -> Vec<u8> {
        // A struct of strings and integers always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PkiError> {
        let ca: StoredCa = serde_json::from_slice(bytes)
            .map_err(|e| PkiError::Ca(format!("stored CA record is unreadable: {e}")))?;
        if ca.version != 1 {
            return Err(PkiError::Ca(format!(
                "stored CA record has version {}, this build reads version 1",
                ca.version
            )));
        }
        Ok(ca)
    }

    pub fn root_der(&self) -> Result<Vec<u8>, PkiError> {
        decode(&self.root_cert, "root")
    }

    pub fn issuing_der(&self) -> Result<Vec<u8>, PkiError> {
        decode(&self.issuing_cert, "issuing")
    }
}

fn decode(b64: &str, which: &str) -> Result<Vec<u8>, PkiError> {
    STANDARD
        .decode(b64)
        .map_err(|_| PkiError::Ca(format!("stored {which} certificate is not base64")))
}
