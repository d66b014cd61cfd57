//! Hostile and broken EST and OCSP input against the real binary: every case gets a clear
//! error status and text, never a certificate, never a crash.

use crate::pki;
use crate::support;

use std::process::Command;

use pki::{provision_ca, register, Device};
use support::Node;

#[test]
fn est_refuses_what_it_must_with_a_clear_status() {
    let node = Node::start();
    let tmp = tempfile::tempdir().unwrap();
    let dev = Device::new(tmp.path(), "cam-1");
    provision_ca(&node, &dev);
    let secret = register(&node, "cam-1");
    let _other = register(&node, "cam-2");
    let good = dev.csr("good", "ec", "/CN=cam-1");

    // Unknown device, wrong secret, no credentials at all.
    let (s, _) = dev.est(
        &node,
        "simpleenroll",
        &good,
        Some(("nobody", &secret)),
        None,
    );
    assert_eq!(s, 401);
    let (s, _) = dev.est(
        &node,
        "simpleenroll",
        &good,
        Some(("cam-1", "wrong-secret")),
        None,
    );
    assert_eq!(s, 401);
    let (s, _) = dev.est(&node, "simpleenroll", &good, None, None);
    assert_eq!(s, 401);

    // A request naming another device.
    let other = dev.csr("other", "ec", "/CN=cam-2");
    let (s, out) = dev.est(
        &node,
        "simpleenroll",
        &other,
        Some(("cam-1", &secret)),
        None,
    );
    assert_eq!(s, 403, "{}", std::fs::read_to_string(out).unwrap());

    // Weak keys and curves the profile does not allow.
    let weak = dev.csr("weak", "rsa:1024", "/CN=cam-1");
    let (s, out) = dev.est(&node, "simpleenroll", &weak, Some(("cam-1", &secret)), None);
    assert_eq!(s, 400);
    assert!(std::fs::read_to_string(out).unwrap().contains("too weak"));
    let k1 = dev.csr("k1", "secp256k1", "/CN=cam-1");
    let (s, _) = dev.est(&node, "simpleenroll", &k1, Some(("cam-1", &secret)), None);
    assert_eq!(s, 400);

    // Broken encodings: not base64, truncated DER, a flipped signature byte.
    let garbage = dev.path("garbage.b64");
    std::fs::write(&garbage, "this is not base64 !!!").unwrap();
    let (s, _) = dev.est(
        &node,
        "simpleenroll",
        &garbage,
        Some(("cam-1", &secret)),
        None,
    );
    assert_eq!(s, 400);
    let der = std::fs::read(dev.path("good.csr.der")).unwrap();
    let b64 =
        |bytes: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes);
    let truncated = dev.path("truncated.b64");
    std::fs::write(&truncated, b64(&der[..der.len() / 2])).unwrap();
    let (s, _) = dev.est(
        &node,
        "simpleenroll",
        &truncated,
        Some(("cam-1", &secret)),
        None,
    );
    assert_eq!(s, 400);
    let mut flipped = der.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let bad_sig = dev.path("badsig.b64");
    std::fs::write(&bad_sig, b64(&flipped)).unwrap();
    let (s, out) = dev.est(
        &node,
        "simpleenroll",
        &bad_sig,
        Some(("cam-1", &secret)),
        None,
    );
    assert_eq!(s, 400);
    assert!(std::fs::read_to_string(out)
        .unwrap()
        .contains("proof of possession"));

    // Oversized bodies are refused before anything is parsed.
    let huge = dev.path("huge.b64");
    std::fs::write(&huge, "A".repeat(64 * 1024)).unwrap();
    let (s, _) = dev.est(&node, "simpleenroll", &huge, Some(("cam-1", &secret)), None);
    assert_eq!(s, 413);

    // None of the failures spent the secret: the good request still enrolls, once.
    let (s, _) = dev.est(&node, "simpleenroll", &good, Some(("cam-1", &secret)), None);
    assert_eq!(s, 200);

    // A suspended device is refused even with a valid secret (after resume).
    let resumed_id = "cam-2";
    let out = node.cli_json(&["device", "suspend", resumed_id]);
    assert_eq!(out["state"], "suspended");
    let resumed = node.cli_json(&["device", "resume", resumed_id]);
    let new_secret = resumed["enrollment_secret"].as_str().unwrap().to_owned();
    node.cli_json(&["device", "suspend", resumed_id]);
    let (s, _) = dev.est(
        &node,
        "simpleenroll",
        &other,
        Some((resumed_id, &new_secret)),
        None,
    );
    assert_eq!(s, 403);

    // Re-enrollment without a client certificate.
    let (s, _) = dev.est(&node, "simplereenroll", &good, None, None);
    assert_eq!(s, 401);
    // The node is still healthy.
    assert_eq!(node.get("/healthz").status, 200);
}

#[test]
fn ocsp_answers_malformed_and_unknown_issuers_without_signing_anything_for_them() {
    let node = Node::start();
    let tmp = tempfile::tempdir().unwrap();
    let dev = Device::new(tmp.path(), "x");
    provision_ca(&node, &dev);
    // A certificate from some other CA: its issuer hashes are not ours.
    dev.self_signed("foreign", "/CN=foreign", &[]);
    let out = Command::new("openssl")
        .args(["ocsp", "-no_nonce", "-issuer"])
        .arg(dev.path("foreign.pem"))
        .arg("-cert")
        .arg(dev.path("foreign.pem"))
        .args(["-url", &format!("{}/ocsp", node.base)])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("unauthorized"), "{text}");

    // Garbage POST bodies: a malformedRequest OCSP response (status 1).
    for body in [&b""[..], b"\x30\x03\x02\x01", b"not der at all"] {
        let answer = node.request("POST", "/ocsp", Some("application/ocsp-request"), &[], body);
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.header("content-type"),
            Some("application/ocsp-response")
        );
    }
}

/// Answers that cost a signature each and cannot be cached (here a nonce for a serial nobody
/// issued, as `openssl ocsp -serial` asks) share `[pki] ocsp_fresh_signatures_per_sec`; past
/// it the node answers tryLater instead of signing.
#[test]
fn ocsp_answers_signed_on_demand_are_budgeted() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start_in(
        &tmp.path().join("node"),
        &[("PORTCULLIS_PKI__OCSP_FRESH_SIGNATURES_PER_SEC", "2")],
    );
    let dev = Device::new(tmp.path(), "x");
    provision_ca(&node, &dev);
    let ask = || {
        let out = Command::new("openssl")
            .args(["ocsp", "-issuer"])
            .arg(dev.path("issuing.pem"))
            .args(["-serial", "0x4242", "-CAfile"])
            .arg(dev.path("root.pem"))
            .args(["-url", &format!("{}/ocsp", node.base)])
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .to_lowercase()
    };
    let answers: Vec<String> = (0..6).map(|_| ask()).collect();
    assert!(
        answers[0].contains("0x4242: unknown"),
        "the first is signed: {}",
        answers[0]
    );
    assert!(
        answers.iter().any(|a| a.contains("trylater")),
        "past the budget, tryLater: {answers:?}"
    );
    assert!(
        answers
            .iter()
            .all(|a| a.contains("0x4242: unknown") || a.contains("trylater")),
        "{answers:?}"
    );
}
