//! Software updates (issue #13) against the real binary: an image uploaded and its manifest
//! signed by the update key; the device offered the newest release that targets it, checking
//! the manifest against the root-signed trust list and downloading by ranges; a camera written
//! with pycose installing it, refusing a tampered image and a rollback after a withdrawal; the
//! device-side refusals of an expired manifest and of one signed by a key the root no longer
//! lists; the rollout as devices reported it.

use std::io::Read as _;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis_gateway::signed::UpdateManifest;
use serde_json::Value;

use crate::support::gateway::{call, now, principal, publish_trust, KeyedDevice};
use crate::support::{Answer, Node};

fn upload(node: &Node, token: &str, query: &str, image: &[u8]) -> Answer {
    let auth = format!("Bearer {token}");
    node.request(
        "POST",
        &format!("/gateway/v1/updates/releases?{query}"),
        Some("application/octet-stream"),
        &[("Authorization", &auth)],
        image,
    )
}

fn latest(node: &Node, device: &KeyedDevice) -> Answer {
    let auth = format!("Bearer {}", device.token(&node.base));
    node.request(
        "GET",
        "/gateway/v1/updates/latest",
        None,
        &[("Authorization", &auth)],
        b"",
    )
}

/// The image bytes `range` (an HTTP Range value, or none) of `url`: (status, bytes).
fn fetch(url: &str, range: Option<&str>) -> (u16, Vec<u8>) {
    let mut request = ureq::get(url);
    if let Some(range) = range {
        request = request.set("Range", range);
    }
    let response = request.call().unwrap();
    let status = response.status();
    let mut bytes = Vec::new();
    response.into_reader().read_to_end(&mut bytes).unwrap();
    (status, bytes)
}

