//! Interop with clients nobody here wrote: Node `openid-client` and `jose`, Python `PyJWT`.
//! `scripts/test.sh` installs them into `.interop/` and sets `PORTCULLIS_INTEROP_DIR`.

use crate::support;

use std::path::PathBuf;
use std::process::Command;

use support::Node;

/// Where the interop clients are installed. In CI their absence is a failure; a developer who
/// runs `cargo test` without `scripts/test.sh` is told how to get them.
fn interop_dir() -> Option<PathBuf> {
    match std::env::var_os("PORTCULLIS_INTEROP_DIR") {
        Some(d) => Some(PathBuf::from(d)),
        None if std::env::var_os("CI").is_some() => {
            panic!("PORTCULLIS_INTEROP_DIR is not set in CI: run scripts/test.sh")
        }
        None => {
            eprintln!("skipping interop: run scripts/test.sh (it installs the clients and sets PORTCULLIS_INTEROP_DIR)");
            None
        }
    }
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/interop")
        .join(name)
}

fn run(program: &str, script_name: &str, dir: &std::path::Path, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(program);
    cmd.arg(script(script_name))
        .env("NODE_PATH", dir.join("node/node_modules"))
        .env("PYTHONPATH", dir.join("python"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("{program}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script_name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn openid_client_discovers_and_obtains_tokens_that_jose_and_pyjwt_verify() {
    let Some(dir) = interop_dir() else { return };
    let node = Node::start();
    let (id, secret) =
        node.create_client(&["--scope", "read", "--audience", "https://api.example"]);

    let keys: serde_json::Value =
        serde_json::from_str(&run("node", "make_keys.mjs", &dir, &[])).expect("make_keys output");
    let jwks_file = node.data_dir.with_extension("client-jwks.json");
    std::fs::write(&jwks_file, keys["public_jwks"].to_string()).unwrap();
    let (pkj_id, _) = node.create_client(&[
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        jwks_file.to_str().unwrap(),
    ]);
    let private = keys["private"].to_string();

    run(
        "node",
        "openid_client.mjs",
        &dir,
        &[
            ("ISSUER", &node.base),
            ("CLIENT_ID", &id),
            ("CLIENT_SECRET", &secret),
            ("PKJ_CLIENT_ID", &pkj_id),
            ("PKJ_PRIVATE_JWK", &private),
        ],
    );

    let token = node.token(&id, &secret, "").json["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let env = [
        ("ISSUER", node.base.as_str()),
        ("TOKEN", token.as_str()),
        ("AUDIENCE", "https://api.example"),
    ];
    run("node", "jose_verify.mjs", &dir, &env);
    run("python3", "pyjwt_verify.py", &dir, &env);
}

/// openid-client as a DPoP client (RFC 9449), against a node without and with required
/// nonces: its proofs get bound tokens and pass at the admin API.
#[test]
fn openid_client_obtains_and_uses_dpop_bound_tokens() {
    let Some(dir) = interop_dir() else { return };
    for require_nonce in ["false", "true"] {
        let node = Node::start_with_env(&[("PORTCULLIS_DPOP__REQUIRE_NONCE", require_nonce)]);
        let cred: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(node.admin_credential()).unwrap())
                .unwrap();
        let resource = format!("{}/admin/v1/clients", node.base);
        run(
            "node",
            "openid_client_dpop.mjs",
            &dir,
            &[
                ("ISSUER", &node.base),
                ("CLIENT_ID", cred["client_id"].as_str().unwrap()),
                ("CLIENT_SECRET", cred["client_secret"].as_str().unwrap()),
                ("RESOURCE", &resource),
            ],
        );
    }
}

#[test]
fn foreign_verifiers_accept_eddsa_and_rs256_tokens() {
    let Some(dir) = interop_dir() else { return };
    for alg in ["EdDSA", "RS256"] {
        let node = Node::start_with_env(&[("PORTCULLIS_KEYS__ALGORITHM", alg)]);
        let (id, secret) = node.create_client(&["--audience", "https://api.example"]);
        let token = node.token(&id, &secret, "").json["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let env = [
            ("ISSUER", node.base.as_str()),
            ("TOKEN", token.as_str()),
            ("AUDIENCE", "https://api.example"),
        ];
        run("node", "jose_verify.mjs", &dir, &env);
        run("python3", "pyjwt_verify.py", &dir, &env);
    }
}

#[test]
fn curl_reports_oauth_errors_as_a_user_sees_them() {
    let node = Node::start();
    let out = Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "-u",
            "nobody:nothing",
            "-d",
            "grant_type=client_credentials",
        ])
        .arg(format!("{}/oauth2/token", node.base))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, code) = text.rsplit_once('\n').unwrap();
    assert_eq!(code, "401");
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["error"], "invalid_client");
    let out = Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "-d",
            "grant_type=password&username=u&password=p",
        ])
        .arg(format!("{}/oauth2/token", node.base))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, code) = text.rsplit_once('\n').unwrap();
    assert_eq!(code, "400", "{body}");
    assert!(
        body.contains("unsupported_grant_type") && body.contains("OAuth 2.1"),
        "{body}"
    );
}

