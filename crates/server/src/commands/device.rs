//! `portcullis device ...` through the admin API. `device import` reads a manufacturing list
//! (CSV), sends it in chunks with a progress bar, and reports what was registered, what
//! already existed and which rows were rejected, by line number and reason; with
//! `--with-keys` it also creates a symmetric key per new device. `device key ...` manages one
//! device's symmetric keys.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use serde_json::{json, Map, Value};

use super::api::AdminApi;
use super::output::{print_fields, print_json, print_table, rfc3339};
use super::CommandError;
use crate::cli::ApiArgs;
use crate::cli_pki::{DeviceCommand, DeviceKeyCommand};

const COLUMNS: &[&str] = &["device_id", "state", "model", "enrollment_pending"];
/// Rows per import request (well under the API's 10 000 and its 8 MiB body limit).
const CHUNK: usize = 5_000;
/// Key creations in flight at once during `import --with-keys`.
const KEY_WORKERS: usize = 8;

pub fn run(cmd: DeviceCommand, api: &ApiArgs) -> Result<(), CommandError> {
    match cmd {
        DeviceCommand::Register { id, model, attrs } => {
            let mut body = Map::new();
            body.insert("device_id".into(), json!(id));
            if let Some(model) = model {
                body.insert("model".into(), json!(model));
            }
            let mut attr_map = Map::new();
            for attr in attrs {
                let (k, v) = attr.split_once('=').ok_or_else(|| {
                    CommandError::Usage(format!("--attr {attr:?} must be KEY=VALUE"))
                })?;
                attr_map.insert(k.to_owned(), json!(v));
            }
            body.insert("attrs".into(), Value::Object(attr_map));
            let device =
                AdminApi::connect(api)?.call("POST", "/devices", Some(&Value::Object(body)))?;
            if api.json {
                print_json(&device);
            } else {
                print_fields(&device);
                eprintln!(
                    "\nThe enrollment secret is shown only once: provision it into the device now."
                );
            }
        }
        DeviceCommand::Import {
            file,
            secrets_out,
            with_keys,
        } => import(api, &file, secrets_out.as_deref(), with_keys)?,
        DeviceCommand::List { limit, after } => {
            let mut path = format!("/devices?limit={limit}");
            if let Some(after) = after {
                path.push_str(&format!("&after={after}"));
            }
            let page = AdminApi::connect(api)?.call("GET", &path, None)?;
            if api.json {
                print_json(&page);
            } else {
                let rows = page["devices"].as_array().cloned().unwrap_or_default();
                print_table(COLUMNS, &rows);
                if let Some(next) = page["next"].as_str() {
                    eprintln!("more: --after {next}");
                }
            }
        }
        DeviceCommand::Show { id } => {
            let device = AdminApi::connect(api)?.call("GET", &format!("/devices/{id}"), None)?;
            show(&api.json, &device);
        }
        DeviceCommand::Suspend { id } => set_state(api, &id, "suspended")?,
        DeviceCommand::Resume { id } => set_state(api, &id, "registered")?,
        DeviceCommand::Decommission { id } => set_state(api, &id, "decommissioned")?,
        DeviceCommand::Revoke { id, reason } => {
            let mut body = Map::new();
            if let Some(reason) = reason {
                body.insert("reason".into(), json!(reason));
            }
            let out = AdminApi::connect(api)?.call(
                "POST",
                &format!("/devices/{id}/revoke"),
                Some(&Value::Object(body)),
            )?;
            if api.json {
                print_json(&out);
            } else {
                print_fields(&out["device"]);
                let n = out["revoked"].as_array().map_or(0, Vec::len);
                eprintln!("{n} certificate(s) revoked");
            }
        }
        DeviceCommand::Key(cmd) => key(cmd, api)?,
    }
    Ok(())
}

