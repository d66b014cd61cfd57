//! CA keys sealed under the master key (AES-256-GCM, `portcullis_keys::software`), the
//! default custody. The AAD binds each sealed blob to its kid and to the CA purpose, so a
//! sealed token-signing key cannot be swapped in for a CA key or the other way round.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use portcullis_core::Kid;
use portcullis_keys::software::{self, MasterKey, SoftwareSigner};
use portcullis_keys::{Algorithm, Signer};

use super::vault::{CaVault, StoredCaKey};
use crate::PkiError;

/// The AAD of a sealed CA key.
pub fn ca_key_aad(kid: &str) -> Vec<u8> {
    format!("portcullis-ca-key:{kid}").into_bytes()
}

pub struct SoftwareCaVault {
    master: Arc<MasterKey>,
}

impl SoftwareCaVault {
    pub fn new(master: Arc<MasterKey>) -> Self {
        Self { master }
    }

    fn store(&self, signer: &SoftwareSigner, pkcs8: &[u8]) -> Result<StoredCaKey, PkiError> {
        let kid = signer.kid().as_str().to_owned();
        let sealed = software::seal(&self.master, pkcs8, &ca_key_aad(&kid))?;
        Ok(StoredCaKey {
            kid,
            alg: signer.algorithm().as_str().to_owned(),
            backend: "software".into(),
            sealed: STANDARD.encode(sealed),
        })
    }
}

impl CaVault for SoftwareCaVault {
    fn generate(&self, alg: Algorithm) -> Result<(Arc<dyn Signer>, StoredCaKey), PkiError> {
        let (signer, pkcs8) = SoftwareSigner::generate(alg)?;
        let stored = self.store(&signer, &pkcs8)?;
        Ok((Arc::new(signer), stored))
    }

    fn load(&self, key: &StoredCaKey) -> Result<Arc<dyn Signer>, PkiError> {
        if key.backend != "software" {
            return Err(PkiError::Ca(format!(
                "CA key {} is held by the {} backend, but keys.backend is software",
                key.kid, key.backend
            )));
        }
        let sealed = STANDARD
            .decode(&key.sealed)
            .map_err(|_| PkiError::Ca(format!("sealed CA key {} is not base64", key.kid)))?;
        let pkcs8 = software::open(&self.master, &sealed, &ca_key_aad(&key.kid))?;
        let alg = Algorithm::parse(&key.alg)?;
        let kid = Kid::parse(key.kid.clone())?;
        Ok(Arc::new(SoftwareSigner::from_pkcs8(alg, kid, &pkcs8)?))
    }

    fn import_pkcs8(&self, pkcs8: &[u8]) -> Result<(Arc<dyn Signer>, StoredCaKey), PkiError> {
        // The PKCS#8 names its key type; trying each CA algorithm lets aws-lc decide.
        for alg in [
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::EdDSA,
            Algorithm::RS256,
        ] {
            let kid = Kid::parse(format!("ca-{}", crate::serial::random_serial()?.1))?;
            if let Ok(signer) = SoftwareSigner::from_pkcs8(alg, kid, pkcs8) {
                let stored = self.store(&signer, pkcs8)?;
                return Ok((Arc::new(signer), stored));
            }
        }
        Err(PkiError::BadRequest(
            "the private key is not a P-256, P-384, Ed25519 or RSA PKCS#8 key".into(),
        ))
    }
}
