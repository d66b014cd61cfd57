//! The gateway's operator keys and trust list (issue #13, `docs/signed-objects.md`) through
//! the CLI and the admin API of a running node: keys created in custody, a trust list signed
//! by the root and served at `GET /gateway/v1/trust`, verified by pycose with the root's
//! public key as a device pins it; a rotation publishes a higher list without the retired
//! key; every change audited; what cannot be done is refused with a clear answer.

use std::process::Command;

use portcullis_gateway::signed::{cose_key_from_jwk, Role, TrustList, TrustedKey};
use portcullis_keys::verify::VerifyingKey;
use portcullis_keys::{Algorithm, Jwk};
use serde_json::Value;

use crate::support::gateway::python_path;
use crate::support::Node;

fn curl_trust(node: &Node) -> (u16, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    let out = Command::new("curl")
        .args(["-s", "-o"])
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .arg(format!("{}/gateway/v1/trust", node.base))
        .output()
        .expect("curl");
    let status = String::from_utf8_lossy(&out.stdout).parse().unwrap();
    (status, std::fs::read(&body).unwrap_or_default())
}

fn root_jwk(keys: &Value) -> Jwk {
    let root = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "root" && k["state"] == "active")
        .unwrap();
    serde_json::from_value(root["public_jwk"].clone()).unwrap()
}

/// pycose checks the list's signature with the root key, as a device would.
fn pycose_verifies(signed: &[u8], root: &Jwk) -> bool {
    let Some(pythonpath) = python_path() else {
        return true;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cose_key = Vec::new();
    ciborium::into_writer(&cose_key_from_jwk(root).unwrap(), &mut cose_key).unwrap();
    std::fs::write(dir.path().join("root.cbor"), cose_key).unwrap();
    std::fs::write(dir.path().join("trust.cbor"), signed).unwrap();
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import sys\n\
             from pycose.messages import CoseMessage\n\
             from pycose.keys import CoseKey\n\
             msg = CoseMessage.decode(open(sys.argv[2], 'rb').read())\n\
             msg.key = CoseKey.decode(open(sys.argv[1], 'rb').read())\n\
             print('ok' if msg.verify_signature() else 'refused')\n",
        )
        .arg(dir.path().join("root.cbor"))
        .arg(dir.path().join("trust.cbor"))
        .env("PYTHONPATH", pythonpath)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim() == "ok"
}

fn kids_of(list: &TrustList, role: Role) -> Vec<String> {
    list.keys
        .iter()
        .filter(|k| k.role == role)
        .filter_map(TrustedKey::kid)
        .collect()
}

#[test]
fn a_root_signed_trust_list_is_published_served_and_rotated() {
    let node = Node::start();
    let (status, _) = curl_trust(&node);
    assert_eq!(status, 404, "nothing published yet");

    node.cli_json(&["trust", "key", "create", "--role", "root", "--alg", "ES384"]);
    let first = node.cli_json(&["trust", "key", "create", "--role", "commands"]);
    node.cli_json(&[
        "trust", "key", "create", "--role", "settings", "--alg", "EdDSA",
    ]);
    node.cli_json(&["trust", "key", "create", "--role", "updates"]);
    let first_kid = first[0]["kid"].as_str().unwrap().to_owned();

    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("trust.cose");
    let published = node.cli_json(&["trust", "publish", "--out", out.to_str().unwrap()]);
    assert_eq!(published["ver"], 1);
    let (status, served) = curl_trust(&node);
    assert_eq!(status, 200);
    assert_eq!(
        served,
        std::fs::read(&out).unwrap(),
        "--out wrote what is served"
    );

    let keys = node.cli_json(&["trust", "key", "list"]);
    let root = root_jwk(&keys);
    assert!(
        pycose_verifies(&served, &root),
        "pycose refused the trust list"
    );
    let root_key = VerifyingKey::from_jwk(&root, &Algorithm::ALL).unwrap();
    let now = crate::support::gateway::now();
    let list = TrustList::open(&served, &root_key, now, None).unwrap();
    assert_eq!(
        kids_of(&list, Role::Commands),
        std::slice::from_ref(&first_kid)
    );
    assert_eq!(list.keys.len(), 3, "the root is pinned, not listed");

    // Rotation: a second command key, the first retired, the next list without it.
    let second = node.cli_json(&["trust", "key", "create", "--role", "commands"]);
    let second_kid = second[0]["kid"].as_str().unwrap().to_owned();
    let retired = node.cli_json(&["trust", "key", "retire", &first_kid]);
    assert_eq!(retired[0]["state"], "retired");
    let published = node.cli_json(&["trust", "publish", "--valid-days", "7"]);
    assert_eq!(published["ver"], 2);
    let (_, served) = curl_trust(&node);
    let list = TrustList::open(&served, &root_key, now, Some(1)).unwrap();
    assert_eq!(kids_of(&list, Role::Commands), [second_kid]);
    assert!(list.exp - list.iat == 7 * 86_400);

    let audit = node.cli_json(&["audit", "list"]);
    let actions: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    for action in ["trust.key_created", "trust.key_retired", "trust.published"] {
        assert!(
            actions.contains(&action),
            "{action} not audited: {actions:?}"
        );
    }
    // No private key material anywhere in what the admin API shows.
    let shown = keys.to_string();
    assert!(
        !shown.contains("\"d\"") && !shown.contains("sealed"),
        "{shown}"
    );
}

