use super::*;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

fn csr(alg: &'static rcgen::SignatureAlgorithm, cn: Option<&str>, sans: Vec<SanType>) -> Vec<u8> {
    let key = KeyPair::generate_for(alg).unwrap();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(cn) = cn {
        dn.push(DnType::CommonName, cn);
    }
    params.distinguished_name = dn;
    params.subject_alt_names = sans;
    params.serialize_request(&key).unwrap().der().to_vec()
}

fn id(s: &str) -> DeviceId {
    DeviceId::parse(s).unwrap()
}

fn profile() -> CertificateProfile {
    CertificateProfile::default()
}

#[test]
fn a_request_naming_its_device_passes_for_each_allowed_key_type() {
    for (alg, kt) in [
        (&rcgen::PKCS_ECDSA_P256_SHA256, KeyType::P256),
        (&rcgen::PKCS_ECDSA_P384_SHA384, KeyType::P384),
        (&rcgen::PKCS_ED25519, KeyType::Ed25519),
    ] {
        let der = csr(alg, Some("sensor-1"), vec![]);
        let checked = check_csr(&der, Some(&id("sensor-1")), &profile()).unwrap();
        assert_eq!(checked.device_id, id("sensor-1"));
        assert_eq!(checked.key.key_type, kt);
    }
}

#[test]
fn the_device_uri_alone_names_the_device() {
    let uri = SanType::URI("urn:portcullis:device:gw-7".try_into().unwrap());
    let der = csr(&rcgen::PKCS_ECDSA_P256_SHA256, None, vec![uri]);
    assert_eq!(
        check_csr(&der, None, &profile()).unwrap().device_id,
        id("gw-7")
    );
}

#[test]
fn a_request_for_another_device_is_forbidden() {
    let der = csr(&rcgen::PKCS_ECDSA_P256_SHA256, Some("sensor-2"), vec![]);
    let err = check_csr(&der, Some(&id("sensor-1")), &profile()).unwrap_err();
    assert!(matches!(err, PkiError::NotPermitted(_)), "{err}");
}

#[test]
fn names_that_disagree_or_reach_further_are_refused() {
    let other_uri = SanType::URI("urn:portcullis:device:other".try_into().unwrap());
    let dns = SanType::DnsName("evil.example".try_into().unwrap());
    let web = SanType::URI("https://example.com".try_into().unwrap());
    for (cn, sans) in [
        (Some("sensor-1"), vec![other_uri]),
        (Some("sensor-1"), vec![dns]),
        (Some("sensor-1"), vec![web]),
        (None, vec![]),
        (Some("bad id with spaces"), vec![]),
    ] {
        let der = csr(&rcgen::PKCS_ECDSA_P256_SHA256, cn, sans.clone());
        let err = check_csr(&der, Some(&id("sensor-1")), &profile());
        assert!(err.is_err(), "{cn:?} {sans:?}");
    }
}

#[test]
fn a_key_type_the_profile_does_not_allow_is_refused() {
    let der = csr(&rcgen::PKCS_ED25519, Some("sensor-1"), vec![]);
    let only_p256 = CertificateProfile {
        allowed_keys: vec![KeyType::P256],
        ..profile()
    };
    let err = check_csr(&der, None, &only_p256).unwrap_err();
    assert!(err.to_string().contains("Ed25519"), "{err}");
}

#[test]
fn a_tampered_signature_is_no_proof_of_possession() {
    let mut der = csr(&rcgen::PKCS_ECDSA_P256_SHA256, Some("sensor-1"), vec![]);
    // The signature is the last field; flipping its last byte keeps the DER well-formed.
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let err = check_csr(&der, None, &profile()).unwrap_err();
    assert!(err.to_string().contains("proof of possession"), "{err}");
}

#[test]
fn a_swapped_public_key_is_no_proof_of_possession() {
    // Same length keys: replace the subject key bytes of one request with another's.
    let a = csr(&rcgen::PKCS_ECDSA_P256_SHA256, Some("sensor-1"), vec![]);
    let other = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let theirs = rcgen::PublicKeyData::der_bytes(&other).to_vec();
    let (_, parsed) = X509CertificationRequest::from_der(&a).unwrap();
    let ours = parsed
        .certification_request_info
        .subject_pki
        .subject_public_key
        .data
        .to_vec();
    let pos = a.windows(ours.len()).position(|w| w == ours).unwrap();
    let mut swapped = a.clone();
    swapped[pos..pos + ours.len()].copy_from_slice(&theirs);
    assert!(check_csr(&swapped, None, &profile()).is_err());
}

#[test]
fn garbage_truncation_trailing_bytes_and_oversize_are_clear_errors() {
    let good = csr(&rcgen::PKCS_ECDSA_P256_SHA256, Some("sensor-1"), vec![]);
    let mut trailing = good.clone();
    trailing.push(0);
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        b"hello".to_vec(),
        good[..good.len() / 2].to_vec(),
        trailing,
        vec![0x30; MAX_CSR_BYTES + 1],
    ];
    for case in cases {
        let err = check_csr(&case, None, &profile()).unwrap_err();
        assert!(matches!(err, PkiError::Invalid(_)), "{err}");
    }
}
