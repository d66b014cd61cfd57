//! The device life cycle exactly as a device and a relying party live it, with the real
//! `openssl` and `curl`: register, enroll over EST with the one-time secret, re-enroll with
//! the certificate over mTLS, check status with `openssl ocsp` and `openssl verify
//! -crl_check`, revoke, and be refused afterwards.

use crate::pki;
use crate::support;

use std::process::Command;
use std::time::{Duration, Instant};

use pki::{ok, provision_ca, register, run, Device};
use support::Node;

#[test]
fn a_device_enrolls_renews_and_is_revoked_as_openssl_and_curl_see_it() {
    let node = Node::start();
    let tmp = tempfile::tempdir().unwrap();
    let dev = Device::new(tmp.path(), "sensor-1");
    provision_ca(&node, &dev);
    let secret = register(&node, "sensor-1");

    // First enrollment: HTTP Basic with the one-time secret.
    let csr = dev.csr("first", "ec", "/CN=sensor-1");
    let (status, out) = dev.est(
        &node,
        "simpleenroll",
        &csr,
        Some(("sensor-1", &secret)),
        None,
    );
    assert_eq!(
        status,
        200,
        "{}",
        std::fs::read_to_string(&out).unwrap_or_default()
    );
    let cert = dev.save_cert(&out, "first");
    let verified = ok(Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(dev.path("root.pem"))
        .arg("-untrusted")
        .arg(dev.path("issuing.pem"))
        .args(["-purpose", "sslclient"])
        .arg(&cert));
    assert!(verified.contains(": OK"), "{verified}");
    let text = ok(Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert));
    assert!(
        text.contains("CN = sensor-1") || text.contains("CN=sensor-1"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}/pki/crl", node.base)),
        "CDP missing:\n{text}"
    );
    assert!(
        text.contains(&format!("OCSP - URI:{}/ocsp", node.base)),
        "AIA missing:\n{text}"
    );
    assert!(text.contains("TLS Web Client Authentication"), "{text}");

    // The secret was one-time: a replay gets nothing.
    let csr_again = dev.csr("replay", "ec", "/CN=sensor-1");
    let (status, _) = dev.est(
        &node,
        "simpleenroll",
        &csr_again,
        Some(("sensor-1", &secret)),
        None,
    );
    assert_eq!(status, 401, "a replayed enrollment secret must be refused");

    // OCSP says good (with and without a nonce).
    for nonce in [false, true] {
        let answer = dev.ocsp(&node, &cert, nonce);
        assert!(answer.contains("first.pem: good"), "{answer}");
        assert!(answer.contains("Response verify OK"), "{answer}");
    }

    // Re-enrollment: the current certificate over mTLS, a new key.
    let renew = dev.csr("second", "ec", "/CN=sensor-1");
    let (status, out) = dev.est(
        &node,
        "simplereenroll",
        &renew,
        None,
        Some(("first.pem", "first.key")),
    );
    assert_eq!(
        status,
        200,
        "{}",
        std::fs::read_to_string(&out).unwrap_or_default()
    );
    let second = dev.save_cert(&out, "second");
    assert_ne!(dev.serial(&cert), dev.serial(&second));

    // Revoke the first certificate: OCSP says revoked within a second.
    let serial = dev.serial(&cert);
    let revoked = node.cli(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let start = Instant::now();
    loop {
        let answer = dev.ocsp(&node, &cert, false);
        if answer.contains("first.pem: revoked") {
            assert!(
                answer.contains("Key Compromise") || answer.contains("keyCompromise"),
                "{answer}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "OCSP still says: {answer}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(dev.ocsp(&node, &second, false).contains("second.pem: good"));

    // The CRL at the distribution point lists it; openssl verify -crl_check refuses it.
    let crl_der = dev.path("crl.der");
    ok(Command::new("curl")
        .args(["-sSf", "-o"])
        .arg(&crl_der)
        .arg(format!("{}/pki/crl", node.base)));
    let crl_pem = dev.path("crl.pem");
    ok(Command::new("openssl")
        .args(["crl", "-inform", "DER", "-in"])
        .arg(&crl_der)
        .arg("-out")
        .arg(&crl_pem));
    let check = |cert: &std::path::Path| {
        run(Command::new("openssl")
            .args(["verify", "-crl_check", "-CAfile"])
            .arg(dev.path("chain.pem"))
            .arg("-CRLfile")
            .arg(&crl_pem)
            .arg(cert))
    };
    let refused = check(&cert);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stdout).contains("certificate revoked")
            || String::from_utf8_lossy(&refused.stderr).contains("certificate revoked"),
        "{refused:?}"
    );
    assert!(
        check(&second).status.success(),
        "the renewed certificate is not revoked"
    );

    // A revoked certificate cannot re-enroll.
    let third = dev.csr("third", "ec", "/CN=sensor-1");
    let (status, _) = dev.est(
        &node,
        "simplereenroll",
        &third,
        None,
        Some(("first.pem", "first.key")),
    );
    assert_eq!(status, 401);

    // Revoking the device revokes what it still holds and blocks it for good.
    let out = node.cli_json(&["device", "revoke", "sensor-1"]);
    assert_eq!(out["device"]["state"], "revoked", "{out}");
    assert_eq!(out["revoked"].as_array().unwrap().len(), 1, "{out}");
    let start = Instant::now();
    while !dev
        .ocsp(&node, &second, false)
        .contains("second.pem: revoked")
    {
        assert!(start.elapsed() < Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _) = dev.est(
        &node,
        "simplereenroll",
        &third,
        None,
        Some(("second.pem", "second.key")),
    );
    assert_eq!(status, 401);

    // Everything above is in the audit chain.
    let audit = node.cli(&["audit", "verify"]);
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stderr)
    );
}

