//! Helpers for the device-PKI tests: act exactly as a device or relying party would, with the
//! real `openssl` and `curl`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::Node;

/// Runs a command and returns its output; panics with stderr if it could not start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

pub fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A working directory with the CA certificates a device is provisioned with.
pub struct Device {
    pub dir: PathBuf,
    pub id: String,
}

impl Device {
    pub fn new(dir: &Path, id: &str) -> Device {
        std::fs::create_dir_all(dir).unwrap();
        Device {
            dir: dir.to_owned(),
            id: id.to_owned(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `openssl req`: a new key of `newkey` (e.g. `ec`, `rsa:2048`, `ed25519`) and a CSR for
    /// `subject`, written as `<name>.key` and `<name>.csr.b64` (base64 DER, as EST wants).
    pub fn csr(&self, name: &str, newkey: &str, subject: &str) -> PathBuf {
        let key = self.path(&format!("{name}.key"));
        let csr = self.path(&format!("{name}.csr.der"));
        let mut cmd = Command::new("openssl");
        cmd.args([
            "req", "-new", "-nodes", "-outform", "DER", "-subj", subject, "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&csr);
        match newkey {
            "ec" => cmd.args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
            "p384" => cmd.args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"]),
            "secp256k1" => cmd.args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp256k1"]),
            other => cmd.args(["-newkey", other]),
        };
        ok(&mut cmd);
        let b64 = self.path(&format!("{name}.csr.b64"));
        ok(Command::new("openssl")
            .args(["base64", "-in"])
            .arg(&csr)
            .arg("-out")
            .arg(&b64));
        b64
    }

    /// `openssl req -x509`: a self-signed P-256 certificate `<name>.pem` (key `<name>.key`),
    /// valid for a day, for certificates that do not come from our CA.
    pub fn self_signed(&self, name: &str, subject: &str, extra: &[&str]) -> PathBuf {
        let pem = self.path(&format!("{name}.pem"));
        ok(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "1", "-subj", subject])
            .args(extra)
            .arg("-keyout")
            .arg(self.path(&format!("{name}.key")))
            .arg("-out")
            .arg(&pem));
        pem
    }

    /// POSTs `body_file` to an EST endpoint with curl; returns (HTTP status, body path).
    pub fn est(
        &self,
        node: &Node,
        endpoint: &str,
        body_file: &Path,
        basic: Option<(&str, &str)>,
        client_cert: Option<(&str, &str)>,
    ) -> (u16, PathBuf) {
        let tls = node.tls_base.as_deref().expect("TLS listener");
        let out = self.path(&format!("{endpoint}.out"));
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--cacert"])
            .arg(self.path("root.pem"))
            .args(["-H", "Content-Type: application/pkcs10", "--data-binary"])
            .arg(format!("@{}", body_file.display()))
            .args(["-o"])
            .arg(&out)
            .args(["-w", "%{http_code}"]);
        if let Some((user, pass)) = basic {
            cmd.args(["-u", &format!("{user}:{pass}")]);
        }
        if let Some((cert, key)) = client_cert {
            cmd.arg("--cert")
                .arg(self.path(cert))
                .arg("--key")
                .arg(self.path(key));
        }
        cmd.arg(format!("{tls}/.well-known/est/{endpoint}"));
        let status = ok(&mut cmd);
        (status.trim().parse().unwrap_or(0), out)
    }

    /// Turns an EST `certs-only` answer (base64 PKCS#7) into `<name>.pem`.
    pub fn save_cert(&self, est_out: &Path, name: &str) -> PathBuf {
        let der = self.path(&format!("{name}.p7"));
        ok(Command::new("openssl")
            .args(["base64", "-d", "-in"])
            .arg(est_out)
            .arg("-out")
            .arg(&der));
        let pem = self.path(&format!("{name}.pem"));
        ok(Command::new("openssl")
            .args(["pkcs7", "-inform", "DER", "-print_certs", "-in"])
            .arg(&der)
            .arg("-out")
            .arg(&pem));
        pem
    }

    /// The serial of a PEM certificate, lowercase hex.
    pub fn serial(&self, pem: &Path) -> String {
        let out = ok(Command::new("openssl")
            .args(["x509", "-noout", "-serial", "-in"])
            .arg(pem));
        out.trim()
            .trim_start_matches("serial=")
            .to_ascii_lowercase()
    }

    /// `openssl ocsp` against the node's plain-HTTP responder: the status line for `cert`.
    pub fn ocsp(&self, node: &Node, cert: &Path, nonce: bool) -> String {
        let mut cmd = Command::new("openssl");
        cmd.args(["ocsp", "-issuer"])
            .arg(self.path("issuing.pem"))
            .arg("-cert")
            .arg(cert)
            .arg("-CAfile")
            .arg(self.path("root.pem"))
            .args(["-url", &format!("{}/ocsp", node.base)]);
        if !nonce {
            cmd.arg("-no_nonce");
        }
        let out = run(&mut cmd);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// Registers a device and returns its enrollment secret.
pub fn register(node: &Node, id: &str) -> String {
    let out = node.cli_json(&["device", "register", "--id", id]);
    assert_eq!(out["device_id"], id, "{out}");
    out["enrollment_secret"]
        .as_str()
        .expect("secret")
        .to_owned()
}

/// Writes `root.pem`, `issuing.pem` and `chain.pem` into the device's directory.
pub fn provision_ca(node: &Node, device: &Device) {
    let root = node.cli(&["ca", "export"]);
    assert!(
        root.status.success(),
        "{}",
        String::from_utf8_lossy(&root.stderr)
    );
    std::fs::write(device.path("root.pem"), &root.stdout).unwrap();
    let chain = node.cli(&["ca", "export", "--chain"]);
    assert!(chain.status.success());
    std::fs::write(device.path("chain.pem"), &chain.stdout).unwrap();
    let text = String::from_utf8_lossy(&chain.stdout).into_owned();
    let end = "-----END CERTIFICATE-----\n";
    let first = &text[..text.find(end).unwrap() + end.len()];
    std::fs::write(device.path("issuing.pem"), first).unwrap();
}

/// Whether the PEM CRL lists `serial` (lowercase hex, as the store keeps it), per
/// `openssl crl -text`.
pub fn crl_lists(dir: &Path, pem: &str, serial: &str) -> bool {
    let file = dir.join("crl-listing.pem");
    std::fs::write(&file, pem).unwrap();
    let out = run(Command::new("openssl")
        .args(["crl", "-noout", "-text", "-in"])
        .arg(&file));
    assert!(out.status.success(), "openssl reads the CRL: {pem}");
    String::from_utf8_lossy(&out.stdout)
        .contains(&format!("Serial Number: {}", serial.to_uppercase()))
}