#[test]
fn what_cannot_be_done_is_refused_clearly() {
    let node = Node::start();
    let fails = |args: &[&str], expect: &str| {
        let out = node.cli(args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(expect), "{args:?}: {err}");
    };
    fails(&["trust", "publish"], "no active trust root");
    fails(
        &["trust", "key", "create", "--role", "bogus"],
        "unknown variant",
    );
    fails(
        &[
            "trust", "key", "create", "--role", "commands", "--alg", "RS256",
        ],
        "unknown variant",
    );
    fails(
        &["trust", "key", "retire", "no-such-key"],
        "no operator key",
    );
    let root = node.cli_json(&["trust", "key", "create", "--role", "root"]);
    let root_kid = root[0]["kid"].as_str().unwrap().to_owned();
    fails(
        &["trust", "key", "retire", &root_kid],
        "last active trust root",
    );
    fails(&["trust", "publish", "--valid-days", "500"], "valid_secs");

    // The admin API itself: no token, no keys.
    let answer = node.request("GET", "/admin/v1/trust/keys", None, &[], b"");
    assert_eq!(answer.status, 401);
    let bearer = format!("Bearer {}", node.admin_token());
    let answer = node.request(
        "POST",
        "/admin/v1/trust/keys",
        Some("application/json"),
        &[("authorization", &bearer)],
        br#"{"role":"root","extra":1}"#,
    );
    assert_eq!(answer.status, 400, "{}", answer.text);
}

#[test]
fn an_offline_root_signs_the_trust_list_on_its_own_machine() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();

    // On the air-gapped machine: the root is generated into a file; its public JWK leaves.
    let public = node.cli_json(&[
        "trust",
        "root",
        "generate",
        "--alg",
        "ES384",
        "--out",
        &path("root.pem"),
    ]);
    assert!(public.get("d").is_none(), "only the public half is printed");
    let pem = std::fs::read_to_string(path("root.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path("root.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = node.cli(&["trust", "root", "generate", "--out", &path("root.pem")]);
    assert!(
        !again.status.success(),
        "an existing root key is never overwritten"
    );
    // Without --json too, standard output is the JWK alone (`> root.jwk`, as the README).
    let plain = node.cli(&["trust", "root", "generate", "--out", &path("plain.pem")]);
    assert!(plain.status.success());
    let jwk: serde_json::Value = serde_json::from_slice(&plain.stdout).expect("a JWK alone");
    assert!(jwk["kid"].is_string() && jwk.get("d").is_none(), "{jwk}");
    std::fs::write(path("root.jwk"), public.to_string()).unwrap();

    // On the node: the root is imported by its public key; the node cannot sign with it.
    let imported = node.cli_json(&["trust", "key", "import", "--public-jwk", &path("root.jwk")]);
    assert_eq!(imported[0]["backend"], "offline");
    assert_eq!(imported[0]["kid"], public["kid"]);
    node.cli_json(&["trust", "key", "create", "--role", "commands"]);
    let online = node.cli(&["trust", "publish"]);
    assert!(!online.status.success());
    assert!(
        String::from_utf8_lossy(&online.stderr).contains("offline"),
        "{}",
        String::from_utf8_lossy(&online.stderr)
    );

    // Draft on the node, sign offline, upload: served, and pycose verifies it with the root.
    node.cli_json(&["trust", "draft", "--out", &path("draft.cbor")]);
    let signed = node.cli(&[
        "trust",
        "sign",
        "--root-key",
        &path("root.pem"),
        "--draft",
        &path("draft.cbor"),
        "--out",
        &path("trust.cose"),
    ]);
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    let uploaded = node.cli_json(&["trust", "upload", &path("trust.cose")]);
    assert_eq!(uploaded["ver"], 1);
    let (status, served) = curl_trust(&node);
    assert_eq!(status, 200);
    assert_eq!(served, std::fs::read(path("trust.cose")).unwrap());
    let jwk: Jwk = serde_json::from_value(public.clone()).unwrap();
    assert!(
        pycose_verifies(&served, &jwk),
        "pycose refused the offline-signed list"
    );

    // The same list again, and a list signed by another root, are refused.
    let replay = node.cli(&["trust", "upload", &path("trust.cose")]);
    assert!(!replay.status.success());
    node.cli_json(&["trust", "root", "generate", "--out", &path("other.pem")]);
    node.cli_json(&["trust", "draft", "--out", &path("draft2.cbor")]);
    let forged = node.cli(&[
        "trust",
        "sign",
        "--root-key",
        &path("other.pem"),
        "--draft",
        &path("draft2.cbor"),
        "--out",
        &path("forged.cose"),
    ]);
    assert!(forged.status.success());
    let refused = node.cli(&["trust", "upload", &path("forged.cose")]);
    assert!(!refused.status.success());
    assert_eq!(curl_trust(&node).1, served, "the served list is unchanged");
}
