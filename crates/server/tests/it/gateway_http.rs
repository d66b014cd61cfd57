//! The gateway over HTTP, against the real binary: a device written with pycose (the
//! example under examples/python_device, a client nobody here wrote the COSE code of), device
//! tokens minted with PyJWT, curl, and a hostile table built from valid messages. Every
//! refusal leaves nothing in the telemetry log.

use std::path::Path;
use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis_core::device::DeviceId;
use portcullis_gateway::cose::seal_mac0;
use serde_json::Value;

use crate::support::gateway::{
    device_with_key, example_device, now, python_path, stored as tail, stored_counters, DiskFault,
    FailingDisk,
};
use crate::support::Node;

const TELEMETRY: &str = "/gateway/v1/telemetry";
const COSE: &str = "application/cose";

/// Runs the example device; returns stdout, asserting success unless `expect_fail`.
fn device_py(pythonpath: &Path, cwd: &Path, args: &[&str], expect_fail: bool) -> String {
    let out = Command::new("python3")
        .arg(example_device())
        .args(args)
        .current_dir(cwd)
        .env("PYTHONPATH", pythonpath)
        .output()
        .expect("python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        !out.status.success(),
        expect_fail,
        "device.py {args:?}: {text}"
    );
    text
}

fn post_cose(node: &Node, body: &[u8]) -> crate::support::Answer {
    node.request("POST", TELEMETRY, Some(COSE), &[], body)
}

#[test]
fn a_pycose_device_sends_authenticated_readings_and_a_replay_is_refused() {
    let Some(pythonpath) = python_path() else {
        return;
    };
    let node = Node::start();
    let (kid, key) = device_with_key(&node, "meter-py", &[]);
    let dir = tempfile::tempdir().unwrap();
    let key_b64 = URL_SAFE_NO_PAD.encode(key);
    let url = format!("{}{TELEMETRY}", node.base);
    for (i, stream) in [(1, None), (2, Some("power"))] {
        let payload = format!("{{\"kwh\": {i}}}");
        let out_file = format!("m{i}.cose");
        let key_arg = format!("--key={key_b64}");
        let mut args = vec![
            "send",
            "--device-id",
            "meter-py",
            "--key-id",
            &kid,
            &key_arg,
            "--url",
            &url,
            "--payload",
            &payload,
            "--state",
            "counter.json",
            "--out",
            &out_file,
        ];
        if let Some(s) = stream {
            args.extend_from_slice(&["--stream", s]);
        }
        let printed = device_py(&pythonpath, dir.path(), &args, false);
        assert!(printed.starts_with("202 "), "{printed}");
    }
    // The same bytes again, with curl: the counter is not above the last one.
    let replay = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Content-Type: application/cose",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", dir.path().join("m1.cose").display()))
        .arg(&url)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&replay.stdout), "409");

    let got = tail(&node, "meter-py");
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["method"], "cose_mac0");
    assert_eq!(got[0]["key_id"], kid.as_str());
    assert_eq!(got[0]["counter"], 1);
    assert_eq!(got[0]["model"], "meter-v1");
    assert_eq!(got[0]["stream"], "default");
    assert_eq!(got[1]["stream"], "power");
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(got[1]["payload"].as_str().unwrap())
            .unwrap(),
        br#"{"kwh": 2}"#
    );
}

