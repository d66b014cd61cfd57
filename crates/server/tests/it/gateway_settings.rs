//! Desired settings per device (issue #13) against the real binary: versions that rise with
//! every change, signed by the settings key and checked by the device against the root-signed
//! trust list; a conditional change that lost a race refused; the device's long poll woken
//! by a change; its authenticated report of what it applied, refused for versions it was never
//! given or older than its last report; a thermostat written with paho and pycose taking its
//! set point over MQTT.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis_gateway::signed::SettingsObject;
use serde_json::{json, Value};

use crate::support::gateway::{call, long_poll, now, principal, publish_trust, KeyedDevice};
use crate::support::{Answer, Node};

fn put(node: &Node, token: &str, device: &str, body: Value) -> Answer {
    let auth = format!("Bearer {token}");
    node.request(
        "PUT",
        &format!("/gateway/v1/devices/{device}/settings"),
        Some("application/json"),
        &[("Authorization", &auth)],
        body.to_string().as_bytes(),
    )
}

fn poll(node: &Node, device: &KeyedDevice, have: u64, wait: u64) -> Answer {
    let auth = format!("Bearer {}", device.token(&node.base));
    node.request(
        "GET",
        &format!("/gateway/v1/settings?have={have}&wait={wait}"),
        None,
        &[("Authorization", &auth)],
        b"",
    )
}

fn report(node: &Node, device: &mut KeyedDevice, version: u64) -> Answer {
    let mut payload = Vec::new();
    ciborium::into_writer(&json!({ "ver": version }), &mut payload).unwrap();
    let message = device.seal(&payload);
    node.request(
        "POST",
        "/gateway/v1/settings/applied",
        Some("application/cose"),
        &[],
        &message,
    )
}

#[test]
fn settings_are_versioned_signed_delivered_and_reported() {
    let node = Node::start();
    let (trust, _) = publish_trust(&node, &["settings"]);
    let mut thermo = KeyedDevice::register(&node, "thermo-1", "thermostat-v2");
    let writer = principal(&node, &["settings:write"]);
    let reader = principal(&node, &["settings:read"]);
    let stranger = principal(&node, &["telemetry:read"]);

    let first = put(
        &node,
        &writer,
        "thermo-1",
        json!({"values": {"setpoint": 21.5}}),
    );
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.json["version"], 1);
    let refused = put(
        &node,
        &stranger,
        "thermo-1",
        json!({"values": {"setpoint": 30}}),
    );
    assert_eq!(refused.status, 403, "{}", refused.text);
    let shown = call(
        &node,
        "GET",
        "/gateway/v1/devices/thermo-1/settings",
        &reader,
    );
    assert_eq!(
        shown.json["values"],
        json!({"setpoint": 21.5}),
        "{}",
        shown.text
    );
    assert_eq!(
        call(
            &node,
            "GET",
            "/gateway/v1/devices/thermo-1/settings",
            &stranger
        )
        .status,
        403
    );
    // A change based on a version that is no longer current is refused.
    let stale = put(
        &node,
        &writer,
        "thermo-1",
        json!({"values": {"setpoint": 19}, "if_version": 0}),
    );
    assert_eq!(stale.status, 409, "{}", stale.text);
    let second = put(
        &node,
        &writer,
        "thermo-1",
        json!({"values": {"setpoint": 22}, "if_version": 1}),
    );
    assert_eq!(second.json["version"], 2, "{}", second.text);
    let bad = put(&node, &writer, "thermo-1", json!({"setpoint": 22}));
    assert_eq!(bad.status, 400, "{}", bad.text);

    // The device takes the newest version and checks it as a device does.
    let got = poll(&node, &thermo, 0, 0);
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.json["version"], 2);
    let signed = URL_SAFE_NO_PAD
        .decode(got.json["signed"].as_str().unwrap())
        .unwrap();
    let settings = SettingsObject::open(&signed, &trust, "thermo-1", now(), 0).unwrap();
    assert_eq!(settings.ver, 2);
    // Never an older (or the same) version than the one it runs, never another device's.
    assert!(SettingsObject::open(&signed, &trust, "thermo-1", now(), 2).is_err());
    assert!(SettingsObject::open(&signed, &trust, "thermo-2", now(), 0).is_err());
    assert_eq!(poll(&node, &thermo, 2, 0).status, 204, "nothing newer");

    // A long poll is woken by the next change.
    let waiting = long_poll(
        &node.base,
        "/gateway/v1/settings?have=2&wait=20",
        thermo.token(&node.base),
    );
    std::thread::sleep(Duration::from_millis(500));
    let third = put(
        &node,
        &writer,
        "thermo-1",
        json!({"values": {"setpoint": 23}}),
    );
    assert_eq!(third.json["version"], 3);
    let (waited, body) = waiting.join().unwrap();
    assert!(waited < Duration::from_secs(10), "woken: {waited:?}");
    assert_eq!(body["version"], 3);

    // What the device applied, authenticated; versions it never got or older reports refused.
    assert_eq!(report(&node, &mut thermo, 3).status, 202);
    assert_eq!(report(&node, &mut thermo, 9).status, 403);
    assert_eq!(report(&node, &mut thermo, 2).status, 403);
    let shown = call(
        &node,
        "GET",
        "/gateway/v1/devices/thermo-1/settings",
        &reader,
    );
    assert_eq!(shown.json["applied_version"], 3, "{}", shown.text);

    let audit = node.cli_json(&["audit", "list", "--limit", "100"])["records"].clone();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    assert!(actions.contains(&"settings.changed"), "{actions:?}");
    assert!(actions.contains(&"settings.applied"), "{actions:?}");
}