#[test]
fn cacerts_and_csrattrs_answer_as_rfc_7030_says() {
    let node = Node::start();
    let tmp = tempfile::tempdir().unwrap();
    let dev = Device::new(tmp.path(), "x");
    provision_ca(&node, &dev);
    let tls = node.tls_base.clone().unwrap();
    let p7 = dev.path("cacerts.b64");
    ok(Command::new("curl")
        .args(["-sSf", "--cacert"])
        .arg(dev.path("root.pem"))
        .arg("-o")
        .arg(&p7)
        .arg(format!("{tls}/.well-known/est/cacerts")));
    let certs = dev.save_cert(&p7, "cacerts");
    let text = std::fs::read_to_string(certs).unwrap();
    assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 2, "{text}");
    let attrs = dev.path("csrattrs.b64");
    ok(Command::new("curl")
        .args(["-sSf", "--cacert"])
        .arg(dev.path("root.pem"))
        .arg("-o")
        .arg(&attrs)
        .arg(format!("{tls}/.well-known/est/csrattrs")));
    let der = dev.path("csrattrs.der");
    ok(Command::new("openssl")
        .args(["base64", "-d", "-in"])
        .arg(&attrs)
        .arg("-out")
        .arg(&der));
    let parsed = ok(Command::new("openssl")
        .args(["asn1parse", "-inform", "DER", "-in"])
        .arg(&der));
    assert!(parsed.contains("ecdsa-with-SHA256"), "{parsed}");
    // EST is not served over plain HTTP: the Basic secret would travel in the clear.
    let plain = node.get("/.well-known/est/cacerts");
    assert_eq!(plain.status, 404);
}

/// A revocation committed but never published (the node died in between; here written
/// straight into the stopped node's SQLite file) is in the very first CRL after a restart:
/// the node claims the CRL lease before it serves, so it rebuilds instead of serving the
/// published CRL.
#[test]
fn the_first_crl_after_a_restart_lists_revocations_that_were_never_published() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let node = Node::start_in(&dir, &[]);
    let before = node.get("/pki/crl.pem");
    assert_eq!(before.status, 200);
    assert!(node.stop().success());

    let serial = "4a".repeat(16);
    let inserted = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys, time\n\
             now = int(time.time())\n\
             con = sqlite3.connect(sys.argv[1])\n\
             con.execute('INSERT INTO certificates (serial, device_id, subject, not_before, \
             not_after, sha256, der, revoked_at, revocation_reason) VALUES (?,?,?,?,?,?,?,?,?)', \
             (sys.argv[2], None, 'CN=lost', now - 60, now + 86400, '00' * 32, b'\\x30\\x00', \
             now - 30, 1))\n\
             con.commit()\n",
        )
        .arg(dir.join("portcullis.db"))
        .arg(&serial)
        .output()
        .unwrap();
    assert!(
        inserted.status.success(),
        "{}",
        String::from_utf8_lossy(&inserted.stderr)
    );

    let node = Node::start_in(&dir, &[]);
    let after = node.get("/pki/crl.pem");
    assert_eq!(after.status, 200);
    assert!(
        pki::crl_lists(tmp.path(), &after.text, &serial),
        "the first CRL after the restart lists the unpublished revocation"
    );
}
