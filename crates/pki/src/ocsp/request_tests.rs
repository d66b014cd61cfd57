use super::*;
use crate::ocsp::test_support::{cert_id, nonce_extension, request, tlv, TestCa};
use base64::engine::general_purpose::STANDARD;
use der::Encode;
use portcullis_keys::Algorithm;

const SERIAL: &[u8] = &[0x00, 0x9a, 0x01, 0x02];

fn ca() -> TestCa {
    TestCa::new(Algorithm::ES256)
}

#[test]
fn a_sha1_request_with_a_nonce_parses() {
    let ca = ca();
    let id = ca.cert_id(HashAlgorithm::Sha1, SERIAL);
    let der = request(
        std::slice::from_ref(&id),
        &[nonce_extension(b"0123456789abcdef")],
    );
    let info = parse_request(&der).unwrap();
    assert_eq!(info.certs.len(), 1);
    let cert = &info.certs[0];
    let (name, key) = ca.hashes(HashAlgorithm::Sha1);
    assert_eq!(cert.hash_algorithm, Some(HashAlgorithm::Sha1));
    assert_eq!(cert.issuer_name_hash, name);
    assert_eq!(cert.issuer_key_hash, key);
    assert_eq!(cert.serial, SERIAL);
    assert_eq!(cert.serial_hex(), "9a0102");
    assert!(!cert.serial_is_negative());
    assert_eq!(info.nonce.as_deref(), Some(&b"0123456789abcdef"[..]));
    assert!(!info.signed);
    // The CertID is echoed byte for byte.
    assert_eq!(cert.cert_id().to_der().unwrap(), id);
}

#[test]
fn a_sha256_request_without_a_nonce_parses() {
    let ca = ca();
    let der = request(&[ca.cert_id(HashAlgorithm::Sha256, &[0x01])], &[]);
    let info = parse_request(&der).unwrap();
    assert_eq!(info.certs[0].hash_algorithm, Some(HashAlgorithm::Sha256));
    assert_eq!(info.certs[0].issuer_name_hash.len(), 32);
    assert_eq!(info.nonce, None);
}

#[test]
fn absent_hash_parameters_are_accepted_and_echoed_absent() {
    let ca = ca();
    let (name, key) = ca.hashes(HashAlgorithm::Sha1);
    let oid = HashAlgorithm::Sha1.oid().to_der().unwrap();
    let id = tlv(
        0x30,
        &[
            &tlv(0x30, &[&oid]),
            &tlv(0x04, &[&name]),
            &tlv(0x04, &[&key]),
            &tlv(0x02, &[&[0x05]]),
        ],
    );
    let info = parse_request(&request(std::slice::from_ref(&id), &[])).unwrap();
    assert_eq!(info.certs[0].hash_algorithm, Some(HashAlgorithm::Sha1));
    assert_eq!(info.certs[0].cert_id().to_der().unwrap(), id);
}

#[test]
fn hash_parameters_other_than_null_are_malformed() {
    let ca = ca();
    let (name, key) = ca.hashes(HashAlgorithm::Sha1);
    let oid = HashAlgorithm::Sha1.oid().to_der().unwrap();
    let id = tlv(
        0x30,
        &[
            &tlv(0x30, &[&oid, &[0x02, 0x01, 0x00]]),
            &tlv(0x04, &[&name]),
            &tlv(0x04, &[&key]),
            &tlv(0x02, &[&[0x05]]),
        ],
    );
    assert!(matches!(
        parse_request(&request(&[id], &[])),
        Err(OcspError::Malformed(_))
    ));
}

#[test]
fn an_unknown_hash_algorithm_parses_as_none() {
    // MD5 (1.2.840.113549.2.5): well-formed, but not one we can match an issuer with.
    let md5 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05];
    let id = cert_id(&md5, &[0u8; 16], &[0u8; 16], &[0x01]);
    let info = parse_request(&request(&[id], &[])).unwrap();
    assert_eq!(info.certs[0].hash_algorithm, None);
}

