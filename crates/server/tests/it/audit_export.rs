//! The audit trail streamed out (issue #14, item 4): an `[[audit.export]]` of kind ndjson
//! appends every record to a file, decrypted, each once and in order, and resumes after a
//! restart where it stopped; `GET /admin/v1/audit/stream` serves the same records as
//! Server-Sent Events, resumable with `Last-Event-ID`, to `audit:read` only. (The syslog
//! export against a real rsyslog is `audit_syslog.rs`.)

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::Node;

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON record per line"))
        .collect()
}

/// The newest record's sequence number (reading it adds an `audit.read` record after it).
fn head(node: &Node) -> i64 {
    node.cli_json(&["audit", "list", "--limit", "1"])["records"][0]["seq"]
        .as_i64()
        .unwrap()
}

/// Waits until the file holds record `seq`, then checks it holds 1..=its last, each once.
fn exported_through(path: &Path, seq: i64) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = lines(path);
        let last = got.last().and_then(|r| r["seq"].as_i64()).unwrap_or(0);
        if last >= seq {
            let seqs: Vec<i64> = got.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
            let expected: Vec<i64> = (1..=last).collect();
            assert_eq!(seqs, expected, "every record once, in order");
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "record {seq} not exported; have {last}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_ndjson_export_writes_every_record_once_and_resumes_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let out = tmp.path().join("audit.ndjson");
    let config = tmp.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            "[[audit.export]]\nname = \"file\"\nkind = \"ndjson\"\npath = \"{}\"\n",
            out.display()
        ),
    )
    .unwrap();
    let args = ["--config", config.to_str().unwrap()];
    let node = Node::start_with_args(&dir, &args, &[]);
    let (id, secret) = node.create_client(&["--id", "exported-client"]);
    for _ in 0..10 {
        assert_eq!(node.token(&id, &secret, "").status, 200);
    }
    assert_eq!(node.token(&id, "wrong", "").status, 401);
    let got = exported_through(&out, head(&node));
    let issued: Vec<&Value> = got
        .iter()
        .filter(|r| r["action"] == "token.issued" && r["actor"] == "exported-client")
        .collect();
    assert_eq!(issued.len(), 10, "decrypted: the client id is readable");
    assert!(issued.iter().all(|r| r["encrypted"] == true));
    assert!(got
        .iter()
        .any(|r| r["action"] == "token.refused" && r["outcome"] == "failure"));
    assert!(node.stop().success());

    // Records made while no node runs the export (the CLI's own) and after the restart are
    // picked up where the export stopped.
    let node = Node::start_with_args(&dir, &args, &[]);
    for _ in 0..3 {
        assert_eq!(node.token(&id, &secret, "").status, 200);
    }
    let got = exported_through(&out, head(&node));
    let issued = got
        .iter()
        .filter(|r| r["action"] == "token.issued" && r["actor"] == "exported-client")
        .count();
    assert_eq!(issued, 13);
    assert!(node.stop().success());
}

#[test]
fn a_bad_export_configuration_stops_the_node_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("portcullis.toml");
    std::fs::write(
        &config,
        "[[audit.export]]\nname = \"siem\"\nkind = \"syslog\"\n",
    )
    .unwrap();
    let data = tmp.path().join("data");
    let config = config.to_str().unwrap();
    let out = support::serve_to_exit_with_args(&data, &["--config", config], &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("audit.export siem") && stderr.contains("tls_ca_file"),
        "{stderr}"
    );

    // A CA file that is not there: refused before the node says it listens.
    std::fs::write(
        config,
        "[[audit.export]]\nname = \"siem\"\nkind = \"syslog\"\naddress = \"127.0.0.1:6514\"\n\
         tls_ca_file = \"/nonexistent/siem-ca.pem\"\n",
    )
    .unwrap();
    let every_listener = [
        "--listen-tls",
        "127.0.0.1:0",
        "--listen-mqtts",
        "127.0.0.1:0",
    ];
    let out = support::serve_to_exit_with_args(
        &data,
        &[&every_listener[..], &["--config", config]].concat(),
        &[],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("siem-ca.pem"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("listening"), "{stdout}");
}

/// `curl -N` on the stream for `secs` seconds; the events' ids and data.
fn sse(
    node: &Node,
    token: &str,
    query: &str,
    last_event_id: Option<i64>,
    secs: u32,
) -> (String, Vec<(i64, Value)>) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sN",
        "--max-time",
        &secs.to_string(),
        "-w",
        "\nstatus=%{http_code}\n",
    ])
    .args(["-H", &format!("Authorization: Bearer {token}")]);
    if let Some(id) = last_event_id {
        cmd.args(["-H", &format!("Last-Event-ID: {id}")]);
    }
    let out = cmd
        .arg(format!("{}/admin/v1/audit/stream{query}", node.base))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut events = Vec::new();
    let mut id = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().parse::<i64>().ok();
        } else if let Some(data) = line.strip_prefix("data:") {
            let data: Value = serde_json::from_str(data.trim()).unwrap();
            events.push((id.take().unwrap(), data));
        }
    }
    (text, events)
}

