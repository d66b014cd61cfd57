//! Certificate devices at the gateway: a device enrolled over EST (openssl key and CSR) sends
//! over HTTPS with its certificate (curl), signs COSE_Sign1 messages and ES256 device tokens
//! with the certificate's key (pycose, PyJWT); once the certificate is revoked all three are
//! refused.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::pki::{ok, provision_ca, register, Device};
use crate::support::Node;

fn example_device() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/python_device/device.py")
}

fn python_path() -> Option<PathBuf> {
    match std::env::var_os("PORTCULLIS_INTEROP_DIR") {
        Some(d) => Some(PathBuf::from(d).join("python")),
        None if std::env::var_os("CI").is_some() => {
            panic!("PORTCULLIS_INTEROP_DIR is not set in CI: run scripts/test.sh")
        }
        None => {
            eprintln!("skipping: run scripts/test.sh (it installs pycose and sets PORTCULLIS_INTEROP_DIR)");
            None
        }
    }
}

fn tail(node: &Node, device: &str) -> Vec<Value> {
    let out = node.cli(&["telemetry", "tail", "--device", device, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

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
}
