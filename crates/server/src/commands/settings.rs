//! `portcullis settings get|set`: a device's desired settings through the gateway's settings
//! API (`GET/PUT /gateway/v1/devices/{id}/settings`), as the client of the credential file
//! (reading needs `settings:read` or `settings:write`, changing `settings:write`).

use serde_json::{json, Value};

use super::api::AdminApi;
use super::output::{cell, print_json, rfc3339};
use super::values::{json_object, path_segment};
use super::CommandError;
use crate::cli::{ApiArgs, SettingsCommand};

/// Runs one settings subcommand.
pub fn run(cmd: SettingsCommand, api: &ApiArgs) -> Result<(), CommandError> {
    let shown = match cmd {
        SettingsCommand::Get { device } => {
            let client = AdminApi::connect_as_client(api)?;
            client.call_root("GET", &settings_path(&device), None)?
        }
        SettingsCommand::Set {
            device,
            value,
            values_json,
            if_version,
        } => {
            let values = json_object(&value, values_json.as_deref(), "--value", "--values-json")?;
            let mut body = json!({ "values": values });
            if let Some(version) = if_version {
                body["if_version"] = json!(version);
            }
            let client = AdminApi::connect_as_client(api)?;
            client.call_root("PUT", &settings_path(&device), Some(&body))?
        }
    };
    if api.json {
        print_json(&shown);
    } else {
        print!("{}", describe(&shown));
    }
    Ok(())
}

fn settings_path(device: &str) -> String {
    format!("/gateway/v1/devices/{}/settings", path_segment(device))
}

/// The settings for a person: version, who set them and when, what the device applied, and
/// the values one per line as `--value` takes them.
fn describe(settings: &Value) -> String {
    let time = |v: &Value| v.as_i64().map(rfc3339).unwrap_or_default();
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        out.push_str(format!("{label:<8} {value}").trim_end());
        out.push('\n');
    };
    line("device", cell(&settings["device_id"]));
    line("version", cell(&settings["version"]));
    line(
        "updated",
        format!(
            "{} by {}",
            time(&settings["updated_at"]),
            cell(&settings["updated_by"])
        ),
    );
    line(
        "applied",
        match settings["applied_version"].as_u64() {
            Some(version) => format!("{version} at {}", time(&settings["applied_at"])),
            None => "none reported yet".to_owned(),
        },
    );
    let values = settings["values"].as_object().cloned().unwrap_or_default();
    line(
        "values",
        if values.is_empty() { "(none)" } else { "" }.to_owned(),
    );
    for (key, value) in &values {
        out.push_str(&format!("  {key}={value}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_as_version_applied_version_and_values() {
        let shown = json!({
            "device_id": "thermo-1", "version": 4, "values": {"setpoint": 21.5, "mode": "eco"},
            "updated_at": 0, "updated_by": "portcullis-admin",
            "applied_version": 3, "applied_at": 60,
        });
        assert_eq!(
            describe(&shown),
            "device   thermo-1\nversion  4\nupdated  1970-01-01T00:00:00Z by portcullis-admin\n\
             applied  3 at 1970-01-01T00:01:00Z\nvalues\n  mode=\"eco\"\n  setpoint=21.5\n"
        );
        let fresh = json!({"device_id": "t", "version": 1, "values": {}, "updated_at": 0,
                           "updated_by": "a", "applied_version": null, "applied_at": null});
        let text = describe(&fresh);
        assert!(text.contains("applied  none reported yet\n"), "{text}");
        assert!(text.ends_with("values   (none)\n"), "{text}");
    }
}
