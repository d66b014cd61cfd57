//! The offline store commands (`migrate`, `store copy`) on the files and servers they open:
//! what they create is private, and what fails says where.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use crate::support;

/// Runs `portcullis <args>` under umask 022 (the usual one, whatever the test runner's).
fn portcullis_umask_022(args: &[&str]) -> Output {
    Command::new("sh")
        .args(["-c", "umask 022; exec \"$@\"", "sh", support::BIN])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn sqlite_stores_created_by_migrate_and_store_copy_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let migrated = tmp.path().join("mig.db");
    let copy = tmp.path().join("copy.db");
    let from = format!("sqlite:{}", migrated.display());
    let to = format!("sqlite:{}", copy.display());
    for args in [
        vec!["migrate", "--store-url", &from],
        vec!["store", "copy", "--from", &from, "--to", &to],
    ] {
        let out = portcullis_umask_022(&args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    for db in [&migrated, &copy] {
        let mut checked = 0;
        for suffix in ["", "-wal", "-shm"] {
            let file = format!("{}{suffix}", db.display());
            if let Ok(meta) = std::fs::metadata(&file) {
                assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{file}");
                checked += 1;
            }
        }
        assert!(checked >= 1, "{} was not created", db.display());
    }
}

#[test]
fn store_copy_says_which_of_its_stores_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let source = format!("sqlite:{}", tmp.path().join("src.db").display());
    let target = format!("sqlite:{}", tmp.path().join("dst.db").display());
    assert!(portcullis_umask_022(&["migrate", "--store-url", &source])
        .status
        .success());
    // No such database on the server (or no server): either way the side is named.
    let missing = format!(
        "postgres://postgres@127.0.0.1:5432/portcullis_no_such_db_{}",
        std::process::id()
    );
    for (from, to, side) in [
        (source.as_str(), missing.as_str(), "--to: "),
        (missing.as_str(), target.as_str(), "--from: "),
    ] {
        let out = portcullis_umask_022(&["store", "copy", "--from", from, "--to", to]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("error: {side}")), "{stderr}");
    }
}

#[test]
fn an_unreachable_postgres_is_named_with_its_address_and_cause_not_a_pool_timeout() {
    let port = support::free_port();
    let url = format!("postgres://walka:not-echoed-pw@127.0.0.1:{port}/db");
    let started = std::time::Instant::now();
    let out = Command::new(support::BIN)
        .args(["migrate", "--store-url", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}"))
            && stderr.to_lowercase().contains("connection refused"),
        "{stderr}"
    );
    assert!(!stderr.contains("pool timed out"), "{stderr}");
    assert!(!stderr.contains("not-echoed-pw"), "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "a refused connection fails at once"
    );
}

/// `store copy` from or to the SQLite file of a running node is refused (the copy would miss
/// what the node writes meanwhile, or the node would start on a half-copied target), and a
/// source that does not exist is a usage error rather than an empty store created and
/// "copied".
#[test]
fn store_copy_refuses_a_running_nodes_sqlite_file_and_a_missing_source() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let node = support::Node::start_in(&dir, &[]);
    let live = format!("sqlite:{}", dir.join("portcullis.db").display());
    let other = format!("sqlite:{}", tmp.path().join("other.db").display());
    for (from, to, side) in [(&live, &other, "--from: "), (&other, &live, "--to: ")] {
        if from == &other {
            assert!(portcullis_umask_022(&["migrate", "--store-url", &other])
                .status
                .success());
        }
        let out = portcullis_umask_022(&["store", "copy", "--from", from, "--to", to]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(side) && stderr.contains("in use by a running node"),
            "{stderr}"
        );
        std::fs::remove_file(tmp.path().join("other.db")).ok();
    }
    assert!(node.stop().success());
    let missing = format!("sqlite:{}", tmp.path().join("missing.db").display());
    let out = portcullis_umask_022(&["store", "copy", "--from", &missing, "--to", &other]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!tmp.path().join("missing.db").exists());
}
