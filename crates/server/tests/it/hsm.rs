//! The full token flow with the signing key inside a PKCS#11 token (SoftHSM2): issue, verify
//! against JWKS, introspect, restart and find the same key again. The test makes its own
//! token in a temporary directory (`SOFTHSM2_CONF`), never the machine's.

use crate::pki;
use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use portcullis_keys::verify::{self, VerifyingKey};
use portcullis_keys::{Algorithm, JwkSet};
use support::{jwt_header, Node};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// A fresh SoftHSM2 token labelled `portcullis`; returns the paths of (conf file, pin file),
/// as the environment takes them, or None to skip.
fn softhsm_token(dir: &Path) -> Option<(String, String)> {
    if !Path::new(MODULE).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "SoftHSM2 is missing in CI: scripts/test.sh installs softhsm2"
        );
        eprintln!("skipping: SoftHSM2 is not installed (apt-get install softhsm2, or run scripts/test.sh)");
        return None;
    }
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let status = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            "portcullis",
            "--pin",
            "4321",
            "--so-pin",
            "8765",
        ])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .expect("softhsm2-util");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let pin = dir.join("hsm.pin");
    std::fs::write(&pin, "4321\n").unwrap();
    let utf8 = |p: PathBuf| p.to_str().expect("a UTF-8 temporary path").to_owned();
    Some((utf8(conf), utf8(pin)))
}

fn hsm_env<'a>(conf: &'a str, pin: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("SOFTHSM2_CONF", conf),
        ("PORTCULLIS_KEYS__BACKEND", "pkcs11"),
        ("PORTCULLIS_KEYS__PKCS11_MODULE", MODULE),
        ("PORTCULLIS_KEYS__PKCS11_TOKEN_LABEL", "portcullis"),
        ("PORTCULLIS_KEYS__PKCS11_PIN_FILE", pin),
        // A fixed issuer, as a deployment configures it: the restarted node listens on
        // another random port, and tokens from before must still name this issuer.
        ("PORTCULLIS_SERVER__ISSUER", "https://auth.test.example"),
    ]
}

#[test]
fn token_flow_with_the_signing_key_in_softhsm() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((conf, pin)) = softhsm_token(tmp.path()) else {
        return;
    };
    let dir = tmp.path().join("data");
    let node = Node::start_in(&dir, &hsm_env(&conf, &pin));
    assert!(
        node.log().contains("backend=pkcs11") || node.log().contains("pkcs11"),
        "{}",
        node.log()
    );
    let (id, secret) = node.create_client(&["--scope", "read"]);
    let t = node.token(&id, &secret, "");
    assert_eq!(t.status, 200, "{}", t.text);
    let token = t.json["access_token"].as_str().unwrap().to_owned();
    let kid = jwt_header(&token)["kid"].as_str().unwrap().to_owned();

    // Verify as a resource server would: the key from JWKS, the algorithm from the key.
    let jwks = JwkSet::parse(&node.get("/jwks.json").text).unwrap();
    let jwk = jwks
        .keys
        .iter()
        .find(|k| k.kid.as_deref() == Some(kid.as_str()))
        .expect("kid in JWKS");
    let key = VerifyingKey::from_jwk(jwk, &[Algorithm::ES256]).unwrap();
    verify::decode(&token)
        .unwrap()
        .verify(&key)
        .expect("signature made in the HSM verifies");

    let i = node.post_form(
        "/oauth2/introspect",
        &format!("token={token}"),
        Some((&id, &secret)),
    );
    assert_eq!(i.json["active"], true, "{}", i.text);

    // The database keeps no private key material for a token key.
    let blob = Command::new("python3")
        .args(["-c", "import sqlite3,sys; r=sqlite3.connect(sys.argv[1]).execute(\"select backend, length(sealed_private) from signing_keys where kid=?\", (sys.argv[2],)).fetchone(); print(r[0], r[1])"])
        .arg(dir.join("portcullis.db"))
        .arg(&kid)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&blob.stdout).trim(), "pkcs11 0");
    // The default interval is a minute: no checkpoint yet.
    assert_eq!(
        node.cli_json(&["audit", "verify"])["checkpoints_verified"],
        0
    );

    assert!(node.stop().success());
    let node = Node::start_in(&dir, &hsm_env(&conf, &pin));
    // The clean stop took a last audit checkpoint, signed inside the HSM; the restarted node
    // verifies it through the token (the key row holds no private key to trust instead).
    let verify = node.cli_json(&["audit", "verify"]);
    assert_eq!(verify["checkpoints_verified"], 1, "{verify}");
    assert_eq!(verify["checkpoints_unverifiable"], 0, "{verify}");
    // The audit data key is sealed by the token (not the master key file), and opens again
    // after the restart: records from before it read back decrypted.
    let audit_keys = node.cli_json(&["audit", "key", "list"]);
    assert_eq!(audit_keys["keys"][0]["backend"], "pkcs11", "{audit_keys}");
    let trail = node.cli_json(&["audit", "list", "--limit", "100"]);
    let created = trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "client.created")
        .expect("client.created");
    assert_eq!(created["subject"], id.as_str(), "{created}");
    assert_eq!(created["encrypted"], true);
    let again = node.token(&id, &secret, "");
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(
        jwt_header(again.json["access_token"].as_str().unwrap())["kid"],
        kid.as_str(),
        "the same HSM key after restart"
    );
    let i = node.post_form(
        "/oauth2/introspect",
        &format!("token={token}"),
        Some((&id, &secret)),
    );
    assert_eq!(
        i.json["active"], true,
        "tokens from before the restart stay valid"
    );
}

