//! Where CA private keys are kept. The server implements [`CaVault`] with its key custody
//! (sealed under the master key, or inside the PKCS#11 token), so the CA follows
//! `[keys] backend` like the token-signing keys do; this crate never sees a private key.

use std::sync::Arc;

use portcullis_keys::{Algorithm, Signer};
use serde::{Deserialize, Serialize};

use crate::PkiError;

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

/// Key custody as the CA needs it.
pub trait CaVault: Send + Sync {
    /// Makes a new key in the configured backend.
    fn generate(&self, alg: Algorithm) -> Result<(Arc<dyn Signer>, StoredCaKey), PkiError>;
    /// Opens a stored key.
    fn load(&self, key: &StoredCaKey) -> Result<Arc<dyn Signer>, PkiError>;
    /// Takes an existing CA's PKCS#8 private key (`ca import`) into custody.
    fn import_pkcs8(&self, pkcs8: &[u8]) -> Result<(Arc<dyn Signer>, StoredCaKey), PkiError>;
}
