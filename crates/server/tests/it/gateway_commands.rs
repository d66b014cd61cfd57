//! Commands to devices (issue #13) against the real binary: rules from the configuration, a
//! control client sending, a device taking its commands by HTTP long poll and checking each
//! signature against the root-signed trust list as a device would, its authenticated result,
//! the status a sender reads; refusals by rule (no grant, an argument out of range, the rate
//! limit), four eyes (the sender cannot approve its own critical command, another principal
//! can), expiry (never delivered), and every decision in the audit log. Two PostgreSQL nodes:
//! a command sent on one reaches the device polling the other.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis_gateway::signed::{CommandObject, TrustList};
use serde_json::{json, Value};

use crate::support::gateway::{
    bearer, call, long_poll, now, principal, publish_trust, KeyedDevice,
};
use crate::support::{Answer, Node};

/// The rules of `[gateway.commands]`, as one inline table in the environment (TOML inline
/// tables are one line).
const RULES: &str = concat!(
    r#"{ rules = ["#,
    r#"{ name = "valve-operators", principals = { scopes = ["commands:valve"] }, "#,
    r#"commands = ["valve.open", "valve.close"], devices = { models = ["valve-v2"] }, "#,
    r#"args = { position = { min = 0, max = 100, integer = true, required = true } }, "#,
    r#"rate_per_minute = 5 }, "#,
    r#"{ name = "calibration", principals = { scopes = ["commands:critical"] }, "#,
    r#"commands = ["valve.calibrate.*"], devices = { models = ["valve-v2"] }, approvals = 2 }"#,
    r#"] }"#
);

fn send(node: &Node, token: &str, device: &str, body: Value) -> Answer {
    let auth = bearer(token);
    node.request(
        "POST",
        &format!("/gateway/v1/devices/{device}/commands"),
        Some("application/json"),
        &[("Authorization", &auth)],
        body.to_string().as_bytes(),
    )
}