#[test]
fn wrong_hsm_pin_stops_the_node_with_a_clear_error_and_no_pin() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((conf, _)) = softhsm_token(tmp.path()) else {
        return;
    };
    let wrong = tmp.path().join("wrong.pin");
    std::fs::write(&wrong, "99999999").unwrap();
    let out = support::serve_to_exit(
        &tmp.path().join("data"),
        &hsm_env(&conf, wrong.to_str().unwrap()),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("signing key"), "{stderr}");
    assert!(
        !stderr.contains("99999999"),
        "the PIN must not be printed: {stderr}"
    );
}

/// An existing store keeps the custody its CA and audit data keys were made in: a node
/// restarted with another `keys.backend` stops with what to set, before changing any key.
#[test]
fn an_existing_store_refuses_another_key_backend_before_changing_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((conf, pin)) = softhsm_token(tmp.path()) else {
        return;
    };
    let dir = tmp.path().join("data");
    let keys_before = {
        let node = Node::start_in(&dir, &[]);
        node.cli_json(&["key", "list"])
    };
    let out = support::serve_to_exit(&dir, &hsm_env(&conf, &pin));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("keys.backend = \"software\"") && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    let node = Node::start_in(&dir, &[]);
    assert_eq!(
        node.cli_json(&["key", "list"]),
        keys_before,
        "the key table is as it was"
    );
}

#[test]
fn the_device_ca_keys_live_in_softhsm_and_issue_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((conf, pin)) = softhsm_token(tmp.path()) else {
        return;
    };
    let dir = tmp.path().join("data");
    let node = Node::start_in(&dir, &hsm_env(&conf, &pin));
    // The stored CA record holds handles of keys in the token, no sealed key material.
    let record = Command::new("python3")
        .args(["-c", "import sqlite3,sys,json; v=sqlite3.connect(sys.argv[1]).execute(\"select value from settings where name='pki.ca'\").fetchone()[0]; r=json.loads(v); print(r['issuing_key']['backend'], len(r['issuing_key']['sealed']), r['root_key']['backend'], len(r['root_key']['sealed']))"])
        .arg(dir.join("portcullis.db"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&record.stdout).trim(),
        "pkcs11 0 pkcs11 0",
        "{}",
        String::from_utf8_lossy(&record.stderr)
    );
    // A device enrolls; its certificate is signed inside the token and verifies.
    let dev = pki::Device::new(&tmp.path().join("device"), "hsm-dev");
    pki::provision_ca(&node, &dev);
    let secret = pki::register(&node, "hsm-dev");
    let csr = dev.csr("hsm", "ec", "/CN=hsm-dev");
    let (status, out) = dev.est(
        &node,
        "simpleenroll",
        &csr,
        Some(("hsm-dev", &secret)),
        None,
    );
    assert_eq!(status, 200);
    let cert = dev.save_cert(&out, "hsm");
    let verified = pki::ok(
        Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(dev.path("chain.pem"))
            .arg(&cert),
    );
    assert!(verified.contains(": OK"), "{verified}");
    assert!(dev.ocsp(&node, &cert, true).contains("hsm.pem: good"));
    // After a restart the same CA (found in the token by kid) keeps issuing.
    assert!(node.stop().success());
    let node = Node::start_in(&dir, &hsm_env(&conf, &pin));
    let chain = node.cli(&["ca", "export", "--chain"]);
    assert_eq!(
        String::from_utf8_lossy(&chain.stdout),
        std::fs::read_to_string(dev.path("chain.pem")).unwrap()
    );
    assert!(dev.ocsp(&node, &cert, false).contains("hsm.pem: good"));
}