fn camera(node: &Node, device: &KeyedDevice, root: &std::path::Path, installed: u64) -> Value {
    let pythonpath = crate::support::gateway::python_path().unwrap();
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/consumer-iot/camera.py");
    let state = root.with_file_name(format!("{}.counter.json", device.id));
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(["--device-id", &device.id, "--key-id", &device.key_id])
        .arg(format!("--key={}", URL_SAFE_NO_PAD.encode(device.key)))
        .args(["--audience", &node.base, "--gateway", &node.base])
        .arg("--root")
        .arg(root)
        .args(["--model", "cam-v1", "--installed", &installed.to_string()])
        .args(["--chunk", "50000"])
        .arg("--state")
        .arg(state)
        .env("PYTHONPATH", pythonpath)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn image(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn releases_are_signed_offered_downloaded_checked_and_reported() {
    let Some(_) = crate::support::gateway::python_path() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let node = Node::start_in(&data, &[]);
    let (trust, root) = publish_trust(&node, &["updates"]);
    let root_file = tmp.path().join("root.jwk.json");
    std::fs::write(&root_file, root.to_string()).unwrap();
    let cam = KeyedDevice::register(&node, "cam-1", "cam-v1");
    let publisher = principal(&node, &["updates:write"]);
    let reader = principal(&node, &["updates:read"]);

    // Nothing published: nothing offered. A reader cannot publish.
    assert_eq!(latest(&node, &cam).status, 204);
    let v1 = image(1, 300_000);
    assert_eq!(
        upload(&node, &reader, "model=cam-v1&version=1.0.0", &v1).status,
        403
    );
    let first = upload(&node, &publisher, "model=cam-v1&version=1.0.0", &v1);
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.json["release"], 1);
    let v2 = image(2, 300_001);
    let second = upload(&node, &publisher, "model=cam-v1&version=1.1.0", &v2);
    assert_eq!(second.json["release"], 2, "{}", second.text);
    let lower = upload(&node, &publisher, "model=cam-v1&version=0.9&release=2", &v2);
    assert_eq!(lower.status, 400, "release numbers rise: {}", lower.text);

    // The device is offered release 2 and checks it as a device does.
    let offer = latest(&node, &cam);
    assert_eq!(offer.status, 200, "{}", offer.text);
    assert_eq!(offer.json["release"], 2);
    let signed = URL_SAFE_NO_PAD
        .decode(offer.json["manifest"].as_str().unwrap())
        .unwrap();
    let manifest = UpdateManifest::open(&signed, &trust, "cam-v1", now(), 1).unwrap();
    assert_eq!(manifest.size, 300_001);
    assert!(
        UpdateManifest::open(&signed, &trust, "cam-v1", now(), 2).is_err(),
        "rollback"
    );
    assert!(
        UpdateManifest::open(&signed, &trust, "cam-v2", now(), 0).is_err(),
        "model"
    );
    assert!(
        UpdateManifest::open(&signed, &trust, "cam-v1", manifest.exp, 0).is_err(),
        "an expired manifest (a freeze) is refused"
    );
    // Ranges, then the whole image, which matches the manifest; a changed byte does not.
    let (status, head) = fetch(&manifest.url, Some("bytes=0-99"));
    assert_eq!((status, head.as_slice()), (206, &v2[..100]));
    let (status, tail) = fetch(&manifest.url, Some("bytes=300000-"));
    assert_eq!((status, tail.as_slice()), (206, &v2[300_000..]));
    let (status, whole) = fetch(&manifest.url, None);
    assert_eq!(status, 200);
    manifest.check_image(&whole).unwrap();
    let mut tampered = whole.clone();
    tampered[1234] ^= 1;
    assert!(manifest.check_image(&tampered).is_err());

    // A camera written with pycose installs it, by ranges.
    let line = camera(&node, &cam, &root_file, 1);
    assert_eq!(line["verdict"], "installed", "{line}");
    assert_eq!(line["release"], 2);
    assert_eq!(camera(&node, &cam, &root_file, 2)["verdict"], "up to date");

    // Withdrawn: release 1 is offered again, and a camera on 2 refuses the rollback.
    let auth = format!("Bearer {publisher}");
    let withdrawn = node.request(
        "POST",
        "/gateway/v1/updates/releases/withdraw?model=cam-v1&release=2",
        None,
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(withdrawn.status, 200, "{}", withdrawn.text);
    let line = camera(&node, &cam, &root_file, 2);
    assert!(
        line["verdict"].as_str().unwrap().contains("rollback"),
        "{line}"
    );

    // A tampered image on the server is refused by the camera.
    let v3 = image(3, 120_000);
    let third = upload(&node, &publisher, "model=cam-v1&version=1.2.0", &v3);
    assert_eq!(third.json["release"], 3, "{}", third.text);
    let stored = data
        .join("updates")
        .join(third.json["sha256"].as_str().unwrap());
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[99] ^= 0xff;
    std::fs::write(&stored, bytes).unwrap();
    let line = camera(&node, &cam, &root_file, 1);
    assert!(
        line["verdict"].as_str().unwrap().contains("digest"),
        "{line}"
    );

    // A release for other devices is not offered to this one.
    let other = upload(&node, &publisher, "model=cam-v1&version=2.0&ids=cam-9", &v1);
    assert_eq!(other.status, 201, "{}", other.text);
    assert_eq!(latest(&node, &cam).json["release"], 3);

    // After the root drops the update key that signed release 3, its manifest is refused.
    let keys = node.cli_json(&["trust", "key", "list"]);
    let old = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "updates")
        .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    node.cli_json(&["trust", "key", "create", "--role", "updates"]);
    node.cli_json(&["trust", "key", "retire", &old]);
    node.cli_json(&["trust", "publish"]);
    let mut newer = Vec::new();
    ureq::get(&format!("{}/gateway/v1/trust", node.base))
        .call()
        .unwrap()
        .into_reader()
        .read_to_end(&mut newer)
        .unwrap();
    let jwk: portcullis_keys::Jwk = serde_json::from_value(root.clone()).unwrap();
    let root_key =
        portcullis_keys::verify::VerifyingKey::from_jwk(&jwk, &portcullis_keys::Algorithm::ALL)
            .unwrap();
    let newer =
        portcullis_gateway::signed::TrustList::open(&newer, &root_key, now(), None).unwrap();
    let third_manifest = URL_SAFE_NO_PAD
        .decode(third.json["manifest"].as_str().unwrap())
        .unwrap();
    assert!(UpdateManifest::open(&third_manifest, &trust, "cam-v1", now(), 0).is_ok());
    assert!(
        UpdateManifest::open(&third_manifest, &newer, "cam-v1", now(), 0).is_err(),
        "signed by a key the newest trust list no longer names"
    );

    // The rollout, as the camera reported it.
    let rollout = call(
        &node,
        "GET",
        "/gateway/v1/updates/releases?model=cam-v1",
        &reader,
    );
    assert_eq!(rollout.status, 200, "{}", rollout.text);
    let counts: Vec<(u64, String, u64)> = rollout.json["rollout"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["release"].as_u64().unwrap(),
                r["status"].as_str().unwrap().to_owned(),
                r["devices"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(counts.contains(&(2, "installed".into(), 1)), "{counts:?}");
    assert!(counts.contains(&(3, "refused".into(), 1)), "{counts:?}");
    assert_eq!(rollout.json["releases"].as_array().unwrap().len(), 4);
    let audit = node.cli_json(&["audit", "list", "--limit", "200"])["records"].clone();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    for action in ["update.published", "update.withdrawn", "update.refused"] {
        assert!(actions.contains(&action), "{action}: {actions:?}");
    }
}
