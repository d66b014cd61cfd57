//! `portcullis command send|approve|show|list`: commands to devices through the gateway's
//! command API (`/gateway/v1/devices/{id}/commands`, `/gateway/v1/commands/{cid}`), as the
//! client of the credential file; and `portcullis command rules show|set`: the command
//! policy's rules through the admin API (`/admin/v1/commands/rules`).

use std::path::Path;

use portcullis_core::command_policy::CommandRule;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::api::{AdminApi, ApiError};
use super::output::{print_json, print_table, rfc3339};
use super::values::{json_object, path_segment};
use super::CommandError;
use crate::cli::{ApiArgs, CommandCommand, CommandRulesCommand};

/// The scope that lets a client list (and read) every command.
const COMMANDS_READ: &str = "commands:read";

const COLUMNS: &[&str] = &["command_id", "name", "state", "sender", "seq", "created"];

/// Runs one command subcommand.
pub fn run(cmd: CommandCommand, api: &ApiArgs) -> Result<(), CommandError> {
    match cmd {
        CommandCommand::Send {
            device,
            name,
            args,
            args_json,
            ttl,
        } => {
            let args = json_object(&args, args_json.as_deref(), "--arg", "--args-json")?;
            let body = json!({ "name": name, "args": args, "ttl_secs": ttl });
            let client = AdminApi::connect_as_client(api).map_err(failed)?;
            let path = format!("/gateway/v1/devices/{}/commands", path_segment(&device));
            let command = client
                .call_root("POST", &path, Some(&body))
                .map_err(failed)?;
            if api.json {
                print_json(&command);
            } else {
                println!(
                    "{}\t{}",
                    text(&command["command_id"]),
                    text(&command["state"])
                );
            }
        }
        CommandCommand::Approve { cid } => {
            let client = AdminApi::connect_as_client(api).map_err(failed)?;
            let path = format!("/gateway/v1/commands/{}/approve", path_segment(&cid));
            let command = client.call_root("POST", &path, None).map_err(failed)?;
            show_command(api, &command);
        }
        CommandCommand::Show { cid } => {
            let client = AdminApi::connect_as_client(api).map_err(failed)?;
            let path = format!("/gateway/v1/commands/{}", path_segment(&cid));
            let command = client.call_root("GET", &path, None).map_err(failed)?;
            show_command(api, &command);
        }
        CommandCommand::List {
            device,
            after,
            limit,
        } => {
            let client = AdminApi::connect_with_scope(api, COMMANDS_READ).map_err(failed)?;
            let mut query = form_urlencoded::Serializer::new(String::new());
            if let Some(after) = &after {
                query.append_pair("after", after);
            }
            if let Some(limit) = limit {
                query.append_pair("limit", &limit.to_string());
            }
            let query = query.finish();
            let mut path = format!("/gateway/v1/devices/{}/commands", path_segment(&device));
            if !query.is_empty() {
                path.push('?');
                path.push_str(&query);
            }
            let page = client.call_root("GET", &path, None).map_err(failed)?;
            if api.json {
                print_json(&page);
            } else {
                let mut rows = page["commands"].as_array().cloned().unwrap_or_default();
                for r in &mut rows {
                    r["created"] = r["created_at"]
                        .as_i64()
                        .map(rfc3339)
                        .map(Value::from)
                        .unwrap_or_default();
                }
                print_table(COLUMNS, &rows);
            }
        }
        CommandCommand::Rules(cmd) => rules(cmd, api)?,
    }
    Ok(())
}

/// `command rules show|set`.
fn rules(cmd: CommandRulesCommand, api: &ApiArgs) -> Result<(), CommandError> {
    let client = AdminApi::connect(api).map_err(failed)?;
    let shown = match cmd {
        CommandRulesCommand::Show => client.call("GET", "/commands/rules", None),
        CommandRulesCommand::Set { file } => {
            let rules = read_rules_file(&file)?;
            client.call("PUT", "/commands/rules", Some(&json!({ "rules": rules })))
        }
    }
    .map_err(failed)?;
    if api.json {
        print_json(&shown);
    } else {
        print!("{}", rules_as_toml(&shown)?);
    }
    Ok(())
}

/// A rules file: `[[rules]]` tables and nothing else.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RulesFile<T> {
    #[serde(default = "Vec::new")]
    rules: Vec<T>,
}

/// Reads the rules of a TOML file as JSON for the admin API, which judges them.
fn read_rules_file(path: &Path) -> Result<Vec<Value>, CommandError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CommandError::Usage(format!("cannot read {}: {e}", path.display())))?;
    let file: RulesFile<Value> = toml::from_str(&text).map_err(|e| {
        CommandError::Usage(format!(
            "{} is not a rules file ([[rules]] tables): {e}",
            path.display()
        ))
    })?;
    Ok(file.rules)
}

