//! `portcullis trust key create|list|retire` and `portcullis trust publish`: the gateway's
//! operator keys and trust list through the admin API (`/admin/v1/trust`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::api::AdminApi;
use super::output::{print_json, print_table, rfc3339};
use super::CommandError;
use crate::cli::{ApiArgs, TrustCommand, TrustKeyCommand, TrustRootCommand};

#[path = "trust_offline_root.rs"]
mod offline_root;

fn read(path: &std::path::Path) -> Result<Vec<u8>, CommandError> {
    std::fs::read(path)
        .map_err(|e| CommandError::Failed(format!("cannot read {}: {e}", path.display())))
}

fn write(path: &std::path::Path, bytes: &[u8]) -> Result<(), CommandError> {
    std::fs::write(path, bytes)
        .map_err(|e| CommandError::Failed(format!("cannot write {}: {e}", path.display())))
}

const COLUMNS: &[&str] = &["kid", "role", "alg", "backend", "state", "created"];

/// Runs one trust subcommand.
pub fn run(cmd: TrustCommand, api: &ApiArgs) -> Result<(), CommandError> {
    // The offline root's commands run where the root is: no server there.
    let cmd = match cmd {
        TrustCommand::Root(TrustRootCommand::Generate { alg, out }) => {
            return offline_root::generate(&alg, &out, api.json)
        }
        TrustCommand::Sign {
            root_key,
            draft,
            out,
        } => return offline_root::sign(&root_key, &draft, &out),
        other => other,
    };
    let client = AdminApi::connect(api)?;
    match cmd {
        TrustCommand::Root(_) | TrustCommand::Sign { .. } => {}
        TrustCommand::Key(TrustKeyCommand::Import { public_jwk }) => {
            let jwk: Value = serde_json::from_slice(&read(&public_jwk)?).map_err(|e| {
                CommandError::Failed(format!("{} is not JSON: {e}", public_jwk.display()))
            })?;
            let body = json!({ "role": "root", "public_jwk": jwk });
            let key = client.call("POST", "/trust/keys/import", Some(&body))?;
            show_keys(api, vec![key]);
        }
        TrustCommand::Draft { valid_days, out } => {
            let body = json!({ "valid_secs": i64::from(valid_days) * 86_400 });
            let draft = client.call("POST", "/trust/draft", Some(&body))?;
            let payload = URL_SAFE_NO_PAD
                .decode(draft["payload"].as_str().unwrap_or_default())
                .map_err(|_| CommandError::Failed("the server sent no draft".into()))?;
            write(&out, &payload)?;
            if api.json {
                print_json(&draft);
            } else {
                println!(
                    "draft of trust list v{} written to {}: sign it where the root is \
                     (portcullis trust sign), then portcullis trust upload",
                    draft["ver"],
                    out.display()
                );
            }
        }
        TrustCommand::Upload { signed } => {
            let body = json!({ "signed": URL_SAFE_NO_PAD.encode(read(&signed)?) });
            let list = client.call("POST", "/trust/upload", Some(&body))?;
            if api.json {
                print_json(&list);
            } else {
                println!("trust list v{} uploaded and served", list["ver"]);
            }
        }
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