#[test]
fn hostile_messages_get_clear_refusals_and_nothing_is_stored() {
    let node = Node::start();
    let (kid, key) = device_with_key(&node, "meter-h", &[]);
    let (_, other_key) = device_with_key(&node, "meter-other", &[]);
    let id = DeviceId::parse("meter-h").unwrap();
    let t = now();
    let good = seal_mac0(&id, &kid, &key, 10, t, b"ok");
    assert_eq!(post_cose(&node, &good).status, 202);

    let mut truncated = seal_mac0(&id, &kid, &key, 11, t, b"x");
    truncated.truncate(truncated.len() - 3);
    let mut trailing = seal_mac0(&id, &kid, &key, 12, t, b"x");
    trailing.push(0);
    let mut flipped = seal_mac0(&id, &kid, &key, 13, t, b"x");
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let untagged = seal_mac0(&id, &kid, &key, 14, t, b"x")[1..].to_vec();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "wrong key",
            seal_mac0(&id, &kid, &other_key, 20, t, b"x"),
            401,
        ),
        (
            "unknown kid",
            seal_mac0(&id, "k-nope", &key, 21, t, b"x"),
            401,
        ),
        ("tag flipped", flipped, 401),
        (
            "unknown device",
            seal_mac0(&DeviceId::parse("ghost").unwrap(), &kid, &key, 22, t, b"x"),
            401,
        ),
        ("replayed counter", good.clone(), 409),
        ("lower counter", seal_mac0(&id, &kid, &key, 9, t, b"x"), 409),
        (
            "stale timestamp",
            seal_mac0(&id, &kid, &key, 30, t - 3600, b"x"),
            409,
        ),
        (
            "future timestamp",
            seal_mac0(&id, &kid, &key, 31, t + 3600, b"x"),
            409,
        ),
        ("truncated CBOR", truncated, 400),
        ("trailing bytes", trailing, 400),
        ("untagged", untagged, 400),
        ("not CBOR", b"{\"temperature\": 21}".to_vec(), 400),
        ("empty", Vec::new(), 400),
        (
            "oversized",
            seal_mac0(&id, &kid, &key, 40, t, &vec![b'a'; 70 * 1024]),
            413,
        ),
    ];
    for (name, body, status) in &cases {
        let answer = post_cose(&node, body);
        assert_eq!(answer.status, *status, "{name}: {}", answer.text);
        assert_eq!(
            answer.header("content-type"),
            Some("application/problem+json"),
            "{name}"
        );
        // Which check failed is not told.
        for secretive in ["kid", "key", "counter 9", "hmac"] {
            assert!(
                !answer.json["detail"]
                    .as_str()
                    .unwrap_or("")
                    .contains(secretive),
                "{name}: {}",
                answer.text
            );
        }
    }
    // No credential and not COSE: 415 with a body type, 401 without.
    assert_eq!(
        node.request("POST", TELEMETRY, Some("application/json"), &[], b"{}")
            .status,
        415
    );
    assert_eq!(
        node.request("POST", TELEMETRY, None, &[], b"{}").status,
        401
    );
    // A stream name that is not one.
    assert_eq!(
        node.request(
            "POST",
            &format!("{TELEMETRY}/bad.stream"),
            Some(COSE),
            &[],
            &seal_mac0(&id, &kid, &key, 50, t, b"x")
        )
        .status,
        403
    );

    // A suspended device is refused at once; resumed, it is admitted again.
    node.cli_json(&["device", "suspend", "meter-h"]);
    assert_eq!(
        post_cose(&node, &seal_mac0(&id, &kid, &key, 60, t, b"x")).status,
        403
    );

    let stored = tail(&node, "meter-h");
    assert_eq!(stored.len(), 1, "only the good message: {stored:?}");
    assert_eq!(stored[0]["counter"], 10);

    // Counted by outcome; refusals and replays audited (summarised per source and minute).
    let metrics = node.get("/metrics").text;
    for line in [
        r#"portcullis_gateway_messages_total{transport="http",outcome="accepted"}"#,
        r#"portcullis_gateway_messages_total{transport="http",outcome="counter_not_increasing"}"#,
        r#"portcullis_gateway_messages_total{transport="http",outcome="stale_timestamp"}"#,
        "portcullis_gateway_verify_seconds",
    ] {
        assert!(metrics.contains(line), "{line} missing from /metrics");
    }
    let audit = node.cli_json(&["audit", "list", "--limit", "200"]);
    let actions: Vec<String> = audit
        .as_array()
        .or(audit["records"].as_array())
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap_or("").to_owned())
        .collect();
    for action in ["gateway.refused", "gateway.replay"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} not audited: {actions:?}"
        );
    }
}