#[test]
fn foreign_verifiers_keep_verifying_across_a_key_rotation() {
    let Some(dir) = interop_dir() else { return };
    let node = Node::start_with_env(&[("PORTCULLIS_KEYS__PREPUBLISH_SECS", "2")]);
    let (id, secret) = node.create_client(&["--audience", "https://api.example"]);
    let token = || {
        node.token(&id, &secret, "").json["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let kid = |t: &str| support::jwt_header(t)["kid"].as_str().unwrap().to_owned();
    let before = token();
    node.cli_json(&["key", "rotate"]);
    let during = token();
    assert_eq!(
        kid(&during),
        kid(&before),
        "the old key signs during pre-publication"
    );
    let started = std::time::Instant::now();
    let after = loop {
        let t = token();
        if kid(&t) != kid(&before) {
            break t;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the new key never signed"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    for (when, t) in [("before", &before), ("during", &during), ("after", &after)] {
        let env = [
            ("ISSUER", node.base.as_str()),
            ("TOKEN", t.as_str()),
            ("AUDIENCE", "https://api.example"),
        ];
        eprintln!("verifying the token issued {when} the rotation");
        run("node", "jose_verify.mjs", &dir, &env);
        run("python3", "pyjwt_verify.py", &dir, &env);
    }
}

#[test]
fn python_cryptography_enrolls_over_est_and_reads_ocsp() {
    let Some(dir) = interop_dir() else { return };
    let node = Node::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = node.cli(&["ca", "export"]);
    assert!(root.status.success());
    let root_pem = tmp.path().join("root.pem");
    std::fs::write(&root_pem, &root.stdout).unwrap();
    let device = node.cli_json(&["device", "register", "--id", "py-sensor"]);
    let secret = device["enrollment_secret"].as_str().unwrap().to_owned();
    let cert_pem = tmp.path().join("py.pem");
    let env = |mode: &'static str, expect: &'static str| {
        vec![
            ("MODE", mode.to_owned()),
            ("EXPECT", expect.to_owned()),
            ("TLS_BASE", node.tls_base.clone().unwrap()),
            ("HTTP_BASE", node.base.clone()),
            ("DEVICE_ID", "py-sensor".to_owned()),
            ("SECRET", secret.clone()),
            ("ROOT_PEM", root_pem.display().to_string()),
            ("CERT_PEM", cert_pem.display().to_string()),
        ]
    };
    let enroll = env("enroll", "good");
    let pairs: Vec<(&str, &str)> = enroll.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = run("python3", "est_ocsp.py", &dir, &pairs);
    assert!(out.contains("python: OCSP good"), "{out}");
    let serial = out
        .lines()
        .find_map(|l| l.strip_prefix("python: enrolled "))
        .unwrap()
        .trim()
        .to_owned();
    let revoked = node.cli(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let check = env("ocsp", "revoked");
    let pairs: Vec<(&str, &str)> = check.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = run("python3", "est_ocsp.py", &dir, &pairs);
    assert!(out.contains("python: OCSP revoked"), "{out}");
}
