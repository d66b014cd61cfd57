//! `portcullis alerts list|show|ack`.

use super::api::AdminApi;
use super::output::{print_fields, print_json, print_table, rfc3339};
use super::values::path_segment;
use super::CommandError;
use crate::cli::{AlertsCommand, ApiArgs};

/// Runs one alerts subcommand.
pub fn run(cmd: AlertsCommand, api: &ApiArgs) -> Result<(), CommandError> {
    // Reading takes `portcullis:admin` or `audit:read` (an auditor's credential), acknowledging
    // `portcullis:admin`.
    let admin = match cmd {
        AlertsCommand::Ack { .. } => AdminApi::connect(api)?,
        _ => AdminApi::connect_as_client(api)?,
    };
    let alert = match cmd {
        AlertsCommand::List {
            state,
            limit,
            before,
        } => {
            let mut path = format!("/alerts?limit={limit}");
            if let Some(state) = state {
                path.push_str(&format!("&state={}", path_segment(&state)));
            }
            if let Some(before) = before {
                path.push_str(&format!("&before={}", path_segment(&before)));
            }
            let page = admin.call("GET", &path, None)?;
            if api.json {
                print_json(&page);
            } else {
                let mut rows = page["alerts"].as_array().cloned().unwrap_or_default();
                for r in &mut rows {
                    if let Some(at) = r["raised_at"].as_i64() {
                        r["raised_at"] = rfc3339(at).into();
                    }
                    r["key"] = r["detail"]["key"].clone();
                    // The rule's configured action (what it did is in the `alert.raised`
                    // audit record and the webhook's body).
                    r["action"] = r["detail"]["action"].clone();
                }
                print_table(
                    &["id", "raised_at", "rule", "key", "state", "action"],
                    &rows,
                );
                if let Some(next) = page["next"].as_str() {
                    eprintln!("more: --before {next}");
                }
            }
            return Ok(());
        }
        AlertsCommand::Show { id } => {
            admin.call("GET", &format!("/alerts/{}", alert_id(&id)?), None)?
        }
        AlertsCommand::Ack { id } => {
            admin.call("POST", &format!("/alerts/{}/ack", alert_id(&id)?), None)?
        }
    };
    if api.json {
        print_json(&alert);
    } else {
        let mut alert = alert;
        for field in ["raised_at", "acked_at"] {
            if let Some(at) = alert[field].as_i64() {
                alert[field] = rfc3339(at).into();
            }
        }
        print_fields(&alert);
    }
    Ok(())
}

/// An alert id as the API names them (64 lowercase hex digits): anything else is a usage
/// error here rather than a puzzling 404 (`..` would even leave the alerts' path).
fn alert_id(id: &str) -> Result<&str, CommandError> {
    if id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(id)
    } else {
        Err(CommandError::Usage(format!(
            "{id:?} is not an alert id (64 lowercase hex digits, as `alerts list` shows)"
        )))
    }
}