#[test]
fn every_truncation_and_garbage_is_malformed() {
    let ca = ca();
    let der = request(
        &[ca.cert_id(HashAlgorithm::Sha1, SERIAL)],
        &[nonce_extension(b"nonce")],
    );
    for len in 0..der.len() {
        assert!(
            matches!(parse_request(&der[..len]), Err(OcspError::Malformed(_))),
            "a request truncated to {len} bytes must be malformed"
        );
    }
    let mut trailing = der.clone();
    trailing.push(0);
    assert!(parse_request(&trailing).is_err(), "trailing data");
    for garbage in [
        &b"GET / HTTP/1.1"[..],
        &[0x30, 0x80, 0x00, 0x00][..], // BER indefinite length
        &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff][..],
        &[0xff; 64][..],
    ] {
        assert!(matches!(
            parse_request(garbage),
            Err(OcspError::Malformed(_))
        ));
    }
}

#[test]
fn an_empty_request_list_is_malformed() {
    assert!(matches!(
        parse_request(&request(&[], &[])),
        Err(OcspError::Malformed(_))
    ));
}

#[test]
fn at_most_ten_cert_ids_are_answered() {
    let ca = ca();
    let ids: Vec<Vec<u8>> = (1..=11u8)
        .map(|i| ca.cert_id(HashAlgorithm::Sha1, &[i]))
        .collect();
    assert_eq!(
        parse_request(&request(&ids[..10], &[]))
            .unwrap()
            .certs
            .len(),
        10
    );
    let err = parse_request(&request(&ids, &[])).unwrap_err();
    assert!(matches!(err, OcspError::Malformed(m) if m.contains("11")));
}

#[test]
fn nonces_of_one_to_thirty_two_octets_are_accepted_others_refused() {
    let ca = ca();
    let id = ca.cert_id(HashAlgorithm::Sha1, SERIAL);
    for len in [1usize, 16, 32] {
        let nonce = vec![0xa5; len];
        let info = parse_request(&request(
            std::slice::from_ref(&id),
            &[nonce_extension(&nonce)],
        ))
        .unwrap();
        assert_eq!(info.nonce, Some(nonce));
    }
    for len in [0usize, 33, 128] {
        let nonce = vec![0xa5; len];
        assert!(
            matches!(
                parse_request(&request(
                    std::slice::from_ref(&id),
                    &[nonce_extension(&nonce)]
                )),
                Err(OcspError::Malformed(_))
            ),
            "a {len}-octet nonce must be refused"
        );
    }
}

#[test]
fn a_nonce_that_is_not_an_octet_string_or_appears_twice_is_malformed() {
    let ca = ca();
    let id = ca.cert_id(HashAlgorithm::Sha1, SERIAL);
    // Raw octets in extnValue (the pre-RFC 8954 mistake some clients made).
    let oid = [
        0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02,
    ];
    let raw = tlv(0x30, &[&oid, &tlv(0x04, &[b"\x01\x02\x03"])]);
    assert!(parse_request(&request(std::slice::from_ref(&id), &[raw])).is_err());
    let twice = [nonce_extension(b"a"), nonce_extension(b"b")];
    assert!(parse_request(&request(&[id], &twice)).is_err());
}

#[test]
fn other_extensions_are_ignored() {
    let ca = ca();
    let id = ca.cert_id(HashAlgorithm::Sha1, SERIAL);
    // id-pkix-ocsp-response (acceptable responses), critical, listing id-pkix-ocsp-basic.
    let oid = [
        0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x04,
    ];
    let basic = [
        0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01,
    ];
    let ext = tlv(
        0x30,
        &[
            &oid,
            &[0x01, 0x01, 0xff],
            &tlv(0x04, &[&tlv(0x30, &[&basic])]),
        ],
    );
    let info = parse_request(&request(&[id], &[ext])).unwrap();
    assert_eq!(info.nonce, None);
}

