//! RFC 8705 through the router: `tls_client_auth` against a real (test) CA, the self-signed
//! method, certificate-bound tokens (`cnf.x5t#S256`) in the token and in introspection, the
//! refusals, hostile chains, and the discovery metadata.
//!
//! The TLS listener is simulated the way it hands certificates to the handlers: a
//! `PeerCertificates` request extension holding the DER chain, leaf first.

// An integration test: a failure is a failed test, so panicking shortcuts are fine here
// (and in the helpers it shares), unlike in the crates it tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use portcullis_core::client::{AuthMethod, Client, TlsClientAuthMatch};
use portcullis_core::UnixTime;
use portcullis_oauth::client_auth::AUTH_FAILED;
use portcullis_oauth::mtls::{x5t_s256, BoxFuture, CertificateError};
use portcullis_oauth::{CertificateValidator, ValidatedCertificate};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde_json::Value;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

const DAY: i64 = 86_400;

/// A certificate authority for tests: its DER certificate and what signs with it.
struct TestCa {
    der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Plant");
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = time(now() - 30 * DAY);
        params.not_after = time(now() + 365 * DAY);
        let der = params.self_signed(&key).unwrap().der().to_vec();
        TestCa {
            der,
            issuer: Issuer::new(params, key),
        }
    }

    /// A client certificate issued by this CA, valid `[from, to]`.
    fn issue(&self, leaf: LeafSpec, from: UnixTime, to: UnixTime) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let params = leaf.params(from, to);
        params.signed_by(&key, &self.issuer).unwrap().der().to_vec()
    }
}

/// Subject and SANs of a test leaf; the subject is written C, O, CN (DER order), so its
/// RFC 4514 form is `CN=...,O=Plant,C=DE`.
#[derive(Clone, Default)]
struct LeafSpec {
    cn: &'static str,
    san: Vec<SanType>,
}

impl LeafSpec {
    fn cn(cn: &'static str) -> LeafSpec {
        LeafSpec {
            cn,
            san: Vec::new(),
        }
    }

    fn params(self, from: UnixTime, to: UnixTime) -> CertificateParams {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "DE");
        dn.push(DnType::OrganizationName, "Plant");
        dn.push(DnType::CommonName, self.cn);
        params.distinguished_name = dn;
        params.subject_alt_names = self.san;
        params.not_before = time(from);
        params.not_after = time(to);
        params
    }

    /// A self-signed certificate with this subject.
    fn self_signed(self, from: UnixTime, to: UnixTime) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        self.params(from, to)
            .self_signed(&key)
            .unwrap()
            .der()
            .to_vec()
    }
}

fn time(t: UnixTime) -> ::time::OffsetDateTime {
    ::time::OffsetDateTime::from_unix_timestamp(t).unwrap()
}

/// A real chain validator over one CA: the leaf names the CA as its issuer, its signature
/// verifies with the CA key, and it is within its validity dates. (The production one, over
/// the device PKI, also checks revocation in the store.)
struct OneCaValidator {
    ca_der: Vec<u8>,
}

impl CertificateValidator for OneCaValidator {
    fn validate<'a>(
        &'a self,
        chain: &'a [Vec<u8>],
        now: UnixTime,
    ) -> BoxFuture<'a, Result<ValidatedCertificate, CertificateError>> {
        Box::pin(async move {
            let refuse = |why: String| CertificateError::Untrusted(why);
            let leaf_der = chain.first().ok_or_else(|| refuse("empty chain".into()))?;
            let (_, leaf) =
                X509Certificate::from_der(leaf_der).map_err(|e| refuse(e.to_string()))?;
            let (_, ca) =
                X509Certificate::from_der(&self.ca_der).map_err(|e| refuse(e.to_string()))?;
            if leaf.issuer().as_raw() != ca.subject().as_raw() {
                return Err(refuse("not issued by the CA".into()));
            }
            leaf.verify_signature(Some(ca.public_key()))
                .map_err(|e| refuse(format!("bad signature: {e}")))?;
            let validity = leaf.validity();
            if now < validity.not_before.timestamp() || now > validity.not_after.timestamp() {
                return Err(refuse("expired or not yet valid".into()));
            }
            ValidatedCertificate::of(&leaf, leaf_der)
        })
    }
}

