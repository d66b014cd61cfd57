//! Building messages as a device does: for Rust devices (`coset` under the hood), the load
//! generator and tests. The layout is the one `docs/gateway-protocol.md` specifies and
//! `super::parse` reads.

use aws_lc_rs::hmac;
use coset::cbor::value::Value;
use coset::{iana, CoseMac0Builder, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable as _};
use portcullis_core::device::DeviceId;
use portcullis_keys::Algorithm;

use super::{CLAIM_IAT, CLAIM_ISS, COUNTER_LABEL, CWT_CLAIMS_LABEL};
use crate::signed::cose_algorithm;

/// The protected header every message carries (see `docs/gateway-protocol.md`).
fn protected_header(
    alg: iana::Algorithm,
    kid: Option<&str>,
    device_id: &DeviceId,
    counter: u64,
    timestamp: i64,
) -> coset::Header {
    let claims = Value::Map(vec![
        (Value::from(CLAIM_ISS), Value::from(device_id.as_str())),
        (Value::from(CLAIM_IAT), Value::from(timestamp)),
    ]);
    let builder = HeaderBuilder::new()
        .algorithm(alg)
        .value(CWT_CLAIMS_LABEL, claims)
        .value(COUNTER_LABEL, Value::from(counter));
    match kid {
        Some(kid) => builder.key_id(kid.as_bytes().to_vec()),
        None => builder,
    }
    .build()
}

/// Builds a `COSE_Mac0` as a device sends it: HMAC 256/256 under the device key `key`
/// named `key_id`, with the device id, `timestamp` (Unix seconds) and `counter` in the
/// protected header. For Rust devices, the load generator and tests.
///
/// Encoding into memory cannot fail; were it to, the result is empty, which every
/// verifier refuses.
pub fn seal_mac0(
    device_id: &DeviceId,
    key_id: &str,
    key: &[u8; 32],
    counter: u64,
    timestamp: i64,
    payload: &[u8],
) -> Vec<u8> {
    let header = protected_header(
        iana::Algorithm::HMAC_256_256,
        Some(key_id),
        device_id,
        counter,
        timestamp,
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    CoseMac0Builder::new()
        .protected(header)
        .payload(payload.to_vec())
        .create_tag(b"", |data| hmac::sign(&key, data).as_ref().to_vec())
        .build()
        .to_tagged_vec()
        .unwrap_or_default()
}

/// Builds a `COSE_Sign1` as a device sends it, signed by `sign` (which gets the
/// `Sig_structure` bytes and returns the raw signature: `r||s` for ECDSA) under `alg`;
/// `serial` names the certificate (lowercase hex) or is left out.
pub fn sign1_with<E>(
    device_id: &DeviceId,
    serial: Option<&str>,
    alg: Algorithm,
    counter: u64,
    timestamp: i64,
    payload: &[u8],
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<Vec<u8>, E> {
    let header = protected_header(cose_algorithm(alg), serial, device_id, counter, timestamp);
    Ok(CoseSign1Builder::new()
        .protected(header)
        .payload(payload.to_vec())
        .try_create_signature(b"", sign)?
        .build()
        .to_tagged_vec()
        .unwrap_or_default())
}
