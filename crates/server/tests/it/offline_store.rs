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
