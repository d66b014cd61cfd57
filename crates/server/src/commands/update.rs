//! `portcullis update publish|status|withdraw`: software updates through the gateway's
//! update API (`/gateway/v1/updates/releases`), as the client of the credential file
//! (publishing and withdrawing need `updates:write`, reading `updates:read` or
//! `updates:write`). An image is uploaded as the request body, streamed from the file.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use super::api::{AdminApi, ApiError, RawBody};
use super::output::{cell, print_json, print_table, rfc3339};
use super::CommandError;
use crate::cli::{ApiArgs, UpdateCommand};

const RELEASES: &str = "/gateway/v1/updates/releases";
const WITHDRAW: &str = "/gateway/v1/updates/releases/withdraw";
/// The scope publishing needs.
const UPDATES_WRITE: &str = "updates:write";
/// The statuses devices report, in the order of the status table's columns.
const STATUSES: &[&str] = &["downloading", "installed", "failed", "refused"];

/// Runs one update subcommand.
pub fn run(cmd: UpdateCommand, api: &ApiArgs) -> Result<(), CommandError> {
    match cmd {
        UpdateCommand::Publish {
            model,
            version,
            file,
            url,
            sha256,
            size,
            release,
            valid_days,
            percent,
            devices,
            attrs,
        } => {
            let mut query = vec![("model", model), ("version", version)];
            let numbers = [
                ("release", release),
                ("valid_days", valid_days.map(u64::from)),
                ("percent", percent.map(u64::from)),
            ];
            for (name, number) in numbers {
                if let Some(number) = number {
                    query.push((name, number.to_string()));
                }
            }
            let ids = target_ids(&devices);
            if !ids.is_empty() {
                query.push(("ids", ids));
            }
            let attrs = target_attrs(&attrs)?;
            if !attrs.is_empty() {
                query.push(("attrs", attrs));
            }
            let image = match (file, url, sha256, size) {
                (Some(file), None, None, None) => Some(open_image(&file)?),
                (None, Some(url), Some(sha256), Some(size)) => {
                    query.push(("url", url));
                    // The node takes lowercase hex; `sha256sum` prints it, other tools may not.
                    query.push(("sha256", sha256.to_ascii_lowercase()));
                    query.push(("size", size.to_string()));
                    None
                }
                _ => {
                    return Err(CommandError::Usage(
                        "give --file, or --url with --sha256 and --size".into(),
                    ))
                }
            };
            let body = image.map(|(file, length)| RawBody {
                content_type: "application/octet-stream",
                length,
                reader: Box::new(std::io::BufReader::with_capacity(1 << 16, file)),
            });
            let client = AdminApi::connect_as_client(api)?;
            // The node refuses a request it may not take before reading the body, and ureq
            // only reads the answer after sending it all: say what is missing up front.
            if !client.may(UPDATES_WRITE) {
                return Err(CommandError::Failed(format!(
                    "the client of {} lacks scope {UPDATES_WRITE}",
                    api.admin_credential.display()
                )));
            }
            let uploading = body.is_some();
            let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let published =
                client
                    .call_raw("POST", RELEASES, &pairs, body)
                    .map_err(|e| match e {
                        ApiError::Unreachable { .. } if uploading => CommandError::Failed(format!(
                            "{e}: the node stopped reading the image, perhaps refusing the \
                         request (the same options with a small --file show why)"
                        )),
                        other => other.into(),
                    })?;
            show_release(api, &published);
        }
        UpdateCommand::Status { model } => {
            let client = AdminApi::connect_as_client(api)?;
            let status = client.call_raw("GET", RELEASES, &[("model", &model)], None)?;
            if api.json {
                print_json(&status);
            } else {
                let (columns, rows) = status_table(&status);
                let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
                print_table(&columns, &rows);
            }
        }
        UpdateCommand::Withdraw { model, release } => {
            let client = AdminApi::connect_as_client(api)?;
            let release = release.to_string();
            let withdrawn = client.call_raw(
                "POST",
                WITHDRAW,
                &[("model", &model), ("release", &release)],
                None,
            )?;
            show_release(api, &withdrawn);
        }
    }
    Ok(())
}

