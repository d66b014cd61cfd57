//! `portcullis settings` and `portcullis update` (issue #13) against the real binary, with
//! the bootstrap credential (which holds the settings and updates scopes): settings set, set
//! again on the version read, refused on a stale one with the node's 409 detail, and shown; a
//! release uploaded from a file by the CLI stored under the file's SHA-256, a second one for
//! 10 % of the devices, both in the status table, one withdrawn; a client that may only read
//! told so before its upload; a publish naming an image elsewhere without its digest and size
//! refused by the CLI itself.

use portcullis_core::hex;
use serde_json::{json, Value};

use crate::support::gateway::publish_trust;
use crate::support::Node;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn settings_are_set_conditionally_and_shown_by_the_cli() {
    let node = Node::start();
    publish_trust(&node, &["settings"]);
    node.cli_json(&[
        "device",
        "register",
        "--id",
        "thermo-1",
        "--model",
        "thermostat-v2",
    ]);

    let first = node.cli_json(&[
        "settings",
        "set",
        "thermo-1",
        "--value",
        "setpoint=21.5",
        "--value",
        "mode=eco",
    ]);
    assert_eq!(first["version"], 1, "{first}");
    assert_eq!(first["values"], json!({"setpoint": 21.5, "mode": "eco"}));
    assert_eq!(first["updated_by"], "portcullis-admin");

    let second = node.cli_json(&[
        "settings",
        "set",
        "thermo-1",
        "--values-json",
        r#"{"setpoint": 22, "fan": [1, 2]}"#,
        "--if-version",
        "1",
    ]);
    assert_eq!(second["version"], 2, "{second}");

    // Someone changed them since version 1: refused with the node's reason.
    let stale = node.cli(&[
        "settings",
        "set",
        "thermo-1",
        "--value",
        "setpoint=19",
        "--if-version",
        "1",
    ]);
    assert_eq!(stale.status.code(), Some(1), "{}", stdout(&stale));
    let message = stderr(&stale);
    assert!(message.contains("409"), "{message}");
    assert!(
        message.contains("the device's settings are at version 2"),
        "{message}"
    );

    let shown = node.cli_json(&["settings", "get", "thermo-1"]);
    assert_eq!(shown["version"], 2);
    assert_eq!(shown["values"], json!({"setpoint": 22, "fan": [1, 2]}));
    assert_eq!(shown["applied_version"], Value::Null);
    let human = node.cli(&["settings", "get", "thermo-1"]);
    assert!(human.status.success(), "{}", stderr(&human));
    let text = stdout(&human);
    for line in [
        "device   thermo-1",
        "version  2",
        "applied  none reported yet",
        "  setpoint=22",
        "  fan=[1,2]",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }

    // Values are required, one way or the other; a malformed pair is the operator's mistake.
    let none = node.cli(&["settings", "set", "thermo-1"]);
    assert_eq!(none.status.code(), Some(2), "{}", stderr(&none));
    let both = node.cli(&[
        "settings",
        "set",
        "thermo-1",
        "--value",
        "a=1",
        "--values-json",
        "{}",
    ]);
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
    let malformed = node.cli(&["settings", "set", "thermo-1", "--value", "setpoint"]);
    assert_eq!(malformed.status.code(), Some(2));
    assert!(stderr(&malformed).contains("--value takes KEY=VALUE"));
    assert_eq!(
        node.cli_json(&["settings", "get", "thermo-1"])["version"],
        2,
        "nothing changed"
    );
}

