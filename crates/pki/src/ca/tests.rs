use super::*;
use portcullis_keys::software::MasterKey;
use portcullis_keys::KeyCustody;
use portcullis_store::sqlite::SqliteStore;

fn settings() -> CaSettings {
    CaSettings {
        name: "Test".into(),
        algorithm: Algorithm::ES256,
        urls: PkiUrls::under("http://127.0.0.1:8080"),
        profile: CertificateProfile::default(),
    }
}

fn vault() -> KeyCustody {
    KeyCustody::Software(Arc::new(MasterKey::from_bytes([7; 32])))
}

#[tokio::test]
async fn the_first_start_creates_a_hierarchy_and_later_starts_load_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
    let (a, created) =
        CertificateAuthority::load_or_create(&store, &vault(), &settings(), 1_700_000_000)
            .await
            .unwrap();
    assert!(created);
    let (b, created) =
        CertificateAuthority::load_or_create(&store, &vault(), &settings(), 1_700_000_100)
            .await
            .unwrap();
    assert!(!created);
    assert_eq!(a.issuing_der(), b.issuing_der());
    assert_eq!(a.root_der(), b.root_der());
    // The issuing certificate chains to the root and both are CAs.
    let (_, root) = X509Certificate::from_der(a.root_der()).unwrap();
    let (_, issuing) = X509Certificate::from_der(a.issuing_der()).unwrap();
    assert!(root.is_ca() && issuing.is_ca());
    issuing.verify_signature(Some(root.public_key())).unwrap();
    assert_eq!(a.chain_pem().matches("BEGIN CERTIFICATE").count(), 2);
}

#[tokio::test]
async fn a_different_master_key_cannot_open_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
    CertificateAuthority::load_or_create(&store, &vault(), &settings(), 1_700_000_000)
        .await
        .unwrap();
    let other = KeyCustody::Software(Arc::new(MasterKey::from_bytes([8; 32])));
    let err = CertificateAuthority::load_or_create(&store, &other, &settings(), 1_700_000_000)
        .await
        .unwrap_err();
    assert!(matches!(err, PkiError::Key(_)), "{err}");
}

#[tokio::test]
async fn device_certificates_name_the_device_and_where_revocation_is_published() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
    let now = 1_700_000_000;
    let (ca, _) = CertificateAuthority::load_or_create(&store, &vault(), &settings(), now)
        .await
        .unwrap();
    let device_key = rcgen::KeyPair::generate().unwrap();
    let id = portcullis_core::device::DeviceId::parse("sensor-1").unwrap();
    let issued = ca.issue_device(&id, &device_key, now).unwrap();
    assert_eq!(
        issued.not_after - now,
        crate::profile::DEFAULT_LIFETIME_SECS
    );
    let (_, cert) = X509Certificate::from_der(&issued.der).unwrap();
    let (_, issuing) = X509Certificate::from_der(ca.issuing_der()).unwrap();
    cert.verify_signature(Some(issuing.public_key())).unwrap();
    assert!(!cert.is_ca());
    assert_eq!(
        portcullis_core::serial::serial_key(cert.raw_serial()),
        issued.serial
    );
    assert!(cert.raw_serial().len() >= 8, "at least 64 bits of serial");
    let text = format!("{:?}", cert.extensions());
    assert!(text.contains("http://127.0.0.1:8080/pki/crl"), "{text}");
    assert!(text.contains("http://127.0.0.1:8080/ocsp"), "{text}");
    assert!(text.contains("urn:portcullis:device:sensor-1"), "{text}");
    // Two certificates never share a serial.
    let again = ca.issue_device(&id, &device_key, now).unwrap();
    assert_ne!(again.serial, issued.serial);
}

#[tokio::test]
async fn an_existing_ca_can_be_imported_once_and_a_mismatched_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&ca_key).unwrap();
    let other_key = rcgen::KeyPair::generate().unwrap();
    let err = import(
        &store,
        &vault(),
        cert.pem().as_bytes(),
        other_key.serialize_pem().as_bytes(),
        None,
        1,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("does not belong"), "{err}");
    let stored = import(
        &store,
        &vault(),
        cert.pem().as_bytes(),
        ca_key.serialize_pem().as_bytes(),
        None,
        1,
    )
    .await
    .unwrap();
    assert_eq!(stored.origin, "imported");
    let (loaded, created) = CertificateAuthority::load_or_create(&store, &vault(), &settings(), 2)
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(loaded.issuing_der(), cert.der().as_ref());
    let again = import(
        &store,
        &vault(),
        cert.pem().as_bytes(),
        ca_key.serialize_pem().as_bytes(),
        None,
        1,
    )
    .await
    .unwrap_err();
    assert!(again.to_string().contains("already has a CA"), "{again}");
}

#[tokio::test]
async fn only_certificates_meant_for_clients_authenticate_clients() {
    use crate::chain::{IssuedCertificateValidator, TrustAnchor};
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("s.db")).await.unwrap());
    let now = 1_700_000_000;
    let (ca, _) = CertificateAuthority::load_or_create(store.as_ref(), &vault(), &settings(), now)
        .await
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let device = ca
        .issue_device(
            &portcullis_core::device::DeviceId::parse("meter-7").unwrap(),
            &key,
            now,
        )
        .unwrap();
    let server = ca
        .issue_tls_server(&["localhost".into()], &key, 3600, now)
        .unwrap();
    store.insert_certificate(&device).await.unwrap();
    store.insert_certificate(&server).await.unwrap();
    let validator = IssuedCertificateValidator {
        anchor: TrustAnchor::new(ca.issuing_der().to_vec()).unwrap(),
        store: store.clone(),
    };
    let leaf = validator
        .validate(std::slice::from_ref(&device.der), now + 10)
        .await
        .unwrap();
    assert!(leaf.client_auth);
    let refused = validator
        .validate(std::slice::from_ref(&server.der), now + 10)
        .await;
    assert!(
        matches!(&refused, Err(PkiError::NotAuthenticated(m)) if m.contains("clientAuth")),
        "the node's own HTTPS certificate is not a client certificate: {refused:?}"
    );
}
