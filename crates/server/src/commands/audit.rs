//! `portcullis audit list|verify`.

use super::api::{AdminApi, ApiError};
use super::output::{print_json, print_table};
use super::CommandError;
use crate::cli::ApiArgs;
use crate::cli::{AuditCommand, AuditKeyCommand};

/// Runs one audit subcommand.
pub fn run(cmd: AuditCommand, api: &ApiArgs) -> Result<(), CommandError> {
    match cmd {
        AuditCommand::List { limit, before } => {
            let mut path = format!("/audit?limit={limit}");
            if let Some(b) = before {
                path.push_str(&format!("&before={b}"));
            }
            let page = AdminApi::connect_with_scope(api, portcullis_admin::AUDIT_READ_SCOPE)?
                .call("GET", &path, None)?;
            if api.json {
                print_json(&page);
            } else {
                let mut rows = page["records"].as_array().cloned().unwrap_or_default();
                for r in &mut rows {
                    if let Some(at) = r["at"].as_i64() {
                        r["at"] = super::output::rfc3339(at).into();
                    }
                }
                print_table(
                    &["seq", "at", "actor", "action", "subject", "outcome"],
                    &rows,
                );
            }
        }
        AuditCommand::Key(cmd) => {
            let (method, path) = match cmd {
                AuditKeyCommand::List => ("GET", "/audit/keys"),
                AuditKeyCommand::Rotate => ("POST", "/audit/keys/rotate"),
            };
            let keys = AdminApi::connect(api)?.call(method, path, None)?;
            if api.json {
                print_json(&keys);
            } else {
                let mut rows = keys["keys"].as_array().cloned().unwrap_or_default();
                for r in &mut rows {
                    if let Some(at) = r["created_at"].as_i64() {
                        r["created_at"] = super::output::rfc3339(at).into();
                    }
                }
                print_table(&["kid", "created_at", "backend", "active"], &rows);
            }
        }
        AuditCommand::Archive { before, out } => super::audit_archive::archive(api, &before, &out)?,
        AuditCommand::Verify {
            archive: Some(file),
            jwks: Some(jwks),
            ..
        } => super::audit_archive::verify_file(&file, &jwks, api.json)?,
        AuditCommand::Verify {
            store_url: Some(url),
            password_file,
            jwks,
            ..
        } => {
            let store = super::StoreArg::new(&url, password_file.as_deref());
            let report = crate::runtime()?
                .block_on(super::audit_offline::verify(&store, jwks.as_deref()))
                .inspect_err(|e| {
                    if api.json {
                        print_json(&serde_json::json!({"ok": false, "error": e.to_string()}));
                    }
                })?;
            if api.json {
                print_json(&report);
            } else {
                print_verified(&report);
            }
        }
        AuditCommand::Verify { .. } => {
            // Administrators and auditors (`audit:read` alone) may both verify.
            match AdminApi::connect_as_client(api)?.call("POST", "/audit/verify", None) {
                Ok(report) => {
                    if api.json {
                        print_json(&report);
                    } else {
                        print_verified(&report);
                    }
                }
                Err(ApiError::Problem {
                    status: 409,
                    detail,
                    ..
                }) => {
                    if api.json {
                        print_json(&serde_json::json!({"ok": false, "error": detail}));
                    }
                    return Err(CommandError::Failed(format!(
                        "audit chain BROKEN: {detail}"
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// The human form of a `POST /audit/verify` report.
fn print_verified(report: &serde_json::Value) {
    let int = |key: &str| report[key].as_i64().unwrap_or(0);
    println!(
        "audit chain intact: {} records, last seq {}",
        int("records"),
        int("last_seq")
    );
    if int("archived_through") > 0 {
        let proven = if report["anchor_verified"].as_bool() == Some(true) {
            "signed by a verified checkpoint"
        } else {
            "NOT signed by a verified checkpoint here"
        };
        println!(
            "records up to seq {} are archived; the live chain continues from that anchor ({proven})",
            int("archived_through")
        );
    }
    if int("checkpoints_verified") > 0 {
        println!(
            "checkpoints: {} verified; the newest covers seq {} ({} records after it)",
            int("checkpoints_verified"),
            int("last_checkpoint_seq"),
            int("records_after_checkpoint")
        );
    } else {
        println!("checkpoints: none verified; nothing pins the chain against a rewrite");
    }
    if int("checkpoints_unverifiable") > 0 {
        println!(
            "warning: {} checkpoints could not be verified and prove nothing:",
            int("checkpoints_unverifiable")
        );
        for key in report["unverifiable_keys"].as_array().into_iter().flatten() {
            println!(
                "  key {}: {}",
                key["kid"].as_str().unwrap_or("?"),
                key["reason"].as_str().unwrap_or("?")
            );
        }
    }
}