/// The rules in force as TOML: the configuration's commented out (read-only), then the admin
/// API's as a file `rules set --file` takes back.
fn rules_as_toml(shown: &Value) -> Result<String, CommandError> {
    let list = |member: &str| -> Result<String, CommandError> {
        let rules: Vec<CommandRule> =
            serde_json::from_value(shown[member].clone()).map_err(|e| {
                CommandError::Failed(format!("the server sent rules that do not parse: {e}"))
            })?;
        toml::to_string(&RulesFile { rules })
            .map_err(|e| CommandError::Failed(format!("cannot print the rules as TOML: {e}")))
    };
    let mut out = String::from(
        "# From the configuration ([[gateway.commands.rules]]): read-only, evaluated first.\n",
    );
    for line in list("config")?.lines() {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            out.push_str(&format!("# {line}\n"));
        }
    }
    out.push_str("\n# Set through the admin API (portcullis command rules set --file):\n");
    out.push_str(&list("admin")?);
    Ok(out)
}

fn show_command(api: &ApiArgs, command: &Value) {
    if api.json {
        print_json(command);
        return;
    }
    let time = |v: &Value| v.as_i64().map(rfc3339).unwrap_or_default();
    for (label, value) in [
        ("command", text(&command["command_id"])),
        ("device", text(&command["device_id"])),
        ("name", text(&command["name"])),
        ("args", command["args"].to_string()),
        ("state", text(&command["state"])),
        ("sender", text(&command["sender"])),
        ("approver", text(&command["approver"])),
        ("rule", text(&command["rule"])),
        ("approvals", text(&command["approvals_required"])),
        ("seq", text(&command["seq"])),
        ("created", time(&command["created_at"])),
        ("expires", time(&command["expires_at"])),
        ("queued", time(&command["queued_at"])),
        ("delivered", time(&command["delivered_at"])),
        ("finished", time(&command["finished_at"])),
    ] {
        if !value.is_empty() {
            println!("{label:<10} {value}");
        }
    }
    if !command["output"].is_null() {
        println!("{:<10} {}", "output", command["output"]);
    }
}

/// A member as text: strings bare, null empty.
fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The server's answer to a failed request: its problem detail and, for a refused command,
/// the rule that refused it and why.
fn failed(e: ApiError) -> CommandError {
    match e {
        ApiError::Problem {
            status,
            title,
            detail,
            body,
        } => {
            let mut message = format!("{status} {title}: {detail}");
            if let Some(reason) = body["reason"].as_str() {
                let rule = body["rule"].as_str().unwrap_or("none matched");
                message.push_str(&format!(" (rule: {rule}; reason: {reason})"));
            }
            CommandError::Failed(message)
        }
        other => CommandError::Failed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_print_as_a_file_rules_set_takes_back() {
        let rule = json!({
            "name": "valve-operators",
            "principals": {"clients": ["control-service"], "scopes": ["commands:valve"]},
            "commands": ["valve.open", "valve.calibrate.*"],
            "devices": {"models": ["valve-v2"], "attributes": {"site": "plant-1"}},
            "args": {"position": {"min": 0, "max": 100, "integer": true, "required": true},
                     "mode": {"one_of": ["auto", "manual"]}},
            "rate_per_minute": 10,
            "approvals": 2,
        });
        let config =
            json!({"name": "ops", "principals": {"scopes": ["ops"]}, "commands": ["reboot"]});
        let shown = json!({"config": [config], "admin": [rule]});
        let printed = rules_as_toml(&shown).unwrap();
        assert!(printed.contains("# name = \"ops\""), "{printed}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rules.toml");
        std::fs::write(&file, &printed).unwrap();
        let read = read_rules_file(&file).unwrap();
        assert_eq!(read.len(), 1, "{printed}");
        let back: CommandRule = serde_json::from_value(read[0].clone()).unwrap();
        let want: CommandRule = serde_json::from_value(shown["admin"][0].clone()).unwrap();
        assert_eq!(back, want);
        // Nothing in force: an empty file that clears the admin rules.
        let empty = rules_as_toml(&json!({"config": [], "admin": []})).unwrap();
        std::fs::write(&file, &empty).unwrap();
        assert!(read_rules_file(&file).unwrap().is_empty(), "{empty}");
    }

    #[test]
    fn a_refused_command_names_its_rule_and_reason() {
        let e = failed(ApiError::Problem {
            status: 403,
            title: "Command refused".into(),
            detail: "refused: argument 'position' is out of range".into(),
            body: json!({"rule": "valve-operators", "reason": "argument_out_of_range"}),
        });
        let message = e.to_string();
        assert!(message.contains("403 Command refused"), "{message}");
        assert!(message.contains("rule: valve-operators"), "{message}");
        assert!(
            message.contains("reason: argument_out_of_range"),
            "{message}"
        );
    }
}
