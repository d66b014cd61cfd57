//! The audit log records every decision and `portcullis audit verify` detects tampering with
//! the database file.

use crate::support;

use std::process::Command;

use support::Node;

/// Tampers with the node's SQLite file as an attacker with the file would: with Python's
/// sqlite3 (a client we did not write), first dropping the append-only triggers.
fn sql(db: &std::path::Path, statement: &str) {
    python_sql(db, statement, "");
}

/// Like [`sql`], then recomputes every chain hash the way `portcullis_core::audit::chain_hash`
/// does (SHA-256 over the previous hash, seq and time as big-endian i64, then each text field
/// prefixed with its u64 length): the rewrite someone with write access to the database can
/// do, which the chain alone cannot tell from the original.
fn sql_rehashed(db: &std::path::Path, statement: &str) {
    let rehash = "prev=bytes(32)\n\
        rows=c.execute('SELECT seq,at,actor,action,subject,outcome,detail FROM audit_log ORDER BY seq').fetchall()\n\
        for seq,at,*fields in rows:\n\
        \x20   h=hashlib.sha256(prev+struct.pack('>qq',seq,at))\n\
        \x20   for f in fields:\n\
        \x20       b=f.encode(); h.update(struct.pack('>Q',len(b))+b)\n\
        \x20   c.execute('UPDATE audit_log SET prev_hash=?,hash=? WHERE seq=?',(prev.hex(),h.hexdigest(),seq))\n\
        \x20   prev=h.digest()\n";
    python_sql(db, statement, rehash);
}

/// Runs `statement` on `db` without the append-only triggers, then the Python lines `then`
/// (with the connection `c`), and commits.
fn python_sql(db: &std::path::Path, statement: &str, then: &str) {
    let script = format!(
        "import sqlite3,sys,hashlib,struct\n\
         c=sqlite3.connect(sys.argv[1])\n\
         c.execute('DROP TRIGGER IF EXISTS audit_log_no_update')\n\
         c.execute('DROP TRIGGER IF EXISTS audit_log_no_delete')\n\
         c.execute(sys.argv[2])\n\
         {then}c.commit()\n"
    );
    let status = Command::new("python3")
        .args(["-c", &script])
        .arg(db)
        .arg(statement)
        .status()
        .expect("python3");
    assert!(status.success(), "{statement}");
}