fn poll(node: &Node, device: &KeyedDevice, wait: u64) -> Vec<Value> {
    let auth = bearer(&device.token(&node.base));
    let answer = node.request(
        "GET",
        &format!("/gateway/v1/commands?wait={wait}"),
        None,
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json["commands"].as_array().unwrap().clone()
}

fn report(node: &Node, device: &mut KeyedDevice, result: &Value) -> Answer {
    let message = device.seal(result.to_string().as_bytes());
    node.request(
        "POST",
        "/gateway/v1/results",
        Some("application/cose"),
        &[],
        &message,
    )
}

/// A command as the device checks it: signature by a command key of its trust list, for
/// itself, fresh, above `last_seq`.
fn open(delivered: &Value, trust: &TrustList, device: &str, last_seq: u64) -> CommandObject {
    let signed = URL_SAFE_NO_PAD
        .decode(delivered["signed"].as_str().unwrap())
        .unwrap();
    CommandObject::open(&signed, trust, device, now(), last_seq).unwrap()
}

#[test]
fn commands_are_decided_signed_delivered_answered_and_audited() {
    let node = Node::start_with_env(&[("PORTCULLIS_GATEWAY__COMMANDS", RULES)]);
    let (trust, _) = publish_trust(&node, &["commands"]);
    let mut valve = KeyedDevice::register(&node, "valve-7", "valve-v2");
    let control = principal(&node, &["commands:valve", "commands:critical"]);
    let intruder = principal(&node, &["telemetry:read"]);
    let approver = principal(&node, &["commands:critical"]);

    // Allowed: queued at once, signed under sequence number 1.
    let sent = send(
        &node,
        &control,
        "valve-7",
        json!({"name": "valve.open", "args": {"position": 40}, "ttl_secs": 300}),
    );
    assert_eq!(sent.status, 202, "{}", sent.text);
    assert_eq!(sent.json["state"], "queued");
    assert_eq!(sent.json["seq"], 1);
    assert_eq!(sent.json["rule"], "valve-operators");
    let cid = sent.json["command_id"].as_str().unwrap().to_owned();

    // Refused: no rule for this principal (and no rule named), an argument out of range
    // (the rule named), a malformed body.
    let refused = send(
        &node,
        &intruder,
        "valve-7",
        json!({"name": "valve.open", "args": {"position": 40}, "ttl_secs": 300}),
    );
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(refused.json["reason"], "no_rule");
    assert_eq!(refused.json["rule"], Value::Null);
    let refused = send(
        &node,
        &control,
        "valve-7",
        json!({"name": "valve.open", "args": {"position": 150}, "ttl_secs": 300}),
    );
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(refused.json["rule"], "valve-operators");
    assert_eq!(refused.json["reason"], "argument_out_of_range");
    let bad = send(&node, &control, "valve-7", json!({"name": "valve.open"}));
    assert_eq!(bad.status, 400, "{}", bad.text);
    let unknown = send(
        &node,
        &control,
        "no-such-valve",
        json!({"name": "valve.open", "args": {"position": 1}, "ttl_secs": 60}),
    );
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    let anonymous = node.request(
        "POST",
        "/gateway/v1/devices/valve-7/commands",
        Some("application/json"),
        &[],
        b"{}",
    );
    assert_eq!(anonymous.status, 401);

    // The device takes it, checks it, and it is handed out once.
    let delivered = poll(&node, &valve, 0);
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    let command = open(&delivered[0], &trust, "valve-7", 0);
    assert_eq!(command.cid, cid);
    assert_eq!(command.name, "valve.open");
    assert_eq!(command.seq, 1);
    assert!(poll(&node, &valve, 0).is_empty(), "delivered once");
    let shown = call(
        &node,
        "GET",
        &format!("/gateway/v1/commands/{cid}"),
        &control,
    );
    assert_eq!(shown.json["state"], "delivered", "{}", shown.text);
    // Another principal without commands:read does not learn it exists.
    let hidden = call(
        &node,
        "GET",
        &format!("/gateway/v1/commands/{cid}"),
        &intruder,
    );
    assert_eq!(hidden.status, 404);

    // The device's authenticated result; a replay of it is refused.
    let result = json!({"cid": cid, "status": "succeeded", "output": {"position": 40}});
    let message = valve.seal(result.to_string().as_bytes());
    let answer = node.request(
        "POST",
        "/gateway/v1/results",
        Some("application/cose"),
        &[],
        &message,
    );
    assert_eq!(answer.status, 202, "{}", answer.text);
    let replayed = node.request(
        "POST",
        "/gateway/v1/results",
        Some("application/cose"),
        &[],
        &message,
    );
    assert_eq!(replayed.status, 409, "{}", replayed.text);
    let shown = call(
        &node,
        "GET",
        &format!("/gateway/v1/commands/{cid}"),
        &control,
    );
    assert_eq!(shown.json["state"], "succeeded");
    assert_eq!(shown.json["output"], json!({"position": 40}));
    // A second answer does not change the first.
    let again = report(&node, &mut valve, &json!({"cid": cid, "status": "failed"}));
    assert_eq!(again.status, 403, "{}", again.text);

    // Four eyes: pending until another principal of the rule approves.
    let critical = send(
        &node,
        &control,
        "valve-7",
        json!({"name": "valve.calibrate.zero", "ttl_secs": 300}),
    );
    assert_eq!(critical.status, 202, "{}", critical.text);
    assert_eq!(critical.json["state"], "pending_approval");
    let critical_id = critical.json["command_id"].as_str().unwrap().to_owned();
    assert!(poll(&node, &valve, 0).is_empty(), "not before approval");
    let own = call(
        &node,
        "POST",
        &format!("/gateway/v1/commands/{critical_id}/approve"),
        &control,
    );
    assert_eq!(own.status, 403, "{}", own.text);
    assert_eq!(own.json["reason"], "approver_is_sender");
    let stranger = call(
        &node,
        "POST",
        &format!("/gateway/v1/commands/{critical_id}/approve"),
        &intruder,
    );
    assert_eq!(stranger.status, 403, "{}", stranger.text);
    assert_eq!(stranger.json["reason"], "approver_not_allowed");
    // The approver may read what it is asked to approve.
    let seen = call(
        &node,
        "GET",
        &format!("/gateway/v1/commands/{critical_id}"),
        &approver,
    );
    assert_eq!(seen.json["name"], "valve.calibrate.zero", "{}", seen.text);
    let approved = call(
        &node,
        "POST",
        &format!("/gateway/v1/commands/{critical_id}/approve"),
        &approver,
    );
    assert_eq!(approved.status, 200, "{}", approved.text);
    assert_eq!(approved.json["state"], "queued");
    assert_eq!(approved.json["seq"], 2);
    let twice = call(
        &node,
        "POST",
        &format!("/gateway/v1/commands/{critical_id}/approve"),
        &approver,
    );
    assert_eq!(twice.status, 409, "{}", twice.text);
    let delivered = poll(&node, &valve, 0);
    let command = open(&delivered[0], &trust, "valve-7", 1);
    assert_eq!(command.seq, 2);
    // The same bytes again (a replayed delivery) fail the device's sequence check.
    let signed = URL_SAFE_NO_PAD
        .decode(delivered[0]["signed"].as_str().unwrap())
        .unwrap();
    assert!(CommandObject::open(&signed, &trust, "valve-7", now(), 2).is_err());
    // And valve-8 refuses valve-7's command.
    assert!(CommandObject::open(&signed, &trust, "valve-8", now(), 0).is_err());

    // A long poll is woken by a command queued meanwhile.
    let waiting = long_poll(
        &node.base,
        "/gateway/v1/commands?wait=20",
        valve.token(&node.base),
    );
    std::thread::sleep(Duration::from_millis(500));
    let woke = send(
        &node,
        &control,
        "valve-7",
        json!({"name": "valve.close", "args": {"position": 0}, "ttl_secs": 300}),
    );
    assert_eq!(woke.status, 202, "{}", woke.text);
    let (waited, body) = waiting.join().unwrap();
    assert!(
        waited < Duration::from_secs(10),
        "woken, not timed out: {waited:?}"
    );
    assert_eq!(body["commands"][0]["command_id"], woke.json["command_id"]);

    // An expired command is never delivered, and says so.
    let short = send(
        &node,
        &control,
        "valve-7",
        json!({"name": "valve.open", "args": {"position": 5}, "ttl_secs": 1}),
    );
    assert_eq!(short.status, 202, "{}", short.text);
    std::thread::sleep(Duration::from_millis(2100));
    assert!(poll(&node, &valve, 0).is_empty(), "expired: not delivered");
    let short_id = short.json["command_id"].as_str().unwrap();
    let shown = call(
        &node,
        "GET",
        &format!("/gateway/v1/commands/{short_id}"),
        &control,
    );
    assert_eq!(shown.json["state"], "expired");

    // Rate: five valve-operators commands per device and minute (three sent so far).
    for position in [1, 2] {
        let ok = send(
            &node,
            &control,
            "valve-7",
            json!({"name": "valve.open", "args": {"position": position}, "ttl_secs": 60}),
        );
        assert_eq!(ok.status, 202, "{}", ok.text);
    }
    let limited = send(
        &node,
        &control,
        "valve-7",
        json!({"name": "valve.open", "args": {"position": 3}, "ttl_secs": 60}),
    );
    assert_eq!(limited.status, 429, "{}", limited.text);
    assert!(limited.header("retry-after").is_some());

    // Listing needs commands:read.
    let reader = principal(&node, &["commands:read"]);
    let listed = call(
        &node,
        "GET",
        "/gateway/v1/devices/valve-7/commands",
        &reader,
    );
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json["commands"].as_array().unwrap().len(), 6);
    let denied = call(
        &node,
        "GET",
        "/gateway/v1/devices/valve-7/commands",
        &control,
    );
    assert_eq!(denied.status, 403);

    // Every decision is in the audit log.
    let audit = node.cli_json(&["audit", "list", "--limit", "200"])["records"].clone();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    for action in [
        "command.sent",
        "command.denied",
        "command.approved",
        "command.delivered",
        "command.result",
    ] {
        assert!(actions.contains(&action), "{action} missing: {actions:?}");
    }
    let denial = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["action"] == "command.denied" && r["detail"]["reason"] == "argument_out_of_range"
        })
        .expect("the out-of-range denial");
    assert_eq!(denial["detail"]["rule"], "valve-operators");
}

