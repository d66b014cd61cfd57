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
