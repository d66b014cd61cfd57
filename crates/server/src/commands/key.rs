//! `portcullis key list|rotate`: signing keys through the admin API.

use serde_json::{json, Value};

use super::api::AdminApi;
use super::output::{print_json, print_table, rfc3339};
use super::CommandError;
use crate::cli::ApiArgs;
use crate::cli::KeyCommand;

const COLUMNS: &[&str] = &[
    "kid",
    "alg",
    "backend",
    "state",
    "since",
    "published",
    "signing",
];

/// Runs one key subcommand.
pub fn run(cmd: KeyCommand, api: &ApiArgs) -> Result<(), CommandError> {
    let (api, keys) = match cmd {
        KeyCommand::List => {
            let keys = AdminApi::connect(api)?.call("GET", "/keys", None)?;
            (api, keys)
        }
        KeyCommand::Rotate { compromised } => {
            let body = json!({ "compromised": compromised });
            let keys = AdminApi::connect(api)?.call("POST", "/keys/rotate", Some(&body))?;
            (api, keys)
        }
        KeyCommand::Retire { kid } => {
            // Kids are restricted to URL-safe characters; anything else cannot name a key.
            let kid: String = kid
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || "-_.:@".contains(*c))
                .collect();
            let keys =
                AdminApi::connect(api)?.call("POST", &format!("/keys/{kid}/retire"), None)?;
            (api, keys)
        }
        KeyCommand::Rewrap { .. } => {
            return Err(CommandError::Usage(
                "key rewrap runs offline: see `portcullis key rewrap --help`".into(),
            ))
        }
    };
    if api.json {
        print_json(&keys);
    } else {
        let mut rows = keys.as_array().cloned().unwrap_or_default();
        for r in &mut rows {
            r["since"] = r["state_changed_at"]
                .as_i64()
                .map(rfc3339)
                .map(Value::from)
                .unwrap_or_default();
        }
        print_table(COLUMNS, &rows);
    }
    Ok(())
}