#[test]
fn the_sse_stream_follows_the_trail_and_resumes_from_last_event_id() {
    let node = Node::start();
    let (id, secret) = node.create_client(&["--id", "streamed-client"]);
    let auditor = node.admin_token_with_scope("audit:read");
    let (_, first) = sse(&node, &auditor, "", None, 2);
    assert!(!first.is_empty());
    let ids: Vec<i64> = first.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, (1..=*ids.last().unwrap()).collect::<Vec<_>>());
    for (id, data) in &first {
        assert_eq!(data["seq"].as_i64(), Some(*id));
    }
    assert!(first
        .iter()
        .any(|(_, d)| d["action"] == "client.created" && d["subject"] == "streamed-client"));
    // New records while nobody listens, then a reconnection with the last id seen.
    let last = *ids.last().unwrap();
    assert_eq!(node.token(&id, &secret, "").status, 200);
    let (_, resumed) = sse(&node, &auditor, "", Some(last), 2);
    assert_eq!(resumed.first().map(|(id, _)| *id), Some(last + 1));
    assert!(resumed
        .iter()
        .any(|(_, d)| d["action"] == "token.issued" && d["actor"] == "streamed-client"));
    let (_, from_query) = sse(&node, &auditor, &format!("?after={last}"), None, 2);
    assert_eq!(from_query.first().map(|(id, _)| *id), Some(last + 1));
    // The streams themselves are audited: opened, and closed with the range sent.
    let trail = node.cli_json(&["audit", "list", "--limit", "200"]);
    let reads: Vec<&Value> = trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "audit.read" && r["detail"]["stream"].is_string())
        .collect();
    assert!(reads.iter().any(|r| r["detail"]["stream"] == "opened"));
    assert!(reads
        .iter()
        .any(|r| r["detail"]["stream"] == "closed"
            && r["detail"]["last_seq"].as_i64() >= Some(last + 1)));
    // An administrator without audit:read gets nothing.
    let admin = node.admin_token();
    let (text, events) = sse(&node, &admin, "", None, 2);
    assert!(events.is_empty());
    assert!(text.contains("status=403"), "{text}");
    let (text, _) = sse(&node, &auditor, "?after=-1", None, 2);
    assert!(text.contains("status=400"), "{text}");
}

/// With the NDJSON export on stdout (`path = "-"`), stdout is the trail and nothing else: the
/// lines saying where the node listens go to stderr then (a README walk found them mixed in).
#[test]
fn an_ndjson_export_to_stdout_keeps_stdout_pure() {
    ndjson_on_stdout(false);
}

#[test]
fn with_a_json_log_and_ndjson_on_stdout_both_streams_are_pure_json() {
    ndjson_on_stdout(true);
}

/// A node streaming its trail to stdout: stdout holds records only, and the listening line
/// goes to stderr — as a log event when the log is JSON, where every stderr line is JSON.
fn ndjson_on_stdout(json_log: bool) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("portcullis.toml");
    let log = if json_log {
        "[log]\nformat = \"json\"\n"
    } else {
        ""
    };
    std::fs::write(
        &config,
        format!("{log}[[audit.export]]\nname = \"out\"\nkind = \"ndjson\"\npath = \"-\"\n"),
    )
    .unwrap();
    let mut child = Command::new(support::BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--listen-tls",
            "127.0.0.1:0",
        ])
        .args(["--listen-mqtts", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let err = std::thread::spawn(move || {
        let mut not_json = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let message = match serde_json::from_str::<Value>(&line) {
                Ok(event) => event["fields"]["message"].as_str().map(str::to_owned),
                Err(_) => {
                    not_json.push(line.clone());
                    Some(line)
                }
            };
            let listening = message.as_deref().and_then(|m| {
                m.strip_prefix("portcullis listening on http://")
                    .map(str::to_owned)
            });
            if let Some(url) = listening {
                tx.send(url).ok();
            }
        }
        not_json
    });
    let listening = rx.recv_timeout(Duration::from_secs(60));
    // The start's own records (the bootstrap credential, the first checkpoint) are exported
    // within a poll or two.
    std::thread::sleep(Duration::from_millis(1500));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert!(listening.is_ok(), "the listening line is on stderr");
    let not_json = err.join().unwrap();
    if json_log {
        assert!(not_json.is_empty(), "stderr lines not JSON: {not_json:?}");
    } else {
        assert!(!not_json.is_empty(), "a text log");
    }
    let lines = out.join().unwrap();
    assert!(!lines.is_empty(), "records were exported to stdout");
    for line in &lines {
        let record: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON record per line ({e}): {line}"));
        assert!(record["seq"].is_i64(), "{line}");
    }
}
