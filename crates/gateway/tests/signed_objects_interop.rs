//! Signed objects checked by a COSE implementation nobody here wrote: Python's pycose (with
//! cbor2) verifies a trust list with the pinned root key, takes the command key from it, and
//! verifies a command with that — the steps `docs/signed-objects.md` asks of a device. A
//! changed byte fails in pycose too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::process::Command;

use portcullis_gateway::signed::{
    cbor_from_json, cose_key_from_jwk, sign, CommandObject, Kind, Role, TrustList, TrustedKey,
};
use portcullis_keys::software::SoftwareSigner;
use portcullis_keys::{Algorithm, Signer as _};

/// pycose and cbor2 from `.interop/python`; `None` (skip) outside CI without them.
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

const DEVICE_CHECK: &str = r#"
import json, sys
import cbor2
from pycose.messages import CoseMessage
from pycose.keys import CoseKey
from pycose.headers import KID, ContentType

root_key, trust, command = (open(p, "rb").read() for p in sys.argv[1:4])
# The device pins the root key and verifies the trust list with it...
msg = CoseMessage.decode(trust)
assert msg.phdr[ContentType] == "application/vnd.portcullis.trust+cbor", msg.phdr
msg.key = CoseKey.decode(root_key)
if not msg.verify_signature():
    sys.exit("trust list signature refused")
listed = cbor2.loads(msg.payload)
keys = {bytes(k["key"][2]): k for k in listed["keys"]}
# ... then verifies the command with the command key the list names.
cmd = CoseMessage.decode(command)
assert cmd.phdr[ContentType] == "application/vnd.portcullis.command+cbor", cmd.phdr
entry = keys[bytes(cmd.phdr[KID])]
assert entry["role"] == "commands", entry["role"]
cmd.key = CoseKey.decode(cbor2.dumps(entry["key"]))
ok = cmd.verify_signature()
# Only a verified payload is read.
body = cbor2.loads(cmd.payload) if ok else {}
print(json.dumps({"verified": ok, "dev": body.get("dev"), "name": body.get("name"),
                  "seq": body.get("seq"), "args": body.get("args"), "ver": listed["ver"]}))
"#;

fn run_device(dir: &std::path::Path, pythonpath: &std::path::Path) -> serde_json::Value {
    let out = Command::new("python3")
        .arg("-c")
        .arg(DEVICE_CHECK)
        .arg(dir.join("root.cbor"))
        .arg(dir.join("trust.cbor"))
        .arg(dir.join("command.cbor"))
        .env("PYTHONPATH", pythonpath)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn pycose_verifies_a_command_through_the_root_signed_trust_list() {
    let Some(pythonpath) = python_path() else {
        return;
    };
    let (root, _) = SoftwareSigner::generate(Algorithm::ES256).unwrap();
    let (commands, _) = SoftwareSigner::generate(Algorithm::ES256).unwrap();
    let now = 1_800_000_000;
    let list = TrustList {
        ver: 2,
        iat: now,
        exp: now + 3600,
        keys: vec![TrustedKey {
            role: Role::Commands,
            key: cose_key_from_jwk(&commands.public_jwk()).unwrap(),
        }],
    };
    let command = CommandObject {
        dev: "valve-7".into(),
        cid: "c-42".into(),
        name: "valve.open".into(),
        args: cbor_from_json(&serde_json::json!({"position": 40})).unwrap(),
        iat: now,
        exp: now + 60,
        seq: 12,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut root_cose = Vec::new();
    ciborium::into_writer(
        &cose_key_from_jwk(&root.public_jwk()).unwrap(),
        &mut root_cose,
    )
    .unwrap();
    std::fs::write(dir.path().join("root.cbor"), &root_cose).unwrap();
    std::fs::write(
        dir.path().join("trust.cbor"),
        sign(Kind::Trust, &list, &root).unwrap(),
    )
    .unwrap();
    let signed = sign(Kind::Command, &command, &commands).unwrap();
    std::fs::write(dir.path().join("command.cbor"), &signed).unwrap();

    let seen = run_device(dir.path(), &pythonpath);
    assert_eq!(seen["verified"], true, "{seen}");
    assert_eq!(seen["dev"], "valve-7");
    assert_eq!(seen["name"], "valve.open");
    assert_eq!(seen["seq"], 12);
    assert_eq!(seen["args"]["position"], 40);
    assert_eq!(seen["ver"], 2);

    // One byte of the payload changed: pycose refuses it too.
    let mut tampered = signed.clone();
    let at = tampered.len() - 70;
    tampered[at] ^= 0x01;
    std::fs::write(dir.path().join("command.cbor"), &tampered).unwrap();
    let seen = run_device(dir.path(), &pythonpath);
    assert_eq!(seen["verified"], false, "{seen}");
}