#[test]
fn a_signed_request_is_accepted_and_its_signature_ignored() {
    let ca = ca();
    let id = ca.cert_id(HashAlgorithm::Sha1, SERIAL);
    let unsigned = request(&[id], &[]);
    // Take the tbsRequest back out and append [0] EXPLICIT Signature.
    let tbs = &unsigned[2..];
    let alg = tlv(0x30, &[&ca.key.signature_algorithm_der()[2..]]);
    let signature = tlv(
        0xa0,
        &[&tlv(0x30, &[&alg, &tlv(0x03, &[&[0x00, 0x01, 0x02]])])],
    );
    let signed = tlv(0x30, &[tbs, &signature]);
    let info = parse_request(&signed).unwrap();
    assert!(info.signed);
    assert_eq!(info.certs.len(), 1);
}

#[test]
fn an_oversize_request_is_too_large() {
    let big = vec![0x30; MAX_REQUEST_BYTES + 1];
    assert_eq!(parse_request(&big), Err(OcspError::TooLarge));
}

#[test]
fn requested_serials_are_keyed_as_the_store_keys_them_and_negatives_spotted() {
    let ca = ca();
    let info = parse_request(&request(&[ca.cert_id(HashAlgorithm::Sha1, &[0xff])], &[])).unwrap();
    assert!(info.certs[0].serial_is_negative());
    assert_eq!(info.certs[0].serial_hex(), "ff");
}

#[test]
fn get_paths_decode_in_every_encoding_clients_use() {
    // decode_get only undoes the transport encoding; bytes chosen so that the base64 has
    // `+`, `/` and padding: "+/+/AA==".
    let der = vec![0xfb, 0xff, 0xbf, 0x00];
    let b64 = STANDARD.encode(&der);
    assert_eq!(b64, "+/+/AA==");
    assert_eq!(decode_get(&b64).unwrap(), der, "plain");
    let escaped = b64
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    assert_eq!(decode_get(&escaped).unwrap(), der, "percent-encoded");
    let lower_escapes = b64
        .replace('+', "%2b")
        .replace('/', "%2f")
        .replace('=', "%3d");
    assert_eq!(
        decode_get(&lower_escapes).unwrap(),
        der,
        "lowercase escapes"
    );
    assert_eq!(
        decode_get(b64.trim_end_matches('=')).unwrap(),
        der,
        "no padding"
    );
    assert_eq!(
        decode_get(&b64.replace('+', " ")).unwrap(),
        der,
        "+ as space"
    );
    let url_safe = b64.replace('+', "-").replace('/', "_");
    assert_eq!(decode_get(&url_safe).unwrap(), der, "URL-safe alphabet");
    // And a real request survives the trip.
    let ca = ca();
    let request = request(&[ca.cert_id(HashAlgorithm::Sha256, SERIAL)], &[]);
    let path = STANDARD
        .encode(&request)
        .replace('/', "%2F")
        .replace('+', "%2B");
    assert_eq!(
        parse_request(&decode_get(&path).unwrap()).unwrap().certs[0].serial,
        SERIAL
    );
}

#[test]
fn bad_get_paths_are_refused() {
    for bad in [
        "", "!!!!", "MEUw%", "MEUw%2", "MEUw%zz", "MEUw%+1", "A", "MEU=w",
    ] {
        assert!(
            matches!(decode_get(bad), Err(OcspError::Malformed(_))),
            "{bad:?} must be refused"
        );
    }
    let long = "A".repeat(MAX_REQUEST_BYTES.div_ceil(3) * 4 + 4);
    assert_eq!(decode_get(&long), Err(OcspError::TooLarge));
    let huge = "A".repeat(1 << 20);
    assert_eq!(decode_get(&huge), Err(OcspError::TooLarge));
}