/// `device key create|rotate|list|delete`.
fn key(cmd: DeviceKeyCommand, api: &ApiArgs) -> Result<(), CommandError> {
    let client = AdminApi::connect(api)?;
    match cmd {
        DeviceKeyCommand::Create { id } => {
            let created = client.call("POST", &format!("/devices/{id}/keys"), None)?;
            let shown = json!({
                "device_id": created["device_id"],
                "key_id": created["key_id"],
                "key": created["key"],
            });
            if api.json {
                print_json(&shown);
            } else {
                print_fields(&shown);
                eprintln!("\nThe key is shown only once: provision it into the device now.");
            }
        }
        DeviceKeyCommand::Rotate { id, overlap } => {
            let rotated = client.call(
                "POST",
                &format!("/devices/{id}/keys/rotate"),
                Some(&json!({ "overlap_secs": overlap })),
            )?;
            if api.json {
                print_json(&rotated);
            } else {
                print_fields(&rotated);
                let until = rotated["others_expire_at"]
                    .as_i64()
                    .map_or_else(String::new, rfc3339);
                eprintln!(
                    "\nThe key is shown only once: provision it into the device now. Its older \
                     keys stop working at {until}."
                );
            }
        }
        DeviceKeyCommand::List { id } => {
            let list = client.call("GET", &format!("/devices/{id}/keys"), None)?;
            if api.json {
                print_json(&list);
            } else {
                let rows: Vec<Value> = list["keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|k| {
                        json!({
                            "key_id": k["key_id"],
                            "created_at": k["created_at"].as_i64().map(rfc3339),
                            "expires_at": k["expires_at"].as_i64().map(rfc3339),
                        })
                    })
                    .collect();
                print_table(&["key_id", "created_at", "expires_at"], &rows);
            }
        }
        DeviceKeyCommand::Delete { id, key_id } => {
            client.call("DELETE", &format!("/devices/{id}/keys/{key_id}"), None)?;
            if api.json {
                print_json(&json!({ "device_id": id, "key_id": key_id, "deleted": true }));
            } else {
                eprintln!("deleted key {key_id} of device {id}");
            }
        }
    }
    Ok(())
}

fn show(json_out: &bool, device: &Value) {
    if *json_out {
        print_json(device);
    } else {
        print_fields(device);
    }
}

fn set_state(api: &crate::cli::ApiArgs, id: &str, state: &str) -> Result<(), CommandError> {
    let device = AdminApi::connect(api)?.call(
        "PATCH",
        &format!("/devices/{id}"),
        Some(&json!({ "state": state })),
    )?;
    show(&api.json, &device);
    if device.get("enrollment_secret").is_some() && !api.json {
        eprintln!("\nA new enrollment secret was issued: the device enrolls again with it.");
    }
    Ok(())
}

/// One CSV row turned into an import row, with its line number for the report.
struct Row {
    line: u64,
    device_id: String,
    body: Value,
}

/// A row refused before or by the server: its line number and why.
type Rejected = (u64, String);

/// Reads the CSV: a header with `device_id`, optionally `model`, other columns attributes.
fn read_csv(file: &Path) -> Result<(Vec<Row>, Vec<Rejected>), CommandError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(file)
        .map_err(|e| CommandError::Usage(format!("{}: {e}", file.display())))?;
    let headers = reader
        .headers()
        .map_err(|e| CommandError::Usage(format!("{}: {e}", file.display())))?
        .clone();
    let id_col = headers
        .iter()
        .position(|h| h == "device_id")
        .ok_or_else(|| {
            CommandError::Usage(format!(
                "{}: the header must name a device_id column",
                file.display()
            ))
        })?;
    let model_col = headers.iter().position(|h| h == "model");
    let mut rows = Vec::new();
    let mut rejected = Vec::new();
    // A list is often assembled from several sources: the same id twice is reported, not
    // silently merged.
    let mut seen: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                rejected.push((line, format!("unreadable row: {e}")));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let device_id = record.get(id_col).unwrap_or("").to_owned();
        if let Some(first) = seen.get(&device_id) {
            rejected.push((line, format!("{device_id}: duplicate of line {first}")));
            continue;
        }
        seen.insert(device_id.clone(), line);
        let mut attrs = Map::new();
        for (i, value) in record.iter().enumerate() {
            if i != id_col && Some(i) != model_col && !value.is_empty() {
                attrs.insert(headers.get(i).unwrap_or("").to_owned(), json!(value));
            }
        }
        let mut body = Map::new();
        body.insert("device_id".into(), json!(device_id));
        if let Some(model) = model_col
            .and_then(|c| record.get(c))
            .filter(|m| !m.is_empty())
        {
            body.insert("model".into(), json!(model));
        }
        body.insert("attrs".into(), Value::Object(attrs));
        rows.push(Row {
            line,
            device_id,
            body: Value::Object(body),
        });
    }
    Ok((rows, rejected))
}

