//! Symmetric device keys (issue #12) through the CLI and the admin API of a real node: a key is
//! shown once and listed without its material, a rotation gives the older keys a deadline, a
//! deleted key is gone, unknown and revoked devices are refused; `device import --with-keys`
//! writes one key per new device next to its enrollment secret, and `key rewrap` reseals and
//! counts them.

use base64::Engine as _;
use serde_json::Value;

use crate::support::{self, Node};

fn decoded_len(key: &str) -> usize {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key)
        .map_or(0, |k| k.len())
}

fn admin(node: &Node, method: &str, path: &str, body: Option<&str>) -> support::Answer {
    let token = node.admin_token();
    node.request(
        method,
        &format!("/admin/v1{path}"),
        body.map(|_| "application/json"),
        &[("Authorization", &format!("Bearer {token}"))],
        body.unwrap_or("").as_bytes(),
    )
}

fn key_ids(list: &Value) -> Vec<String> {
    list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn device_keys_are_created_listed_rotated_and_deleted() {
    let node = Node::start();
    node.cli_json(&["device", "register", "--id", "sensor-k1"]);

    // Created through the CLI: the key once, as base64url of 32 bytes.
    let created = node.cli_json(&["device", "key", "create", "sensor-k1"]);
    assert_eq!(created["device_id"], "sensor-k1");
    let first = created["key_id"].as_str().unwrap().to_owned();
    let first_key = created["key"].as_str().unwrap().to_owned();
    assert_eq!(decoded_len(&first_key), 32, "{created}");
    // The person-readable form says the key is shown once.
    let plain = node.cli(&["device", "key", "create", "sensor-k1"]);
    assert!(plain.status.success());
    assert!(String::from_utf8_lossy(&plain.stderr).contains("shown only once"));

    // Through the admin API: 201, never cached.
    let api = admin(&node, "POST", "/devices/sensor-k1/keys", None);
    assert_eq!(api.status, 201, "{}", api.text);
    assert_eq!(api.header("cache-control"), Some("no-store"));
    assert_eq!(decoded_len(api.json["key"].as_str().unwrap()), 32);
    assert!(api.json["created_at"].as_i64().is_some());

    // Listed without material (oldest first; keys of one second by id), no deadlines yet.
    let list = node.cli_json(&["device", "key", "list", "sensor-k1"]);
    let ids = key_ids(&list);
    assert_eq!(ids.len(), 3, "{list}");
    assert!(ids.contains(&first));
    assert!(
        !list.to_string().contains(&first_key),
        "no material: {list}"
    );
    for key in list["keys"].as_array().unwrap() {
        assert!(key.get("key").is_none(), "{key}");
        assert_eq!(key["expires_at"], Value::Null);
    }

    // A rotation with overlap: the older keys get a deadline, the new one none.
    let rotated = node.cli_json(&["device", "key", "rotate", "sensor-k1", "--overlap", "600"]);
    assert_eq!(decoded_len(rotated["key"].as_str().unwrap()), 32);
    let rotated_id = rotated["key_id"].as_str().unwrap().to_owned();
    let created_at = rotated["created_at"].as_i64().unwrap();
    assert_eq!(rotated["others_expire_at"].as_i64(), Some(created_at + 600));
    let deadlines = |list: &Value| -> std::collections::BTreeMap<String, Option<i64>> {
        list["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["key_id"].as_str().unwrap().to_owned(),
                    k["expires_at"].as_i64(),
                )
            })
            .collect()
    };
    let after = deadlines(&node.cli_json(&["device", "key", "list", "sensor-k1"]));
    assert_eq!(after.len(), 4, "{after:?}");
    for id in &ids {
        assert_eq!(after[id], Some(created_at + 600), "{id}");
    }
    assert_eq!(after[&rotated_id], None);
    // The admin API's default overlap is one day; keys already ending sooner keep their end.
    let api_rotated = admin(&node, "POST", "/devices/sensor-k1/keys/rotate", None);
    assert_eq!(api_rotated.status, 200, "{}", api_rotated.text);
    assert_eq!(api_rotated.header("cache-control"), Some("no-store"));
    let later = api_rotated.json["created_at"].as_i64().unwrap();
    assert_eq!(
        api_rotated.json["others_expire_at"].as_i64(),
        Some(later + 86_400)
    );
    let after = deadlines(&node.cli_json(&["device", "key", "list", "sensor-k1"]));
    assert_eq!(after.len(), 5, "{after:?}");
    assert_eq!(after[&first], Some(created_at + 600));
    assert_eq!(after[&rotated_id], Some(later + 86_400));
    assert_eq!(after[api_rotated.json["key_id"].as_str().unwrap()], None);
    let too_long = admin(
        &node,
        "POST",
        "/devices/sensor-k1/keys/rotate",
        Some(r#"{"overlap_secs": 2592001}"#),
    );
    assert_eq!(too_long.status, 400, "{}", too_long.text);

    // Deleted once; the second time there is nothing to delete.
    let deleted = node.cli(&["device", "key", "delete", "sensor-k1", &first]);
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    assert!(!key_ids(&node.cli_json(&["device", "key", "list", "sensor-k1"])).contains(&first));
    let again = node.cli(&["device", "key", "delete", "sensor-k1", &first]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("404"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let again = admin(
        &node,
        "DELETE",
        &format!("/devices/sensor-k1/keys/{first}"),
        None,
    );
    assert_eq!(again.status, 404);
    assert_eq!(
        again.header("content-type"),
        Some("application/problem+json")
    );

    // Unknown devices have no keys; revoked ones get none.
    let ghost = node.cli(&["device", "key", "create", "ghost"]);
    assert!(!ghost.status.success());
    assert!(String::from_utf8_lossy(&ghost.stderr).contains("404"));
    for (method, path) in [
        ("POST", "/devices/ghost/keys"),
        ("GET", "/devices/ghost/keys"),
        ("POST", "/devices/ghost/keys/rotate"),
        ("DELETE", "/devices/ghost/keys/k1"),
    ] {
        assert_eq!(
            admin(&node, method, path, None).status,
            404,
            "{method} {path}"
        );
    }
    node.cli_json(&["device", "register", "--id", "sensor-gone"]);
    node.cli_json(&["device", "revoke", "sensor-gone"]);
    let refused = admin(&node, "POST", "/devices/sensor-gone/keys", None);
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert!(
        refused.text.contains("cannot get new keys"),
        "{}",
        refused.text
    );
    assert_eq!(
        admin(&node, "DELETE", "/devices/sensor-k1/keys/bad%20id", None).status,
        400
    );

    // Every change is audited, and no record carries a key.
    let audit = node
        .cli_json(&["audit", "list", "--limit", "200"])
        .to_string();
    for action in [
        "device.key_created",
        "device.key_rotated",
        "device.key_deleted",
    ] {
        assert!(audit.contains(action), "{action}");
    }
    assert!(!audit.contains(&first_key));
    assert_eq!(node.cli_json(&["audit", "verify"])["ok"], true);
}

#[test]
fn import_with_keys_writes_one_key_per_new_device_and_rewrap_reseals_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let node = Node::start_in(&dir, &[]);
    let csv = tmp.path().join("devices.csv");
    std::fs::write(
        &csv,
        "device_id,model\nimp-1,TH-20\nimp-2,TH-20\nimp-3,TH-20\n",
    )
    .unwrap();
    // Keys never go to a terminal.
    let refused = node.cli(&["device", "import", csv.to_str().unwrap(), "--with-keys"]);
    assert_eq!(refused.status.code(), Some(2));
    node.cli_json(&["device", "register", "--id", "imp-2"]);

    let secrets = tmp.path().join("secrets.csv");
    let report = node.cli_json(&[
        "device",
        "import",
        csv.to_str().unwrap(),
        "--with-keys",
        "--secrets-out",
        secrets.to_str().unwrap(),
    ]);
    assert_eq!(report["registered"], 2, "{report}");
    assert_eq!(report["existing"], 1, "{report}");
    assert_eq!(report["keys_created"], 2, "{report}");
    assert_eq!(report["key_failures"], serde_json::json!([]));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&secrets).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("device_id,enrollment_secret,device_key_id,device_key")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2, "{text}");
    for (row, id) in rows.iter().zip(["imp-1", "imp-3"]) {
        assert_eq!(row.len(), 4, "{row:?}");
        assert_eq!(row[0], id);
        assert!(row[1].len() >= 40, "an enrollment secret");
        assert_eq!(decoded_len(row[3]), 32, "a device key");
        let listed = key_ids(&node.cli_json(&["device", "key", "list", id]));
        assert_eq!(listed, [row[2].to_owned()], "{id}");
    }
    assert!(key_ids(&node.cli_json(&["device", "key", "list", "imp-2"])).is_empty());
    assert!(node.stop().success());

    let store = format!("sqlite:{}", dir.join("portcullis.db").display());
    let new_key = tmp.path().join("new-master.key");
    let rewrap = || {
        std::process::Command::new(support::BIN)
            .args(["key", "rewrap", "--store-url", &store, "--old-master-key"])
            .arg(dir.join("master.key"))
            .arg("--new-master-key")
            .arg(&new_key)
            .output()
            .unwrap()
    };
    let out = rewrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("plus 2 device keys"), "{stdout}");
    let again = String::from_utf8_lossy(&rewrap().stdout).into_owned();
    assert!(again.contains("plus 0 device keys"), "idempotent: {again}");

    // The node starts on the new master key with every key still there.
    let node = Node::start_in(
        &dir,
        &[(
            "PORTCULLIS_KEYS__MASTER_KEY_FILE",
            new_key.to_str().unwrap(),
        )],
    );
    assert_eq!(
        key_ids(&node.cli_json(&["device", "key", "list", "imp-1"])),
        [rows[0][2].to_owned()]
    );
    let audit = node
        .cli_json(&["audit", "list", "--limit", "200"])
        .to_string();
    assert!(audit.contains("\"device_keys\":2"), "{audit}");
}
