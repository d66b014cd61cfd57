//! `COSE_Mac0` / `COSE_Sign1` messages: round trips for every algorithm and a table of hostile
//! inputs, each refused with its own reason and none panicking.

mod common;

use common::*;
use coset::cbor::value::Value;
use coset::{MacContext, ProtectedHeader, SignatureContext};
use portcullis_gateway::cose::{self, CoseKind, COUNTER_LABEL, CWT_CLAIMS_LABEL};
use portcullis_gateway::{CredentialMethod, DeviceCredentials, GatewayError};
use portcullis_keys::Algorithm;

fn int(i: i64) -> Value {
    Value::from(i)
}

fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn cbor(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    match coset::cbor::ser::into_writer(value, &mut out) {
        Ok(()) => out,
        Err(e) => panic!("{e}"),
    }
}

fn claims(iss: &str, iat: i64) -> Value {
    Value::Map(vec![(int(1), text(iss)), (int(6), int(iat))])
}

/// The protected header a good Mac0 from sensor-1 carries.
fn mac0_header() -> Vec<(Value, Value)> {
    vec![
        (int(1), int(5)),
        (int(4), bytes(KEY_ID.as_bytes())),
        (int(CWT_CLAIMS_LABEL), claims("sensor-1", NOW)),
        (int(COUNTER_LABEL), int(7)),
    ]
}

/// The protected header a good ES256 Sign1 from sensor-1 carries.
fn sign1_header() -> Vec<(Value, Value)> {
    vec![
        (int(1), int(-7)),
        (int(4), bytes(SERIAL.as_bytes())),
        (int(CWT_CLAIMS_LABEL), claims("sensor-1", NOW)),
        (int(COUNTER_LABEL), int(7)),
    ]
}

fn without(mut header: Vec<(Value, Value)>, label: i64) -> Vec<(Value, Value)> {
    header.retain(|(l, _)| *l != int(label));
    header
}

fn with(mut header: Vec<(Value, Value)>, label: i64, value: Value) -> Vec<(Value, Value)> {
    header.retain(|(l, _)| *l != int(label));
    header.push((int(label), value));
    header
}