/// The image file, opened, and its length (which the upload announces).
fn open_image(path: &Path) -> Result<(std::fs::File, u64), CommandError> {
    let unreadable = |e: std::io::Error| {
        CommandError::Usage(format!("cannot read the image {}: {e}", path.display()))
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let metadata = file.metadata().map_err(unreadable)?;
    if !metadata.is_file() {
        return Err(CommandError::Usage(format!(
            "the image {} is not a file",
            path.display()
        )));
    }
    if metadata.len() == 0 {
        return Err(CommandError::Usage(format!(
            "the image {} is empty",
            path.display()
        )));
    }
    Ok((file, metadata.len()))
}

/// `--devices` as the `ids` parameter: comma-separated, empty entries dropped.
fn target_ids(devices: &[String]) -> String {
    let ids: Vec<&str> = devices
        .iter()
        .map(|d| d.trim())
        .filter(|d| !d.is_empty())
        .collect();
    ids.join(",")
}

/// `--attr KEY=VALUE ...` as the `attrs` parameter, `k=v,k2=v2` (so neither may hold a comma).
fn target_attrs(attrs: &[String]) -> Result<String, CommandError> {
    let mut pairs = Vec::with_capacity(attrs.len());
    for attr in attrs {
        match attr.split_once('=') {
            Some((key, _)) if !key.is_empty() && !attr.contains(',') => pairs.push(attr.as_str()),
            _ => {
                return Err(CommandError::Usage(format!(
                    "--attr takes KEY=VALUE without commas, not '{attr}'"
                )))
            }
        }
    }
    Ok(pairs.join(","))
}

/// Which devices a release goes to, in a few words.
fn target_text(target: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(ids) = target["ids"].as_array().filter(|ids| !ids.is_empty()) {
        parts.push(format!(
            "devices {}",
            ids.iter().map(cell).collect::<Vec<_>>().join(",")
        ));
    }
    if let Some(attrs) = target["attributes"].as_object() {
        parts.extend(attrs.iter().map(|(k, v)| format!("{k}={}", cell(v))));
    }
    if let Some(percent) = target["percent"].as_u64() {
        parts.push(format!("{percent}%"));
    }
    if parts.is_empty() {
        "all".to_owned()
    } else {
        parts.join(" ")
    }
}

/// One release: JSON with `--json`, else a line per member a person needs.
fn show_release(api: &ApiArgs, release: &Value) {
    if api.json {
        print_json(release);
    } else {
        print!("{}", describe_release(release));
    }
}

fn describe_release(r: &Value) -> String {
    let time = |v: &Value| v.as_i64().map(rfc3339).unwrap_or_default();
    let withdrawn = if r["withdrawn"].as_bool() == Some(true) {
        "yes"
    } else {
        "no"
    };
    [
        ("model", cell(&r["model"])),
        ("release", cell(&r["release"])),
        ("version", cell(&r["version"])),
        ("sha256", cell(&r["sha256"])),
        ("size", cell(&r["size"])),
        ("url", cell(&r["url"])),
        ("target", target_text(&r["target"])),
        (
            "valid",
            format!("{} to {}", time(&r["nbf"]), time(&r["exp"])),
        ),
        (
            "published",
            format!(
                "{} by {}",
                time(&r["published_at"]),
                cell(&r["published_by"])
            ),
        ),
        ("withdrawn", withdrawn.to_owned()),
    ]
    .iter()
    .map(|(label, value)| format!("{label:<10} {value}\n"))
    .collect()
}

/// The status table: a row per release, with the number of devices per reported status
/// (the usual four, then any other the node reports).
fn status_table(status: &Value) -> (Vec<String>, Vec<Value>) {
    let rollout = status["rollout"].as_array().cloned().unwrap_or_default();
    let mut statuses: Vec<String> = STATUSES.iter().map(|s| (*s).to_owned()).collect();
    let mut counts: BTreeMap<(u64, String), u64> = BTreeMap::new();
    for entry in &rollout {
        let (Some(release), Some(state), Some(devices)) = (
            entry["release"].as_u64(),
            entry["status"].as_str(),
            entry["devices"].as_u64(),
        ) else {
            continue;
        };
        if !statuses.iter().any(|s| s == state) {
            statuses.push(state.to_owned());
        }
        *counts.entry((release, state.to_owned())).or_default() += devices;
    }
    let rows = status["releases"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let mut row = json!({
                "release": r["release"],
                "version": r["version"],
                "withdrawn": if r["withdrawn"].as_bool() == Some(true) { "yes" } else { "no" },
                "published": r["published_at"].as_i64().map(rfc3339),
                "target": target_text(&r["target"]),
            });
            let release = r["release"].as_u64().unwrap_or_default();
            for state in &statuses {
                let n = counts.get(&(release, state.clone())).copied().unwrap_or(0);
                row[state.as_str()] = json!(n);
            }
            row
        })
        .collect();
    let mut columns: Vec<String> = ["release", "version", "withdrawn", "published", "target"]
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    columns.extend(statuses);
    (columns, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_table_counts_devices_per_release_and_status() {
        let status = json!({
            "model": "cam-v1",
            "releases": [
                {"release": 1, "version": "1.0.0", "withdrawn": true, "published_at": 0,
                 "target": {}},
                {"release": 2, "version": "1.1.0", "withdrawn": false, "published_at": 60,
                 "target": {"percent": 10, "ids": ["cam-1", "cam-2"], "attributes": {"site": "home"}}},
            ],
            "rollout": [
                {"release": 1, "status": "installed", "devices": 7},
                {"release": 2, "status": "downloading", "devices": 2},
                {"release": 2, "status": "refused", "devices": 1},
                {"release": 2, "status": "paused", "devices": 3},
            ],
        });
        let (columns, rows) = status_table(&status);
        assert_eq!(
            columns,
            [
                "release",
                "version",
                "withdrawn",
                "published",
                "target",
                "downloading",
                "installed",
                "failed",
                "refused",
                "paused"
            ]
        );
        assert_eq!(rows[0]["withdrawn"], "yes");
        assert_eq!(rows[0]["target"], "all");
        assert_eq!(rows[0]["installed"], 7);
        assert_eq!(rows[0]["downloading"], 0);
        assert_eq!(rows[1]["published"], "1970-01-01T00:01:00Z");
        assert_eq!(rows[1]["target"], "devices cam-1,cam-2 site=home 10%");
        assert_eq!(
            (
                &rows[1]["downloading"],
                &rows[1]["refused"],
                &rows[1]["paused"]
            ),
            (&json!(2), &json!(1), &json!(3))
        );
    }

    #[test]
    fn targets_become_the_query_parameters_the_node_takes() {
        let devices = vec!["cam-1".to_owned(), " cam-2".to_owned(), String::new()];
        assert_eq!(target_ids(&devices), "cam-1,cam-2");
        let attrs = vec!["site=home".to_owned(), "tier=a=b".to_owned()];
        assert_eq!(target_attrs(&attrs).unwrap(), "site=home,tier=a=b");
        for bad in ["site", "=home", "site=a,b"] {
            assert!(target_attrs(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_empty_or_missing_image_is_refused_before_connecting() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.bin");
        std::fs::write(&empty, b"").unwrap();
        assert!(open_image(&empty)
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(open_image(&dir.path().join("none.bin")).is_err());
        assert!(open_image(dir.path()).is_err());
        let image = dir.path().join("fw.bin");
        std::fs::write(&image, [7u8; 1000]).unwrap();
        assert_eq!(open_image(&image).unwrap().1, 1000);
    }
}
