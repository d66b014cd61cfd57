//! CA keys in key custody (`portcullis_keys::custody`), which follows `[keys] backend` for
//! the CA as for token-signing keys: sealed under the master key with the CA purpose in the
//! AAD, or generated and kept inside the PKCS#11 token. This crate never sees a private key:
//! it keeps a [`StoredCaKey`] handle and asks custody for a signer.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use portcullis_core::Kid;
use portcullis_keys::{
    Algorithm, CustodyKey, KeyBackend, KeyCustody, KeyError, KeyPurpose, Signer,
};
use serde::{Deserialize, Serialize};

use crate::PkiError;

/// The algorithms an imported CA key may have.
const IMPORTABLE: [Algorithm; 4] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::RS256,
];

/// What the store keeps of a CA key: a handle, never plaintext key material.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCaKey {
    pub kid: String,
    pub alg: String,
    /// `software` (sealed PKCS#8 below) or `pkcs11` (the token finds it by kid).
    pub backend: String,
    /// base64 of the sealed PKCS#8; empty for a key inside a token.
    #[serde(default)]
    pub sealed: String,
}

impl std::fmt::Debug for StoredCaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCaKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl StoredCaKey {
    fn of(custody: &KeyCustody, key: &CustodyKey) -> Self {
        StoredCaKey {
            kid: key.signer.kid().as_str().to_owned(),
            alg: key.signer.algorithm().as_str().to_owned(),
            backend: custody.backend().as_str().to_owned(),
            sealed: if key.sealed.is_empty() {
                String::new()
            } else {
                STANDARD.encode(&key.sealed)
            },
        }
    }

    /// Makes a new CA key of `alg` in custody.
    pub fn generate(
        custody: &KeyCustody,
        alg: Algorithm,
    ) -> Result<(Arc<dyn Signer>, StoredCaKey), PkiError> {
        let key = custody.generate(KeyPurpose::CertificateAuthority, alg)?;
        Ok((key.signer.clone(), Self::of(custody, &key)))
    }

    /// Takes an existing CA's PKCS#8 private key (`ca import`) into custody.
    pub fn import_pkcs8(
        custody: &KeyCustody,
        pkcs8: &[u8],
    ) -> Result<(Arc<dyn Signer>, StoredCaKey), PkiError> {
        let kid = Kid::parse(format!("ca-{}", crate::serial::random_serial()?.1))?;
        let key = custody
            .import_pkcs8(KeyPurpose::CertificateAuthority, &kid, pkcs8, &IMPORTABLE)
            .map_err(|e| match e {
                KeyError::UnsupportedAlgorithm(_) => PkiError::Invalid(
                    "the private key is not a P-256, P-384, Ed25519 or RSA PKCS#8 key".into(),
                ),
                other => PkiError::Key(other),
            })?;
        Ok((key.signer.clone(), Self::of(custody, &key)))
    }

    /// Opens this key through custody.
    pub fn open(&self, custody: &KeyCustody) -> Result<Arc<dyn Signer>, PkiError> {
        let sealed = STANDARD
            .decode(&self.sealed)
            .map_err(|_| PkiError::Ca(format!("sealed CA key {} is not base64", self.kid)))?;
        Ok(custody.open(
            KeyPurpose::CertificateAuthority,
            KeyBackend::parse(&self.backend)?,
            Algorithm::parse(&self.alg)?,
            &Kid::parse(self.kid.clone())?,
            &sealed,
        )?)
    }
}
