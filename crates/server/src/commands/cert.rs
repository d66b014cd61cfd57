//! `portcullis cert list|show|revoke` through the admin API.

use serde_json::json;

use super::api::AdminApi;
use super::output::{print_fields, print_json, print_table};
use super::CommandError;
use crate::cli::ApiArgs;
use crate::cli_pki::CertCommand;

const COLUMNS: &[&str] = &[
    "serial",
    "device_id",
    "status",
    "not_after",
    "revocation_reason",
];

pub fn run(cmd: CertCommand, api: &ApiArgs) -> Result<(), CommandError> {
    match cmd {
        CertCommand::List {
            device,
            revoked,
            limit,
            after,
        } => {
            let mut path = format!("/certificates?limit={limit}");
            if let Some(device) = device {
                path.push_str(&format!("&device_id={device}"));
            }
            if revoked {
                path.push_str("&revoked=true");
            }
            if let Some(after) = after {
                path.push_str(&format!("&after={after}"));
            }
            let page = AdminApi::connect(api)?.call("GET", &path, None)?;
            if api.json {
                print_json(&page);
            } else {
                let rows = page["certificates"].as_array().cloned().unwrap_or_default();
                print_table(COLUMNS, &rows);
                if let Some(next) = page["next"].as_str() {
                    eprintln!("more: --after {next}");
                }
            }
        }
        CertCommand::Show { serial } => {
            let cert =
                AdminApi::connect(api)?.call("GET", &format!("/certificates/{serial}"), None)?;
            if api.json {
                print_json(&cert);
            } else {
                print_fields(&cert);
            }
        }
        CertCommand::Revoke { serial, reason } => {
            let cert = AdminApi::connect(api)?.call(
                "POST",
                &format!("/certificates/{serial}/revoke"),
                Some(&json!({ "reason": reason })),
            )?;
            if api.json {
                print_json(&cert);
            } else {
                print_fields(&cert);
            }
        }
    }
    Ok(())
}
