//! The configured [`KeyCustody`] (`[keys] backend`), and the token-signing key rows of the
//! store opened through it. Custody itself (sealing, the PKCS#11 token, the AAD per purpose)
//! lives in `portcullis_keys::custody`; this file only reads the configuration and the rows.

use std::sync::Arc;

use portcullis_keys::pkcs11::{Pkcs11Config, Pkcs11Token};
use portcullis_keys::software::MasterKey;
use portcullis_keys::{Algorithm, KeyBackend, KeyCustody, KeyError, KeyPurpose, Signer};
use portcullis_store::StoredKey;

use crate::config::Config;

/// Opens the configured custody. Opening a PKCS#11 token loads its module and logs in.
pub fn open_custody(config: &Config, master: Arc<MasterKey>) -> Result<KeyCustody, KeyError> {
    match config.keys.backend {
        KeyBackend::Pkcs11 => {
            let missing = |what: &str| {
                KeyError::Malformed(format!("keys.backend = \"pkcs11\" needs keys.{what}"))
            };
            let keys = &config.keys;
            let module_path = keys
                .pkcs11_module
                .clone()
                .ok_or_else(|| missing("pkcs11_module"))?;
            let token_label = keys
                .pkcs11_token_label
                .clone()
                .ok_or_else(|| missing("pkcs11_token_label"))?;
            let pin_file = keys
                .pkcs11_pin_file
                .as_deref()
                .ok_or_else(|| missing("pkcs11_pin_file"))?;
            let pin = Pkcs11Config::pin_from_file(pin_file)?;
            Ok(KeyCustody::Pkcs11(Arc::new(Pkcs11Token::open(
                &Pkcs11Config {
                    module_path,
                    token_label,
                    pin,
                },
            )?)))
        }
        KeyBackend::Software => Ok(KeyCustody::Software(master)),
    }
}

/// Opens a stored token-signing key.
pub fn open_signing_key(
    custody: &KeyCustody,
    key: &StoredKey,
) -> Result<Arc<dyn Signer>, KeyError> {
    custody.open(
        KeyPurpose::TokenSigning,
        KeyBackend::parse(&key.backend)?,
        Algorithm::parse(&key.alg)?,
        &key.kid,
        &key.sealed_private,
    )
}