#[test]
fn a_command_without_a_command_key_is_refused_with_what_to_do() {
    let node = Node::start_with_env(&[("PORTCULLIS_GATEWAY__COMMANDS", RULES)]);
    KeyedDevice::register(&node, "valve-1", "valve-v2");
    let control = principal(&node, &["commands:valve"]);
    let sent = send(
        &node,
        &control,
        "valve-1",
        json!({"name": "valve.open", "args": {"position": 1}, "ttl_secs": 60}),
    );
    assert_eq!(sent.status, 503, "{}", sent.text);
    assert!(
        sent.json["detail"]
            .as_str()
            .unwrap()
            .contains("trust key create --role commands"),
        "{}",
        sent.text
    );
}

#[test]
fn a_command_sent_on_one_node_reaches_the_device_polling_the_other() {
    let Some(nodes) =
        crate::postgres_nodes::two_nodes("commands", &[("PORTCULLIS_GATEWAY__COMMANDS", RULES)])
    else {
        return;
    };
    let (a, b) = (&nodes.a, &nodes.b);
    let (trust, _) = publish_trust(a, &["commands"]);
    let valve = KeyedDevice::register(a, "valve-9", "valve-v2");
    let control = principal(a, &["commands:valve"]);
    let waiting = long_poll(
        &b.base,
        "/gateway/v1/commands?wait=20",
        valve.token("https://auth.cluster.example"),
    );
    std::thread::sleep(Duration::from_millis(800));
    let sent = send(
        a,
        &control,
        "valve-9",
        json!({"name": "valve.open", "args": {"position": 70}, "ttl_secs": 60}),
    );
    assert_eq!(sent.status, 202, "{}", sent.text);
    let (waited, body) = waiting.join().unwrap();
    assert!(
        waited < Duration::from_secs(10),
        "node b was woken by node a's announcement: {waited:?}"
    );
    let command = open(&body["commands"][0], &trust, "valve-9", 0);
    assert_eq!(command.cid, sent.json["command_id"].as_str().unwrap());
    let shown = call(
        a,
        "GET",
        &format!("/gateway/v1/commands/{}", command.cid),
        &control,
    );
    assert_eq!(shown.json["state"], "delivered");
}

