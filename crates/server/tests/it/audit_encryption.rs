//! Audit records encrypted at rest (issue #14, item 1): a copied database — the SQLite file,
//! a PostgreSQL dump — shows none of the client ids and addresses that only the audit trail
//! knows (an unknown client and the address it came from), yet `portcullis audit verify --store-url` proves the copy's chain with no master
//! key and no audit data key, and fails on an edited ciphertext or a dropped record.

use crate::postgres_nodes::two_nodes;
use crate::support;

use std::path::Path;
use std::process::Command;

use support::{basic_header, Node};

/// Words that appear in audit records only: an unknown client and its forwarded address.
/// (Registered clients and devices are in their registries, which must look them up; the
/// trail's records about them are sealed like these.)
const GHOST_CLIENT: &str = "ghost-client-7f3k";
const FORWARDED: &str = "198.51.100.23";
const TRACES: [&str; 2] = [GHOST_CLIENT, FORWARDED];

const PROXY_TRUSTED: (&str, &str) = ("PORTCULLIS_SERVER__TRUSTED_PROXIES", "[\"127.0.0.1/32\"]");

/// Causes a record about each secret word, then checks the node itself reads them back.
fn leave_traces(node: &Node) {
    let auth = basic_header(GHOST_CLIENT, "not-the-secret");
    let refused = node.request(
        "POST",
        "/oauth2/token",
        Some("application/x-www-form-urlencoded"),
        &[("Authorization", &auth), ("X-Forwarded-For", FORWARDED)],
        b"grant_type=client_credentials",
    );
    assert_eq!(refused.status, 401, "{}", refused.text);
    let listed = node
        .cli_json(&["audit", "list", "--limit", "200"])
        .to_string();
    for word in TRACES {
        assert!(
            listed.contains(word),
            "{word} is in the decrypted trail: {listed}"
        );
    }
    assert!(listed.contains(r#""encrypted":true"#), "{listed}");
}

fn assert_hides_traces(bytes: &[u8], what: &str) {
    let text = String::from_utf8_lossy(bytes);
    for word in TRACES {
        assert!(!text.contains(word), "{word} in the clear in {what}");
    }
}

/// `portcullis audit verify --store-url sqlite:<db>` with no master key anywhere near.
fn verify_offline(db: &Path, jwks: Option<&Path>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.args(["--json", "audit", "verify", "--store-url"])
        .arg(format!("sqlite:{}", db.display()));
    if let Some(jwks) = jwks {
        cmd.arg("--jwks").arg(jwks);
    }
    cmd.env_remove("PORTCULLIS_KEYS__MASTER_KEY_FILE")
        .output()
        .expect("portcullis")
}

fn python_sql(db: &Path, statement: &str) {
    let script = "import sqlite3,sys\n\
        c=sqlite3.connect(sys.argv[1])\n\
        c.execute('DROP TRIGGER IF EXISTS audit_log_no_update')\n\
        c.execute('DROP TRIGGER IF EXISTS audit_log_no_delete')\n\
        c.execute(sys.argv[2])\n\
        c.commit()\n";
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(db)
        .arg(statement)
        .status()
        .expect("python3");
    assert!(status.success(), "{statement}");
}

/// Copies the store of a stopped node (the file and its write-ahead log) into `to`.
fn copy_db(data_dir: &Path, to: &Path) -> std::path::PathBuf {
    let copy = to.join("copy.db");
    std::fs::copy(data_dir.join("portcullis.db"), &copy).unwrap();
    let wal = data_dir.join("portcullis.db-wal");
    let copied_wal = to.join("copy.db-wal");
    if wal.exists() {
        std::fs::copy(wal, copied_wal).unwrap();
    } else {
        let _ = std::fs::remove_file(copied_wal);
    }
    copy
}

#[test]
fn a_copied_sqlite_file_shows_no_ids_and_verifies_without_any_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let node = Node::start_in(
        &dir,
        &[
            PROXY_TRUSTED,
            ("PORTCULLIS_AUDIT__CHECKPOINT_INTERVAL_SECS", "1"),
        ],
    );
    leave_traces(&node);
    // A signed checkpoint after the traces, and the public keys an auditor would keep.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let jwks = tmp.path().join("jwks.json");
    std::fs::write(&jwks, node.get("/jwks.json").text).unwrap();
    assert!(node.stop().success());

    // Everything the node wrote to its data directory but the master key itself.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("portcullis.db") {
            assert_hides_traces(&std::fs::read(&path).unwrap(), &name);
        }
    }

    let copies = tempfile::tempdir().unwrap();
    let copy = copy_db(&dir, copies.path());
    let out = verify_offline(&copy, Some(&jwks));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert!(report["records"].as_u64().unwrap() >= 5, "{report}");
    assert!(
        report["checkpoints_verified"].as_u64().unwrap() >= 1,
        "{report}"
    );
    let without_jwks = verify_offline(&copy, None);
    assert!(without_jwks.status.success());

    // One flipped character of one ciphertext, then one record dropped: both are caught.
    python_sql(
        &copy,
        "UPDATE audit_log SET detail = substr(detail, 1, length(detail) - 3) || CASE substr(detail, length(detail) - 2, 1) WHEN 'A' THEN 'B' ELSE 'A' END || substr(detail, length(detail) - 1) \
         WHERE seq = (SELECT MIN(seq) FROM audit_log WHERE action = 'token.refused')",
    );
    let edited = verify_offline(&copy, None);
    assert_eq!(edited.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&edited.stderr).contains("edited"),
        "{}",
        String::from_utf8_lossy(&edited.stderr)
    );
    let copy = copy_db(&dir, copies.path());
    python_sql(&copy, "DELETE FROM audit_log WHERE seq = 3");
    assert_eq!(verify_offline(&copy, None).status.code(), Some(1));
}

#[test]
fn a_postgres_dump_shows_no_ids() {
    let Some(nodes) = two_nodes("audit_enc", &[PROXY_TRUSTED]) else {
        return;
    };
    leave_traces(&nodes.a);
    // The other node reads what the first sealed: the data key is shared through the store.
    let listed = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["--json", "audit", "list", "--limit", "200", "--server"])
        .arg(&nodes.b.base)
        .arg("--admin-credential")
        .arg(nodes.a.admin_credential())
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains(GHOST_CLIENT), "{listed}");
    let dump = Command::new("pg_dump")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", &nodes.database()])
        .output()
        .expect("pg_dump");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    assert!(String::from_utf8_lossy(&dump.stdout).contains("audit_log"));
    assert_hides_traces(&dump.stdout, "the pg_dump");
}
