//! Sealing small secrets (the audit data keys) under an AES-256 key that lives in the token.
//!
//! With `keys.backend = "pkcs11"` a copied database plus the master key file must not be
//! enough to read what a secret protects, so the secret is encrypted by the token itself
//! (`CKM_AES_GCM`) under a key-encryption key generated there: sensitive, non-extractable,
//! usable only to encrypt and decrypt. Every node of a cluster shares the token, and so the
//! key. Layout of a blob:
//!
//! ```text
//! version 2 (1) | IV (12) | ciphertext + tag (16)
//! ```
//!
//! Two nodes starting at once may each create a key-encryption key; opening tries every key
//! with the label, so either one's blobs open.

use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use super::error::token_error;
use super::Pkcs11Token;
use crate::KeyError;

/// `CKA_LABEL` (and `CKA_ID`) of the key-encryption key.
pub const SECRET_KEK_LABEL: &str = "portcullis-secret-kek";
const VERSION: u8 = 2;
const IV_LEN: usize = 12;
const TAG_BITS: u64 = 128;

impl Pkcs11Token {
    /// Encrypts `secret` inside the token under the key-encryption key (created on first
    /// use), authenticating `aad` with it.
    pub fn seal_secret(&self, secret: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut iv = crate::random_array::<IV_LEN>()?;
        let sealed = self.pool.with_logged_in_session(|session| {
            let kek = match kek_handles(session)?.first() {
                Some(kek) => *kek,
                None => create_kek(session)?,
            };
            let mut iv = iv;
            let params = GcmParams::new(&mut iv, aad, TAG_BITS.into())
                .map_err(|e| token_error("preparing AES-GCM", &e))?;
            session
                .encrypt(&Mechanism::AesGcm(params), kek, secret)
                .map_err(|e| token_error("sealing a secret", &e))
        })?;
        let mut out = Vec::with_capacity(1 + IV_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&iv);
        out.extend_from_slice(&sealed);
        iv.fill(0);
        Ok(out)
    }

    /// Decrypts a blob made by [`Self::seal_secret`] with the same `aad`.
    pub fn open_secret(
        &self,
        sealed: &[u8],
        aad: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, KeyError> {
        let (version, rest) = sealed
            .split_first()
            .ok_or_else(|| KeyError::Corrupt("sealed secret is empty".into()))?;
        if *version != VERSION || rest.len() < IV_LEN + 16 {
            return Err(KeyError::Corrupt(
                "sealed secret is not one the token made".into(),
            ));
        }
        let (iv, body) = rest.split_at(IV_LEN);
        self.pool.with_logged_in_session(|session| {
            let keks = kek_handles(session)?;
            if keks.is_empty() {
                return Err(KeyError::Io(format!(
                    "the token has no {SECRET_KEK_LABEL} key: the secret was sealed by another token"
                )));
            }
            for kek in keks {
                let mut iv_copy = [0u8; IV_LEN];
                iv_copy.copy_from_slice(iv);
                let params = GcmParams::new(&mut iv_copy, aad, TAG_BITS.into())
                    .map_err(|e| token_error("preparing AES-GCM", &e))?;
                if let Ok(plain) = session.decrypt(&Mechanism::AesGcm(params), kek, body) {
                    return Ok(zeroize::Zeroizing::new(plain));
                }
            }
            Err(KeyError::Corrupt(
                "sealed secret does not authenticate under the token's key".into(),
            ))
        })
    }
}

fn kek_handles(session: &Session) -> Result<Vec<ObjectHandle>, KeyError> {
    session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Token(true),
            Attribute::Label(SECRET_KEK_LABEL.as_bytes().to_vec()),
        ])
        .map_err(|e| token_error("finding the secret-sealing key", &e))
}

fn create_kek(session: &Session) -> Result<ObjectHandle, KeyError> {
    session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Label(SECRET_KEK_LABEL.as_bytes().to_vec()),
                Attribute::Id(SECRET_KEK_LABEL.as_bytes().to_vec()),
            ],
        )
        .map_err(|e| token_error("creating the secret-sealing key", &e))
}