/// How the last element of a crafted message is made.
enum Proof<'a> {
    /// HMAC-SHA256 over the MAC_structure under this key.
    Mac(&'a [u8; 32]),
    /// ES256 over the Sig_structure with this key.
    Sign(&'a aws_lc_rs::signature::EcdsaKeyPair),
    Raw(Vec<u8>),
}

/// A tagged message with exactly these protected bytes, unprotected map and payload, and a
/// correct tag or signature over them unless `proof` says otherwise.
fn craft_raw(
    tag: u64,
    protected: Vec<u8>,
    unprotected: Vec<(Value, Value)>,
    payload: Value,
    proof: Proof<'_>,
) -> Vec<u8> {
    let header = ProtectedHeader {
        original_data: Some(protected.clone()),
        header: Default::default(),
    };
    let content = match &payload {
        Value::Bytes(b) => b.clone(),
        _ => Vec::new(),
    };
    let proof = match proof {
        Proof::Mac(key) => {
            let data = coset::mac_structure_data(MacContext::CoseMac0, header, b"", &content);
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
            aws_lc_rs::hmac::sign(&key, &data).as_ref().to_vec()
        }
        Proof::Sign(pair) => {
            let data =
                coset::sig_structure_data(SignatureContext::CoseSign1, header, None, b"", &content);
            es256_sign(pair, &data)
        }
        Proof::Raw(raw) => raw,
    };
    cbor(&Value::Tag(
        tag,
        Box::new(Value::Array(vec![
            Value::Bytes(protected),
            Value::Map(unprotected),
            payload,
            Value::Bytes(proof),
        ])),
    ))
}

fn craft(
    tag: u64,
    protected: Vec<(Value, Value)>,
    unprotected: Vec<(Value, Value)>,
    proof: Proof<'_>,
) -> Vec<u8> {
    craft_raw(
        tag,
        cbor(&Value::Map(protected)),
        unprotected,
        bytes(b"reading"),
        proof,
    )
}

struct Device {
    creds: DeviceCredentials,
    pair: aws_lc_rs::signature::EcdsaKeyPair,
}

fn sensor() -> Device {
    let pair = p256();
    let creds = credentials(
        "sensor-1",
        vec![symmetric(KEY_ID, KEY)],
        vec![certificate(SERIAL, &spki_of(&pair))],
    );
    Device { creds, pair }
}

fn check(bytes: &[u8], creds: &DeviceCredentials) -> Result<cose::VerifiedCose, GatewayError> {
    cose::parse(bytes).and_then(|m| m.verify(creds, NOW))
}

/// The variant and reason of an outcome, for comparing with the table.
fn outcome(result: &Result<cose::VerifiedCose, GatewayError>) -> (&'static str, &'static str) {
    match result {
        Ok(_) => ("ok", ""),
        Err(e @ GatewayError::Malformed(_)) => ("malformed", e.reason()),
        Err(e @ GatewayError::Unauthenticated(_)) => ("unauthenticated", e.reason()),
        Err(e) => ("other", e.reason()),
    }
}

#[test]
fn sealed_mac0_round_trips() {
    let d = sensor();
    let sealed = cose::seal_mac0(&device("sensor-1"), KEY_ID, &KEY, 9, NOW - 5, b"21.5");
    assert_eq!(sealed.first(), Some(&0xd1));
    let message = match cose::parse(&sealed) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(message.kind(), CoseKind::Mac0);
    assert_eq!(message.device_id().as_str(), "sensor-1");
    assert_eq!(message.key_id(), Some(KEY_ID));
    assert_eq!((message.counter(), message.timestamp()), (9, NOW - 5));
    let verified = match message.verify(&d.creds, NOW) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(verified.key_id, KEY_ID);
    assert_eq!(verified.method, CredentialMethod::CoseMac0);
    assert_eq!((verified.counter, verified.timestamp), (9, NOW - 5));
    assert_eq!(verified.payload, b"21.5");
}

#[test]
fn signed_sign1_round_trips_for_every_algorithm() {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair, RsaKeyPair};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let sensor = device("sensor-1");

    let p256 = p256();
    let ed = Ed25519KeyPair::generate().ok();
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).ok();
    let (Some(ed), Some(rsa)) = (ed, rsa) else {
        panic!("keygen")
    };
    let ed_spki = ed.public_key().as_der().map(|d| d.as_ref().to_vec());
    let rsa_spki = rsa.public_key().as_der().map(|d| d.as_ref().to_vec());
    let (Ok(ed_spki), Ok(rsa_spki)) = (ed_spki, rsa_spki) else {
        panic!("spki")
    };
    let creds = credentials(
        "sensor-1",
        vec![],
        vec![
            certificate("01", &spki_of(&p256)),
            certificate("02", &ed_spki),
            certificate("03", &rsa_spki),
        ],
    );
    let rsa_sign = |padding: &'static dyn aws_lc_rs::signature::RsaEncoding, data: &[u8]| {
        let mut sig = vec![0u8; rsa.public_modulus_len()];
        rsa.sign(padding, &rng, data, &mut sig).map(|()| sig)
    };
    type Sign<'a> = Box<dyn Fn(&[u8]) -> Result<Vec<u8>, aws_lc_rs::error::Unspecified> + 'a>;
    let cases: Vec<(Algorithm, Option<&str>, &str, Sign<'_>)> = vec![
        (
            Algorithm::ES256,
            Some("01"),
            "01",
            Box::new(|d| Ok(es256_sign(&p256, d))),
        ),
        (
            Algorithm::EdDSA,
            Some("02"),
            "02",
            Box::new(|d| Ok(ed.sign(d).as_ref().to_vec())),
        ),
        (
            Algorithm::EdDSA,
            None,
            "02",
            Box::new(|d| Ok(ed.sign(d).as_ref().to_vec())),
        ),
        (
            Algorithm::RS256,
            Some("03"),
            "03",
            Box::new(|d| rsa_sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, d)),
        ),
        (
            Algorithm::PS256,
            None,
            "03",
            Box::new(|d| rsa_sign(&aws_lc_rs::signature::RSA_PSS_SHA256, d)),
        ),
    ];
    for (counter, (alg, kid, serial, sign)) in (1..).zip(cases) {
        let signed = cose::sign1_with(&sensor, kid, alg, counter, NOW, b"x", sign);
        let Ok(signed) = signed else { panic!("sign") };
        assert_eq!(signed.first(), Some(&0xd2));
        let verified = check(&signed, &creds);
        let Ok(verified) = verified else {
            panic!("{alg}: {verified:?}")
        };
        assert_eq!(verified.key_id, serial, "{alg}");
        assert_eq!(verified.method, CredentialMethod::CoseSign1);
        assert_eq!(verified.counter, counter);
    }
}

