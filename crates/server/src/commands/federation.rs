//! `portcullis federation show|set`: workload federation's trust through the admin API.

use std::path::Path;

use serde_json::Value;

use super::api::AdminApi;
use super::output::print_json;
use super::CommandError;
use crate::cli::{ApiArgs, FederationCommand};

/// Runs one federation subcommand; both print the trust in force as JSON
/// (`{"config": {...}, "admin": {...}}`).
pub fn run(cmd: FederationCommand, api: &ApiArgs) -> Result<(), CommandError> {
    let client = AdminApi::connect(api)?;
    let shown = match cmd {
        FederationCommand::Show => client.call("GET", "/federation", None)?,
        FederationCommand::Set { file } => {
            client.call("PUT", "/federation", Some(&read_trust_file(&file)?))?
        }
    };
    print_json(&shown);
    for warning in shown["warnings"].as_array().into_iter().flatten() {
        eprintln!("warning: {}", warning.as_str().unwrap_or_default());
    }
    Ok(())
}

/// A trust file: the `[federation]` syntax (`[[issuers]]` and `[[policies]]` tables) in TOML,
/// or the same as a JSON object. The admin API judges its contents.
fn read_trust_file(path: &Path) -> Result<Value, CommandError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CommandError::Usage(format!("cannot read {}: {e}", path.display())))?;
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(&text)
            .map_err(|e| CommandError::Usage(format!("{} is not JSON: {e}", path.display())));
    }
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        CommandError::Usage(format!(
            "{} is not a trust file ([[issuers]] and [[policies]] tables): {e}",
            path.display()
        ))
    })?;
    serde_json::to_value(table).map_err(|e| CommandError::Usage(format!("{}: {e}", path.display())))
}