fn tls_client(id: &str, m: TlsClientAuthMatch) -> Client {
    let mut c = client(id, AuthMethod::TlsClientAuth, now());
    c.tls_client_auth = Some(m);
    c
}

fn self_signed_client(id: &str, certs: &[&[u8]]) -> Client {
    use base64::Engine;
    let keys: Vec<Value> = certs
        .iter()
        .map(|der| {
            serde_json::json!({
                "kty": "EC",
                "x5c": [base64::engine::general_purpose::STANDARD.encode(der)],
            })
        })
        .collect();
    let mut c = client(id, AuthMethod::SelfSignedTlsClientAuth, now());
    c.jwks = Some(serde_json::json!({ "keys": keys }).to_string());
    c
}

/// The fixture: a device CA, a foreign CA, the self-signed certificates, and a server with
/// one client per certificate match plus the self-signed clients.
struct Mtls {
    h: Harness,
    ca: TestCa,
    foreign: TestCa,
    /// Registered by `svc-self`.
    self_signed: Vec<u8>,
    /// Registered by `svc-self-expired`, expired.
    self_signed_expired: Vec<u8>,
}

const DN: &str = "CN=meter-7,O=Plant,C=DE";

impl Mtls {
    async fn start() -> Mtls {
        Self::start_with(true, Some("https://127.0.0.1:8443/".into())).await
    }

    async fn start_with(validator: bool, mtls_base: Option<String>) -> Mtls {
        let ca = TestCa::new("Device CA");
        let foreign = TestCa::new("Device CA"); // same name, different key
        let t = now();
        let self_signed = LeafSpec::cn("self-7").self_signed(t - DAY, t + DAY);
        let self_signed_expired = LeafSpec::cn("self-old").self_signed(t - 10 * DAY, t - DAY);
        let mut disabled = tls_client(
            "svc-mtls-disabled",
            TlsClientAuthMatch::SubjectDn(DN.into()),
        );
        disabled.enabled = false;
        let extra_clients = vec![
            tls_client("svc-mtls", TlsClientAuthMatch::SubjectDn(DN.into())),
            tls_client(
                "svc-mtls-dns",
                TlsClientAuthMatch::SanDns("meter-7.plant.example".into()),
            ),
            tls_client(
                "svc-mtls-uri",
                TlsClientAuthMatch::SanUri("spiffe://plant/meter-7".into()),
            ),
            tls_client("svc-mtls-ip", TlsClientAuthMatch::SanIp("fd00::7".into())),
            tls_client(
                "svc-mtls-email",
                TlsClientAuthMatch::SanEmail("meter-7@plant.example".into()),
            ),
            disabled,
            self_signed_client("svc-self", &[b"not this one", &self_signed]),
            self_signed_client("svc-self-expired", &[&self_signed_expired]),
        ];
        let validator: Option<Arc<dyn CertificateValidator>> = validator.then(|| {
            Arc::new(OneCaValidator {
                ca_der: ca.der.clone(),
            }) as Arc<dyn CertificateValidator>
        });
        let h = Harness::start_with(Options {
            extra_clients,
            validator,
            mtls_base,
            ..Options::default()
        })
        .await;
        Mtls {
            h,
            ca,
            foreign,
            self_signed,
            self_signed_expired,
        }
    }

    /// A currently valid leaf from the device CA.
    fn leaf(&self, spec: LeafSpec) -> Vec<u8> {
        self.ca.issue(spec, now() - DAY, now() + DAY)
    }

    /// The chain as a client sends it: leaf, then the CA.
    fn chain(&self, leaf: &[u8]) -> Vec<Vec<u8>> {
        vec![leaf.to_vec(), self.ca.der.clone()]
    }

    async fn token(&self, client_id: &str, chain: Option<Vec<Vec<u8>>>) -> (StatusCode, Value) {
        let (status, _, body) = self
            .h
            .post_tls(
                self.h.fresh_addr(),
                "/oauth2/token",
                None,
                format!("grant_type=client_credentials&client_id={client_id}"),
                chain,
            )
            .await;
        (status, body)
    }
}

