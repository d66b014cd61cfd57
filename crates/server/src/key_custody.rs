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

/// Refuses a `[keys] backend` other than the one holding this store's CA keys and audit data
/// keys, before anything is changed. Only token signing keys move to another custody (by
/// rotation); the CA and audit data keys stay where they were made, so a node configured
/// otherwise could not open them — and rotating its signing key first would only churn the
/// key table on the way to that failure. `ca` and `data_keys` are the settings' bytes.
pub fn check_custody_matches(
    configured: KeyBackend,
    ca: Option<&[u8]>,
    data_keys: Option<&[u8]>,
) -> Result<(), KeyError> {
    let mut held: Vec<(&str, String, String)> = Vec::new();
    if let Some(ca) =
        ca.and_then(|b| serde_json::from_slice::<portcullis_pki::ca::StoredCa>(b).ok())
    {
        held.extend(
            ca.root_key
                .iter()
                .map(|k| ("CA root key", k.kid.clone(), k.backend.clone())),
        );
        let issuing = ca.issuing_key;
        held.push(("CA issuing key", issuing.kid, issuing.backend));
    }
    if let Some(keys) =
        data_keys.and_then(|b| portcullis_audit::sealing::StoredDataKeys::parse(b).ok())
    {
        held.extend(
            keys.keys
                .into_iter()
                .map(|k| ("audit data key", k.kid, k.backend)),
        );
    }
    match held
        .into_iter()
        .find(|(_, _, backend)| backend != configured.as_str())
    {
        None => Ok(()),
        Some((what, kid, backend)) => Err(KeyError::Malformed(format!(
            "keys.backend is \"{configured}\", but this store's {what} {kid} is held by the \
             \"{backend}\" backend: CA and audit data keys stay in the custody they were made in, \
             so an existing store keeps its backend (set keys.backend = \"{backend}\"); nothing \
             was changed"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_keeps_the_backend_its_ca_and_audit_keys_were_made_in() {
        let ca = |backend: &str| {
            serde_json::json!({
                "version": 1, "root_cert": "", "issuing_cert": "", "origin": "generated",
                "created_at": 1,
                "root_key": {"kid": "r1", "alg": "ES256", "backend": backend, "sealed": ""},
                "issuing_key": {"kid": "i1", "alg": "ES256", "backend": backend, "sealed": ""},
            })
            .to_string()
        };
        let data = |backend: &str| {
            serde_json::json!({
                "active": "ak-1",
                "keys": [{"kid": "ak-1", "created_at": 1, "backend": backend, "sealed": ""}],
            })
            .to_string()
        };
        let check = |configured, ca: Option<&str>, data: Option<&str>| {
            check_custody_matches(configured, ca.map(str::as_bytes), data.map(str::as_bytes))
        };
        assert!(
            check(KeyBackend::Software, None, None).is_ok(),
            "a new store"
        );
        let (sw_ca, sw_data) = (ca("software"), data("software"));
        assert!(check(KeyBackend::Software, Some(&sw_ca), Some(&sw_data)).is_ok());
        let refused = check(KeyBackend::Pkcs11, Some(&sw_ca), Some(&sw_data)).unwrap_err();
        assert!(refused.to_string().contains("CA root key r1"), "{refused}");
        let refused = check(KeyBackend::Pkcs11, None, Some(&sw_data)).unwrap_err();
        assert!(
            refused.to_string().contains("audit data key ak-1"),
            "{refused}"
        );
        let (hsm_ca, hsm_data) = (ca("pkcs11"), data("pkcs11"));
        assert!(check(KeyBackend::Pkcs11, Some(&hsm_ca), Some(&hsm_data)).is_ok());
        assert!(check(KeyBackend::Software, Some(&hsm_ca), None).is_err());
    }
}
