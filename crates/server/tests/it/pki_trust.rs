//! Trust that does not start with our own CA: a device proving itself with a manufacturer
//! certificate (IDevID) from a configured manufacturer CA, and a deployment that imports an
//! existing CA (`portcullis ca import`) instead of generating one.

use crate::pki;
use crate::support;

use std::process::Command;

use pki::{ok, provision_ca, register, Device};
use support::Node;

/// Signs `csr` with the openssl CA `ca` (made by [`openssl_ca`]) into `out`, one day, with the
/// extensions in `ext`.
fn sign_by(dev: &Device, ca: &str, csr: &std::path::Path, ext: &std::path::Path, out: &str) {
    ok(Command::new("openssl")
        .args(["x509", "-req", "-days", "1", "-extfile"])
        .arg(ext)
        .arg("-in")
        .arg(csr)
        .arg("-CA")
        .arg(dev.path(&format!("{ca}.pem")))
        .arg("-CAkey")
        .arg(dev.path(&format!("{ca}.key")))
        .arg("-out")
        .arg(dev.path(out)));
}

/// An openssl CA: `<name>.pem` / `<name>.key`.
fn openssl_ca(dev: &Device, name: &str, subject: &str) {
    dev.self_signed(
        name,
        subject,
        &[
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

#[test]
fn a_manufacturer_certificate_authenticates_the_first_enrollment() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = Device::new(&tmp.path().join("device"), "idev-1");
    openssl_ca(&dev, "maker", "/CN=Maker Device CA");
    // The IDevID the manufacturer put on the device, signed by its CA.
    let ext = dev.path("v3.ext");
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    let csr = dev.path("idev.csr");
    ok(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-subj", "/CN=idev-1", "-keyout"])
        .arg(dev.path("idev.key"))
        .arg("-out")
        .arg(&csr));
    sign_by(&dev, "maker", &csr, &ext, "idev.pem");
    let maker = dev.path("maker.pem");
    // (X.509 v3, as IEEE 802.1AR IDevIDs are: rustls refuses v1 certificates in a handshake.)
    let node = Node::start_with_env(&[(
        "PORTCULLIS_PKI__MANUFACTURER_CA_FILE",
        maker.to_str().unwrap(),
    )]);
    provision_ca(&node, &dev);

    // Not registered yet: the IDevID alone is not enough.
    let request = dev.csr("ldev", "ec", "/CN=idev-1");
    let (status, _) = dev.est(
        &node,
        "simpleenroll",
        &request,
        None,
        Some(("idev.pem", "idev.key")),
    );
    assert_eq!(status, 401);
    register(&node, "idev-1");
    let (status, out) = dev.est(
        &node,
        "simpleenroll",
        &request,
        None,
        Some(("idev.pem", "idev.key")),
    );
    assert_eq!(
        status,
        200,
        "{}",
        std::fs::read_to_string(&out).unwrap_or_default()
    );
    let cert = dev.save_cert(&out, "ldev");
    let issuer = ok(Command::new("openssl")
        .args(["x509", "-noout", "-issuer", "-in"])
        .arg(&cert));
    assert!(issuer.contains("Portcullis Device CA"), "{issuer}");
    let shown = node.cli_json(&["device", "show", "idev-1"]);
    assert_eq!(shown["state"], "enrolled");

    // An IDevID from another maker, for the same name, is refused.
    openssl_ca(&dev, "rogue", "/CN=Rogue CA");
    sign_by(&dev, "rogue", &csr, &ext, "fake.pem");
    let (status, _) = dev.est(
        &node,
        "simpleenroll",
        &request,
        None,
        Some(("fake.pem", "idev.key")),
    );
    assert_eq!(status, 401);
}

#[test]
fn an_imported_ca_issues_device_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = Device::new(&tmp.path().join("device"), "imp-1");
    openssl_ca(&dev, "corp", "/O=Corp/CN=Corp Issuing CA");
    let data = tmp.path().join("data");
    let import = Command::new(support::BIN)
        .args(["ca", "import", "--data-dir"])
        .arg(&data)
        .arg("--cert")
        .arg(dev.path("corp.pem"))
        .arg("--key")
        .arg(dev.path("corp.key"))
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    // A second import is refused: the store holds a CA now.
    let again = Command::new(support::BIN)
        .args(["ca", "import", "--data-dir"])
        .arg(&data)
        .arg("--cert")
        .arg(dev.path("corp.pem"))
        .arg("--key")
        .arg(dev.path("corp.key"))
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already has a CA"));

    let node = Node::start_in(&data, &[]);
    provision_ca(&node, &dev);
    let exported = std::fs::read_to_string(dev.path("root.pem")).unwrap();
    let original = std::fs::read_to_string(dev.path("corp.pem")).unwrap();
    assert_eq!(
        exported.trim(),
        original.trim(),
        "ca export gives back the imported CA"
    );
    let secret = register(&node, "imp-1");
    let request = dev.csr("imp", "ec", "/CN=imp-1");
    let (status, out) = dev.est(
        &node,
        "simpleenroll",
        &request,
        Some(("imp-1", &secret)),
        None,
    );
    assert_eq!(status, 200);
    let cert = dev.save_cert(&out, "imp");
    let verified = ok(Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(dev.path("corp.pem"))
        .arg(&cert));
    assert!(verified.contains(": OK"), "{verified}");
}