/// `examples/industrial/actuator.py`.
fn actuator_script() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/industrial/actuator.py")
}

#[test]
fn an_actuator_written_with_paho_and_pycose_takes_its_commands_over_mqtt() {
    let Some(pythonpath) = crate::support::gateway::python_path() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start_with_args(
        &tmp.path().join("data"),
        &["--listen-mqtt", "127.0.0.1:0"],
        &[("PORTCULLIS_GATEWAY__COMMANDS", RULES)],
    );
    let (_, root) = publish_trust(&node, &["commands"]);
    let root_file = tmp.path().join("root.jwk.json");
    std::fs::write(&root_file, root.to_string()).unwrap();
    let valve = KeyedDevice::register(&node, "valve-3", "valve-v2");
    let control = principal(&node, &["commands:valve"]);
    // One command queued while the actuator is offline: delivered when it subscribes.
    let offline = send(
        &node,
        &control,
        "valve-3",
        json!({"name": "valve.open", "args": {"position": 30}, "ttl_secs": 300}),
    );
    assert_eq!(offline.status, 202, "{}", offline.text);

    let actuator = std::process::Command::new("python3")
        .arg(actuator_script())
        .args(["--device-id", "valve-3", "--key-id", &valve.key_id])
        // `--key=`: a base64url key may start with `-`, which argparse would take for an option.
        .arg(format!("--key={}", URL_SAFE_NO_PAD.encode(valve.key)))
        .args(["--audience", &node.base, "--plain", "--gateway", &node.base])
        .args(["--mqtt", node.mqtt_addr.as_deref().unwrap()])
        .arg("--root")
        .arg(&root_file)
        .args(["--count", "2", "--timeout", "30", "--fail-above", "90"])
        .arg("--state")
        .arg(tmp.path().join("valve-3.counter.json"))
        .env("PYTHONPATH", &pythonpath)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The second, while it is connected: the doorbell wakes its connection.
    std::thread::sleep(Duration::from_millis(1500));
    let online = send(
        &node,
        &control,
        "valve-3",
        json!({"name": "valve.open", "args": {"position": 95}, "ttl_secs": 300}),
    );
    assert_eq!(online.status, 202, "{}", online.text);
    let out = actuator.wait_with_output().unwrap();
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
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0]["cid"], offline.json["command_id"]);
    assert_eq!(lines[0]["verdict"], "executed");
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[1]["cid"], online.json["command_id"]);
    assert_eq!(lines[1]["verdict"], "failed");

    // The results came back authenticated and are the commands' states.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let first = call(
            &node,
            "GET",
            &format!("/gateway/v1/commands/{}", lines[0]["cid"].as_str().unwrap()),
            &control,
        );
        let second = call(
            &node,
            "GET",
            &format!("/gateway/v1/commands/{}", lines[1]["cid"].as_str().unwrap()),
            &control,
        );
        if first.json["state"] == "succeeded" && second.json["state"] == "failed" {
            assert_eq!(second.json["output"], json!({"position": 95}));
            // paho sends the PUBACK after the callback that published the result: the
            // result is then the first sign of the delivery, and records it.
            for answered in [&first, &second] {
                assert!(answered.json["delivered_at"].is_i64(), "{}", answered.text);
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} / {}",
            first.text,
            second.text
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // One delivery record per command, whichever came first: its PUBACK or its result.
    let audit = node.cli_json(&["audit", "list", "--limit", "200"])["records"].clone();
    for line in &lines {
        let deliveries = audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["action"] == "command.delivered" && r["detail"]["command_id"] == line["cid"]
            })
            .count();
        assert_eq!(deliveries, 1, "{}", line["cid"]);
    }
}
