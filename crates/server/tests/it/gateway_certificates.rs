//! Certificate devices at the gateway: a device enrolled over EST (openssl key and CSR) sends
//! over HTTPS with its certificate (curl), signs COSE_Sign1 messages and ES256 device tokens
//! with the certificate's key (pycose, PyJWT); once the certificate is revoked all three are
//! refused.

use std::process::Command;

use serde_json::Value;

use crate::pki::{ok, provision_ca, register, Device};
use crate::support::gateway::{example_device, python_path, stored as tail};
use crate::support::Node;

#[test]
fn an_enrolled_device_sends_with_its_certificate_until_it_is_revoked() {
    let Some(pythonpath) = python_path() else {
        return;
    };
    let node = Node::start();
    let tmp = tempfile::tempdir().unwrap();
    let dev = Device::new(tmp.path(), "cam-1");
    provision_ca(&node, &dev);
    let secret = register(&node, "cam-1");
    let csr = dev.csr("dev", "ec", "/CN=cam-1");
    let (status, out) = dev.est(&node, "simpleenroll", &csr, Some(("cam-1", &secret)), None);
    assert_eq!(status, 200);
    let pem = dev.save_cert(&out, "dev");
    let serial = dev.serial(&pem);
    let tls = node.tls_base.clone().unwrap();

    // mTLS over HTTPS, any body (no symmetric key: per-message authentication is optional).
    let mtls = |body: &str| {
        ok(Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(dev.path("root.pem"))
            .arg("--cert")
            .arg(&pem)
            .arg("--key")
            .arg(dev.path("dev.key"))
            .args(["-H", "Content-Type: text/plain", "--data-binary", body])
            .arg(format!("{tls}/gateway/v1/telemetry/images")))
    };
    assert_eq!(mtls("frame-1"), "202");

    // COSE_Sign1 with the certificate's key (pycose), over plain HTTP; an ES256 device token
    // signed with it (PyJWT) as a bearer credential from loopback.
    let py = |args: &[&str]| {
        Command::new("python3")
            .arg(example_device())
            .args(args)
            .current_dir(tmp.path())
            .env("PYTHONPATH", &pythonpath)
            .output()
            .unwrap()
    };
    let key = dev.path("dev.key");
    let key = key.to_str().unwrap();
    let url = format!("{}/gateway/v1/telemetry", node.base);
    let send_sign1 = |counter: &str| {
        py(&[
            "send",
            "--device-id",
            "cam-1",
            "--cert-key",
            key,
            "--serial",
            &serial,
            "--url",
            &url,
            "--counter",
            counter,
        ])
    };
    let sent = send_sign1("1");
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let token = py(&[
        "token",
        "--device-id",
        "cam-1",
        "--cert-key",
        key,
        "--serial",
        &serial,
        "--audience",
        &node.base,
    ]);
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8_lossy(&token.stdout).trim().to_owned();
    let bearer = |token: &str| {
        node.request(
            "POST",
            "/gateway/v1/telemetry",
            Some("text/plain"),
            &[("Authorization", &format!("Bearer {token}"))],
            b"21.5",
        )
        .status
    };
    assert_eq!(bearer(&token), 202);

    let stored = tail(&node, "cam-1");
    let methods: Vec<&str> = stored
        .iter()
        .map(|r| r["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        methods,
        ["certificate", "cose_sign1", "device_token"],
        "{stored:?}"
    );
    assert!(
        stored.iter().all(|r| r["key_id"] == serial.as_str()),
        "{stored:?}"
    );
    assert_eq!(stored[0]["stream"], "images");

    // Revoked: the certificate, the messages it signs and the tokens it signs are refused.
    node.cli_json(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
    assert_eq!(mtls("frame-2"), "401");
    assert!(!send_sign1("2").status.success());
    assert_eq!(bearer(&token), 401);
    assert_eq!(tail(&node, "cam-1").len(), 3);
    // The certificate still presented over TLS names its device in the refusal's record, so
    // attack detection counts a revoked device still trying (`inactive_device_use`).
    let audit = node.cli_json(&["audit", "list", "--limit", "200"]);
    let records = audit.as_array().or(audit["records"].as_array()).unwrap();
    assert!(
        records.iter().any(|r| r["action"] == "gateway.refused"
            && r["subject"] == "cam-1"
            && r["detail"]["reason"] == "certificate_revoked"),
        "{audit}"
    );
}

/// Devices at the token endpoint: an enrolled device authenticates with its certificate
/// (`tls_client_auth`, `client_id` = its id, no client registered), gets a certificate-bound
/// token for its model's scopes, and the gateway admits it with that token only alongside the
/// certificate. Suspending the device ends the token at once.
#[test]
fn an_enrolled_device_gets_bound_access_tokens_for_its_models_scopes() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("portcullis.toml");
    std::fs::write(
        &config,
        "[gateway.models.cam-v1]\nscopes = [\"telemetry:write\", \"camera:read\"]\n",
    )
    .unwrap();
    let node = Node::start_with_args(
        &tmp.path().join("data"),
        &["--config", config.to_str().unwrap()],
        &[],
    );
    let dev = Device::new(&tmp.path().join("dev"), "cam-2");
    provision_ca(&node, &dev);
    let registered = node.cli_json(&["device", "register", "--id", "cam-2", "--model", "cam-v1"]);
    let secret = registered["enrollment_secret"].as_str().unwrap().to_owned();
    let csr = dev.csr("dev", "ec", "/CN=cam-2");
    let (status, out) = dev.est(&node, "simpleenroll", &csr, Some(("cam-2", &secret)), None);
    assert_eq!(status, 200);
    let pem = dev.save_cert(&out, "dev");
    let tls = node.tls_base.clone().unwrap();
    let curl = |args: &[&str], with_cert: bool| {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-w", "\n%{http_code}", "--cacert"])
            .arg(dev.path("root.pem"));
        if with_cert {
            cmd.arg("--cert")
                .arg(&pem)
                .arg("--key")
                .arg(dev.path("dev.key"));
        }
        let text = ok(cmd.args(args));
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.to_owned(), body.to_owned())
    };
    let token_request = |scope: &str| {
        curl(
            &[
                "-d",
                "grant_type=client_credentials",
                "-d",
                "client_id=cam-2",
                "-d",
                &format!("scope={scope}"),
                &format!("{tls}/oauth2/token"),
            ],
            true,
        )
    };
    let (status, body) = token_request("telemetry:write");
    assert_eq!(status, "200", "{body}");
    let token = serde_json::from_str::<Value>(&body).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let claims = crate::support::jwt_payload(&token);
    assert_eq!(claims["sub"], "cam-2");
    assert_eq!(claims["client_id"], "cam-2");
    assert_eq!(claims["scope"], "telemetry:write");
    assert!(claims["cnf"]["x5t#S256"].is_string(), "{claims}");
    let (status, body) = token_request("portcullis:admin");
    assert_eq!(status, "400", "a scope outside the model's policy: {body}");

    // The gateway takes the token with its certificate, not without.
    let publish = |with_cert: bool| {
        curl(
            &[
                "-H",
                &format!("Authorization: Bearer {token}"),
                "--data-binary",
                "21.5",
                &format!("{tls}/gateway/v1/telemetry"),
            ],
            with_cert,
        )
        .0
    };
    assert_eq!(publish(true), "202");
    let stolen = node.request(
        "POST",
        "/gateway/v1/telemetry",
        Some("text/plain"),
        &[("Authorization", &format!("Bearer {token}"))],
        b"1",
    );
    assert_eq!(stolen.status, 401, "a bound token without its certificate");
    // Audited as a refused use of a bound token, with the address it came from.
    let refused = node.audit_record("token.use_refused");
    assert_eq!(refused["detail"]["client_id"], "cam-2", "{refused}");
    assert_eq!(refused["detail"]["source"], "127.0.0.1", "{refused}");
    let stored = tail(&node, "cam-2");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["method"], "access_token", "{stored:?}");

    node.cli_json(&["device", "suspend", "cam-2"]);
    assert_eq!(publish(true), "401");
    let (status, _) = token_request("telemetry:write");
    assert_eq!(status, "401", "a suspended device gets no tokens");
}
