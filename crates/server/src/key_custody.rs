//! Where access-token signing keys live, chosen by `[keys] backend`: sealed in the store under
//! the master key (`software`), or inside a PKCS#11 token (`pkcs11`) where the private key is
//! generated, kept non-extractable and used without ever leaving the device.

use std::sync::Arc;

use portcullis_core::Kid;
use portcullis_keys::pkcs11::{Pkcs11Config, Pkcs11Token};
use portcullis_keys::software::{self, MasterKey, SoftwareSigner};
use portcullis_keys::{Algorithm, KeyError, Signer};
use portcullis_store::StoredKey;

use crate::config::Config;
use crate::config_values::KeyBackend;

/// The custody of signing keys.
pub enum KeyCustody {
    /// PKCS#8 sealed with AES-256-GCM under the master key, stored in the database.
    Software(Arc<MasterKey>),
    /// Keys inside a PKCS#11 token; the database holds only their public half and kid.
    Pkcs11(Pkcs11Token),
}

impl KeyCustody {
    /// Opens the configured custody. Opening a PKCS#11 token loads its module and logs in.
    pub fn open(config: &Config, master: Arc<MasterKey>) -> Result<Self, KeyError> {
        match config.keys.backend {
            KeyBackend::Pkcs11 => {
                let missing = |what: &str| {
                    KeyError::Malformed(format!("keys.backend = \"pkcs11\" needs keys.{what}"))
                };
                let module_path = config
                    .keys
                    .pkcs11_module
                    .clone()
                    .ok_or_else(|| missing("pkcs11_module"))?;
                let token_label = config
                    .keys
                    .pkcs11_token_label
                    .clone()
                    .ok_or_else(|| missing("pkcs11_token_label"))?;
                let pin_file = config
                    .keys
                    .pkcs11_pin_file
                    .as_deref()
                    .ok_or_else(|| missing("pkcs11_pin_file"))?;
                let pin = Pkcs11Config::pin_from_file(pin_file)?;
                Ok(Self::Pkcs11(Pkcs11Token::open(&Pkcs11Config {
                    module_path,
                    token_label,
                    pin,
                })?))
            }
            KeyBackend::Software => Ok(Self::Software(master)),
        }
    }

    /// The name stored with each key (`StoredKey::backend`).
    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Software(_) => "software",
            Self::Pkcs11(_) => "pkcs11",
        }
    }

    /// Generates a key of `alg`; returns its signer and what the store keeps of the private
    /// key (the sealed PKCS#8, or nothing for a token key, which the token finds by kid).
    pub fn generate(&self, alg: Algorithm) -> Result<(Arc<dyn Signer>, Vec<u8>), KeyError> {
        match self {
            Self::Software(master) => {
                let (signer, pkcs8) = SoftwareSigner::generate(alg)?;
                let sealed = software::seal(master, &pkcs8, &key_aad(signer.kid()))?;
                Ok((Arc::new(signer), sealed))
            }
            Self::Pkcs11(token) => Ok((Arc::new(token.generate(alg)?), Vec::new())),
        }
    }

    /// Loads the signer of a stored key held in this custody.
    pub fn load(&self, key: &StoredKey) -> Result<Arc<dyn Signer>, KeyError> {
        if key.backend != self.backend_name() {
            return Err(KeyError::Malformed(format!(
                "key {} is held by the {} backend, but keys.backend is {}",
                key.kid,
                key.backend,
                self.backend_name()
            )));
        }
        match self {
            Self::Software(master) => {
                let alg = Algorithm::parse(&key.alg)?;
                let pkcs8 = software::open(master, &key.sealed_private, &key_aad(&key.kid))?;
                Ok(Arc::new(SoftwareSigner::from_pkcs8(
                    alg,
                    key.kid.clone(),
                    &pkcs8,
                )?))
            }
            Self::Pkcs11(token) => Ok(Arc::new(token.find(&key.kid)?)),
        }
    }
}

/// The AAD that binds a sealed private key to its key id, so sealed blobs cannot be swapped.
pub(crate) fn key_aad(kid: &Kid) -> Vec<u8> {
    format!("portcullis-signing-key:{kid}").into_bytes()
}
