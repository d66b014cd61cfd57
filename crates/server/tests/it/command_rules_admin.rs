//! The command policy's rules through the admin API (`/admin/v1/commands/rules`) and the CLI
//! (`portcullis command rules show|set`, `portcullis command send|approve|show|list`) of a
//! running node: the configuration's rules shown read-only, the admin rules replaced whole and
//! in force at once, invalid rules and reused names refused with the core's message, no token
//! no rules, every change audited.

use std::process::Command;

use serde_json::{json, Value};

use crate::support::{Answer, Node, BIN};

/// One configuration rule, as `[gateway.commands]` in the environment.
const CONFIG_RULES: &str = concat!(
    r#"{ rules = [{ name = "ops", principals = { scopes = ["ops"] }, "#,
    r#"commands = ["reboot"] }] }"#
);

fn with_config_rules() -> Node {
    Node::start_with_env(&[("PORTCULLIS_GATEWAY__COMMANDS", CONFIG_RULES)])
}

fn rules_call(node: &Node, method: &str, token: Option<&str>, body: Option<Value>) -> Answer {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    node.request(
        method,
        "/admin/v1/commands/rules",
        (!body.is_empty()).then_some("application/json"),
        &headers,
        body.as_bytes(),
    )
}

fn names(rules: &Value) -> Vec<&str> {
    rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect()
}

