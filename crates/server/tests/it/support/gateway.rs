//! What the gateway tests share: the example device (pycose, PyJWT, paho) and reading back
//! what a node stored.

use std::path::PathBuf;

use serde_json::Value;

use super::Node;

/// `examples/python_device/device.py`.
pub fn example_device() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/python_device/device.py")
}

/// pycose, cbor2, PyJWT and paho from `.interop/python`; `None` (skip) outside CI without them.
pub fn python_path() -> Option<PathBuf> {
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

/// What `portcullis telemetry tail --device DEVICE --json` shows.
pub fn stored(node: &Node, device: &str) -> Vec<Value> {
    let out = node.cli(&["telemetry", "tail", "--device", device, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Registers a device of model `meter-v1` (with `--attr` for each of `attrs`) and creates
/// one key for it: (key id, key).
pub fn device_with_key(node: &Node, id: &str, attrs: &[&str]) -> (String, [u8; 32]) {
    use base64::Engine as _;
    let mut args = vec!["device", "register", "--id", id, "--model", "meter-v1"];
    for a in attrs {
        args.extend_from_slice(&["--attr", a]);
    }
    node.cli_json(&args);
    let key = node.cli_json(&["device", "key", "create", id]);
    let raw: [u8; 32] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key["key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    (key["key_id"].as_str().unwrap().to_owned(), raw)
}

/// This host's clock, Unix seconds (the time COSE messages carry).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