fn import(
    api: &crate::cli::ApiArgs,
    file: &Path,
    secrets_out: Option<&Path>,
    with_keys: bool,
) -> Result<(), CommandError> {
    let (rows, mut rejected) = read_csv(file)?;
    let mut out: Box<dyn std::io::Write> = match secrets_out {
        // A new file only (O_EXCL, which also refuses a symlink planted at the path): an
        // existing file would keep its old mode and owner, and one-time secrets do not go
        // where someone else may read them, as admin.json is written.
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => CommandError::Usage(format!(
                        "{}: already exists; the secrets file must be a new file",
                        path.display()
                    )),
                    _ => CommandError::Usage(format!("{}: {e}", path.display())),
                })?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let write_err = |e: std::io::Error| CommandError::Failed(format!("writing secrets: {e}"));
    let header = if with_keys {
        "device_id,enrollment_secret,device_key_id,device_key"
    } else {
        "device_id,enrollment_secret"
    };
    writeln!(out, "{header}").map_err(write_err)?;
    let client = AdminApi::connect(api)?;
    let progress = indicatif::ProgressBar::new(rows.len() as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} devices  {per_sec}  eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (mut registered, mut existing, mut keys_created) = (0usize, 0usize, 0usize);
    let mut key_failures: Vec<(String, String)> = Vec::new();
    for chunk in rows.chunks(CHUNK) {
        let body = json!({ "devices": chunk.iter().map(|r| r.body.clone()).collect::<Vec<_>>() });
        let report = client.call("POST", "/devices/import", Some(&body))?;
        let new: Vec<(String, String)> = report["registered"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let field = |name: &str| r[name].as_str().unwrap_or("").to_owned();
                (field("device_id"), field("enrollment_secret"))
            })
            .collect();
        let keys = if with_keys {
            let ids: Vec<&str> = new.iter().map(|(id, _)| id.as_str()).collect();
            create_keys(&client, &ids)
        } else {
            Vec::new()
        };
        for (i, (id, secret)) in new.iter().enumerate() {
            match keys.get(i) {
                None => writeln!(out, "{id},{secret}"),
                Some(Ok((key_id, key))) => {
                    keys_created += 1;
                    writeln!(out, "{id},{secret},{key_id},{key}")
                }
                Some(Err(reason)) => {
                    key_failures.push((id.clone(), reason.clone()));
                    writeln!(out, "{id},{secret},,")
                }
            }
            .map_err(write_err)?;
            registered += 1;
        }
        existing += report["existing"].as_array().map_or(0, Vec::len);
        for r in report["rejected"].as_array().into_iter().flatten() {
            let index = r["index"].as_u64().unwrap_or(0) as usize;
            let row = chunk.get(index);
            rejected.push((
                row.map_or(0, |r| r.line),
                format!(
                    "{}: {}",
                    row.map_or("", |r| r.device_id.as_str()),
                    r["reason"].as_str().unwrap_or("rejected")
                ),
            ));
        }
        progress.inc(chunk.len() as u64);
    }
    out.flush().map_err(write_err)?;
    progress.finish_and_clear();
    rejected.sort();
    if api.json && secrets_out.is_some() {
        let mut summary = json!({
            "registered": registered,
            "existing": existing,
            "rejected": rejected.iter().map(|(line, reason)| json!({"line": line, "reason": reason})).collect::<Vec<_>>(),
        });
        if with_keys {
            summary["keys_created"] = json!(keys_created);
            summary["key_failures"] = key_failures
                .iter()
                .map(|(id, reason)| json!({"device_id": id, "reason": reason}))
                .collect();
        }
        print_json(&summary);
    } else {
        eprintln!(
            "registered {registered}, already registered {existing}, rejected {}",
            rejected.len()
        );
        for (line, reason) in &rejected {
            eprintln!("  line {line}: {reason}");
        }
        if with_keys {
            eprintln!("created {keys_created} device keys");
            for (id, reason) in &key_failures {
                eprintln!("  no key for {id}: {reason}");
            }
        }
    }
    if !key_failures.is_empty() {
        return Err(CommandError::Failed(format!(
            "{} device(s) were registered without a key; create one each with \
             `portcullis device key create ID`",
            key_failures.len()
        )));
    }
    Ok(())
}

/// Creates one key for each device in `ids`, [`KEY_WORKERS`] requests at a time; answers, in
/// the order of `ids`, each key's id and material or why it could not be created.
fn create_keys(client: &AdminApi, ids: &[&str]) -> Vec<Result<(String, String), String>> {
    let create = |id: &str| -> Result<(String, String), String> {
        let created = client
            .call("POST", &format!("/devices/{id}/keys"), None)
            .map_err(|e| e.to_string())?;
        match (created["key_id"].as_str(), created["key"].as_str()) {
            (Some(key_id), Some(key)) => Ok((key_id.to_owned(), key.to_owned())),
            _ => Err("the server's answer carried no key".to_owned()),
        }
    };
    let per_worker = ids.len().div_ceil(KEY_WORKERS).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = ids
            .chunks(per_worker)
            .map(|part| {
                let handle = scope.spawn(move || part.iter().map(|id| create(id)).collect());
                (part.len(), handle)
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|(len, handle)| {
                handle
                    .join()
                    .unwrap_or_else(|_| vec![Err("the request thread failed".to_owned()); len])
            })
            .collect()
    })
}