#[test]
fn device_tokens_admit_plain_bodies_when_the_policy_allows() {
    let Some(pythonpath) = python_path() else {
        return;
    };
    let node = Node::start();
    let (kid, key) = device_with_key(&node, "therm-1", &["message_auth=optional"]);
    let (strict_kid, strict_key) = device_with_key(&node, "therm-strict", &[]);
    let dir = tempfile::tempdir().unwrap();
    let token = |device: &str, kid: &str, key: &[u8; 32], extra: &[&str]| {
        let key_arg = format!("--key={}", URL_SAFE_NO_PAD.encode(key));
        let mut args = vec![
            "token",
            "--device-id",
            device,
            "--key-id",
            kid,
            &key_arg,
            "--audience",
            &node.base,
        ];
        args.extend_from_slice(extra);
        device_py(&pythonpath, dir.path(), &args, false)
            .trim()
            .to_owned()
    };
    let post_bearer = |token: &str, body: &[u8]| {
        node.request(
            "POST",
            &format!("{TELEMETRY}/climate"),
            Some("application/json"),
            &[("Authorization", &format!("Bearer {token}"))],
            body,
        )
    };
    let good = token("therm-1", &kid, &key, &[]);
    let answer = post_bearer(&good, br#"{"celsius": 20.5}"#);
    assert_eq!(answer.status, 202, "{}", answer.text);
    assert!(answer.json["message_id"].as_str().is_some());

    // curl, as a user would.
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {good}"))
        .args(["--data-binary", "21.0"])
        .arg(format!("{}{TELEMETRY}", node.base))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with("202"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let t = now();
    let long_ago = (t - 600).to_string();
    let refused: Vec<(&str, String, u16)> = vec![
        (
            "expired",
            token(
                "therm-1",
                &kid,
                &key,
                &["--time", &long_ago, "--lifetime", "60"],
            ),
            401,
        ),
        (
            "future",
            token("therm-1", &kid, &key, &["--time", &(t + 3600).to_string()]),
            401,
        ),
        (
            "too long-lived",
            token("therm-1", &kid, &key, &["--lifetime", "7200"]),
            401,
        ),
        ("wrong key", token("therm-1", &kid, &strict_key, &[]), 401),
        (
            "another device's key id",
            token("therm-1", &strict_kid, &strict_key, &[]),
            401,
        ),
        (
            "alg none",
            {
                let claims = URL_SAFE_NO_PAD.encode(format!(
                    r#"{{"iss":"therm-1","sub":"therm-1","aud":"{}","iat":{t},"exp":{}}}"#,
                    node.base,
                    t + 60
                ));
                format!(
                    "{}.{claims}.",
                    URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"x"}"#)
                )
            },
            401,
        ),
        ("garbage", "not-a-jwt".to_owned(), 400),
    ];
    for (name, token, status) in &refused {
        let answer = post_bearer(token, b"1");
        assert_eq!(answer.status, *status, "{name}: {}", answer.text);
    }
    // A device whose policy requires per-message authentication may not send plain bodies.
    let strict = token("therm-strict", &strict_kid, &strict_key, &[]);
    assert_eq!(post_bearer(&strict, b"1").status, 403);

    let stored = tail(&node, "therm-1");
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(stored[0]["method"], "device_token");
    assert_eq!(stored[0]["stream"], "climate");
    assert!(tail(&node, "therm-strict").is_empty());
}

#[test]
fn the_telemetry_stream_needs_its_scope_and_resumes_by_position() {
    let node = Node::start();
    let (kid, key) = device_with_key(&node, "meter-s", &[]);
    let id = DeviceId::parse("meter-s").unwrap();
    for c in 1..=3 {
        assert_eq!(
            post_cose(&node, &seal_mac0(&id, &kid, &key, c, now(), b"r")).status,
            202
        );
    }
    assert_eq!(node.get("/gateway/v1/telemetry/stream").status, 401);
    let (cid, secret) = node.create_client(&["--scope", "other"]);
    let token = node.token(&cid, &secret, "").json["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bearer = format!("Bearer {token}");
    let answer = node.request(
        "GET",
        "/gateway/v1/telemetry/stream",
        None,
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(answer.status, 403, "{}", answer.text);

    let admin = format!("Bearer {}", {
        let out = node.cli(&["telemetry", "tail", "--json"]);
        assert!(out.status.success());
        // The CLI works; for the raw endpoint take a telemetry:read token the same way.
        let cred: Value =
            serde_json::from_str(&std::fs::read_to_string(node.admin_credential()).unwrap())
                .unwrap();
        node.token(
            cred["client_id"].as_str().unwrap(),
            cred["client_secret"].as_str().unwrap(),
            "&scope=telemetry:read",
        )
        .json["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    let page = node.request(
        "GET",
        "/gateway/v1/telemetry/stream?after=1",
        None,
        &[("Authorization", &admin)],
        b"",
    );
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(page.header("content-type"), Some("application/x-ndjson"));
    let seqs: Vec<u64> = page
        .text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, vec![2, 3]);
    let sse = node.request(
        "GET",
        "/gateway/v1/telemetry/stream",
        None,
        &[
            ("Authorization", &admin),
            ("Accept", "text/event-stream"),
            ("Last-Event-ID", "2"),
        ],
        b"",
    );
    assert_eq!(sse.header("content-type"), Some("text/event-stream"));
    assert!(sse.text.starts_with("id: 3\ndata: {"), "{}", sse.text);
}

/// The embedded sink's promise: a node killed with SIGKILL while devices are sending loses
/// no message it acknowledged (each batch is fdatasync'ed before any of it is answered), and
/// the restarted node serves the log, a possibly torn last write cut away. Counters are
/// decided in memory on such a node and reach the store behind: the restarted node reads
/// them back from the log, so every device's last acknowledged message is still a replay.
#[test]
fn a_node_killed_mid_stream_loses_no_acknowledged_message() {
    killed_mid_stream(&[]);
}

/// The same under the interval fsync policy (`embedded_sync_interval_ms`): acknowledged once
/// written, synced behind. A killed process's writes are in the kernel's page cache, so the
/// promise against `kill -9` is the same (only an OS crash or power cut may lose the last
/// interval), and so is the replay guarantee across the restart.
#[test]
fn under_the_interval_fsync_policy_a_killed_node_loses_no_acknowledged_message() {
    killed_mid_stream(&[("PORTCULLIS_GATEWAY__EMBEDDED_SYNC_INTERVAL_MS", "200")]);
}

fn killed_mid_stream(env: &[(&str, &str)]) {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let node = Node::start_in(&data, env);
    let devices: Vec<(String, String, [u8; 32])> = (0..4)
        .map(|i| {
            let id = format!("meter-k{i}");
            let (kid, key) = device_with_key(&node, &id, &[]);
            (id, kid, key)
        })
        .collect();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let last_acked = Arc::new(Mutex::new(HashMap::<String, Vec<u8>>::new()));
    let url = format!("{}{TELEMETRY}", node.base);
    let senders: Vec<_> = devices
        .iter()
        .cloned()
        .map(|(id, kid, key)| {
            let (acked, url) = (acked.clone(), url.clone());
            let last_acked = last_acked.clone();
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(std::time::Duration::from_secs(5))
                    .build();
                let device = DeviceId::parse(&id).unwrap();
                for counter in 1.. {
                    let body = seal_mac0(&device, &kid, &key, counter, now(), b"reading");
                    match agent.post(&url).set("Content-Type", COSE).send_bytes(&body) {
                        Ok(r) if r.status() == 202 => {
                            let v: Value = r.into_json().unwrap();
                            acked
                                .lock()
                                .unwrap()
                                .push(v["message_id"].as_str().unwrap().to_owned());
                            last_acked.lock().unwrap().insert(id.clone(), body);
                        }
                        // The node is gone: stop.
                        _ => return,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(700));
    drop(node); // SIGKILL: no shutdown, no flush
    for s in senders {
        s.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 10, "the devices got going: {}", acked.len());

    let node = Node::start_in(&data, env);
    let mut stored = std::collections::HashSet::new();
    for (id, _, _) in &devices {
        for record in tail(&node, id) {
            stored.insert(record["message_id"].as_str().unwrap().to_owned());
        }
    }
    let lost: Vec<_> = acked.iter().filter(|m| !stored.contains(*m)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages lost",
        lost.len(),
        acked.len()
    );
    let last_acked = last_acked.lock().unwrap().clone();
    assert_eq!(
        last_acked.len(),
        devices.len(),
        "every device got an answer"
    );
    for (id, body) in &last_acked {
        let again = post_cose(&node, body);
        assert_eq!(
            again.status, 409,
            "{id}'s last message replayed: {}",
            again.text
        );
    }
}

/// A disk that stops taking writes, under the interval fsync policy: an interval's
/// `fdatasync` fails (EIO from a FUSE filesystem under the log). The kernel may have dropped
/// the pages it could not write, so the node acknowledges nothing more on top of that hole.
#[test]
fn under_the_interval_policy_a_failed_fdatasync_stops_the_log_until_restart() {
    stopped_until_restart(
        DiskFault::Fsync,
        &[("PORTCULLIS_GATEWAY__EMBEDDED_SYNC_INTERVAL_MS", "50")],
        |_| true,
    );
}

/// A disk that stops syncing just as the log starts a new segment (4 KiB segments here).
/// Syncing every batch, the new segment's directory entry cannot be made durable, so no
/// record in it may be acknowledged; under the interval policy (whose own sync is 3 s away),
/// the segment being left cannot be synced, and it holds acknowledged records. Either way
/// the log stops until restart.
#[test]
fn a_segment_change_on_a_failing_disk_stops_the_log_until_restart() {
    let small = ("PORTCULLIS_GATEWAY__EMBEDDED_SEGMENT_BYTES", SMALL_SEGMENT);
    stopped_until_restart(DiskFault::Fsync, &[small], segment_full);
    stopped_until_restart(
        DiskFault::Fsync,
        &[
            small,
            ("PORTCULLIS_GATEWAY__EMBEDDED_SYNC_INTERVAL_MS", "3000"),
        ],
        segment_full,
    );
}

/// The segment size of [`a_segment_change_on_a_failing_disk_stops_the_log_until_restart`].
const SMALL_SEGMENT: &str = "4096";

/// Whether the newest segment in `log` is full ([`SMALL_SEGMENT`]): the next append starts
/// another.
fn segment_full(log: &Path) -> bool {
    let newest = std::fs::read_dir(log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ndjson"))
        .max()
        .unwrap();
    std::fs::metadata(newest).unwrap().len() >= SMALL_SEGMENT.parse::<u64>().unwrap()
}

/// A disk going bad mid-write, syncing every batch: the batch is refused, and the torn
/// record it left cannot be taken back (truncating fails too). Nothing may follow it — the
/// log's readers would stop there, and every message after it would be lost — so the log
/// stops; the next start cuts the torn last line.
#[test]
fn a_refused_batch_that_cannot_be_taken_back_stops_the_log_until_restart() {
    stopped_until_restart(DiskFault::Broken, &[], |_| true);
}

/// Devices send until `armed(log directory)`; then, while the disk fails as `fault` says,
/// the log stops: every message gets 503 with `Retry-After`, `/readyz` says not ready so a
/// load balancer sends the devices elsewhere, and a gauge says why for an alert, until a
/// restart — also once the disk works again. The restarted node takes messages, holds every
/// one acknowledged before, and still refuses a replay of one of them.
fn stopped_until_restart(fault: DiskFault, env: &[(&str, &str)], armed: fn(&Path) -> bool) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let Some(disk) = FailingDisk::mount(&data.join("telemetry"), dir.path()) else {
        return;
    };
    let node = Node::start_in(&data, env);
    let (kid, key) = device_with_key(&node, "meter-eio", &[]);
    let device = DeviceId::parse("meter-eio").unwrap();
    let send = |node: &Node, counter: u64| {
        post_cose(node, &seal_mac0(&device, &kid, &key, counter, now(), b"r"))
    };
    let mut counter = 0;
    loop {
        counter += 1;
        assert_eq!(send(&node, counter).status, 202);
        if armed(&data.join("telemetry")) {
            break;
        }
        assert!(counter < 100, "never armed");
    }
    assert_eq!(node.get("/readyz").status, 200);
    assert!(node
        .get("/metrics")
        .text
        .contains("\nportcullis_gateway_log_stopped 0\n"));

    disk.fail(fault);
    let refused = loop {
        counter += 1;
        let answer = send(&node, counter);
        if answer.status != 202 {
            break answer;
        }
        assert!(
            counter < 200,
            "the node kept acknowledging after its disk failed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(!refused.text.contains("EIO") && !refused.text.contains("Input/output"));
    let ready = node.get("/readyz");
    assert_eq!(ready.status, 503);
    assert!(ready.text.contains("telemetry log"), "{}", ready.text);
    // For the alert that pages someone (PortcullisGatewayLogStopped).
    assert!(node
        .get("/metrics")
        .text
        .contains("\nportcullis_gateway_log_stopped 1\n"));

    // The disk works again; the log does not trust it before a restart.
    disk.heal();
    assert_eq!(send(&node, counter + 1).status, 503);
    assert_eq!(node.get("/readyz").status, 503);

    drop(node);
    let node = Node::start_in(&data, env);
    assert_eq!(node.get("/readyz").status, 200);
    assert_eq!(send(&node, counter + 1).status, 202);
    // Readers see a record once it is synced: under the interval policy, within its interval.
    let acknowledged: Vec<u64> = (1..counter).chain([counter + 1]).collect();
    let mut counters = Vec::new();
    for _ in 0..100 {
        counters = stored_counters(&node, "meter-eio");
        if counters == acknowledged {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(counters, acknowledged);
    let replay = post_cose(&node, &seal_mac0(&device, &kid, &key, 1, now(), b"r"));
    assert_eq!(replay.status, 409, "{}", replay.text);
    drop(node);
    drop(disk);
}

/// Syncing every batch (the default), a failed `fdatasync` refuses only the batch it was
/// for: nothing acknowledged is at risk, so the node goes on once the disk works.
#[test]
fn syncing_every_batch_a_failed_fdatasync_refuses_only_its_batch() {
    refused_until_the_disk_heals(DiskFault::Fsync, &[]);
}

/// A full disk (writes fail with ENOSPC), under either fsync policy: refused until there
/// is room again, without a restart.
#[test]
fn a_full_disk_refuses_messages_until_there_is_room() {
    refused_until_the_disk_heals(DiskFault::Full, &[]);
    refused_until_the_disk_heals(
        DiskFault::Full,
        &[("PORTCULLIS_GATEWAY__EMBEDDED_SYNC_INTERVAL_MS", "50")],
    );
}

/// While the disk fails as `fault` says, a message is refused (503 with `Retry-After`) and
/// the log takes back what of its batch was written, so the device may send the very same
/// message again; once the disk heals the node takes it without a restart, `/readyz` staying
/// ready throughout. After a restart each message is stored once and a replay is refused.
fn refused_until_the_disk_heals(fault: DiskFault, env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let Some(disk) = FailingDisk::mount(&data.join("telemetry"), dir.path()) else {
        return;
    };
    let node = Node::start_in(&data, env);
    let (kid, key) = device_with_key(&node, "meter-eio1", &[]);
    let device = DeviceId::parse("meter-eio1").unwrap();
    let first = seal_mac0(&device, &kid, &key, 1, now(), b"r1");
    let second = seal_mac0(&device, &kid, &key, 2, now(), b"r2");
    assert_eq!(post_cose(&node, &first).status, 202);

    disk.fail(fault);
    let refused = post_cose(&node, &second);
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(node.get("/readyz").status, 200);

    disk.heal();
    let again = post_cose(&node, &second);
    assert_eq!(again.status, 202, "{}", again.text);

    drop(node);
    let node = Node::start_in(&data, env);
    assert_eq!(stored_counters(&node, "meter-eio1"), [1, 2]);
    assert_eq!(post_cose(&node, &second).status, 409);
    drop(node);
    drop(disk);
}

/// `portcullis telemetry tail --follow` prints a message as soon as it is accepted.
#[test]
fn telemetry_tail_follows_new_messages() {
    use std::io::BufRead as _;

    let node = Node::start();
    let (kid, key) = device_with_key(&node, "meter-f", &[]);
    let id = DeviceId::parse("meter-f").unwrap();
    let mut child = Command::new(crate::support::BIN)
        .args([
            "telemetry",
            "tail",
            "--follow",
            "--json",
            "--device",
            "meter-f",
            "--server",
        ])
        .arg(&node.base)
        .arg("--admin-credential")
        .arg(node.admin_credential())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    for counter in 1..=2 {
        let body = seal_mac0(
            &id,
            &kid,
            &key,
            counter,
            now(),
            format!("live {counter}").as_bytes(),
        );
        assert_eq!(post_cose(&node, &body).status, 202);
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("tail --follow printed the message");
        let record: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(record["counter"], counter);
    }
    let _ = child.kill();
    let _ = child.wait();
}
