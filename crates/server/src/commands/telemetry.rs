//! `portcullis telemetry tail`: reads the embedded sink's stream
//! (`GET /gateway/v1/telemetry/stream`) with a `telemetry:read` token and prints each message:
//! one line per message, or the stored JSON with `--json`.

use std::io::{BufRead, BufReader};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

use super::api::AdminApi;
use super::CommandError;
use crate::cli::{ApiArgs, TelemetryCommand};

pub fn run(cmd: TelemetryCommand, api: &ApiArgs) -> Result<(), CommandError> {
    let TelemetryCommand::Tail {
        device,
        after,
        follow,
    } = cmd;
    let client = AdminApi::connect_with_scope(api, "telemetry:read")?;
    let mut path = format!("/gateway/v1/telemetry/stream?after={after}&limit=10000");
    if let Some(device) = &device {
        path.push_str(&format!(
            "&device={}",
            form_urlencoded::byte_serialize(device.as_bytes()).collect::<String>()
        ));
    }
    if follow {
        path.push_str("&follow=true");
    }
    let reader = BufReader::new(client.stream(&path)?);
    for line in reader.lines() {
        let line = line.map_err(|e| CommandError::Failed(format!("reading the stream: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        if api.json {
            println!("{line}");
            continue;
        }
        let record: Value = serde_json::from_str(&line).map_err(|e| {
            CommandError::Failed(format!("the stream sent a line that is not JSON: {e}"))
        })?;
        println!("{}", one_line(&record));
    }
    Ok(())
}

/// `seq  received  device  stream  method  counter  payload` — the payload as text when it
/// is printable UTF-8, else as base64url.
fn one_line(r: &Value) -> String {
    let payload = r["payload"]
        .as_str()
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .map(|bytes| match String::from_utf8(bytes) {
            Ok(text) if !text.chars().any(char::is_control) => text,
            _ => format!("base64url:{}", r["payload"].as_str().unwrap_or_default()),
        })
        .unwrap_or_default();
    let received = r["received_at_ms"].as_i64().unwrap_or_default();
    format!(
        "{}\t{}.{:03}\t{}\t{}\t{}\t{}\t{}",
        r["seq"],
        received / 1000,
        received % 1000,
        r["device_id"].as_str().unwrap_or_default(),
        r["stream"].as_str().unwrap_or_default(),
        r["method"].as_str().unwrap_or_default(),
        r["counter"]
            .as_u64()
            .map_or("-".to_owned(), |c| c.to_string()),
        payload
    )
}
