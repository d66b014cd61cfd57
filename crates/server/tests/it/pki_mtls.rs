//! RFC 8705 over a real TLS connection: a device certificate from our CA authenticates a
//! `tls_client_auth` client with `curl --cert`, the token is bound to it (`cnf.x5t#S256`),
//! introspection shows the binding, and a revoked or foreign certificate is refused at once,
//! from the store's revocation state rather than a CRL.

use crate::pki;
use crate::support;

use std::process::Command;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use pki::{ok, provision_ca, register, Device};
use serde_json::Value;
use support::{jwt_payload, Node};

/// POSTs a form to the TLS listener with curl and a client certificate; (status, JSON).
fn tls_post(
    node: &Node,
    dev: &Device,
    path: &str,
    form: &[&str],
    cert: Option<(&str, &str)>,
) -> (u16, Value) {
    let tls = node.tls_base.as_deref().unwrap();
    let out = dev.path("response.json");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--cacert"])
        .arg(dev.path("root.pem"))
        .arg("-o")
        .arg(&out)
        .args(["-w", "%{http_code}"]);
    for field in form {
        cmd.args(["--data-urlencode", field]);
    }
    if let Some((c, k)) = cert {
        cmd.arg("--cert")
            .arg(dev.path(c))
            .arg("--key")
            .arg(dev.path(k));
    }
    cmd.arg(format!("{tls}{path}"));
    let status: u16 = ok(&mut cmd).trim().parse().unwrap();
    let body = std::fs::read_to_string(&out).unwrap_or_default();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn der_of(pem_path: &std::path::Path) -> Vec<u8> {
    let text = std::fs::read_to_string(pem_path).unwrap();
    let b64: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    STANDARD.decode(b64).unwrap()
}

fn sha256_b64url(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref())
}

#[test]
fn a_device_certificate_authenticates_and_binds_tokens_until_it_is_revoked() {
    let node = Node::start();
    let tmp = tempfile::tempdir().unwrap();
    let dev = Device::new(tmp.path(), "gw-1");
    provision_ca(&node, &dev);
    let secret = register(&node, "gw-1");
    let csr = dev.csr("gw", "ec", "/CN=gw-1");
    let (status, out) = dev.est(&node, "simpleenroll", &csr, Some(("gw-1", &secret)), None);
    assert_eq!(status, 200);
    let cert = dev.save_cert(&out, "gw");

    let (client_id, _) = node.create_client(&[
        "--auth-method",
        "tls_client_auth",
        "--tls-san-uri",
        "urn:portcullis:device:gw-1",
        "--scope",
        "telemetry:write",
    ]);
    let id_field = format!("client_id={client_id}");
    let form = [
        "grant_type=client_credentials",
        id_field.as_str(),
        "scope=telemetry:write",
    ];

    let (status, body) = tls_post(
        &node,
        &dev,
        "/oauth2/token",
        &form,
        Some(("gw.pem", "gw.key")),
    );
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let thumbprint = sha256_b64url(&der_of(&cert));
    assert_eq!(jwt_payload(&token)["cnf"]["x5t#S256"], thumbprint.as_str());

    // Introspection (by the same client, over mTLS) returns the binding.
    let token_field = format!("token={token}");
    let (status, intro) = tls_post(
        &node,
        &dev,
        "/oauth2/introspect",
        &[token_field.as_str(), id_field.as_str()],
        Some(("gw.pem", "gw.key")),
    );
    assert_eq!(status, 200, "{intro}");
    assert_eq!(intro["active"], true, "{intro}");
    assert_eq!(intro["cnf"]["x5t#S256"], thumbprint.as_str(), "{intro}");

    // Discovery on the TLS listener advertises RFC 8705.
    let disc = node.get("/.well-known/oauth-authorization-server");
    assert_eq!(
        disc.json["tls_client_certificate_bound_access_tokens"], true,
        "{}",
        disc.text
    );

    // No certificate, or a certificate from another CA: refused.
    let (status, body) = tls_post(&node, &dev, "/oauth2/token", &form, None);
    assert_eq!(status, 401, "{body}");
    dev.self_signed(
        "forged",
        "/CN=gw-1",
        &["-addext", "subjectAltName=URI:urn:portcullis:device:gw-1"],
    );
    let (status, body) = tls_post(
        &node,
        &dev,
        "/oauth2/token",
        &form,
        Some(("forged.pem", "forged.key")),
    );
    assert_eq!(
        status, 401,
        "a look-alike certificate from a foreign CA: {body}"
    );
    assert_eq!(body["error"], "invalid_client");

    // Revoked in the store: refused on the very next request, no CRL involved.
    let serial = dev.serial(&cert);
    let out = node.cli(&["cert", "revoke", &serial, "--reason", "keyCompromise"]);
    assert!(out.status.success());
    let (status, body) = tls_post(
        &node,
        &dev,
        "/oauth2/token",
        &form,
        Some(("gw.pem", "gw.key")),
    );
    assert_eq!(status, 401, "{body}");
}

