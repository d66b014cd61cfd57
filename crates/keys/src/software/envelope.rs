//! Envelope encryption of private keys at rest (AES-256-GCM, NIST SP 800-38D).
//!
//! Each blob gets its own random data key, so the master key only ever encrypts 32-byte
//! keys and a nonce collision under it would expose one data key, not plaintext. Layout:
//!
//! ```text
//! version (1) | wrap nonce (12) | wrapped data key + tag (48) | data nonce (12) | ciphertext + tag
//! ```

use super::MasterKey;
use crate::KeyError;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use zeroize::Zeroizing;

const VERSION: u8 = 1;
const DATA_KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;
const WRAPPED_KEY_LEN: usize = DATA_KEY_LEN + TAG_LEN;
const HEADER_LEN: usize = 1 + NONCE_LEN + WRAPPED_KEY_LEN + NONCE_LEN;
/// Domain separation for the key wrap, bound to the version byte.
const WRAP_AAD: &[u8] = b"portcullis-keys envelope v1: data key";

/// Encrypts `plaintext` under a fresh data key wrapped by `master`; `aad` is authenticated
/// with the ciphertext (e.g. the kid, so a blob cannot be swapped onto another key's row).
pub fn seal(master: &MasterKey, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyError> {
    let data_key = Zeroizing::new(crate::random::random_array::<DATA_KEY_LEN>()?);
    let wrap_nonce = crate::random::random_array::<NONCE_LEN>()?;
    let data_nonce = crate::random::random_array::<NONCE_LEN>()?;

    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
    out.push(VERSION);
    out.extend_from_slice(&wrap_nonce);
    out.extend_from_slice(data_key.as_slice());
    let wrapped = out
        .get_mut(1 + NONCE_LEN..)
        .ok_or(KeyError::Crypto("wrapping the data key failed"))?;
    let tag = aes_key(master.as_bytes())?
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(wrap_nonce),
            Aad::from(WRAP_AAD),
            wrapped,
        )
        .map_err(|_| KeyError::Crypto("wrapping the data key failed"))?;
    out.extend_from_slice(tag.as_ref());

    out.extend_from_slice(&data_nonce);
    let body_start = out.len();
    out.extend_from_slice(plaintext);
    let tag = aes_key(data_key.as_slice())?
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(data_nonce),
            Aad::from(aad),
            out.get_mut(body_start..)
                .ok_or(KeyError::Crypto("encrypting the key failed"))?,
        )
        .map_err(|_| KeyError::Crypto("encrypting the key failed"))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Decrypts a blob made by [`seal`] with the same `master` and `aad`.
///
/// Fails with `WrongMasterKey` when the data key does not unwrap, and `Corrupt` when the
/// blob is the wrong shape or the ciphertext (or `aad`) does not authenticate.
pub fn open(master: &MasterKey, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    if sealed.len() < HEADER_LEN + TAG_LEN {
        return Err(KeyError::Corrupt("sealed key is too short".into()));
    }
    let (version, rest) = sealed.split_at(1);
    if version != [VERSION] {
        return Err(KeyError::Corrupt(
            "sealed key has an unknown version".into(),
        ));
    }
    let (wrap_nonce, rest) = rest.split_at(NONCE_LEN);
    let (wrapped, rest) = rest.split_at(WRAPPED_KEY_LEN);
    let (data_nonce, body) = rest.split_at(NONCE_LEN);

    let mut data_key = Zeroizing::new([0u8; WRAPPED_KEY_LEN]);
    data_key.copy_from_slice(wrapped);
    aes_key(master.as_bytes())?
        .open_in_place(nonce(wrap_nonce)?, Aad::from(WRAP_AAD), data_key.as_mut())
        .map_err(|_| KeyError::WrongMasterKey)?;

    let mut plaintext = Zeroizing::new(body.to_vec());
    let data_key = data_key
        .get(..DATA_KEY_LEN)
        .ok_or_else(|| KeyError::Corrupt("sealed key is truncated".into()))?;
    let len = aes_key(data_key)?
        .open_in_place(nonce(data_nonce)?, Aad::from(aad), plaintext.as_mut_slice())
        .map_err(|_| KeyError::Corrupt("sealed key does not authenticate".into()))?
        .len();
    plaintext.truncate(len);
    Ok(plaintext)
}

fn aes_key(bytes: &[u8]) -> Result<LessSafeKey, KeyError> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| KeyError::Crypto("AES-256-GCM key setup failed"))
}

fn nonce(bytes: &[u8]) -> Result<Nonce, KeyError> {
    Nonce::try_assume_unique_for_key(bytes).map_err(|_| KeyError::Corrupt("bad nonce".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterKey {
        match MasterKey::generate() {
            Ok(key) => key,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn seal_then_open_round_trips() {
        let key = master();
        let sealed = seal(&key, b"private key bytes", b"kid-1").unwrap_or_default();
        assert_eq!(sealed.len(), HEADER_LEN + 17 + TAG_LEN);
        assert_eq!(sealed[0], VERSION);
        let opened = open(&key, &sealed, b"kid-1");
        assert_eq!(
            opened.ok().map(|p| p.to_vec()),
            Some(b"private key bytes".to_vec())
        );
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let key = master();
        let sealed = seal(&key, b"", b"").unwrap_or_default();
        assert_eq!(open(&key, &sealed, b"").map(|p| p.len()), Ok(0));
    }

    #[test]
    fn wrong_master_key_is_reported_as_such() {
        let sealed = seal(&master(), b"secret", b"aad").unwrap_or_default();
        assert_eq!(
            open(&master(), &sealed, b"aad").err(),
            Some(KeyError::WrongMasterKey)
        );
    }

    #[test]
    fn wrong_aad_fails() {
        let key = master();
        let sealed = seal(&key, b"secret", b"kid-1").unwrap_or_default();
        assert!(matches!(
            open(&key, &sealed, b"kid-2"),
            Err(KeyError::Corrupt(_))
        ));
    }

    #[test]
    fn every_flipped_byte_fails() {
        let key = master();
        let sealed = seal(&key, b"secret", b"aad").unwrap_or_default();
        for i in 0..sealed.len() {
            let mut damaged = sealed.clone();
            damaged[i] ^= 0x01;
            assert!(
                open(&key, &damaged, b"aad").is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn truncated_blob_fails() {
        let key = master();
        let sealed = seal(&key, b"secret", b"aad").unwrap_or_default();
        for len in [0, 1, HEADER_LEN, sealed.len() - 1] {
            assert!(open(&key, &sealed[..len], b"aad").is_err(), "length {len}");
        }
        assert!(matches!(
            open(&key, &sealed[..10], b"aad"),
            Err(KeyError::Corrupt(_))
        ));
    }

    #[test]
    fn two_seals_of_the_same_plaintext_differ() {
        let key = master();
        assert_ne!(seal(&key, b"x", b"").ok(), seal(&key, b"x", b"").ok());
    }
}
