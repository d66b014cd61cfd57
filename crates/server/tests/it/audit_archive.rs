//! Retention without losing proof (issue #14, item 3): `portcullis audit archive` writes a
//! signed segment and removes its records from the live store; `audit verify` proves the
//! live chain from the segment's anchor; `audit verify --archive` proves the segment offline
//! with the public keys only, and fails on any changed byte.

use crate::support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::Node;

/// The newest `audit.checkpoint` record's time, waiting up to 20 s for one that covers
/// `after_seq` or later.
fn checkpoint_after(node: &Node, after_seq: i64) -> (i64, i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = node.cli_json(&["audit", "list", "--limit", "500"]);
        let found = list["records"].as_array().unwrap().iter().find(|r| {
            r["action"] == "audit.checkpoint" && r["detail"]["seq"].as_i64() >= Some(after_seq)
        });
        if let Some(cp) = found {
            return (cp["seq"].as_i64().unwrap(), cp["at"].as_i64().unwrap());
        }
        assert!(Instant::now() < deadline, "no checkpoint over {after_seq}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn verify_archive(file: &std::path::Path, jwks: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["--json", "audit", "verify", "--archive"])
        .arg(file)
        .arg("--jwks")
        .arg(jwks)
        .output()
        .unwrap()
}

#[test]
fn archiving_moves_old_records_to_a_signed_segment_and_both_halves_still_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let node = Node::start_in(&dir, &[("PORTCULLIS_AUDIT__CHECKPOINT_INTERVAL_SECS", "1")]);
    let (id, secret) = node.create_client(&["--id", "archived-client"]);
    for _ in 0..5 {
        assert_eq!(node.token(&id, &secret, "").status, 200);
    }
    let head = node.cli_json(&["audit", "list", "--limit", "1"])["records"][0]["seq"]
        .as_i64()
        .unwrap();
    let (_, checkpoint_at) = checkpoint_after(&node, head);
    // Records after the checkpoint's second stay live.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(node.token(&id, &secret, "").status, 200);

    let out = tmp.path().join("segment-1.archive");
    let before = (checkpoint_at + 1).to_string();
    let archived = node.cli_json(&[
        "audit",
        "archive",
        "--before",
        &before,
        "--out",
        out.to_str().unwrap(),
    ]);
    let last = archived["last_seq"].as_i64().unwrap();
    assert_eq!(archived["first_seq"], 1, "{archived}");
    assert!(last >= head, "{archived}");
    assert_eq!(archived["removed"].as_i64(), Some(last));
    let jwks = tmp.path().join("segment-1.jwks.json");
    assert!(jwks.exists());

    // The live chain starts after the anchor and verifies, anchor signed.
    let verified = node.cli_json(&["audit", "verify"]);
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(
        verified["archived_through"].as_i64(),
        Some(last),
        "{verified}"
    );
    assert_eq!(verified["anchor_verified"], true, "{verified}");
    let live = node.cli_json(&["audit", "list", "--limit", "1000"]);
    let oldest = live["records"].as_array().unwrap().last().unwrap();
    assert_eq!(oldest["seq"].as_i64(), Some(last + 1));
    let purge = live["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "audit.archived")
        .expect("the purge is audited");
    assert_eq!(purge["detail"]["last_seq"].as_i64(), Some(last));
    // A stream asked for the whole trail is told what went to the archive, not silently
    // started after it.
    let streamed = Command::new("curl")
        .args(["-sN", "--max-time", "2", "-H"])
        .arg(format!(
            "Authorization: Bearer {}",
            node.admin_token_with_scope("audit:read")
        ))
        .arg(format!("{}/admin/v1/audit/stream?after=0", node.base))
        .output()
        .unwrap();
    let streamed = String::from_utf8_lossy(&streamed.stdout);
    let first_event: Vec<&str> = streamed.lines().take_while(|l| !l.is_empty()).collect();
    assert!(first_event.contains(&"event: archived"), "{streamed}");
    assert!(
        first_event.contains(&format!("data: {{\"first_seq\":1,\"last_seq\":{last}}}").as_str()),
        "{streamed}"
    );
    assert!(
        streamed.contains(&format!("id: {}\n", last + 1)),
        "then the live records"
    );

    // The segment verifies offline with the saved public keys; any changed byte fails.
    let ok = verify_archive(&out, &jwks);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let report: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report["checkpoint_verified"], true, "{report}");
    assert_eq!(report["records"].as_i64(), Some(last));
    let bytes = std::fs::read(&out).unwrap();
    for at in [0, bytes.len() / 3, bytes.len() / 2, bytes.len() - 2] {
        let mut changed = bytes.clone();
        changed[at] = if changed[at] == b'0' { b'1' } else { b'0' };
        let copy = tmp.path().join("changed.archive");
        std::fs::write(&copy, &changed).unwrap();
        let out = verify_archive(&copy, &jwks);
        assert_eq!(
            out.status.code(),
            Some(1),
            "byte {at} changed and still verified"
        );
    }

    // Never over an existing file; nothing is removed then.
    let again = node.cli(&[
        "audit",
        "archive",
        "--before",
        &before,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
    // Nothing older than any checkpoint before 1970: a clear refusal.
    let none = node.cli(&[
        "audit",
        "archive",
        "--before",
        "1970-01-02",
        "--out",
        tmp.path().join("none").to_str().unwrap(),
    ]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("checkpoint"));
    assert!(node.stop().success());

    // The store refuses to delete records no archive covers, even to someone with the file
    // who does not first drop the trigger.
    let refused = Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)'); c.commit()"])
        .arg(dir.join("portcullis.db"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("append-only"));
}

/// Removing records takes a segment the deployment built and signed over exactly those
/// records: an administrator who types a range and hashes (a README walk did, and 29 records
/// went with no archive anywhere), replays an old manifest or bends one gets a refusal and
/// the records stay. A credential that may read but not purge leaves no files behind.
#[test]
fn a_purge_needs_a_manifest_this_deployment_signed_over_the_live_records() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start_in(
        &tmp.path().join("data"),
        &[("PORTCULLIS_AUDIT__CHECKPOINT_INTERVAL_SECS", "1")],
    );
    let (id, secret) = node.create_client(&["--id", "purged-client"]);
    assert_eq!(node.token(&id, &secret, "").status, 200);
    let head = node.cli_json(&["audit", "list", "--limit", "1"])["records"][0]["seq"]
        .as_i64()
        .unwrap();
    let (checkpoint_seq, checkpoint_at) = checkpoint_after(&node, head);
    let admin = node.admin_token();
    let reader = node.admin_token_with_scope("audit:read");
    let purge = |body: Value| {
        node.request(
            "POST",
            "/admin/v1/audit/archive/purge",
            Some("application/json"),
            &[("Authorization", &format!("Bearer {admin}"))],
            body.to_string().as_bytes(),
        )
    };
    let oldest = || {
        node.cli_json(&["audit", "list", "--limit", "1000"])["records"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["seq"]
            .as_i64()
    };

    // The fields a purge once believed: refused, nothing removed.
    let typed = purge(serde_json::json!({
        "first_seq": 1, "last_seq": head, "checkpoint_seq": checkpoint_seq,
        "last_hash": "0".repeat(64), "segment_sha256": "0".repeat(64),
    }));
    assert_eq!(typed.status, 400, "{}", typed.text);
    assert_eq!(oldest(), Some(1));

    // A real segment's manifest, bent in its signature or its claims: refused.
    let segment = node.request(
        "GET",
        &format!("/admin/v1/audit/archive?before={}", checkpoint_at + 1),
        None,
        &[("Authorization", &format!("Bearer {reader}"))],
        b"",
    );
    assert_eq!(segment.status, 200, "{}", segment.text);
    let manifest = segment.text.lines().nth(1).unwrap().to_owned();
    let (signed, signature) = manifest.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let bad_signature = format!("{signed}.{flipped}{}", &signature[1..]);
    let (header, _claims) = signed.split_once('.').unwrap();
    let other_claims = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        br#"{"first_seq":1,"last_seq":2}"#,
    );
    for (what, bent) in [
        ("signature", bad_signature),
        ("claims", format!("{header}.{other_claims}.{signature}")),
        ("not a JWS", "not-a-jws".to_owned()),
    ] {
        let refused = purge(serde_json::json!({ "manifest": bent }));
        assert_eq!(refused.status, 409, "{what}: {}", refused.text);
    }
    assert_eq!(oldest(), Some(1), "nothing was removed");

    // An auditor's credential may build the segment but not purge: no file stays behind.
    let created = node.cli_json(&[
        "client",
        "create",
        "--name",
        "reader",
        "--scope",
        "audit:read",
    ]);
    let credential = tmp.path().join("reader.json");
    std::fs::write(
        &credential,
        serde_json::json!({
            "client_id": created["client_id"],
            "client_secret": created["client_secret"],
        })
        .to_string(),
    )
    .unwrap();
    let out = tmp.path().join("by-reader.archive");
    let by_reader = Command::new(support::BIN)
        .args(["--server", &node.base, "--admin-credential"])
        .arg(&credential)
        .args([
            "audit",
            "archive",
            "--before",
            &(checkpoint_at + 1).to_string(),
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&by_reader.stderr);
    assert_eq!(by_reader.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("files of this run were deleted"),
        "{stderr}"
    );
    assert!(!out.exists() && !tmp.path().join("by-reader.jwks.json").exists());
    assert_eq!(oldest(), Some(1));

    // The real manifest purges once; the same manifest again is refused.
    let purged = purge(serde_json::json!({ "manifest": manifest }));
    assert_eq!(purged.status, 200, "{}", purged.text);
    let through = purged.json["archived_through"].as_i64().unwrap();
    assert_eq!(oldest(), Some(through + 1));
    let recorded = node.audit_record("audit.archived");
    let file_sha256 = portcullis_core::hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(
        segment.text.as_bytes(),
    ));
    assert_eq!(
        recorded["detail"]["segment_sha256"], file_sha256,
        "the anchor names the file the node built, computed not believed"
    );
    let again = purge(serde_json::json!({ "manifest": manifest }));
    assert_eq!(again.status, 409, "{}", again.text);
    assert_eq!(node.cli_json(&["audit", "verify"])["ok"], true);
}

/// An export that has not delivered records holds them live: archiving them would make it
/// skip them without a word (a README walk saw a SIEM miss three records that way).
#[test]
fn records_an_export_has_not_delivered_are_not_archived() {
    let tmp = tempfile::tempdir().unwrap();
    let ca =
        crate::pki::Device::new(tmp.path(), "siem").self_signed("siem-ca", "/CN=siem.test", &[]);
    let config = tmp.path().join("portcullis.toml");
    // A receiver that is not there: the export keeps its cursor at 0 and retries.
    std::fs::write(
        &config,
        format!(
            "[[audit.export]]\nname = \"siem\"\nkind = \"syslog\"\n\
             address = \"127.0.0.1:{}\"\ntls_ca_file = \"{}\"\n",
            support::free_port(),
            ca.display()
        ),
    )
    .unwrap();
    let node = Node::start_with_args(
        &tmp.path().join("data"),
        &["--config", config.to_str().unwrap()],
        &[("PORTCULLIS_AUDIT__CHECKPOINT_INTERVAL_SECS", "1")],
    );
    let (id, secret) = node.create_client(&["--id", "held-client"]);
    assert_eq!(node.token(&id, &secret, "").status, 200);
    let head = node.cli_json(&["audit", "list", "--limit", "1"])["records"][0]["seq"]
        .as_i64()
        .unwrap();
    let (_, checkpoint_at) = checkpoint_after(&node, head);
    let out = tmp.path().join("held.archive");
    let held = node.cli(&[
        "audit",
        "archive",
        "--before",
        &(checkpoint_at + 1).to_string(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&held.stderr);
    assert_eq!(held.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("export 'siem' has delivered only"),
        "{stderr}"
    );
    assert!(!out.exists());
    // Both ends of the lag are on /metrics, the export's from its start (it never delivered).
    let metrics = node.get("/metrics").text;
    assert!(
        metrics.contains("portcullis_audit_exported_seq{export=\"siem\"} 0"),
        "{metrics}"
    );
    assert!(metrics.contains("portcullis_audit_head_seq "), "{metrics}");
    let oldest = node.cli_json(&["audit", "list", "--limit", "1000"])["records"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["seq"]
        .as_i64();
    assert_eq!(oldest, Some(1), "every record stays live");
    assert!(node.stop().success());
}

/// The segments in `dir`, oldest first, each verified offline with the keys saved beside it:
/// `(first_seq, last_seq, first_prev_hash, last_hash)`.
fn verified_segments(dir: &std::path::Path) -> Vec<(i64, i64, String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "archive"));
    files.sort();
    files
        .iter()
        .map(|file| {
            let jwks = file.with_extension("jwks.json");
            let out = verify_archive(file, &jwks);
            assert!(
                out.status.success(),
                "{}: {}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let r: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(r["checkpoint_verified"], true, "{r}");
            // The live chain does not hold the segment's own hash, so check it against the
            // manifest's last hash through the next segment's link (below).
            let last_hash = {
                let text = std::fs::read_to_string(file).unwrap();
                let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
                last["hash"].as_str().unwrap().to_owned()
            };
            (
                r["first_seq"].as_i64().unwrap(),
                r["last_seq"].as_i64().unwrap(),
                r["first_prev_hash"].as_str().unwrap().to_owned(),
                last_hash,
            )
        })
        .collect()
}

#[test]
fn records_past_the_configured_age_are_archived_automatically_and_every_segment_links() {
    let tmp = tempfile::tempdir().unwrap();
    let archive_dir = tmp.path().join("archive");
    // Three seconds (a fraction of a day), checked every second, checkpoints every second.
    let node = Node::start_in(
        &tmp.path().join("data"),
        &[
            ("PORTCULLIS_AUDIT__CHECKPOINT_INTERVAL_SECS", "1"),
            ("PORTCULLIS_AUDIT__ARCHIVE_AFTER_DAYS", "0.0000347"),
            ("PORTCULLIS_AUDIT__ARCHIVE_INTERVAL_SECS", "1"),
            (
                "PORTCULLIS_AUDIT__ARCHIVE_DIR",
                archive_dir.to_str().unwrap(),
            ),
        ],
    );
    let (id, secret) = node.create_client(&["--id", "aged-client"]);
    // Traffic over several seconds, so more than one segment is cut.
    let deadline = Instant::now() + Duration::from_secs(30);
    let segments = loop {
        assert_eq!(node.token(&id, &secret, "").status, 200);
        std::thread::sleep(Duration::from_millis(200));
        let segments = verified_segments(&archive_dir);
        if segments.len() >= 2 {
            break segments;
        }
        assert!(
            Instant::now() < deadline,
            "no automatic segments: {segments:?}"
        );
    };
    // Contiguous from the genesis record, each linking to the one before.
    assert_eq!(segments[0].0, 1, "{segments:?}");
    assert_eq!(segments[0].2, "0".repeat(64), "{segments:?}");
    for pair in segments.windows(2) {
        assert_eq!(pair[1].0, pair[0].1 + 1, "{segments:?}");
        assert_eq!(pair[1].2, pair[0].3, "{segments:?}");
    }
    // The live chain continues from the newest anchor and still verifies.
    let verified = node.cli_json(&["audit", "verify"]);
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verified["anchor_verified"], true, "{verified}");
    let through = verified["archived_through"].as_i64().unwrap();
    assert!(
        segments.iter().any(|s| s.1 == through),
        "{through} {segments:?}"
    );
    let live = node.cli_json(&["audit", "list", "--limit", "1000"]);
    let records = live["records"].as_array().unwrap();
    assert!(records.iter().all(|r| r["seq"].as_i64() > Some(through)));
    let automatic = records
        .iter()
        .find(|r| r["action"] == "audit.archived" && r["detail"]["automatic"] == true)
        .expect("an automatic archive is audited");
    assert_eq!(automatic["actor"], "system", "{automatic}");
    assert!(node.stop().success());
}
