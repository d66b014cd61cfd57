//! The HTTPS listener's certificate changes while the node runs, as `openssl s_client` sees
//! it: the generated one is renewed two thirds into its lifetime (a few seconds here) and the
//! replaced one revoked as superseded; configured files are read again when they change, and
//! a broken replacement keeps the certificate being served. No handshake fails meanwhile.

use crate::pki;
use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pki::{ok, provision_ca, run, Device};
use support::Node;

/// The leaf certificate the TLS listener presents now (PEM), per `openssl s_client`. Panics
/// if the handshake fails; with `ca`, also if the chain does not verify against it for
/// 127.0.0.1 at this moment.
fn served_certificate(node: &Node, ca: Option<&Path>) -> String {
    let addr = node
        .tls_base
        .as_deref()
        .expect("TLS listener")
        .trim_start_matches("https://");
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", addr, "-servername", "localhost"])
        .stdin(Stdio::null());
    if let Some(ca) = ca {
        cmd.arg("-CAfile")
            .arg(ca)
            .args(["-verify_return_error", "-verify_ip", "127.0.0.1"]);
    }
    let out = run(&mut cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "TLS handshake failed:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        node.log()
    );
    let begin = stdout
        .find("-----BEGIN CERTIFICATE-----")
        .unwrap_or_else(|| panic!("no certificate served:\n{stdout}"));
    let end = stdout[begin..]
        .find("-----END CERTIFICATE-----")
        .expect("end of certificate")
        + begin
        + "-----END CERTIFICATE-----".len();
    format!("{}\n", &stdout[begin..end])
}

/// The serial (lowercase hex) of the certificate served now; the PEM is kept as `<name>.pem`.
fn served_serial(node: &Node, dev: &Device, ca: Option<&Path>, name: &str) -> String {
    let pem = dev.path(&format!("{name}.pem"));
    std::fs::write(&pem, served_certificate(node, ca)).unwrap();
    dev.serial(&pem)
}

