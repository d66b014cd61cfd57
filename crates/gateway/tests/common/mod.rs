//! Credentials and keys shared by the gateway's verification tests.

#![allow(dead_code)]

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use portcullis_core::device::DeviceId;
use portcullis_gateway::{CertificateKey, DeviceCredentials, MessageAuth, SymmetricKey};
use portcullis_keys::{Algorithm, VerifyingKey};
use zeroize::Zeroizing;

/// The moment every test runs at.
pub const NOW: i64 = 1_767_225_600;
pub const KEY_ID: &str = "k1";
pub const KEY: [u8; 32] = [0x42; 32];
pub const SERIAL: &str = "0a1b2c3d";

pub fn device(id: &str) -> DeviceId {
    match DeviceId::parse(id) {
        Ok(id) => id,
        Err(e) => panic!("{e}"),
    }
}

pub fn p256() -> EcdsaKeyPair {
    match EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING) {
        Ok(pair) => pair,
        Err(e) => panic!("{e}"),
    }
}

/// Signs `message` with `pair`: the fixed `r||s` form JWS and COSE use.
pub fn es256_sign(pair: &EcdsaKeyPair, message: &[u8]) -> Vec<u8> {
    match pair.sign(&SystemRandom::new(), message) {
        Ok(sig) => sig.as_ref().to_vec(),
        Err(e) => panic!("{e}"),
    }
}

pub fn spki_of(pair: &EcdsaKeyPair) -> Vec<u8> {
    match pair.public_key().as_der() {
        Ok(der) => der.as_ref().to_vec(),
        Err(e) => panic!("{e}"),
    }
}

pub fn certificate(serial: &str, spki_der: &[u8]) -> CertificateKey {
    match VerifyingKey::from_spki_der(spki_der, &Algorithm::ALL) {
        Ok(verifiers) => CertificateKey {
            serial: serial.to_owned(),
            verifiers,
            not_after: NOW + 86_400,
        },
        Err(e) => panic!("{e}"),
    }
}

pub fn symmetric(key_id: &str, key: [u8; 32]) -> SymmetricKey {
    SymmetricKey {
        key_id: key_id.to_owned(),
        key: Zeroizing::new(key),
        not_after: None,
    }
}

/// A device with one symmetric key and one certificate.
pub fn credentials(
    id: &str,
    keys: Vec<SymmetricKey>,
    certificates: Vec<CertificateKey>,
) -> DeviceCredentials {
    DeviceCredentials {
        device_id: device(id),
        model: None,
        active: true,
        message_auth: MessageAuth::Required,
        keys,
        certificates,
    }
}