#[test]
fn a_self_signed_certificate_registered_as_x5c_authenticates() {
    let node = Node::start();
    let tmp = tempfile::tempdir().unwrap();
    let dev = Device::new(tmp.path(), "svc");
    provision_ca(&node, &dev);
    dev.self_signed("self", "/CN=backend-service", &[]);
    let der = der_of(&dev.path("self.pem"));
    // RFC 8705 §2.2: the client registers its certificate as the x5c of a JWK.
    let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "x5c": [STANDARD.encode(&der)]}]});
    let jwks_path = dev.path("jwks.json");
    std::fs::write(&jwks_path, jwks.to_string()).unwrap();
    let created = node.cli(&[
        "client",
        "create",
        "--name",
        "self-signed",
        "--auth-method",
        "self_signed_tls_client_auth",
        "--jwks",
        jwks_path.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let client: Value = serde_json::from_slice(&created.stdout).unwrap();
    let id_field = format!("client_id={}", client["client_id"].as_str().unwrap());
    let form = ["grant_type=client_credentials", id_field.as_str()];
    let (status, body) = tls_post(
        &node,
        &dev,
        "/oauth2/token",
        &form,
        Some(("self.pem", "self.key")),
    );
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        jwt_payload(token)["cnf"]["x5t#S256"],
        sha256_b64url(&der).as_str()
    );
    // Another self-signed certificate with the same subject is not the registered one.
    dev.self_signed("other", "/CN=backend-service", &[]);
    let (status, _) = tls_post(
        &node,
        &dev,
        "/oauth2/token",
        &form,
        Some(("other.pem", "other.key")),
    );
    assert_eq!(status, 401);
}

/// GETs `path` from the TLS listener with a bearer token and, optionally, a client
/// certificate; returns the status.
fn tls_get(node: &Node, dev: &Device, path: &str, token: &str, cert: Option<(&str, &str)>) -> u16 {
    let tls = node.tls_base.as_deref().unwrap();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(dev.path("root.pem"))
        .args(["-H", &format!("Authorization: Bearer {token}")]);
    if let Some((c, k)) = cert {
        cmd.arg("--cert")
            .arg(dev.path(c))
            .arg("--key")
            .arg(dev.path(k));
    }
    cmd.arg(format!("{tls}{path}"));
    ok(&mut cmd).trim().parse().unwrap()
}

/// Issue #11 finding 2: our own admin API honours RFC 8705 §3 — a certificate-bound token is
/// accepted only over a connection presenting that certificate.
#[test]
fn a_certificate_bound_admin_token_works_only_with_its_certificate() {
    let node = Node::start();
    let tmp = tempfile::tempdir().unwrap();
    let dev = Device::new(tmp.path(), "ops-1");
    provision_ca(&node, &dev);
    let secret = register(&node, "ops-1");
    let csr = dev.csr("ops", "ec", "/CN=ops-1");
    let (status, out) = dev.est(&node, "simpleenroll", &csr, Some(("ops-1", &secret)), None);
    assert_eq!(status, 200);
    dev.save_cert(&out, "ops");
    let other_secret = register(&node, "ops-2");
    let other_csr = dev.csr("other", "ec", "/CN=ops-2");
    let (status, out) = dev.est(
        &node,
        "simpleenroll",
        &other_csr,
        Some(("ops-2", &other_secret)),
        None,
    );
    assert_eq!(status, 200);
    dev.save_cert(&out, "other");

    let (client_id, _) = node.create_client(&[
        "--auth-method",
        "tls_client_auth",
        "--tls-san-uri",
        "urn:portcullis:device:ops-1",
        "--scope",
        "portcullis:admin",
    ]);
    let id_field = format!("client_id={client_id}");
    let form = [
        "grant_type=client_credentials",
        id_field.as_str(),
        "scope=portcullis:admin",
    ];
    let (status, body) = tls_post(
        &node,
        &dev,
        "/oauth2/token",
        &form,
        Some(("ops.pem", "ops.key")),
    );
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();

    let with_its_cert = Some(("ops.pem", "ops.key"));
    assert_eq!(
        tls_get(&node, &dev, "/admin/v1/clients", &token, with_its_cert),
        200
    );
    let bearer = format!("Bearer {token}");
    let plain = node.request(
        "GET",
        "/admin/v1/clients",
        None,
        &[("authorization", &bearer)],
        b"",
    );
    assert_eq!(
        plain.status, 401,
        "over plain HTTP, without the certificate: {}",
        plain.text
    );
    assert_eq!(tls_get(&node, &dev, "/admin/v1/clients", &token, None), 401);
    assert_eq!(
        tls_get(
            &node,
            &dev,
            "/admin/v1/clients",
            &token,
            Some(("other.pem", "other.key"))
        ),
        401,
        "another certificate of the same CA"
    );

    // Finding 6: subject DNs compare case-sensitively, as device ids do.
    for (dn, expected) in [("CN=OPS-1", 401), ("cn=ops-1", 200)] {
        let (client_id, _) =
            node.create_client(&["--auth-method", "tls_client_auth", "--tls-subject-dn", dn]);
        let id_field = format!("client_id={client_id}");
        let form = ["grant_type=client_credentials", id_field.as_str()];
        let (status, body) = tls_post(&node, &dev, "/oauth2/token", &form, with_its_cert);
        assert_eq!(status, expected, "{dn}: {body}");
    }
}