#[test]
fn releases_are_published_from_a_file_listed_and_withdrawn_by_the_cli() {
    let node = Node::start();
    publish_trust(&node, &["updates"]);
    let dir = tempfile::tempdir().unwrap();
    let image: Vec<u8> = (0..300_000u32)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(5))
        .collect();
    let file = dir.path().join("cam-fw-1.0.bin");
    std::fs::write(&file, &image).unwrap();
    let digest =
        hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &image).as_ref());
    let file = file.to_str().unwrap();

    let first = node.cli_json(&[
        "update",
        "publish",
        "--model",
        "cam-v1",
        "--version",
        "1.0.0",
        "--file",
        file,
    ]);
    assert_eq!(first["release"], 1, "{first}");
    assert_eq!(first["sha256"], digest.as_str());
    assert_eq!(first["size"], 300_000);
    assert_eq!(first["withdrawn"], false);
    let stored = node.data_dir.join("updates").join(&digest);
    assert_eq!(std::fs::read(stored).unwrap(), image, "uploaded whole");

    let second = node.cli(&[
        "update",
        "publish",
        "--model",
        "cam-v1",
        "--version",
        "1.1.0",
        "--file",
        file,
        "--percent",
        "10",
        "--attr",
        "site=home",
        "--valid-days",
        "7",
    ]);
    assert!(second.status.success(), "{}", stderr(&second));
    let text = stdout(&second);
    assert!(text.contains("release    2\n"), "{text}");
    assert!(text.contains("target     site=home 10%\n"), "{text}");

    let status = node.cli_json(&["update", "status", "--model", "cam-v1"]);
    let releases = status["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 2, "{status}");
    assert_eq!(
        releases[1]["target"],
        json!({"percent": 10, "attributes": {"site": "home"}})
    );
    assert_eq!(
        releases[1]["exp"].as_i64().unwrap() - releases[1]["nbf"].as_i64().unwrap(),
        7 * 86_400
    );
    let table = node.cli(&["update", "status", "--model", "cam-v1"]);
    assert!(table.status.success(), "{}", stderr(&table));
    let table = stdout(&table);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    for column in [
        "RELEASE",
        "VERSION",
        "WITHDRAWN",
        "PUBLISHED",
        "TARGET",
        "DOWNLOADING",
        "INSTALLED",
        "FAILED",
        "REFUSED",
    ] {
        assert!(lines[0].contains(column), "{column}: {table}");
    }
    let row = |n: usize| lines[n].split_whitespace().collect::<Vec<_>>();
    assert_eq!(row(1)[..3], ["1", "1.0.0", "no"], "{table}");
    assert_eq!(row(2)[..3], ["2", "1.1.0", "no"], "{table}");
    assert!(lines[2].contains("site=home 10%"), "{table}");

    let withdrawn = node.cli(&["update", "withdraw", "--model", "cam-v1", "--release", "2"]);
    assert!(withdrawn.status.success(), "{}", stderr(&withdrawn));
    assert!(stdout(&withdrawn).contains("withdrawn  yes"));
    let status = node.cli_json(&["update", "status", "--model", "cam-v1"]);
    assert_eq!(status["releases"][0]["withdrawn"], false, "{status}");
    assert_eq!(status["releases"][1]["withdrawn"], true, "{status}");
    let table = stdout(&node.cli(&["update", "status", "--model", "cam-v1"]));
    let row2: Vec<&str> = table.lines().nth(2).unwrap().split_whitespace().collect();
    assert_eq!(row2[..3], ["2", "1.1.0", "yes"], "{table}");

    // A client that may only read is told so before the image is sent (the node would
    // refuse it unread); it still sees the status.
    let (id, secret) = node.create_client(&["--scope", "updates:read"]);
    let reader = dir.path().join("reader.json");
    std::fs::write(
        &reader,
        json!({"client_id": id, "client_secret": secret}).to_string(),
    )
    .unwrap();
    let as_reader = |args: &[&str]| {
        std::process::Command::new(crate::support::BIN)
            .args(args)
            .args(["--server", &node.base, "--admin-credential"])
            .arg(&reader)
            .output()
            .unwrap()
    };
    let refused = as_reader(&[
        "update",
        "publish",
        "--model",
        "cam-v1",
        "--version",
        "1.2.0",
        "--file",
        file,
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("lacks scope updates:write"),
        "{}",
        stderr(&refused)
    );
    let read = as_reader(&["update", "status", "--model", "cam-v1", "--json"]);
    assert!(read.status.success(), "{}", stderr(&read));
    let read: Value = serde_json::from_slice(&read.stdout).unwrap();
    assert_eq!(read["releases"].as_array().unwrap().len(), 2);

    // An image elsewhere needs its digest and size: the CLI says so and sends nothing.
    let url_only = node.cli(&[
        "update",
        "publish",
        "--model",
        "cam-v1",
        "--version",
        "2.0.0",
        "--url",
        "https://cdn.example/cam-fw-2.0.bin",
    ]);
    assert_eq!(url_only.status.code(), Some(2), "{}", stdout(&url_only));
    let message = stderr(&url_only);
    assert!(
        message.contains("--sha256") && message.contains("--size"),
        "{message}"
    );
    // Neither a file nor a URL; an unreadable file.
    let neither = node.cli(&[
        "update",
        "publish",
        "--model",
        "cam-v1",
        "--version",
        "2.0.0",
    ]);
    assert_eq!(neither.status.code(), Some(2));
    let missing = node.cli(&[
        "update",
        "publish",
        "--model",
        "cam-v1",
        "--version",
        "2.0.0",
        "--file",
        "/nonexistent/fw.bin",
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("cannot read the image"));
    // With all three, the image elsewhere is published.
    let elsewhere = node.cli_json(&[
        "update",
        "publish",
        "--model",
        "cam-v1",
        "--version",
        "2.0.0",
        "--url",
        "https://cdn.example/cam-fw-2.0.bin",
        "--sha256",
        &digest.to_uppercase(),
        "--size",
        "300000",
        "--devices",
        "cam-1,cam-2",
    ]);
    assert_eq!(elsewhere["release"], 3, "{elsewhere}");
    assert_eq!(elsewhere["url"], "https://cdn.example/cam-fw-2.0.bin");
    assert_eq!(elsewhere["sha256"], digest.as_str());
    assert_eq!(elsewhere["target"]["ids"], json!(["cam-1", "cam-2"]));
    assert_eq!(
        node.cli_json(&["update", "status", "--model", "cam-v1"])["releases"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}
