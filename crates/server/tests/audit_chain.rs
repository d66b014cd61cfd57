//! The audit log records every decision and `portcullis audit verify` detects tampering with
//! the database file.

mod support;

use std::process::Command;

use support::Node;

/// Tampers with the node's SQLite file as an attacker with the file would: with Python's
/// sqlite3 (a client we did not write), first dropping the append-only triggers.
fn sql(db: &std::path::Path, statement: &str) {
    let script = "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); \
        c.execute('DROP TRIGGER IF EXISTS audit_log_no_update'); \
        c.execute('DROP TRIGGER IF EXISTS audit_log_no_delete'); \
        c.execute(sys.argv[2]); c.commit()";
    let status = Command::new("python3")
        .args(["-c", script])
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