/// `examples/consumer-iot/thermostat.py`.
fn thermostat_script() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/consumer-iot/thermostat.py")
}

#[test]
fn a_thermostat_written_with_paho_and_pycose_takes_its_set_point_over_mqtt() {
    let Some(pythonpath) = crate::support::gateway::python_path() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start_with_args(
        &tmp.path().join("data"),
        &["--listen-mqtt", "127.0.0.1:0"],
        &[],
    );
    let (_, root) = publish_trust(&node, &["settings"]);
    let root_file = tmp.path().join("root.jwk.json");
    std::fs::write(&root_file, root.to_string()).unwrap();
    let thermo = KeyedDevice::register(&node, "thermo-7", "thermostat-v2");
    let writer = principal(&node, &["settings:write"]);
    // Set while the thermostat is offline: it gets it when it subscribes.
    let first = put(
        &node,
        &writer,
        "thermo-7",
        json!({"values": {"setpoint": 20}}),
    );
    assert_eq!(first.status, 200, "{}", first.text);

    let thermostat = std::process::Command::new("python3")
        .arg(thermostat_script())
        .args(["--device-id", "thermo-7", "--key-id", &thermo.key_id])
        .arg(format!("--key={}", URL_SAFE_NO_PAD.encode(thermo.key)))
        .args(["--audience", &node.base, "--plain", "--gateway", &node.base])
        .args(["--mqtt", node.mqtt_addr.as_deref().unwrap()])
        .arg("--root")
        .arg(&root_file)
        .args(["--count", "2", "--timeout", "30"])
        .arg("--state")
        .arg(tmp.path().join("thermo-7.counter.json"))
        .env("PYTHONPATH", &pythonpath)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let second = put(
        &node,
        &writer,
        "thermo-7",
        json!({"values": {"setpoint": 22.5}}),
    );
    assert_eq!(second.json["version"], 2, "{}", second.text);
    let out = thermostat.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let applied: Vec<(u64, Value)> = lines
        .iter()
        .filter(|l| l["verdict"] == "applied")
        .map(|l| (l["ver"].as_u64().unwrap(), l["values"]["setpoint"].clone()))
        .collect();
    assert_eq!(applied, vec![(1, json!(20)), (2, json!(22.5))], "{stdout}");
    let reader = principal(&node, &["settings:read"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let shown = call(
            &node,
            "GET",
            "/gateway/v1/devices/thermo-7/settings",
            &reader,
        );
        if shown.json["applied_version"] == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{}", shown.text);
        std::thread::sleep(Duration::from_millis(100));
    }
}
