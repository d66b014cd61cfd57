//! Messages and tokens made by a device nobody here wrote the encoder of: the fixtures under
//! `tests/fixtures/pycose/` come from `examples/python_device/device.py` (pycose, cbor2,
//! PyJWT; see the README there). Each verifies, and a one-byte change to any of them is
//! refused.

mod common;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use common::{certificate, credentials, symmetric};
use portcullis_gateway::cose::{self, CoseKind};
use portcullis_gateway::device_token::{self, DeviceTokenRules};
use portcullis_gateway::{CredentialMethod, DeviceCredentials};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Deserialize)]
struct Fixture {
    device_id: String,
    key_id: String,
    key: String,
    serial: String,
    spki_der_b64: String,
    time: i64,
    audience: String,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pycose")
}

fn read(name: &str) -> Vec<u8> {
    match std::fs::read(dir().join(name)) {
        Ok(bytes) => bytes,
        Err(e) => panic!("{name}: {e}"),
    }
}

fn setup() -> (Fixture, DeviceCredentials) {
    let fixture: Fixture = match serde_json::from_slice(&read("device.json")) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    };
    let key: [u8; 32] = match URL_SAFE_NO_PAD
        .decode(&fixture.key)
        .map(<[u8; 32]>::try_from)
    {
        Ok(Ok(key)) => key,
        _ => panic!("the fixture key is not 32 bytes of base64url"),
    };
    let spki = STANDARD.decode(&fixture.spki_der_b64).unwrap_or_default();
    let creds = credentials(
        &fixture.device_id,
        vec![symmetric(&fixture.key_id, key)],
        vec![certificate(&fixture.serial, &spki)],
    );
    (fixture, creds)
}

#[test]
fn pycose_messages_verify_and_one_byte_changes_do_not() {
    let (fixture, creds) = setup();
    let cases = [
        ("mac0.cbor", CoseKind::Mac0, 42, &fixture.key_id, "21.5"),
        ("sign1.cbor", CoseKind::Sign1, 43, &fixture.serial, "21.6"),
        (
            "sign1_no_kid.cbor",
            CoseKind::Sign1,
            44,
            &fixture.serial,
            "21.7",
        ),
    ];
    for (name, kind, counter, key_id, reading) in cases {
        let bytes = read(name);
        let message = match cose::parse(&bytes) {
            Ok(m) => m,
            Err(e) => panic!("{name}: {e}"),
        };
        assert_eq!(message.kind(), kind, "{name}");
        assert_eq!(message.device_id().as_str(), fixture.device_id);
        let verified = match message.verify(&creds, fixture.time) {
            Ok(v) => v,
            Err(e) => panic!("{name}: {e}"),
        };
        assert_eq!(verified.key_id, *key_id, "{name}");
        assert_eq!(verified.counter, counter, "{name}");
        assert_eq!(verified.timestamp, fixture.time, "{name}");
        assert_eq!(
            verified.method,
            match kind {
                CoseKind::Mac0 => CredentialMethod::CoseMac0,
                CoseKind::Sign1 => CredentialMethod::CoseSign1,
            }
        );
        let expected = format!("{{\"temperature\":{reading}}}");
        assert_eq!(verified.payload, expected.as_bytes(), "{name}");

        for i in 0..bytes.len() {
            for delta in [0x01u8, 0x80] {
                let mut changed = bytes.clone();
                changed[i] ^= delta;
                let result = cose::parse(&changed).and_then(|m| m.verify(&creds, fixture.time));
                assert!(result.is_err(), "{name}: byte {i} ^ {delta:#x} accepted");
            }
        }
    }
}

#[test]
fn pyjwt_device_tokens_verify_and_one_byte_changes_do_not() {
    let (fixture, creds) = setup();
    let rules = DeviceTokenRules {
        audience: fixture.audience.clone(),
        max_lifetime_secs: 3600,
        skew_secs: 60,
    };
    for (name, key_id) in [
        ("token_hs256.jwt", &fixture.key_id),
        ("token_es256.jwt", &fixture.serial),
    ] {
        let token = String::from_utf8(read(name)).unwrap_or_default();
        let token = token.trim();
        let verified =
            device_token::peek(token).and_then(|t| t.verify(&creds, &rules, fixture.time));
        let verified = match verified {
            Ok(v) => v,
            Err(e) => panic!("{name}: {e}"),
        };
        assert_eq!(verified.key_id, *key_id);
        assert_eq!(verified.device_id.as_str(), fixture.device_id);
        assert_eq!(verified.expires_at, fixture.time + 600);

        let bytes = token.as_bytes();
        for i in 0..bytes.len() {
            let mut changed = bytes.to_vec();
            // Another base64url character (or '.'), never the same one.
            changed[i] = if changed[i] == b'A' { b'B' } else { b'A' };
            let Ok(changed) = String::from_utf8(changed) else {
                continue;
            };
            let result =
                device_token::peek(&changed).and_then(|t| t.verify(&creds, &rules, fixture.time));
            assert!(
                result.is_err(),
                "{name}: character {i} changed and accepted"
            );
        }
    }
}

#[test]
fn the_test_vector_of_the_protocol_page_verifies() {
    // docs/gateway-protocol.md, "Test vector": key 0x00..0x1f, sensor-7, counter 42.
    let key: [u8; 32] = std::array::from_fn(|i| u8::try_from(i).unwrap_or_default());
    let creds = credentials("sensor-7", vec![symmetric("k5e3a90c1", key)], vec![]);
    let bytes = read("doc_example_mac0.cbor");
    let verified = cose::parse(&bytes).and_then(|m| m.verify(&creds, 1_767_225_600));
    let verified = match verified {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    assert_eq!((verified.counter, verified.timestamp), (42, 1_767_225_600));
    assert_eq!(verified.payload, br#"{"t":21.5}"#);
    let documented = "d1845827a401050fa2016873656e736f722d37061a6955b9003a00010000182a04496b3565336139306331\
                      a04a7b2274223a32312e357d5820cfb639cb17ac33ca77376627a75e3421faddf84f43a2de0574ec90ebfa7f5fad";
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, documented);
}
