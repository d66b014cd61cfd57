//! The CA's keys follow `[keys] backend`: sealed under the master key like signing keys, or
//! generated and kept inside the PKCS#11 token. This adapts [`KeyCustody`] to the PKI's
//! [`CaVault`] port.

use std::sync::Arc;

use portcullis_core::Kid;
use portcullis_keys::{Algorithm, Signer};
use portcullis_pki::ca::{CaVault, SoftwareCaVault, StoredCaKey};
use portcullis_pki::PkiError;

use crate::key_custody::KeyCustody;

pub struct CustodyVault<'a> {
    custody: &'a KeyCustody,
}

impl<'a> CustodyVault<'a> {
    pub fn new(custody: &'a KeyCustody) -> Self {
        Self { custody }
    }
}

impl CaVault for CustodyVault<'_> {
    fn generate(&self, alg: Algorithm) -> Result<(Arc<dyn Signer>, StoredCaKey), PkiError> {
        match self.custody {
            KeyCustody::Software(master) => SoftwareCaVault::new(master.clone()).generate(alg),
            KeyCustody::Pkcs11(token) => {
                let signer = token.generate(alg)?;
                let stored = StoredCaKey {
                    kid: signer.kid().as_str().to_owned(),
                    alg: alg.as_str().to_owned(),
                    backend: "pkcs11".into(),
                    sealed: String::new(),
                };
                Ok((Arc::new(signer), stored))
            }
        }
    }

    fn load(&self, key: &StoredCaKey) -> Result<Arc<dyn Signer>, PkiError> {
        match (self.custody, key.backend.as_str()) {
            (KeyCustody::Software(master), "software") => {
                SoftwareCaVault::new(master.clone()).load(key)
            }
            (KeyCustody::Pkcs11(token), "pkcs11") => {
                Ok(Arc::new(token.find(&Kid::parse(key.kid.clone())?)?))
            }
            _ => Err(PkiError::Ca(format!(
                "the CA key {} is held by the {} backend, but keys.backend is {}",
                key.kid,
                key.backend,
                self.custody.backend_name()
            ))),
        }
    }

    fn import_pkcs8(&self, pkcs8: &[u8]) -> Result<(Arc<dyn Signer>, StoredCaKey), PkiError> {
        match self.custody {
            KeyCustody::Software(master) => {
                SoftwareCaVault::new(master.clone()).import_pkcs8(pkcs8)
            }
            KeyCustody::Pkcs11(_) => Err(PkiError::Ca(
                "ca import puts the key under the master key; with keys.backend = \"pkcs11\" \
                 import it into the token with your HSM's tools instead"
                    .into(),
            )),
        }
    }
}