fn assert_refused(status: StatusCode, body: &Value, case: &str) {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
    assert_eq!(body["error"], "invalid_client", "{case}: {body}");
    assert_eq!(body["error_description"], AUTH_FAILED, "{case}: {body}");
}

#[tokio::test]
async fn tls_client_auth_issues_a_bound_token_that_introspection_confirms() {
    let m = Mtls::start().await;
    let leaf = m.leaf(LeafSpec::cn("meter-7"));
    let (status, body) = m.token("svc-mtls", Some(m.chain(&leaf))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let claims = m.h.server.validate_access_token(&token).unwrap();
    assert_eq!(claims.client_id, "svc-mtls");
    let x5t = x5t_s256(&leaf);
    assert_eq!(x5t.len(), 43);
    assert_eq!(
        claims.cnf.as_ref().and_then(|c| c.x5t_s256.as_deref()),
        Some(x5t.as_str())
    );

    // Introspection by the same client, authenticated by its certificate, ...
    let (status, _, intro) =
        m.h.post_tls(
            m.h.fresh_addr(),
            "/oauth2/introspect",
            None,
            format!("client_id=svc-mtls&token={token}"),
            Some(m.chain(&leaf)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{intro}");
    assert_eq!(intro["active"], true);
    assert_eq!(intro["cnf"]["x5t#S256"], x5t.as_str());
    // ... and by a secret client over plain HTTP: the binding is a property of the token.
    let (status, _, intro) =
        m.h.post(
            "/oauth2/introspect",
            Some(&basic("svc-basic", "basic-secret")),
            format!("token={token}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{intro}");
    assert_eq!(intro["cnf"], serde_json::json!({ "x5t#S256": x5t }));

    // Revocation authenticates by certificate too.
    let (status, _, _) =
        m.h.post_tls(
            m.h.fresh_addr(),
            "/oauth2/revoke",
            None,
            format!("client_id=svc-mtls&token={token}"),
            Some(m.chain(&leaf)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(m.h.server.validate_access_token(&token).is_err(), "revoked");
}

#[tokio::test]
async fn every_san_kind_identifies_its_client() {
    let m = Mtls::start().await;
    let cases = [
        (
            "svc-mtls-dns",
            SanType::DnsName("Meter-7.plant.example".try_into().unwrap()),
        ),
        (
            "svc-mtls-uri",
            SanType::URI("spiffe://plant/meter-7".try_into().unwrap()),
        ),
        (
            "svc-mtls-ip",
            SanType::IpAddress("fd00:0::7".parse::<IpAddr>().unwrap()),
        ),
        (
            "svc-mtls-email",
            SanType::Rfc822Name("meter-7@plant.example".try_into().unwrap()),
        ),
    ];
    for (id, san) in &cases {
        let id = *id;
        let leaf = m.leaf(LeafSpec {
            cn: "anything",
            san: vec![san.clone()],
        });
        let (status, body) = m.token(id, Some(m.chain(&leaf))).await;
        assert_eq!(status, StatusCode::OK, "{id}: {body}");
        // The same certificate does not identify the clients of the other kinds.
        for (other, _) in cases.iter().filter(|(o, _)| *o != id) {
            let (status, body) = m.token(other, Some(m.chain(&leaf))).await;
            assert_refused(status, &body, &format!("{id} cert for {other}"));
        }
    }
}

#[tokio::test]
async fn wrong_subject_foreign_ca_expired_and_missing_certificates_are_refused() {
    let m = Mtls::start().await;
    let t = now();
    let wrong_subject = m.leaf(LeafSpec::cn("meter-8"));
    let foreign = m.foreign.issue(LeafSpec::cn("meter-7"), t - DAY, t + DAY);
    let expired = m.ca.issue(LeafSpec::cn("meter-7"), t - 10 * DAY, t - DAY);
    let not_yet = m.ca.issue(LeafSpec::cn("meter-7"), t + DAY, t + 10 * DAY);
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("wrong subject", m.chain(&wrong_subject)),
        ("foreign CA", vec![foreign.clone(), m.foreign.der.clone()]),
        (
            "foreign CA, our CA appended",
            vec![foreign, m.ca.der.clone()],
        ),
        ("expired", m.chain(&expired)),
        ("not yet valid", m.chain(&not_yet)),
        ("the CA certificate itself", vec![m.ca.der.clone()]),
        ("a self-signed leaf", vec![m.self_signed.clone()]),
    ];
    for (case, chain) in cases {
        let (status, body) = m.token("svc-mtls", Some(chain)).await;
        assert_refused(status, &body, case);
    }

    // No certificate at all: nothing to authenticate with.
    let (status, body) = m.token("svc-mtls", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");

    // A disabled client with a good certificate.
    let leaf = m.leaf(LeafSpec::cn("meter-7"));
    let (status, body) = m.token("svc-mtls-disabled", Some(m.chain(&leaf))).await;
    assert_refused(status, &body, "disabled");
    // An unknown client id with a good certificate.
    let (status, body) = m.token("svc-nobody", Some(m.chain(&leaf))).await;
    assert_refused(status, &body, "unknown client");
}

#[tokio::test]
async fn tls_client_auth_without_a_validator_is_refused() {
    let m = Mtls::start_with(false, None).await;
    let leaf = m.leaf(LeafSpec::cn("meter-7"));
    let (status, body) = m.token("svc-mtls", Some(m.chain(&leaf))).await;
    assert_refused(status, &body, "no validator");
    // The self-signed method needs no validator.
    let (status, body) = m.token("svc-self", Some(vec![m.self_signed.clone()])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn self_signed_certificate_matches_byte_for_byte_within_its_dates() {
    let m = Mtls::start().await;
    let (status, body) = m.token("svc-self", Some(vec![m.self_signed.clone()])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims =
        m.h.server
            .validate_access_token(body["access_token"].as_str().unwrap())
            .unwrap();
    assert_eq!(claims.client_id, "svc-self");
    assert_eq!(
        claims.cnf.unwrap().x5t_s256.unwrap(),
        x5t_s256(&m.self_signed)
    );

    let t = now();
    let same_subject_other_key = LeafSpec::cn("self-7").self_signed(t - DAY, t + DAY);
    let mut flipped = m.self_signed.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let cases: Vec<(&str, &str, Vec<Vec<u8>>)> = vec![
        (
            "same subject, other key",
            "svc-self",
            vec![same_subject_other_key],
        ),
        ("one bit flipped", "svc-self", vec![flipped]),
        (
            "a CA-issued certificate",
            "svc-self",
            m.chain(&m.leaf(LeafSpec::cn("self-7"))),
        ),
        (
            "registered but expired",
            "svc-self-expired",
            vec![m.self_signed_expired.clone()],
        ),
        (
            "another client's certificate",
            "svc-self-expired",
            vec![m.self_signed.clone()],
        ),
        (
            "a self-signed certificate for a tls_client_auth client",
            "svc-mtls",
            vec![m.self_signed.clone()],
        ),
    ];
    for (case, id, chain) in cases {
        let (status, body) = m.token(id, Some(chain)).await;
        assert_refused(status, &body, case);
    }
}

#[tokio::test]
async fn secret_client_presenting_a_certificate_gets_a_bound_token() {
    let m = Mtls::start().await;
    let leaf = m.leaf(LeafSpec::cn("anything"));
    let (status, _, body) =
        m.h.post_tls(
            m.h.fresh_addr(),
            "/oauth2/token",
            Some(&basic("svc-basic", "basic-secret")),
            "grant_type=client_credentials",
            Some(m.chain(&leaf)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims =
        m.h.server
            .validate_access_token(body["access_token"].as_str().unwrap())
            .unwrap();
    assert_eq!(claims.cnf.unwrap().x5t_s256.unwrap(), x5t_s256(&leaf));

    // Any certificate binds, even one the PKI would not trust (it proves possession of the
    // key to the TLS layer; the resource server compares the same certificate).
    let (status, _, body) =
        m.h.post_tls(
            m.h.fresh_addr(),
            "/oauth2/token",
            None,
            "grant_type=client_credentials&client_id=svc-other&client_secret=other-secret",
            Some(vec![m.self_signed.clone()]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims =
        m.h.server
            .validate_access_token(body["access_token"].as_str().unwrap())
            .unwrap();
    assert_eq!(
        claims.cnf.unwrap().x5t_s256.unwrap(),
        x5t_s256(&m.self_signed)
    );

    // Without a certificate: no cnf, in the token or in introspection.
    let token = m.h.token_for("svc-basic", "basic-secret").await;
    let claims = m.h.server.validate_access_token(&token).unwrap();
    assert!(claims.cnf.is_none());
    let (_, _, intro) =
        m.h.post(
            "/oauth2/introspect",
            Some(&basic("svc-basic", "basic-secret")),
            format!("token={token}"),
        )
        .await;
    assert_eq!(intro["active"], true);
    assert!(intro.get("cnf").is_none(), "{intro}");

    // The certificate alone does not authenticate a secret client, and a certificate client
    // has no secret to send.
    let (status, body) = m.token("svc-basic", Some(m.chain(&leaf))).await;
    assert_refused(status, &body, "secret client with only a certificate");
    let good = m.leaf(LeafSpec::cn("meter-7"));
    let (status, _, body) =
        m.h.post_tls(
            m.h.fresh_addr(),
            "/oauth2/token",
            Some(&basic("svc-mtls", "guess")),
            "grant_type=client_credentials",
            Some(m.chain(&good)),
        )
        .await;
    assert_refused(status, &body, "certificate client sending a secret");
}

#[tokio::test]
async fn hostile_chains_are_refused_without_panicking() {
    let m = Mtls::start().await;
    let huge = vec![0x30u8; 70_000];
    let chains: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("garbage", vec![b"garbage".to_vec()]),
        ("empty leaf", vec![Vec::new()]),
        ("empty chain", Vec::new()),
        (
            "truncated sequence",
            vec![vec![0x30, 0x82, 0xff, 0xff, 0x30]],
        ),
        ("indefinite length", vec![vec![0x30, 0x80, 0x00, 0x00]]),
        ("nested sequences", vec![huge]),
        ("garbage after a good leaf", {
            let mut leaf = m.leaf(LeafSpec::cn("meter-7"));
            leaf.extend_from_slice(b"trailing");
            vec![leaf]
        }),
        (
            "good leaf, garbage CA",
            vec![m.leaf(LeafSpec::cn("meter-8")), b"x".to_vec()],
        ),
    ];
    for (case, chain) in chains {
        for id in ["svc-mtls", "svc-mtls-dns", "svc-self"] {
            let (status, body) = m.token(id, Some(chain.clone())).await;
            assert_refused(status, &body, &format!("{case} for {id}"));
        }
    }
    // A secret client over such a connection still authenticates; the token binds the bytes.
    let (status, _, body) =
        m.h.post_tls(
            m.h.fresh_addr(),
            "/oauth2/token",
            Some(&basic("svc-basic", "basic-secret")),
            "grant_type=client_credentials",
            Some(vec![b"garbage".to_vec()]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // An empty chain binds nothing.
    let (status, _, body) =
        m.h.post_tls(
            m.h.fresh_addr(),
            "/oauth2/token",
            Some(&basic("svc-basic", "basic-secret")),
            "grant_type=client_credentials",
            Some(Vec::new()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims =
        m.h.server
            .validate_access_token(body["access_token"].as_str().unwrap())
            .unwrap();
    assert!(claims.cnf.is_none());
}

#[tokio::test]
async fn certificate_failures_count_towards_the_lock_out() {
    let m = Mtls::start().await;
    let addr = m.h.fresh_addr();
    let wrong = m.leaf(LeafSpec::cn("meter-8"));
    let mut last = StatusCode::OK;
    for _ in 0..12 {
        let (status, _, _) =
            m.h.post_tls(
                addr,
                "/oauth2/token",
                None,
                "grant_type=client_credentials&client_id=svc-mtls",
                Some(m.chain(&wrong)),
            )
            .await;
        last = status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    // Even the right certificate is answered 429 from that address for now.
    let good = m.leaf(LeafSpec::cn("meter-7"));
    let (status, _, _) =
        m.h.post_tls(
            addr,
            "/oauth2/token",
            None,
            "grant_type=client_credentials&client_id=svc-mtls",
            Some(m.chain(&good)),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn discovery_advertises_rfc_8705_only_with_an_mtls_listener() {
    let with = Mtls::start().await;
    let without = Mtls::start_with(true, None).await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let get = || Request::get(path).body(Body::empty()).unwrap();
        let (status, _, v) = with.h.send(get()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            v["tls_client_certificate_bound_access_tokens"], true,
            "{path}"
        );
        for key in [
            "token_endpoint_auth_methods_supported",
            "introspection_endpoint_auth_methods_supported",
            "revocation_endpoint_auth_methods_supported",
        ] {
            let methods = v[key].as_array().unwrap();
            assert!(methods.contains(&"tls_client_auth".into()), "{path} {key}");
            assert!(
                methods.contains(&"self_signed_tls_client_auth".into()),
                "{path} {key}"
            );
        }
        // The trailing slash of the configured base is dropped.
        assert_eq!(
            v["mtls_endpoint_aliases"]["token_endpoint"],
            "https://127.0.0.1:8443/oauth2/token"
        );
        assert_eq!(
            v["mtls_endpoint_aliases"]["introspection_endpoint"],
            "https://127.0.0.1:8443/oauth2/introspect"
        );
        assert_eq!(
            v["mtls_endpoint_aliases"]["revocation_endpoint"],
            "https://127.0.0.1:8443/oauth2/revoke"
        );

        let (_, _, v) = without.h.send(get()).await;
        assert!(v
            .get("tls_client_certificate_bound_access_tokens")
            .is_none());
        assert!(v.get("mtls_endpoint_aliases").is_none());
        assert!(!v["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&"tls_client_auth".into()));
    }
}

#[test]
fn validated_certificate_reads_the_rfc_4514_subject_and_sans() {
    let ca = TestCa::new("Device CA");
    let t = now();
    let leaf = ca.issue(
        LeafSpec {
            cn: "meter, \"7\"",
            san: vec![
                SanType::DnsName("meter-7.plant.example".try_into().unwrap()),
                SanType::URI("spiffe://plant/meter-7".try_into().unwrap()),
                SanType::IpAddress("10.0.0.7".parse().unwrap()),
                SanType::IpAddress("fd00::7".parse().unwrap()),
                SanType::Rfc822Name("meter-7@plant.example".try_into().unwrap()),
            ],
        },
        t - DAY,
        t + DAY,
    );
    let v = ValidatedCertificate::from_der(&leaf).unwrap();
    assert_eq!(v.subject_dn, r#"CN=meter\, \"7\",O=Plant,C=DE"#);
    assert_eq!(v.san_dns, ["meter-7.plant.example"]);
    assert_eq!(v.san_uri, ["spiffe://plant/meter-7"]);
    assert_eq!(v.san_ip, ["10.0.0.7", "fd00::7"]);
    assert_eq!(v.san_email, ["meter-7@plant.example"]);
    assert_eq!(
        v.sha256.to_vec(),
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &leaf).as_ref()
    );
    assert!(
        TlsClientAuthMatch::SubjectDn(r#"cn=meter\2c  \"7\", o=Plant, c=DE"#.into())
            .matches(&v.names())
    );
    assert!(
        !TlsClientAuthMatch::SubjectDn(r#"CN=METER\, \"7\",O=Plant,C=DE"#.into())
            .matches(&v.names()),
        "values are case-sensitive"
    );
    let ca_view = ValidatedCertificate::from_der(&ca.der).unwrap();
    assert_eq!(ca_view.subject_dn, "CN=Device CA,O=Plant");
    assert!(ca_view.san_dns.is_empty());
}