/// Polls `check` every 100 ms until it is true; fails after `secs` seconds.
fn within(secs: u64, what: &str, node: &Node, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {secs} s; log:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_generated_https_certificate_is_renewed_without_a_restart() {
    // Valid for 9 s: renewed 6 s after issuance, checked every 0.9 s.
    let node = Node::start_with_env(&[("PORTCULLIS_PKI__TLS_CERT_LIFETIME_SECS", "9")]);
    let tmp = tempfile::tempdir().unwrap();
    let dev = Device::new(tmp.path(), "relying-party");
    provision_ca(&node, &dev);
    let root = dev.path("root.pem");

    // Handshake after handshake, each verifying the served chain against our root at that
    // moment, until two renewals have been seen.
    let mut serials: Vec<String> = Vec::new();
    let mut handshakes = 0;
    let deadline = Instant::now() + Duration::from_secs(45);
    while serials.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "the certificate was not renewed in time; served {serials:?}; log:\n{}",
            node.log()
        );
        let name = format!("served-{}", serials.len());
        let serial = served_serial(&node, &dev, Some(&root), &name);
        handshakes += 1;
        if serials.last() != Some(&serial) {
            assert!(
                !serials.contains(&serial),
                "{serial} came back: {serials:?}"
            );
            // A new certificate: it verifies against the exported CA chain as a server
            // certificate, and is recorded in the store as valid.
            let verified = ok(Command::new("openssl")
                .args(["verify", "-CAfile"])
                .arg(&root)
                .arg("-untrusted")
                .arg(dev.path("chain.pem"))
                .args(["-purpose", "sslserver"])
                .arg(dev.path(&format!("{name}.pem"))));
            assert!(verified.contains(": OK"), "{verified}");
            let recorded = node.cli_json(&["cert", "show", &serial]);
            assert_eq!(recorded["status"], "valid", "{recorded}");
            assert!(recorded["device_id"].is_null(), "{recorded}");
            serials.push(serial);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(handshakes > serials.len(), "{handshakes} handshakes");

    // The replaced certificates are revoked as superseded (right after the swap).
    for replaced in &serials[..2] {
        within(5, "revoking the replaced certificate", &node, || {
            let cert = node.cli_json(&["cert", "show", replaced]);
            cert["status"] == "revoked" && cert["revocation_reason"] == "superseded"
        });
    }
    let log = node.log();
    assert!(
        log.matches("TLS server certificate renewed").count() >= 2,
        "{log}"
    );
    assert!(!log.contains("PRIVATE KEY"), "{log}");
    assert!(node.stop().success());
}

/// A self-signed pair for 127.0.0.1 as `<name>.pem` / `<name>.key` in the device directory.
fn pair(dev: &Device, name: &str) -> (PathBuf, PathBuf) {
    let pem = dev.self_signed(
        name,
        &format!("/CN={name}"),
        &["-addext", "subjectAltName=IP:127.0.0.1"],
    );
    (pem, dev.path(&format!("{name}.key")))
}

/// Replaces `to` by a copy of `from` in one rename, as certbot and cert-manager do.
fn install(from: &Path, to: &Path) {
    let staged = to.with_extension("new");
    std::fs::copy(from, &staged).unwrap();
    std::fs::rename(&staged, to).unwrap();
}

#[test]
fn configured_certificate_files_are_reloaded_when_they_change() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = Device::new(&tmp.path().join("certs"), "operator");
    let (cert, key) = (dev.path("tls.pem"), dev.path("tls.key"));
    let (first_cert, first_key) = pair(&dev, "first");
    install(&first_cert, &cert);
    install(&first_key, &key);
    // A lifetime of 10 s only sets the check interval here: the files are looked at every
    // second.
    let node = Node::start_with_env(&[
        ("PORTCULLIS_SERVER__TLS_CERT_FILE", cert.to_str().unwrap()),
        ("PORTCULLIS_SERVER__TLS_KEY_FILE", key.to_str().unwrap()),
        ("PORTCULLIS_PKI__TLS_CERT_LIFETIME_SECS", "10"),
    ]);
    let first = dev.serial(&first_cert);
    assert_eq!(served_serial(&node, &dev, None, "served"), first);

    // Rotated files: the new pair is served, and every handshake meanwhile succeeds.
    let (second_cert, second_key) = pair(&dev, "second");
    let second = dev.serial(&second_cert);
    install(&second_cert, &cert);
    install(&second_key, &key);
    within(20, "serving the rotated files", &node, || {
        served_serial(&node, &dev, None, "served") == second
    });
    // It verifies as the operator's certificate for 127.0.0.1.
    served_certificate(&node, Some(&second_cert));

    // A garbled certificate file, then a certificate whose key is not in the key file: each
    // is refused with a warning and the second certificate stays in service.
    let (third_cert, third_key) = pair(&dev, "third");
    let warned = |about: &str| {
        node.log().lines().any(|line| {
            line.contains("TLS server certificate not replaced") && line.contains(about)
        })
    };
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
    let garbled = format!("server.tls_cert_file {}:", cert.display());
    within(10, "a warning about the garbled file", &node, || {
        warned(&garbled)
    });
    install(&third_cert, &cert);
    within(10, "a warning about the mismatched key", &node, || {
        warned("does not belong to the certificate")
    });
    for _ in 0..5 {
        assert_eq!(served_serial(&node, &dev, None, "served"), second);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(node.get("/healthz").status, 200);

    // Once the key follows, the third pair is served.
    install(&third_key, &key);
    let third = dev.serial(&third_cert);
    within(20, "serving the repaired files", &node, || {
        served_serial(&node, &dev, None, "served") == third
    });

    // The log names files, never their keys.
    let log = node.log();
    let key_pem = std::fs::read_to_string(&third_key).unwrap();
    let key_line = key_pem.lines().nth(1).unwrap();
    assert!(!log.contains(key_line), "{log}");
    assert!(!log.contains("PRIVATE KEY"), "{log}");
    assert!(node.stop().success());
}