#[test]
fn every_decision_is_audited_and_tampering_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let node = Node::start_in(&dir, &[]);
    let (id, secret) = node.create_client(&["--id", "audited"]);
    assert_eq!(node.token(&id, &secret, "").status, 200);
    assert_eq!(node.token(&id, "wrong", "").status, 401);
    node.cli_json(&["client", "update", "audited", "--disable"]);

    let list = node.cli_json(&["audit", "list", "--limit", "100"]);
    let records = list["records"].as_array().unwrap();
    let actions: Vec<&str> = records
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for expected in [
        "client.created",
        "token.issued",
        "token.refused",
        "client.updated",
    ] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    assert!(
        records
            .windows(2)
            .all(|w| w[0]["seq"].as_i64() > w[1]["seq"].as_i64()),
        "newest first"
    );
    let verify = node.cli_json(&["audit", "verify"]);
    assert_eq!(verify["ok"], true, "{verify}");
    let count = verify["records"].as_u64().unwrap();
    assert!(count >= 4);
    let text = node.cli(&["audit", "list"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("token.issued"));
    assert!(node.stop().success());

    let db = dir.join("portcullis.db");
    sql(
        &db,
        "UPDATE audit_log SET outcome = 'success' WHERE action = 'token.refused'",
    );
    let node = Node::start_in(&dir, &[]);
    let out = node.cli(&["audit", "verify"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an edited record fails verification"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("record"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(node.stop().success());

    let tmp2 = tempfile::tempdir().unwrap();
    let dir2 = tmp2.path().join("data");
    let node = Node::start_in(&dir2, &[]);
    let (id, secret) = node.create_client(&[]);
    for _ in 0..3 {
        node.token(&id, &secret, "");
    }
    assert_eq!(node.cli_json(&["audit", "verify"])["ok"], true);
    assert!(node.stop().success());
    sql(
        &dir2.join("portcullis.db"),
        "DELETE FROM audit_log WHERE seq = 2",
    );
    let node = Node::start_in(&dir2, &[]);
    assert_eq!(
        node.cli(&["audit", "verify"]).status.code(),
        Some(1),
        "a deleted record fails verification"
    );
}

/// The `audit.checkpoint` records among the newest 500.
fn checkpoints(node: &Node) -> Vec<serde_json::Value> {
    let list = node.cli_json(&["audit", "list", "--limit", "500"]);
    let records = list["records"].as_array().cloned().unwrap_or_default();
    records
        .into_iter()
        .filter(|r| r["action"] == "audit.checkpoint")
        .collect()
}

/// Unpadded base64url, for a forged JWS.
fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn signed_checkpoints_are_verified_and_expose_a_rehashed_rewrite_or_a_forgery() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let every_second = [("PORTCULLIS_AUDIT__CHECKPOINT_INTERVAL_SECS", "1")];
    let node = Node::start_in(&dir, &every_second);
    let (id, secret) = node.create_client(&["--id", "checkpointed"]);
    assert_eq!(node.token(&id, &secret, "").status, 200);
    assert_eq!(node.token(&id, "wrong", "").status, 401);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let first = loop {
        if let Some(cp) = checkpoints(&node).pop() {
            break cp;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no audit.checkpoint within 20 s; log:\n{}",
            node.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert_eq!(first["actor"], "system");
    let kid = first["detail"]["kid"].as_str().unwrap().to_owned();
    let jwks = node.get("/jwks.json").json;
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid.as_str()),
        "signed by the published token-signing key {kid}"
    );
    // Idle seconds with a 1 s interval: a checkpoint never covers just another checkpoint.
    std::thread::sleep(std::time::Duration::from_millis(3500));
    let list = node.cli_json(&["audit", "list", "--limit", "500"]);
    let records = list["records"].as_array().unwrap();
    let action_at = |seq: i64| {
        records
            .iter()
            .find(|r| r["seq"].as_i64() == Some(seq))
            .map(|r| r["action"].as_str().unwrap_or("").to_owned())
    };
    let all: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["action"] == "audit.checkpoint")
        .collect();
    for cp in &all {
        let covered = cp["detail"]["seq"].as_i64().unwrap();
        assert!(covered < cp["seq"].as_i64().unwrap());
        assert_ne!(
            action_at(covered).as_deref(),
            Some("audit.checkpoint"),
            "checkpoint {cp} covers only a checkpoint"
        );
    }

    let verify = node.cli_json(&["audit", "verify"]);
    assert_eq!(verify["ok"], true, "{verify}");
    let verified = verify["checkpoints_verified"].as_u64().unwrap();
    assert!(verified >= 1, "{verify}");
    assert_eq!(verify["checkpoints_unverifiable"], 0, "{verify}");
    let last_checkpoint = verify["last_checkpoint_seq"].as_i64().unwrap();
    let last_seq = verify["last_seq"].as_i64().unwrap();
    assert!(last_checkpoint >= first["detail"]["seq"].as_i64().unwrap());
    assert_eq!(
        verify["records_after_checkpoint"].as_i64(),
        Some(last_seq - last_checkpoint),
        "{verify}"
    );
    let text = node.cli(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("checkpoints: ") && text.contains(" verified"),
        "{text}"
    );
    let log = node.log();
    assert!(
        log.contains("audit checkpoint") && log.contains(first["detail"]["hash"].as_str().unwrap()),
        "every checkpoint is in the operational log too"
    );
    assert!(node.stop().success());

    // A second copy of the deployment for the forgery below.
    let forged_dir = tmp.path().join("forged");
    assert!(Command::new("cp")
        .args(["-r"])
        .arg(&dir)
        .arg(&forged_dir)
        .status()
        .unwrap()
        .success());

    // 1. Hide the refused token request and re-hash the whole chain: every link checks out
    //    again, but the checkpoints taken after it signed the old hashes.
    sql_rehashed(
        &dir.join("portcullis.db"),
        "UPDATE audit_log SET outcome = 'success' WHERE action = 'token.refused'",
    );
    let off = [("PORTCULLIS_AUDIT__CHECKPOINT_INTERVAL_SECS", "0")];
    let node = Node::start_in(&dir, &off);
    let out = node.cli(&["audit", "verify"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a rewrite fails: {stderr}");
    assert!(
        stderr.contains("checkpoint at record") && stderr.contains("rewritten"),
        "the chain itself links up; the checkpoint names the rewrite: {stderr}"
    );
    assert!(node.stop().success());

    // 2. Append a checkpoint of the head that the key never signed (a valid-looking JWS with a
    //    bogus signature), linked into the chain like a real record.
    let db = forged_dir.join("portcullis.db");
    let head = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; print(*sqlite3.connect(sys.argv[1]).execute('SELECT seq,hash FROM audit_log ORDER BY seq DESC LIMIT 1').fetchone())",
        ])
        .arg(&db)
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).to_string();
    let (head_seq, head_hash) = head.trim().split_once(' ').unwrap();
    let header = format!(r#"{{"alg":"ES256","typ":"audit-checkpoint+jwt","kid":"{kid}"}}"#);
    let payload = format!(
        r#"{{"typ":"audit-checkpoint","seq":{head_seq},"hash":"{head_hash}","iat":1700000000}}"#
    );
    let jws = format!(
        "{}.{}.{}",
        b64url(header.as_bytes()),
        b64url(payload.as_bytes()),
        b64url(&[7u8; 64])
    );
    let detail =
        format!(r#"{{"hash":"{head_hash}","jws":"{jws}","kid":"{kid}","seq":{head_seq}}}"#);
    let forged_seq = head_seq.parse::<i64>().unwrap() + 1;
    sql_rehashed(
        &db,
        &format!(
            "INSERT INTO audit_log VALUES ({forged_seq}, 1700000000, 'system', 'audit.checkpoint', \
             'audit', 'success', '{detail}', '', '')"
        ),
    );
    let node = Node::start_in(&forged_dir, &off);
    let out = node.cli(&["audit", "verify"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a forged checkpoint fails: {stderr}"
    );
    assert!(
        stderr.contains(&format!("checkpoint at record {forged_seq} is forged")),
        "{stderr}"
    );
}

/// An auditor's credential (`audit:read` alone, no `portcullis:admin`) does from the CLI what
/// the API lets it: verify the chain and read alerts; acknowledging stays an administrator's.
#[test]
fn an_auditor_credential_verifies_the_chain_and_reads_alerts_from_the_cli() {
    let node = Node::start();
    let created = node.cli_json(&[
        "client",
        "create",
        "--name",
        "auditor",
        "--scope",
        "audit:read",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let credential = dir.path().join("auditor.json");
    let file = serde_json::json!({
        "client_id": created["client_id"],
        "client_secret": created["client_secret"],
    });
    std::fs::write(&credential, file.to_string()).unwrap();
    let run = |args: &[&str]| {
        Command::new(support::BIN)
            .args(["--server", &node.base, "--admin-credential"])
            .arg(&credential)
            .args(args)
            .output()
            .unwrap()
    };
    for args in [
        &["audit", "verify"][..],
        &["alerts", "list"],
        &["audit", "list"],
    ] {
        let out = run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ack = run(&["alerts", "ack", "no-such-alert"]);
    assert!(!ack.status.success());
    assert!(
        String::from_utf8_lossy(&ack.stderr)
            .contains("needs a credential with the scope portcullis:admin"),
        "{}",
        String::from_utf8_lossy(&ack.stderr)
    );
}
