//! `portcullis trust key create|list|retire` and `portcullis trust publish`: the gateway's
//! operator keys and trust list through the admin API (`/admin/v1/trust`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::api::AdminApi;
use super::output::{print_json, print_table, rfc3339};
use super::CommandError;
use crate::cli::{ApiArgs, TrustCommand, TrustKeyCommand};

const COLUMNS: &[&str] = &["kid", "role", "alg", "backend", "state", "created"];

/// Runs one trust subcommand.
pub fn run(cmd: TrustCommand, api: &ApiArgs) -> Result<(), CommandError> {
    let client = AdminApi::connect(api)?;
    match cmd {
        TrustCommand::Key(TrustKeyCommand::List) => {
            let keys = client.call("GET", "/trust/keys", None)?;
            show_keys(api, keys.as_array().cloned().unwrap_or_default());
        }
        TrustCommand::Key(TrustKeyCommand::Create { role, alg }) => {
            let body = json!({ "role": role, "alg": alg });
            let key = client.call("POST", "/trust/keys", Some(&body))?;
            show_keys(api, vec![key]);
        }
        TrustCommand::Key(TrustKeyCommand::Retire { kid }) => {
            // Kids are URL-safe; anything else cannot name a key.
            let kid: String = kid
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || "-_.:@".contains(*c))
                .collect();
            let key = client.call("POST", &format!("/trust/keys/{kid}/retire"), None)?;
            show_keys(api, vec![key]);
        }
        TrustCommand::Publish { valid_days, out } => {
            let body = json!({ "valid_secs": i64::from(valid_days) * 86_400 });
            let list = client.call("POST", "/trust/publish", Some(&body))?;
            if let Some(path) = out {
                let signed = URL_SAFE_NO_PAD
                    .decode(list["signed"].as_str().unwrap_or_default())
                    .map_err(|_| CommandError::Failed("the server sent no signed list".into()))?;
                std::fs::write(&path, signed).map_err(|e| {
                    CommandError::Failed(format!("cannot write {}: {e}", path.display()))
                })?;
            }
            if api.json {
                print_json(&list);
            } else {
                println!(
                    "trust list v{} valid until {}, listing {}",
                    list["ver"],
                    list["exp"].as_i64().map(rfc3339).unwrap_or_default(),
                    list["kids"]
                        .as_array()
                        .map(|k| k
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", "))
                        .unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

fn show_keys(api: &ApiArgs, mut rows: Vec<Value>) {
    if api.json {
        print_json(&Value::Array(rows));
        return;
    }
    for r in &mut rows {
        r["created"] = r["created_at"]
            .as_i64()
            .map(rfc3339)
            .map(Value::from)
            .unwrap_or_default();
    }
    print_table(COLUMNS, &rows);
}
