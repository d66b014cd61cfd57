//! `portcullis device ...` through the admin API. `device import` reads a manufacturing list
//! (CSV), sends it in chunks with a progress bar, and reports what was registered, what
//! already existed and which rows were rejected, by line number and reason.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use serde_json::{json, Map, Value};

use super::api::AdminApi;
use super::output::{print_fields, print_json, print_table};
use super::CommandError;
use crate::cli::ApiArgs;
use crate::cli_pki::DeviceCommand;

const COLUMNS: &[&str] = &["device_id", "state", "model", "enrollment_pending"];
/// Rows per import request (well under the API's 10 000 and its 8 MiB body limit).
const CHUNK: usize = 5_000;

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
        DeviceCommand::Import { file, secrets_out } => import(api, &file, secrets_out.as_deref())?,
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
    writeln!(out, "device_id,enrollment_secret").map_err(write_err)?;
    let client = AdminApi::connect(api)?;
    let progress = indicatif::ProgressBar::new(rows.len() as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} devices  {per_sec}  eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (mut registered, mut existing) = (0usize, 0usize);
    for chunk in rows.chunks(CHUNK) {
        let body = json!({ "devices": chunk.iter().map(|r| r.body.clone()).collect::<Vec<_>>() });
        let report = client.call("POST", "/devices/import", Some(&body))?;
        for r in report["registered"].as_array().into_iter().flatten() {
            writeln!(
                out,
                "{},{}",
                r["device_id"].as_str().unwrap_or(""),
                r["enrollment_secret"].as_str().unwrap_or("")
            )
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
        print_json(&json!({
            "registered": registered,
            "existing": existing,
            "rejected": rejected.iter().map(|(line, reason)| json!({"line": line, "reason": reason})).collect::<Vec<_>>(),
        }));
    } else {
        eprintln!(
            "registered {registered}, already registered {existing}, rejected {}",
            rejected.len()
        );
        for (line, reason) in &rejected {
            eprintln!("  line {line}: {reason}");
        }
    }
    Ok(())
}