fn audit_actions(node: &Node) -> Vec<String> {
    node.cli_json(&["audit", "list"])["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["action"].as_str().map(str::to_owned))
        .collect()
}

fn valve_rule() -> Value {
    json!({
        "name": "valve-operators",
        "principals": {"clients": ["control-service"], "scopes": ["commands:valve"]},
        "commands": ["valve.open", "valve.calibrate.*"],
        "devices": {"models": ["valve-v2"], "attributes": {"site": "plant-1"}},
        "args": {
            "position": {"min": 0, "max": 100, "integer": true, "required": true},
            "mode": {"one_of": ["auto", "manual"]}
        },
        "rate_per_minute": 10,
        "approvals": 2
    })
}

#[test]
fn command_rules_are_read_replaced_validated_and_audited_through_the_admin_api() {
    let node = with_config_rules();
    let token = node.admin_token();

    let shown = rules_call(&node, "GET", Some(&token), None);
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert_eq!(names(&shown.json["config"]), ["ops"]);
    assert_eq!(shown.json["admin"], json!([]));

    // Valid rules replace the admin list, in order, and read back as sent (defaults filled).
    let second =
        json!({"name": "door", "principals": {"scopes": ["doors"]}, "commands": ["door.open"]});
    let put = rules_call(
        &node,
        "PUT",
        Some(&token),
        Some(json!({"rules": [valve_rule(), second]})),
    );
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(names(&put.json["admin"]), ["valve-operators", "door"]);
    let shown = rules_call(&node, "GET", Some(&token), None);
    assert_eq!(names(&shown.json["config"]), ["ops"]);
    assert_eq!(names(&shown.json["admin"]), ["valve-operators", "door"]);
    let valve = &shown.json["admin"][0];
    assert_eq!(valve["approvals"], 2);
    assert_eq!(valve["args"]["position"]["type"], "number");
    assert_eq!(valve["args"]["mode"]["one_of"], json!(["auto", "manual"]));
    assert_eq!(shown.json["admin"][1]["approvals"], 1);

    // Refused with the core's message, and nothing changes: a configuration rule's name, a
    // name used twice, a bare "*", a rule without principals, an unknown member.
    let refused = |body: Value, expect: &str| {
        let answer = rules_call(&node, "PUT", Some(&token), Some(body.clone()));
        assert_eq!(answer.status, 400, "{body}: {}", answer.text);
        let detail = answer.json["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(expect), "{body}: {detail}");
        assert!(answer
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/problem+json")));
    };
    let named =
        |name: &str| json!({"name": name, "principals": {"clients": ["c"]}, "commands": ["a"]});
    refused(
        json!({"rules": [named("ops")]}),
        "the name 'ops' is used twice",
    );
    refused(
        json!({"rules": [named("x"), named("x")]}),
        "the name 'x' is used twice",
    );
    refused(
        json!({"rules": [{"name": "all", "principals": {"clients": ["c"]}, "commands": ["*"]}]}),
        "command pattern",
    );
    refused(
        json!({"rules": [{"name": "nobody", "principals": {}, "commands": ["a"]}]}),
        "principals must list at least one client or scope",
    );
    refused(
        json!({"rules": [{"name": "r", "principals": {"clients": ["c"]}, "commands": ["a"],
                          "args": {"p": {"min": 5, "max": 1}}}]}),
        "min must not exceed max",
    );
    refused(
        json!({"rules": [{"name": "r", "principals": {"clients": ["c"]}, "commands": ["a"],
                          "args": {"p": {"type": "number", "min": null}}}]}),
        "args.p.min is null",
    );
    refused(json!({"rules": [named("y")], "extra": 1}), "extra");
    refused(json!({}), "rules");
    let shown = rules_call(&node, "GET", Some(&token), None);
    assert_eq!(names(&shown.json["admin"]), ["valve-operators", "door"]);

    // No token, no rules; a token without the admin scope neither.
    assert_eq!(rules_call(&node, "GET", None, None).status, 401);
    let put = rules_call(&node, "PUT", None, Some(json!({"rules": []})));
    assert_eq!(put.status, 401);
    let (id, secret) = node.create_client(&["--scope", "commands:read"]);
    let other = node.token(&id, &secret, "");
    let other = other.json["access_token"].as_str().unwrap();
    assert_eq!(rules_call(&node, "GET", Some(other), None).status, 403);

    // An empty list removes every admin rule; the configuration's stay.
    let cleared = rules_call(&node, "PUT", Some(&token), Some(json!({"rules": []})));
    assert_eq!(cleared.status, 200, "{}", cleared.text);
    assert_eq!(cleared.json["admin"], json!([]));
    assert_eq!(names(&cleared.json["config"]), ["ops"]);

    let actions = audit_actions(&node);
    let changes = actions
        .iter()
        .filter(|a| *a == "command.rules_changed")
        .count();
    assert_eq!(changes, 2, "{actions:?}");

    // The document describes both operations.
    let doc = node.get("/admin/v1/openapi.json").json;
    let path = &doc["paths"]["/commands/rules"];
    assert!(path["get"].is_object() && path["put"].is_object(), "{path}");
    assert!(path["put"]["responses"]["409"].is_object());
    assert_eq!(
        doc["components"]["schemas"]["CommandRule"]["required"],
        json!(["name", "principals", "commands"])
    );
}

#[test]
fn command_rules_are_set_from_a_toml_file_and_shown_as_one_by_the_cli() {
    let node = with_config_rules();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.toml");
    std::fs::write(
        &file,
        r#"
[[rules]]
name = "valve-operators"
principals = { clients = ["control-service"], scopes = ["commands:valve"] }
commands = ["valve.open", "valve.close", "valve.calibrate.*"]
devices = { ids = ["valve-7"], models = ["valve-v2"], attributes = { site = "plant-1" } }
rate_per_minute = 10
approvals = 2

[rules.args]
position = { min = 0, max = 100, integer = true, required = true }
mode = { one_of = ["auto", "manual"] }
force = { type = "bool" }

[[rules]]
name = "door"
principals = { scopes = ["doors"] }
commands = ["door.*"]
"#,
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let set = node.cli_json(&["command", "rules", "set", "--file", file]);
    assert_eq!(names(&set["admin"]), ["valve-operators", "door"]);
    assert_eq!(names(&set["config"]), ["ops"]);
    let shown = node.cli_json(&["command", "rules", "show"]);
    assert_eq!(shown, set);
    assert_eq!(
        shown["admin"][0]["devices"]["attributes"]["site"],
        "plant-1"
    );

    // Without --json: the configuration's rules commented out, the admin rules as a file
    // that `rules set` takes back unchanged.
    let out = node.cli(&["command", "rules", "show"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("# name = \"ops\""), "{text}");
    let again = dir.path().join("again.toml");
    std::fs::write(&again, &text).unwrap();
    let set_again = node.cli_json(&["command", "rules", "set", "--file", again.to_str().unwrap()]);
    assert_eq!(set_again, set);

    // Refusals print the server's problem and change nothing.
    let fails = |content: &str, code: i32, expect: &str| {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, content).unwrap();
        let out = node.cli(&["command", "rules", "set", "--file", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(code), "{content}: {err}");
        assert!(err.contains(expect), "{content}: {err}");
    };
    fails(
        "[[rules]]\nname = \"ops\"\nprincipals = { clients = [\"c\"] }\ncommands = [\"a\"]\n",
        1,
        "400 Invalid request: invalid command rule: the name 'ops' is used twice",
    );
    fails(
        "[[rules]]\nname = \"all\"\nprincipals = { clients = [\"c\"] }\ncommands = [\"*\"]\n",
        1,
        "command pattern",
    );
    fails("[[rule]]\nname = \"typo\"\n", 2, "unknown field `rule`");
    let missing = node.cli(&[
        "command",
        "rules",
        "set",
        "--file",
        "/nonexistent/rules.toml",
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(node.cli_json(&["command", "rules", "show"]), set);

    // A file without rules removes them all.
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let cleared = node.cli_json(&["command", "rules", "set", "--file", empty.to_str().unwrap()]);
    assert_eq!(cleared["admin"], json!([]));
    assert!(audit_actions(&node).contains(&"command.rules_changed".to_owned()));
}

#[test]
fn command_rules_in_force_let_the_cli_send_approve_show_and_list() {
    let node = Node::start();
    node.cli_json(&[
        "device", "register", "--id", "valve-7", "--model", "valve-v2",
    ]);
    node.cli_json(&["trust", "key", "create", "--role", "commands"]);
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    // The bootstrap admin sends; a second client approves the four-eyes command.
    std::fs::write(
        &rules,
        r#"
[[rules]]
name = "operators"
principals = { clients = ["portcullis-admin"] }
commands = ["valve.open"]
args = { position = { min = 0, max = 100, integer = true, required = true }, mode = { type = "string" } }

[[rules]]
name = "calibration"
principals = { clients = ["portcullis-admin"], scopes = ["commands:critical"] }
commands = ["valve.calibrate.*"]
approvals = 2
"#,
    )
    .unwrap();
    node.cli_json(&["command", "rules", "set", "--file", rules.to_str().unwrap()]);

    let sent = node.cli_json(&[
        "command",
        "send",
        "valve-7",
        "valve.open",
        "--arg",
        "position=40",
        "--arg",
        "mode=auto",
    ]);
    assert_eq!(sent["state"], "queued", "{sent}");
    assert_eq!(sent["args"], json!({"position": 40, "mode": "auto"}));
    assert_eq!(sent["sender"], "portcullis-admin");
    let out = node.cli(&[
        "command",
        "send",
        "valve-7",
        "valve.open",
        "--args-json",
        r#"{"position": 7}"#,
        "--ttl",
        "60",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(line.trim_end().ends_with("\tqueued"), "{line}");

    // A refusal names the rule and why.
    let out = node.cli(&[
        "command",
        "send",
        "valve-7",
        "valve.open",
        "--arg",
        "position=400",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("403"), "{err}");
    assert!(
        err.contains("rule: operators") && err.contains("reason: argument_out_of_range"),
        "{err}"
    );

    // Four eyes: pending until another client approves; the sender cannot.
    let pending = node.cli_json(&["command", "send", "valve-7", "valve.calibrate.zero"]);
    assert_eq!(pending["state"], "pending_approval");
    let cid = pending["command_id"].as_str().unwrap().to_owned();
    let out = node.cli(&["command", "approve", &cid]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("reason: approver_is_sender"));
    let approver = node.cli_json(&[
        "client",
        "create",
        "--name",
        "approver",
        "--scope",
        "commands:critical",
    ]);
    let credential = dir.path().join("approver.json");
    std::fs::write(&credential, approver.to_string()).unwrap();
    let out = Command::new(BIN)
        .args(["command", "approve", &cid, "--json", "--server", &node.base])
        .arg("--admin-credential")
        .arg(&credential)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let approved: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(approved["state"], "queued");
    assert_eq!(approved["approver"], approver["client_id"]);

    let shown = node.cli_json(&["command", "show", &cid]);
    assert_eq!(shown["state"], "queued");
    assert_eq!(shown["rule"], "calibration");

    // The bootstrap admin reads every command (commands:read).
    let listed = node.cli_json(&["command", "list", "--device", "valve-7"]);
    let commands = listed["commands"].as_array().unwrap();
    assert_eq!(commands.len(), 3, "{listed}");
    assert_eq!(commands[2]["command_id"], cid.as_str());
    let first = commands[0]["command_id"].as_str().unwrap().to_owned();
    let page = node.cli_json(&[
        "command", "list", "--device", "valve-7", "--after", &first, "--limit", "1",
    ]);
    assert_eq!(page["commands"].as_array().unwrap().len(), 1);
    assert_eq!(page["commands"][0]["command_id"], commands[1]["command_id"]);
    let out = node.cli(&["command", "list", "--device", "valve-7"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("valve.calibrate.zero"));
}
