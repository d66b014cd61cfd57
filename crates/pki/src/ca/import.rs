//! `portcullis ca import`: take over an existing CA instead of generating one. The operator
//! gives the issuing certificate, its PKCS#8 private key and (optionally) the chain up to the
//! root. Nothing is stored unless the key matches the certificate and the certificate is a
//! CA; an existing hierarchy is never replaced.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use portcullis_store::Store;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::custody::StoredCaKey;
use super::stored::{StoredCa, CA_SETTING};
use crate::{CaKey, PkiError};
use portcullis_keys::KeyCustody;

/// The DER blocks of every PEM object labelled `label` in `text`.
pub fn pem_blocks(text: &[u8], label: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(text) {
        let pem = pem.map_err(|_| PkiError::Invalid("malformed PEM".into()))?;
        if pem.label == label {
            out.push(pem.contents);
        }
    }
    Ok(out)
}

/// Imports a CA; fails if one is already stored.
pub async fn import(
    store: &dyn Store,
    custody: &KeyCustody,
    cert_pem: &[u8],
    key_pem: &[u8],
    chain_pem: Option<&[u8]>,
    now: i64,
) -> Result<StoredCa, PkiError> {
    let mut certs = pem_blocks(cert_pem, "CERTIFICATE")?;
    if let Some(chain) = chain_pem {
        certs.extend(pem_blocks(chain, "CERTIFICATE")?);
    }
    let Some(issuing_der) = certs.first().cloned() else {
        return Err(PkiError::Invalid(
            "no CERTIFICATE in the certificate file".into(),
        ));
    };
    let keys = pem_blocks(key_pem, "PRIVATE KEY")?;
    let [pkcs8] = keys.as_slice() else {
        return Err(PkiError::Invalid(
            "the key file must hold exactly one unencrypted PKCS#8 \"PRIVATE KEY\" \
             (convert with: openssl pkcs8 -topk8 -nocrypt -in key.pem)"
                .into(),
        ));
    };
    let (_, cert) = X509Certificate::from_der(&issuing_der)
        .map_err(|_| PkiError::Invalid("the CA certificate does not parse".into()))?;
    if !cert.is_ca() {
        return Err(PkiError::Invalid(
            "the certificate is not a CA certificate (basicConstraints cA is not set)".into(),
        ));
    }
    let (signer, stored_key) = StoredCaKey::import_pkcs8(custody, pkcs8)?;
    let key = CaKey::new(signer)?;
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_bits() {
        return Err(PkiError::Invalid(
            "the private key does not belong to the CA certificate".into(),
        ));
    }
    // The root is the last certificate given; a self-signed issuing CA is its own root.
    let root_der = certs.last().cloned().unwrap_or_else(|| issuing_der.clone());
    let stored = StoredCa {
        version: 1,
        root_cert: STANDARD.encode(&root_der),
        issuing_cert: STANDARD.encode(&issuing_der),
        root_key: None,
        issuing_key: stored_key,
        origin: "imported".into(),
        created_at: now,
    };
    let mine = stored.to_bytes();
    let winner = store.put_setting_if_absent(CA_SETTING, &mine).await?;
    if winner != mine {
        return Err(PkiError::Ca(
            "this deployment already has a CA; import into a fresh store, before the first start"
                .into(),
        ));
    }
    Ok(stored)
}