#[test]
fn hostile_messages_are_refused_with_their_reason() {
    let d = sensor();
    let other_key = [0x24u8; 32];
    let stranger = p256();
    let mac = |protected| craft(17, protected, vec![], Proof::Mac(&KEY));
    let sign = |protected| craft(18, protected, vec![], Proof::Sign(&d.pair));
    let good_mac = mac(mac0_header());
    let mut trailing = good_mac.clone();
    trailing.push(0x00);
    let mut untagged = good_mac.clone();
    untagged.remove(0);
    let mut nested = vec![0xd2];
    nested.extend_from_slice(&sign(sign1_header()));
    let mut duplicate_alg = cbor(&Value::Map(mac0_header()));
    // Map of 4 → map of 5 with `1: 5` repeated at the end.
    duplicate_alg[0] = 0xa5;
    duplicate_alg.extend_from_slice(&[0x01, 0x05]);
    let mut deep = vec![0xd1];
    deep.extend(std::iter::repeat_n(0x81, 100_000));
    deep.push(0x00);
    // The good message with an unprotected value 100 000 arrays deep: it is skipped, not read.
    let deep_unprotected = {
        let protected_len = cbor(&Value::Map(mac0_header())).len();
        assert!((24..256).contains(&protected_len));
        let at = 4 + protected_len;
        assert_eq!(good_mac[at], 0xa0);
        let mut value = vec![0xa1, 0x18, 99];
        value.extend(std::iter::repeat_n(0x81, 100_000));
        value.push(0x00);
        let mut message = good_mac.clone();
        message.splice(at..at + 1, value);
        message
    };
    // The same good message with an indefinite-length envelope (RFC 8949 §3.2.2).
    let mut indefinite = good_mac.clone();
    assert_eq!(indefinite[1], 0x84);
    indefinite[1] = 0x9f;
    indefinite.push(0xff);
    let mut indefinite_short = indefinite.clone();
    indefinite_short.truncate(indefinite.len() - 1 - 34);
    indefinite_short.push(0xff);
    let mut break_in_definite = good_mac.clone();
    break_in_definite.truncate(good_mac.len() - 34);
    break_in_definite.push(0xff);
    // The payload `reading` as two chunks of an indefinite-length bstr.
    let chunked_payload = {
        let protected = cbor(&Value::Map(mac0_header()));
        let whole = craft_raw(17, protected, vec![], bytes(b"reading"), Proof::Mac(&KEY));
        let at = whole
            .windows(8)
            .position(|w| w == b"\x47reading")
            .expect("the payload in the message");
        [
            &whole[..at],
            &[0x5f, 0x43][..],
            b"rea",
            &[0x44],
            b"ding",
            &[0xff],
            &whole[at + 8..],
        ]
        .concat()
    };
    let nest = |depth: usize| (0..depth).fold(int(1), |inner, _| Value::Array(vec![inner]));

    let m = "malformed";
    let u = "unauthenticated";
    let table: Vec<(&str, Vec<u8>, (&str, &str))> = vec![
        ("a good Mac0", good_mac.clone(), ("ok", "")),
        ("a good Sign1", sign(sign1_header()), ("ok", "")),
        (
            "Sign1 without kid",
            sign(without(sign1_header(), 4)),
            ("ok", ""),
        ),
        (
            "Mac0 under another key",
            craft(17, mac0_header(), vec![], Proof::Mac(&other_key)),
            (u, "bad_signature"),
        ),
        (
            "Sign1 by another key",
            craft(18, sign1_header(), vec![], Proof::Sign(&stranger)),
            (u, "bad_signature"),
        ),
        (
            "Mac0 with an unknown kid",
            mac(with(mac0_header(), 4, bytes(b"k9"))),
            (u, "unknown_key"),
        ),
        (
            "Sign1 naming an unknown certificate",
            sign(with(sign1_header(), 4, bytes(b"ffff"))),
            (u, "unknown_key"),
        ),
        (
            "Mac0 with alg ES256",
            mac(with(mac0_header(), 1, int(-7))),
            (u, "alg_not_allowed"),
        ),
        (
            "Sign1 with alg HMAC 256/256",
            sign(with(sign1_header(), 1, int(5))),
            (u, "alg_not_allowed"),
        ),
        (
            "Sign1 with ES384 on a P-256 certificate",
            sign(with(sign1_header(), 1, int(-35))),
            (u, "alg_not_allowed"),
        ),
        (
            "Mac0 with alg HMAC 256/64",
            mac(with(mac0_header(), 1, int(4))),
            (u, "alg_not_allowed"),
        ),
        (
            "alg as text",
            mac(with(mac0_header(), 1, text("HS256"))),
            (u, "alg_not_allowed"),
        ),
        (
            "alg as bytes",
            mac(with(mac0_header(), 1, bytes(b"5"))),
            (m, "bad_alg"),
        ),
        (
            "alg missing",
            mac(without(mac0_header(), 1)),
            (m, "missing_alg"),
        ),
        (
            "tag 17 around a Sign1 body",
            craft(17, sign1_header(), vec![], Proof::Sign(&d.pair)),
            (u, "alg_not_allowed"),
        ),
        (
            "tag 18 around a Mac0 body",
            craft(18, mac0_header(), vec![], Proof::Mac(&KEY)),
            (u, "alg_not_allowed"),
        ),
        ("untagged", untagged, (m, "untagged")),
        (
            "COSE_Encrypt0 tag",
            craft(16, mac0_header(), vec![], Proof::Mac(&KEY)),
            (m, "wrong_tag"),
        ),
        ("nested tags", nested, (m, "not_cose")),
        (
            "counter in the unprotected header only",
            craft(
                17,
                without(mac0_header(), COUNTER_LABEL),
                vec![(int(COUNTER_LABEL), int(7))],
                Proof::Mac(&KEY),
            ),
            (m, "missing_counter"),
        ),
        (
            "unprotected counter that disagrees",
            craft(
                17,
                mac0_header(),
                vec![(int(COUNTER_LABEL), int(8))],
                Proof::Mac(&KEY),
            ),
            (m, "conflicting_header"),
        ),
        (
            "unprotected counter that agrees",
            craft(
                17,
                mac0_header(),
                vec![(int(COUNTER_LABEL), int(7))],
                Proof::Mac(&KEY),
            ),
            ("ok", ""),
        ),
        (
            "unprotected kid that disagrees",
            craft(
                17,
                mac0_header(),
                vec![(int(4), bytes(b"k9"))],
                Proof::Mac(&KEY),
            ),
            (m, "conflicting_header"),
        ),
        (
            "counter 0",
            mac(with(mac0_header(), COUNTER_LABEL, int(0))),
            (m, "bad_counter"),
        ),
        (
            "negative counter",
            mac(with(mac0_header(), COUNTER_LABEL, int(-3))),
            (m, "bad_counter"),
        ),
        (
            "counter above u64",
            mac(with(
                mac0_header(),
                COUNTER_LABEL,
                Value::Tag(2, Box::new(bytes(&[1, 0, 0, 0, 0, 0, 0, 0, 0]))),
            )),
            (m, "bad_counter"),
        ),
        (
            "counter as text",
            mac(with(mac0_header(), COUNTER_LABEL, text("7"))),
            (m, "bad_counter"),
        ),
        (
            "largest counter",
            mac(with(mac0_header(), COUNTER_LABEL, Value::from(u64::MAX))),
            ("ok", ""),
        ),
        (
            "counter missing",
            mac(without(mac0_header(), COUNTER_LABEL)),
            (m, "missing_counter"),
        ),
        (
            "claims missing",
            mac(without(mac0_header(), CWT_CLAIMS_LABEL)),
            (m, "missing_claims"),
        ),
        (
            "claims are an array",
            mac(with(mac0_header(), CWT_CLAIMS_LABEL, Value::Array(vec![]))),
            (m, "bad_claims"),
        ),
        (
            "iat missing",
            mac(with(
                mac0_header(),
                CWT_CLAIMS_LABEL,
                Value::Map(vec![(int(1), text("sensor-1"))]),
            )),
            (m, "missing_iat"),
        ),
        (
            "iat as a float",
            mac(with(
                mac0_header(),
                CWT_CLAIMS_LABEL,
                Value::Map(vec![
                    (int(1), text("sensor-1")),
                    (int(6), Value::Float(1e9)),
                ]),
            )),
            (m, "bad_iat"),
        ),
        (
            "iss missing",
            mac(with(
                mac0_header(),
                CWT_CLAIMS_LABEL,
                Value::Map(vec![(int(6), int(NOW))]),
            )),
            (m, "missing_iss"),
        ),
        (
            "iss not a device id",
            mac(with(
                mac0_header(),
                CWT_CLAIMS_LABEL,
                claims("sensor 1/..", NOW),
            )),
            (m, "bad_iss"),
        ),
        (
            "iss of another device",
            mac(with(
                mac0_header(),
                CWT_CLAIMS_LABEL,
                claims("sensor-2", NOW),
            )),
            (u, "wrong_device"),
        ),
        (
            "duplicate claim",
            mac(with(
                mac0_header(),
                CWT_CLAIMS_LABEL,
                Value::Map(vec![
                    (int(1), text("sensor-1")),
                    (int(6), int(NOW)),
                    (int(1), text("sensor-2")),
                ]),
            )),
            (m, "duplicate_label"),
        ),
        (
            "kid not UTF-8",
            mac(with(mac0_header(), 4, bytes(&[0xff, 0xfe]))),
            (m, "bad_kid"),
        ),
        (
            "kid empty",
            mac(with(mac0_header(), 4, bytes(b""))),
            (m, "bad_kid"),
        ),
        (
            "kid as text",
            mac(with(mac0_header(), 4, text(KEY_ID))),
            (m, "bad_kid"),
        ),
        (
            "kid too long",
            mac(with(mac0_header(), 4, bytes(&[b'k'; 200]))),
            (m, "bad_kid"),
        ),
        (
            "Mac0 without kid",
            mac(without(mac0_header(), 4)),
            (m, "missing_kid"),
        ),
        (
            "duplicate alg label",
            craft_raw(
                17,
                duplicate_alg,
                vec![],
                bytes(b"reading"),
                Proof::Mac(&KEY),
            ),
            (m, "duplicate_label"),
        ),
        (
            "unknown critical label",
            mac(with(
                with(mac0_header(), 99, int(1)),
                2,
                Value::Array(vec![int(99)]),
            )),
            (m, "unknown_critical_header"),
        ),
        (
            "our labels marked critical",
            mac(with(
                mac0_header(),
                2,
                Value::Array(vec![int(CWT_CLAIMS_LABEL), int(COUNTER_LABEL)]),
            )),
            ("ok", ""),
        ),
        (
            "empty crit",
            mac(with(mac0_header(), 2, Value::Array(vec![]))),
            (m, "bad_crit"),
        ),
        (
            "unknown label, not critical",
            mac(with(with(mac0_header(), 99, int(1)), -70000, text("x"))),
            ("ok", ""),
        ),
        (
            "protected header empty",
            craft_raw(17, vec![], vec![], bytes(b"reading"), Proof::Mac(&KEY)),
            (m, "missing_alg"),
        ),
        (
            "protected header not a map",
            craft_raw(
                17,
                cbor(&Value::Array(vec![])),
                vec![],
                bytes(b"r"),
                Proof::Mac(&KEY),
            ),
            (m, "protected_not_map"),
        ),
        (
            "protected header with trailing bytes",
            craft_raw(
                17,
                [cbor(&Value::Map(mac0_header())), vec![0]].concat(),
                vec![],
                bytes(b"r"),
                Proof::Mac(&KEY),
            ),
            (m, "trailing_bytes"),
        ),
        (
            "payload nil (detached)",
            craft_raw(
                17,
                cbor(&Value::Map(mac0_header())),
                vec![],
                Value::Null,
                Proof::Mac(&KEY),
            ),
            (m, "detached_payload"),
        ),
        (
            "payload as text",
            craft_raw(
                17,
                cbor(&Value::Map(mac0_header())),
                vec![],
                text("r"),
                Proof::Mac(&KEY),
            ),
            (m, "payload_not_bstr"),
        ),
        (
            "truncated tag",
            craft(17, mac0_header(), vec![], Proof::Raw(vec![0; 16])),
            (u, "bad_signature"),
        ),
        (
            "empty signature",
            craft(18, sign1_header(), vec![], Proof::Raw(vec![])),
            (u, "bad_signature"),
        ),
        ("trailing bytes", trailing, (m, "trailing_bytes")),
        (
            "three elements",
            cbor(&Value::Tag(
                17,
                Box::new(Value::Array(vec![
                    bytes(b""),
                    Value::Map(vec![]),
                    bytes(b""),
                ])),
            )),
            (m, "not_cose"),
        ),
        (
            "a map, tagged",
            cbor(&Value::Tag(17, Box::new(Value::Map(vec![])))),
            (m, "not_cose"),
        ),
        ("empty input", vec![], (m, "bad_cbor")),
        (
            "bstr claiming 2^63 bytes",
            vec![
                0xd1, 0x84, 0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
            (m, "bad_cbor"),
        ),
        (
            "array claiming 2^32 items",
            vec![0xd1, 0x9a, 0xff, 0xff, 0xff, 0xff, 0x40],
            (m, "not_cose"),
        ),
        (
            "indefinite array without break",
            vec![0xd1, 0x9f, 0x40, 0xa0, 0x40],
            (m, "bad_cbor"),
        ),
        ("a lone break", vec![0xff], (m, "bad_cbor")),
        ("indefinite-length envelope", indefinite, ("ok", "")),
        (
            "indefinite-length envelope of three elements",
            indefinite_short,
            (m, "not_cose"),
        ),
        (
            "break inside a definite array",
            break_in_definite,
            (m, "bad_cbor"),
        ),
        ("payload in two chunks", chunked_payload, ("ok", "")),
        (
            "ignored header nested 32 deep",
            mac(with(mac0_header(), 99, nest(32))),
            ("ok", ""),
        ),
        (
            "ignored header nested 200 deep",
            mac(with(mac0_header(), 99, nest(200))),
            (m, "bad_cbor"),
        ),
        (
            "ignored map claiming 2^32 entries",
            craft_raw(
                17,
                [
                    &[0xa5][..],
                    &[0x18, 99, 0xba, 0xff, 0xff, 0xff, 0xff][..],
                    &cbor(&Value::Map(mac0_header()))[1..],
                ]
                .concat(),
                vec![],
                bytes(b"r"),
                Proof::Mac(&KEY),
            ),
            (m, "bad_cbor"),
        ),
        (
            "unprotected counter that agrees, written long",
            {
                let mut message = craft(
                    17,
                    mac0_header(),
                    vec![(int(COUNTER_LABEL), int(7))],
                    Proof::Mac(&KEY),
                );
                // `07` after the counter label `3a 00 01 00 00` becomes `18 07`.
                let label = [0x3a, 0x00, 0x01, 0x00, 0x00, 0x07];
                let at = message
                    .windows(6)
                    .rposition(|w| w == label)
                    .expect("the unprotected counter");
                message.splice(at + 5..at + 6, [0x18, 0x07]);
                message
            },
            ("ok", ""),
        ),
        (
            "text label, ignored",
            mac({
                let mut header = mac0_header();
                header.push((text("note"), text("hi")));
                header
            }),
            ("ok", ""),
        ),
        (
            "text label twice",
            mac({
                let mut header = mac0_header();
                header.push((text("note"), text("hi")));
                header.push((text("note"), text("ho")));
                header
            }),
            (m, "duplicate_label"),
        ),
        (
            "a float as a label",
            mac({
                let mut header = mac0_header();
                header.push((Value::Float(1.5), int(1)));
                header
            }),
            (m, "bad_label"),
        ),
        (
            "two faults: alg and counter missing",
            mac(without(without(mac0_header(), 1), COUNTER_LABEL)),
            (m, "missing_alg"),
        ),
        ("100 000 nested arrays", deep, (m, "not_cose")),
        (
            "unprotected value 100 000 arrays deep",
            deep_unprotected,
            (m, "bad_cbor"),
        ),
    ];
    for (what, input, expected) in table {
        let result = check(&input, &d.creds);
        assert_eq!(outcome(&result), expected, "{what}");
    }
}

#[test]
fn every_truncation_and_every_flipped_byte_is_refused() {
    let d = sensor();
    for message in [
        cose::seal_mac0(&device("sensor-1"), KEY_ID, &KEY, 1, NOW, b"21.5"),
        craft(18, sign1_header(), vec![], Proof::Sign(&d.pair)),
    ] {
        assert!(check(&message, &d.creds).is_ok());
        for cut in 0..message.len() {
            assert!(check(&message[..cut], &d.creds).is_err(), "cut at {cut}");
        }
        for i in 0..message.len() {
            let mut changed = message.clone();
            changed[i] ^= 0x01;
            assert!(check(&changed, &d.creds).is_err(), "byte {i} changed");
        }
    }
}

#[test]
fn expired_device_key_and_certificate_no_longer_verify() {
    let mut d = sensor();
    let sealed = cose::seal_mac0(&device("sensor-1"), KEY_ID, &KEY, 1, NOW, b"x");
    let signed = craft(18, sign1_header(), vec![], Proof::Sign(&d.pair));
    d.creds.keys[0].not_after = Some(NOW);
    d.creds.certificates[0].not_after = NOW;
    for message in [sealed, signed] {
        let result = check(&message, &d.creds);
        assert_eq!(outcome(&result), ("unauthenticated", "unknown_key"));
    }
}
