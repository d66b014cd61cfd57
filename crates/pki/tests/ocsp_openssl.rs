//! Interop with a real OCSP client: OpenSSL's `openssl ocsp` writes the requests (SHA-1 and
//! SHA-256 CertIDs, with and without a nonce), our responder answers them, and OpenSSL must
//! accept the answers: signature verified against the CA (`Response verify OK`), nonce
//! matched, times valid, and the status we meant.

// An integration test: a failure is a failed test, so panicking shortcuts are fine here
// (and in the helpers it shares), unlike in the crates it tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use portcullis_core::hex::encode as hex;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use portcullis_core::device::RevocationReason;
use portcullis_keys::software::SoftwareSigner;
use portcullis_keys::Algorithm;
use portcullis_pki::ocsp::{CertificateStatus, CertificateStatusSource, OcspConfig, OcspResponder};
use portcullis_pki::{CaKey, PkiError};

#[derive(Debug, Default)]
struct Statuses(Mutex<HashMap<String, CertificateStatus>>);

#[async_trait]
impl CertificateStatusSource for Statuses {
    async fn status(&self, serial_hex: &str) -> Result<CertificateStatus, PkiError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .get(serial_hex)
            .copied()
            .unwrap_or(CertificateStatus::Unknown))
    }
}

struct Pki {
    dir: tempfile::TempDir,
    responder: OcspResponder,
    statuses: Arc<Statuses>,
}

/// Serials with the top bit set, so the INTEGER has a leading 0x00 the store form drops.
const GOOD_SERIAL: [u8; 16] = [0x9a, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const OTHER_SERIAL: [u8; 16] = [0x5b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16];

fn setup() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let (signer, _pkcs8) = SoftwareSigner::generate(Algorithm::ES256).unwrap();
    let ca_key = CaKey::new(Arc::new(signer)).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Portcullis Interop Issuing CA");
    ca_params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Portcullis");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    for (name, serial) in [("leaf", GOOD_SERIAL), ("other", OTHER_SERIAL)] {
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![format!("{name}.example")]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("device-{name}"));
        params.serial_number = Some(rcgen::SerialNumber::from(serial.to_vec()));
        let leaf = params.signed_by(&leaf_key, &issuer).unwrap();
        std::fs::write(dir.path().join(format!("{name}.pem")), leaf.pem()).unwrap();
    }
    let statuses = Arc::new(Statuses::default());
    statuses
        .0
        .lock()
        .unwrap()
        .insert(hex(&GOOD_SERIAL), CertificateStatus::Good);
    let responder = OcspResponder::new(
        ca_key,
        ca_cert.der(),
        statuses.clone(),
        OcspConfig::default(),
    )
    .unwrap();
    Pki {
        dir,
        responder,
        statuses,
    }
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .arg("ocsp")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command line tool must be installed for this test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "openssl ocsp {args:?} failed:\n{text}"
    );
    text
}

impl Pki {
    /// Has OpenSSL write a request for `cert`, answers it, and returns OpenSSL's verdict.
    async fn ask(&self, cert: &str, extra: &[&str]) -> String {
        let dir = self.dir.path();
        // The digest option must come before -cert.
        let mut args = extra.to_vec();
        args.extend_from_slice(&["-issuer", "ca.pem", "-cert", cert, "-reqout", "req.der"]);
        openssl(dir, &args);
        let request = std::fs::read(dir.join("req.der")).unwrap();
        let reply = self.responder.respond(&request).await;
        std::fs::write(dir.join("resp.der"), &reply.der).unwrap();
        // First as the client that sent it: -reqin has OpenSSL check that the response
        // echoes the request's nonce (or has none when the request had none).
        let check = openssl(
            dir,
            &[
                "-reqin", "req.der", "-respin", "resp.der", "-CAfile", "ca.pem", "-issuer",
                "ca.pem",
            ],
        );
        assert!(check.contains("Response verify OK"), "{check}");
        // Then for the status: -cert makes OpenSSL build a fresh request of its own (hence
        // -no_nonce: its nonce could not match), whose CertID it looks up in the response.
        let mut args: Vec<&str> = extra.iter().copied().filter(|a| *a == "-sha256").collect();
        args.extend_from_slice(&[
            "-respin",
            "resp.der",
            "-issuer",
            "ca.pem",
            "-cert",
            cert,
            "-CAfile",
            "ca.pem",
            "-resp_text",
            "-no_nonce",
        ]);
        openssl(dir, &args)
    }
}

fn assert_verdict(text: &str, cert: &str, status: &str) {
    assert!(
        text.contains("Response verify OK"),
        "OpenSSL did not verify the response:\n{text}"
    );
    assert!(
        text.contains(&format!("{cert}: {status}")),
        "OpenSSL did not report {cert}: {status}:\n{text}"
    );
    assert!(!text.contains("WARNING"), "OpenSSL warned:\n{text}");
}

#[tokio::test]
async fn openssl_accepts_good_unknown_and_revoked_answers() {
    let pki = setup();
    for extra in [
        &["-no_nonce"][..],
        &[][..],
        &["-sha256", "-no_nonce"][..],
        &["-sha256"][..],
    ] {
        let text = pki.ask("leaf.pem", extra).await;
        assert_verdict(&text, "leaf.pem", "good");
        if extra.contains(&"-no_nonce") {
            assert!(!text.contains("OCSP Nonce"), "{text}");
        } else {
            assert!(text.contains("OCSP Nonce"), "the nonce is echoed:\n{text}");
        }
        if extra.contains(&"-sha256") {
            assert!(text.contains("Hash Algorithm: sha256"), "{text}");
        } else {
            assert!(text.contains("Hash Algorithm: sha1"), "{text}");
        }
        assert!(text.contains("Responder Id:"), "{text}");
    }

    let text = pki.ask("other.pem", &["-no_nonce"]).await;
    assert_verdict(&text, "other.pem", "unknown");

    pki.statuses.0.lock().unwrap().insert(
        hex(&GOOD_SERIAL),
        CertificateStatus::Revoked {
            at: 1_767_225_600,
            reason: Some(RevocationReason::KeyCompromise),
        },
    );
    // The nonce-free SHA-1 answer is cached: still good until invalidated.
    let text = pki.ask("leaf.pem", &["-no_nonce"]).await;
    assert_verdict(&text, "leaf.pem", "good");
    pki.responder.invalidate(&hex(&GOOD_SERIAL));
    for extra in [&["-no_nonce"][..], &["-sha256"][..]] {
        let text = pki.ask("leaf.pem", extra).await;
        assert_verdict(&text, "leaf.pem", "revoked");
        assert!(text.contains("Reason: keyCompromise"), "{text}");
        assert!(
            text.contains("Revocation Time: Jan  1 00:00:00 2026 GMT"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn openssl_sees_unauthorized_for_another_issuer() {
    let pki = setup();
    let other = setup();
    // A request about `other`'s CA sent to `pki`'s responder.
    let dir = other.dir.path();
    openssl(
        dir,
        &[
            "-issuer",
            "ca.pem",
            "-cert",
            "leaf.pem",
            "-reqout",
            "req.der",
            "-no_nonce",
        ],
    );
    let request = std::fs::read(dir.join("req.der")).unwrap();
    let reply = pki.responder.respond(&request).await;
    std::fs::write(dir.join("resp.der"), &reply.der).unwrap();
    let out = Command::new("openssl")
        .args(["ocsp", "-respin", "resp.der", "-resp_text", "-noverify"])
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("unauthorized (6)"),
        "OpenSSL reads the status:\n{text}"
    );
}
